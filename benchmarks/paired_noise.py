"""How much of a do-no-harm shortfall on test is resolvable with the test queries a collection has?

    MATRYOSHKA_DATA_ROOT=../shared/data/beir python benchmarks/paired_noise.py [--collections=cacm,medline,...]
        [--seeds=1,2,3,4,5] [--work_dir=.cache/suite] [--trained_on=NAME] [--model=... | --encoder=...]
        [--train_args='--key=value ...'] [--results=FILE]

Reads the adaptors benchmarks/suite.py (or multilingual.py) trained, `<work_dir>/<model tag>/seed<N>/<name>_<stage>`,
and scores every test query at every dim by exact search (metrics.ndcg_per_query, trec_eval's nDCG@10; its means
are checked against MTEB's in the output). For each dim it compares, query by query:
- the unsupervised adaptor (mean over seeds) with the best at that dim of base, centred PCA and the centred-axes
  rotation (the best picked on test, as the issue's bar picks it);
- the supervised adaptor with the unsupervised one.
Each difference gets a 95% paired bootstrap interval over queries (10,000 resamples, seeded). A shortfall whose
interval reaches above the bar's tolerance cannot be told from noise on that many queries. `--trained_on=xquad-r-en`
scores the English adaptors on the named collections instead (the cross-lingual transfer: the supervised one against
the base model, and against the unsupervised one as above);
`--trained_on=xquad-r-all` scores the union adaptor, trained on every language, with the comparisons above.
Test qrels are read only here, after training; nothing is chosen from them. Writes results/paired_noise[_<tag>].json,
or --results.
"""

from __future__ import annotations

import argparse
import os
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

from benchmarks import machine  # noqa: E402
from benchmarks.suite import BAR_BASELINES, base_model_args, data_root, ints, names_of, run_tag  # noqa: E402
from matryoshka_adaptor.baselines import StartMap  # noqa: E402
from matryoshka_adaptor.data import DATA_ROOT_ENV  # noqa: E402
from matryoshka_adaptor.data.sources import Source  # noqa: E402
from matryoshka_adaptor.data.xquad import ALL, PREFIX  # noqa: E402
from matryoshka_adaptor.encoders import DEFAULT_MODEL  # noqa: E402
from matryoshka_adaptor.errors import run_command  # noqa: E402
from matryoshka_adaptor.eval import ADAPTOR_STAGES, BASELINES, write_json_atomic  # noqa: E402
from matryoshka_adaptor.losses import default_dims  # noqa: E402
from matryoshka_adaptor.metrics import ndcg_per_query  # noqa: E402
from matryoshka_adaptor.model import MatryoshkaAdaptor  # noqa: E402
from matryoshka_adaptor.serving.plans import Transform  # noqa: E402
from matryoshka_adaptor.train import Supervision  # noqa: E402
from matryoshka_adaptor.vectors import unit_rows  # noqa: E402

RESAMPLES = 10_000


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--collections", default="scifact,cacm,medline,xquad-r-en")
    p.add_argument("--seeds", default="1,2,3,4,5")
    p.add_argument("--beir_root", default=os.environ.get(DATA_ROOT_ENV, "../shared/data/beir"))
    p.add_argument("--xquad_root", default=None, help="folder holding xquad-r/ (default: the BEIR root's parent)")
    p.add_argument("--work_dir", default=".cache/suite")
    p.add_argument("--trained_on", default=None, help="score these adaptors on every collection (default: each its own)")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--encoder", default=None)
    p.add_argument("--train_args", default="", help="the settings the adaptors were trained with, as given to suite.py "
                   "or multilingual.py (they name the runs' folder and this script's file)")
    p.add_argument("--results", default=None, help="default: results/paired_noise[_<model and settings tag>]"
                   "[_from_<trained_on>].json")
    args = p.parse_args(argv)
    args.tag = run_tag(args.model, args.encoder, args.train_args.split())
    suffix = "_".join(x for x in (args.tag, f"from_{args.trained_on}" if args.trained_on else "") if x)
    args.results = args.results or f"results/paired_noise{'_' + suffix if suffix else ''}.json"
    return args


def per_query_ndcg(docs: np.ndarray, queries: np.ndarray, judgments: list[dict[int, float]], dim: int) -> np.ndarray:
    """nDCG@10 of each query by exact cosine search over the first `dim` coordinates of full-width vectors."""
    d, q = (torch.from_numpy(unit_rows(x[:, :dim])) for x in (docs, queries))
    top = (q @ d.T).topk(min(10, len(docs)), dim=1).indices
    return ndcg_per_query(top, judgments)


