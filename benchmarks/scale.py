"""Scale benchmark (not part of the test suite): encoding, training and evaluation cost, in one command.

    MATRYOSHKA_DATA_ROOT=../shared/data/beir python benchmarks/scale.py [--sizes=10000,100000,1000000]
        [--encode-docs=1000] [--parts=encode,train,eval]

- encode: docs/s of this repo's Encoder (chunked, checksummed cache) against bare SentenceTransformer.encode on
  the same SciFact texts, each timed after the model is loaded and warmed up.
- train: at each corpus size, synthetic clustered unit vectors of dim 384 (synthetic.py) in a fresh child process:
  neighbour mining, one unsupervised epoch over every document, one supervised epoch over 2,000 synthetic queries,
  one validation pass (200 queries against the whole corpus), and the child's peak RSS; the default TrainConfig.
- eval: seconds per method and dim of `python matryoshka_adaptor/eval.py` on SciFact with the shipped adaptors.
Writes results/benchmark_scale.json (with the machine it ran on) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)

from matryoshka_adaptor.numerics import pin_at_startup  # noqa: E402

if __name__ == "__main__":
    pin_at_startup()  # before numpy and torch load, as main.py (matryoshka_adaptor/numerics.py)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.machine import cpu_name, peak_rss_mb  # noqa: E402

N_QUERIES, N_VAL = 2000, 200


def machine() -> dict[str, object]:
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "host": platform.node(), "cpu": cpu_name(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "memory_gb": round(mem_gb, 1), "python": platform.python_version(), "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def train_child(n: int) -> dict[str, float]:
    """One corpus size, measured inside this (fresh) process so its peak RSS is its own."""
    from matryoshka_adaptor.training.neighbors import _exact
    from matryoshka_adaptor.data.synthetic import clustered_unit_vectors
    from matryoshka_adaptor.train import Supervision, Trainer, TrainConfig, seed_everything
    from matryoshka_adaptor.vectors import unit_rows

    seed_everything(0)
    rng = np.random.default_rng(0)
    out: dict[str, float] = {"n": n}
    t = time.perf_counter()
    docs = clustered_unit_vectors(n, 384, rng)
    queries = unit_rows(docs[:N_QUERIES] + rng.standard_normal((N_QUERIES, 384), dtype=np.float32) * 0.04)
    out["generate_s"] = time.perf_counter() - t
    config = TrainConfig(unsup_epochs=1, sup_epochs=1)
    t = time.perf_counter()
    trainer = Trainer(docs, config, "auto")
    out["mine_neighbours_s"] = time.perf_counter() - t
    probe = torch.arange(0, len(trainer.anchors), max(1, len(trainer.anchors) // 500))
    exact = _exact(trainer.corpus, trainer.neighbors.shape[1], trainer.anchors[probe], 2**28)
    out["neighbour_recall"] = float(np.mean([len(set(a.tolist()) & set(b.tolist())) / len(a)
                                             for a, b in zip(exact.cpu(), trainer.neighbors[probe].cpu())]))
    t = time.perf_counter()
    adaptor = trainer.new_adaptor("synthetic", {})
    out["pca_rotation_s"] = time.perf_counter() - t
    t = time.perf_counter()
    trainer.run_stage(adaptor, "unsupervised", None, None)
    out["unsup_epoch_s"] = time.perf_counter() - t
    out["unsup_steps_per_s"] = -(-n // config.unsup_batch_size) / out["unsup_epoch_s"]
    qrels = {f"q{i}": {f"d{i}": 1} for i in range(N_QUERIES)}
    sup = Supervision.from_qrels(qrels, {f"q{i}": i for i in range(N_QUERIES)}, queries, {f"d{i}": i for i in range(N_QUERIES)})
    t = time.perf_counter()
    trainer.run_stage(adaptor, "supervised", sup, None)
    out["sup_epoch_s"] = time.perf_counter() - t
    out["sup_steps_per_s"] = -(-N_QUERIES // config.sup_batch_size) / out["sup_epoch_s"]
    t = time.perf_counter()
    trainer.validate(adaptor, sup.subset(np.arange(N_VAL)))
    out["validation_s"] = time.perf_counter() - t
    out["peak_rss_gb"] = peak_rss_mb() / 1024
    return {k: round(v, 4) for k, v in out.items()}


def train_sizes(sizes: list[int]) -> list[dict[str, float]]:
    rows = []
    for n in sizes:
        print(f"training at {n:,} synthetic documents ...", file=sys.stderr, flush=True)
        result = subprocess.run([sys.executable, __file__, f"--child={n}"], capture_output=True, text=True, cwd=ROOT)
        if result.returncode != 0:
            raise SystemExit(f"child for n={n} failed:\n{result.stderr[-3000:]}")
        rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), file=sys.stderr)
    return rows


def encode(n_docs: int) -> dict[str, float]:
    from matryoshka_adaptor.data import load_dataset_folder
    from matryoshka_adaptor.encoders import Encoder

    texts = list(load_dataset_folder("scifact").corpus.values())[:n_docs]
    with tempfile.TemporaryDirectory() as cache:
        encoder = Encoder(cache_dir=cache)
        model = encoder.model
        model.encode(texts[:64])  # warm-up, for both
        t = time.perf_counter()
        model.encode(texts, batch_size=32, show_progress_bar=False)
        bare = time.perf_counter() - t
        t = time.perf_counter()
        encoder.encode(texts, what="documents")
        ours = time.perf_counter() - t
    return {"docs": len(texts), "bare_docs_per_s": round(len(texts) / bare, 2), "repo_docs_per_s": round(len(texts) / ours, 2),
            "repo_over_bare_time": round(ours / bare, 3)}


def evaluation() -> dict[str, object]:
    from matryoshka_adaptor.eval import parse_args, run

    with tempfile.TemporaryDirectory() as tmp:
        payload = run(parse_args([f"--results-dir={tmp}", f"--plots-dir={tmp}", "--shortlist=0"]))
    return {"dataset": payload["dataset"], "n_documents": payload["n_documents"], "n_queries": payload["n_queries"],
            "seconds_per_evaluation": payload["seconds_per_evaluation"]}


def table(report: dict[str, object]) -> str:
    lines = []
    if "encode" in report:
        e = report["encode"]
        lines.append(f"encode {e['docs']} SciFact docs: repo {e['repo_docs_per_s']} docs/s, bare ST {e['bare_docs_per_s']} docs/s "
                     f"(repo time / bare time {e['repo_over_bare_time']})")
    if "train" in report:
        lines.append(f"{'docs':>10} {'mine s':>8} {'recall':>7} {'unsup s/ep':>10} {'steps/s':>8} {'sup s/ep':>9} {'steps/s':>8} "
                     f"{'val s':>7} {'RSS GB':>7}")
        for r in report["train"]:
            lines.append(f"{r['n']:>10,} {r['mine_neighbours_s']:>8.1f} {r['neighbour_recall']:>7.3f} {r['unsup_epoch_s']:>10.1f} "
                         f"{r['unsup_steps_per_s']:>8.1f} {r['sup_epoch_s']:>9.1f} {r['sup_steps_per_s']:>8.2f} "
                         f"{r['validation_s']:>7.1f} {r['peak_rss_gb']:>7.2f}")
    if "eval" in report:
        for method, by_dim in report["eval"]["seconds_per_evaluation"].items():
            lines.append(f"eval {method:>13}: " + ", ".join(f"{d}d {s:.1f}s" for d, s in by_dim.items()))
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10000,100000,1000000")
    p.add_argument("--encode-docs", type=int, default=1000)
    p.add_argument("--parts", default="encode,train,eval")
    p.add_argument("--out", default="results/benchmark_scale.json")
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child is not None:
        print(json.dumps(train_child(args.child)))
        return
    parts = {x.strip() for x in args.parts.split(",")}
    out = ROOT / args.out
    # parts run separately are merged into one report; each records its own machine, date and command
    report: dict[str, object] = json.loads(out.read_text()) if out.is_file() else {}
    run = {"machine": machine(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "command": " ".join(["python", "benchmarks/scale.py", *sys.argv[1:]])}
    if "encode" in parts:
        report["encode"] = {**encode(args.encode_docs), "run": run}
    if "train" in parts:
        report["train"] = train_sizes([int(x) for x in args.sizes.split(",")])
        report["train_run"] = run
    if "eval" in parts:
        report["eval"] = {**evaluation(), "run": run}
    from matryoshka_adaptor.eval import write_json_atomic

    write_json_atomic(out, report)
    print(table(report))


if __name__ == "__main__":
    main()
