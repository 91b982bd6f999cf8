"""Time bare `SentenceTransformer.encode` (its defaults) on a dataset's documents and queries: the yardstick for
how much a cold `python main.py` adds on top of encoding.

    MATRYOSHKA_DATA_ROOT=../shared/data/beir python benchmarks/bare_encode.py [--dataset=scifact]

Writes results/bare_encode_<dataset>.json. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)

from matryoshka_adaptor.numerics import pin_at_startup  # noqa: E402

if __name__ == "__main__":
    pin_at_startup()  # before numpy and torch load, as main.py (matryoshka_adaptor/numerics.py)

import torch  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

from matryoshka_adaptor.data import load_dataset_folder  # noqa: E402
from matryoshka_adaptor.encoders import DEFAULT_MODEL, resolve_model_path  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", default="scifact")
    p.add_argument("--data-root", default=None)
    p.add_argument("--model", default=DEFAULT_MODEL)
    args = p.parse_args()
    ds = load_dataset_folder(args.dataset, args.data_root)
    start = time.perf_counter()
    model = SentenceTransformer(resolve_model_path(args.model))
    load_s = time.perf_counter() - start
    timings = {}
    for name, texts in (("documents", list(ds.corpus.values())), ("queries", list(ds.queries.values()))):
        start = time.perf_counter()
        model.encode(texts, show_progress_bar=True)
        timings[name] = {"texts": len(texts), "seconds": round(time.perf_counter() - start, 1)}
    result = {
        "dataset": ds.name,
        "model": args.model,
        "model_load_seconds": round(load_s, 1),
        "encode": timings,
        "total_encode_seconds": round(sum(t["seconds"] for t in timings.values()), 1),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, "
        + ("CUDA " + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU only"),
    }
    out = Path("results") / f"bare_encode_{ds.name}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