def full_width(transform: Transform, docs: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(docs, queries) through the map at full width, once: every prefix is truncated from these."""
    return transform(docs, docs.shape[1]), transform(queries, docs.shape[1])


def bootstrap_interval(diff: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean of `diff` over resampled queries."""
    rows = np.random.default_rng(seed).integers(len(diff), size=(RESAMPLES, len(diff)))
    means = diff[rows].mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def compare(new: np.ndarray, old: np.ndarray, tolerance: float) -> dict[str, Any]:
    """Mean per-query difference new - old with its interval; a miss is resolvable when the whole interval lies
    below -tolerance."""
    diff = new - old
    lo, hi = bootstrap_interval(diff)
    mean = float(diff.mean())
    return {
        "mean": round(mean, 4), "ci95": [round(lo, 4), round(hi, 4)], "tolerance": tolerance,
        "misses_bar": mean < -tolerance, "miss_resolvable": hi < -tolerance,
    }


def collection(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Every dim's comparisons on one collection's test queries."""
    embedded, qrels, _ = Source(dataset=name, data_root=data_root(name, args), model=args.model, encoder=args.encoder).load("test")
    test = Supervision.from_qrels(qrels, embedded.query_index, embedded.query_embeddings, embedded.doc_index)
    judgments, docs = test.judgments, embedded.doc_embeddings
    dims = default_dims(docs.shape[1])
    fixed = {m: full_width(StartMap(docs, BASELINES[m]).transform, docs, test.queries) for m in BAR_BASELINES}
    trained_on = args.trained_on or name
    work = Path(args.work_dir) / args.tag
    adaptors = {
        s: [full_width(MatryoshkaAdaptor.load(work / f"seed{seed}" / f"{trained_on}_{s}").transform, docs, test.queries)
            for seed in ints(args.seeds)]
        for s in ADAPTOR_STAGES
    }
    out: dict[str, Any] = {"n_test_queries": len(judgments), "trained_on": trained_on, "dims": {}}
    for dim in dims:
        base = {m: per_query_ndcg(*vectors, judgments, dim) for m, vectors in fixed.items()}
        stage = {s: np.mean([per_query_ndcg(*vectors, judgments, dim) for vectors in runs], axis=0) for s, runs in adaptors.items()}
        row: dict[str, Any] = {"means": {k: round(float(v.mean()), 4) for k, v in {**base, **stage}.items()}}
        if trained_on == name or (trained_on == f"{PREFIX}{ALL}" and name.startswith(PREFIX)):  # the union trains on each language
            best = max(BAR_BASELINES, key=lambda m: base[m].mean())
            row["unsupervised_vs_best_training_free"] = {"best": best, **compare(stage["unsupervised"], base[best], 0.01)}
        else:
            row["supervised_vs_base"] = compare(stage["supervised"], base["base"], 0.01)
        row["supervised_vs_unsupervised"] = compare(stage["supervised"], stage["unsupervised"], 0.005)
        out["dims"][str(dim)] = row
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    start = time.perf_counter()
    names = names_of(args.collections)
    results = {n: collection(n, args) for n in names}
    payload = {
        "command": "python benchmarks/paired_noise.py " + " ".join(sys.argv[1:]),
        "metric": "nDCG@10 per test query, exact cosine search (trec_eval's formula)",
        "machine": machine.summary(),  # the numerics mode keys which cached vectors and adaptors it read
        "seeds": ints(args.seeds),
        "base_model_args": base_model_args(args),
        "collections": results,
        "seconds": round(time.perf_counter() - start, 1),
    }
    write_json_atomic(Path(args.results), payload)
    for name, r in results.items():
        for dim, row in r["dims"].items():
            for key in ("unsupervised_vs_best_training_free", "supervised_vs_unsupervised", "supervised_vs_base"):
                c = row.get(key)
                if c and c["misses_bar"]:
                    print(f"{name:<12}{dim:>5}  {key:<36} {c['mean']:+.4f}  95% CI [{c['ci95'][0]:+.4f}, {c['ci95'][1]:+.4f}]"
                          f"  {'resolvable' if c['miss_resolvable'] else 'within noise'} ({r['n_test_queries']} queries)")
    return payload


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    return run_command(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
