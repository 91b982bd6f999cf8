"""Does the start-map rule carry over from some training queries to others? Training queries only.

    MATRYOSHKA_DATA_ROOT=../shared/data/beir python benchmarks/start_choice.py [--collections=scifact,cacm,...]
        [--splits=200] [--model=... | --encoder=...] [--results=results/start_choice.json]

main.py chooses its start map on all training queries (training.selection.choose_start: the smallest worst
shortfall over dims). Here each collection's training queries are split in half at random, many times; each rule
chooses on one half and is scored on the other, which plays the test: its worst shortfall over dims against the
best map *on that half* among the four maps the bar measures against (base, the two rotations, centred PCA), and
how often that shortfall is within 0.01. Rules:
- `minimax`: choose_start over every start map, today's default (the partly centred maps included);
- `bagged`: the same worst shortfall, averaged over 200 bootstrap resamples of the choosing half before the
  smallest is taken (whether the minimax choice is mostly selection noise that averaging removes; it was not
  adopted: docs/evidence.md);
- `minimax_four`: choose_start over those four alone, the default before the partly centred maps;
- `mean`: the highest mean over dims;
- `rotation_first`: the best rotation by choose_start (a rotation keeps every full-dim cosine), and centred PCA
  (which does not) only when it beats that rotation in the supervised stage's paired test (1%, no dim 0.005 worse);
- `centred_axes`: always the centred-axes rotation (main.py's choice without training queries).
Per-query nDCG@10 at every dim is computed once per map by exact search; the splits only re-average it. The test
split is never read. Writes results/start_choice.json.
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

from benchmarks import machine  # noqa: E402
from benchmarks.paired_noise import full_width, per_query_ndcg  # noqa: E402
from benchmarks.suite import data_root, names_of  # noqa: E402
from matryoshka_adaptor.baselines import StartMap  # noqa: E402
from matryoshka_adaptor.data import DATA_ROOT_ENV  # noqa: E402
from matryoshka_adaptor.data.sources import Source  # noqa: E402
from matryoshka_adaptor.data.xquad import LANGUAGES, PREFIX  # noqa: E402
from matryoshka_adaptor.encoders import DEFAULT_MODEL  # noqa: E402
from matryoshka_adaptor.errors import run_command  # noqa: E402
from matryoshka_adaptor.eval import write_json_atomic  # noqa: E402
from matryoshka_adaptor.losses import default_dims  # noqa: E402
from matryoshka_adaptor.train import Supervision  # noqa: E402
from matryoshka_adaptor.training.selection import choose_start, paired_gain_test, worst_shortfalls  # noqa: E402
from matryoshka_adaptor.vectors import START_MAPS  # noqa: E402

ROTATIONS = ("none", "pca", "centred_axes")  # the start maps that keep every full-dim cosine
REFERENCE = (*ROTATIONS, "centred_pca")  # the maps a choice's shortfall is measured against
BOOTSTRAPS = 200  # resamples of the choosing queries for the `bagged` rule
TOLERANCE = 0.01  # issue 8's bar for the unsupervised adaptor against the best training-free map


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--collections", default=",".join(["scifact", "cacm", "medline", *(PREFIX + x for x in LANGUAGES)]))
    p.add_argument("--splits", type=int, default=200, help="random halvings of each collection's training queries")
    p.add_argument("--beir_root", default=os.environ.get(DATA_ROOT_ENV, "../shared/data/beir"))
    p.add_argument("--xquad_root", default=None, help="folder holding xquad-r/ (default: the BEIR root's parent)")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--encoder", default=None)
    p.add_argument("--results", default="results/start_choice.json")
    return p.parse_args(argv)


def means_on(per_query: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, list[float]]:
    """Each map's nDCG@10 per dim, averaged over the queries `rows` ((queries, dims) nDCG@10 per map)."""
    return {m: per_query[m][rows].mean(axis=0).tolist() for m in per_query}


def bagged_choice(per_query: dict[str, np.ndarray], rows: np.ndarray, resamples: int = BOOTSTRAPS) -> str:
    """The map whose worst shortfall over dims (choose_start's), averaged over bootstrap resamples of the queries
    `rows`, is smallest: the minimax choice with its selection noise averaged out."""
    names = list(per_query)
    table = np.stack([per_query[m][rows] for m in names])  # (maps, queries, dims)
    draws = np.random.default_rng(rows).integers(len(rows), size=(resamples, len(rows)))
    means = table[:, draws].mean(axis=2)  # (maps, resamples, dims)
    regret = (means.max(axis=0, keepdims=True) - means).max(axis=2).mean(axis=1)
    return names[int(np.argmin(regret))]


def rule_choices(per_query: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, str]:
    """Each rule's start map, chosen on the queries `rows`."""
    means = means_on(per_query, rows)
    rotation = choose_start({m: means[m] for m in ROTATIONS})
    test = paired_gain_test(per_query["centred_pca"][rows], per_query[rotation][rows], 0.01, 0.005)
    return {
        "minimax": choose_start(means),
        "bagged": bagged_choice(per_query, rows),
        "minimax_four": choose_start({m: means[m] for m in REFERENCE}),
        "mean": max(means, key=lambda m: float(np.mean(means[m]))),
        "rotation_first": "centred_pca" if test.accepted else rotation,
        "centred_axes": "centred_axes",
    }


def per_query_by_map(source: Source, split: str) -> tuple[list[int], dict[str, np.ndarray]]:
    """The dims, and every start map's nDCG@10 on one split by exact search: (queries, dims) per map. The maps are
    fitted on the corpus alone."""
    embedded, qrels, _ = source.load(split)
    judged = Supervision.from_qrels(qrels, embedded.query_index, embedded.query_embeddings, embedded.doc_index)
    docs = embedded.doc_embeddings
    dims = list(default_dims(docs.shape[1]))
    per_query = {}
    for m in START_MAPS:
        vectors = full_width(StartMap(docs, m).transform, docs, judged.queries)
        per_query[m] = np.stack([per_query_ndcg(*vectors, judged.judgments, d) for d in dims], axis=1)
    return dims, per_query


def collection(name: str, args: argparse.Namespace, rng: np.random.Generator) -> dict[str, Any]:
    source = Source(dataset=name, data_root=data_root(name, args), model=args.model, encoder=args.encoder)
    _, per_query = per_query_by_map(source, "train")
    n = len(per_query["none"])
    rules: dict[str, list[float]] = {}
    picks: dict[str, dict[str, int]] = {}
    for _ in range(args.splits):
        order = rng.permutation(n)
        choose_rows, score_rows = order[: n // 2], order[n // 2 :]
        shortfall = worst_shortfalls(means_on(per_query, score_rows), REFERENCE)  # on the scoring half
        for rule, chosen in rule_choices(per_query, choose_rows).items():
            rules.setdefault(rule, []).append(shortfall[chosen])
            picks.setdefault(rule, {}).setdefault(chosen, 0)
            picks[rule][chosen] += 1
    return {
        "n_train_queries": n,
        "on_all_training_queries": rule_choices(per_query, np.arange(n)),
        "rules": {
            rule: {
                "mean_worst_shortfall": round(float(np.mean(v)), 4),
                "within_tolerance": round(float(np.mean(np.array(v) <= TOLERANCE)), 3),
                "picks": picks[rule],
            }
            for rule, v in rules.items()
        },
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    names = names_of(args.collections)
    results = {n: collection(n, args, rng) for n in names}
    payload = {
        "command": "python benchmarks/start_choice.py " + " ".join(sys.argv[1:]),
        "machine": machine.summary(),
        "metric": "nDCG@10 per training query, exact cosine search; worst shortfall over dims on the other half",
        "splits": args.splits,
        "tolerance": TOLERANCE,
        "collections": results,
        "seconds": round(time.perf_counter() - start, 1),
    }
    write_json_atomic(Path(args.results), payload)
    rules = list(next(iter(results.values()))["rules"])
    print(f"{'collection':<14}{'queries':>8}" + "".join(f"{r:>26}" for r in rules))
    for name, r in results.items():
        cells = "".join(f"{r['rules'][k]['mean_worst_shortfall']:>17.4f} ({r['rules'][k]['within_tolerance']:.2f})" for k in rules)
        print(f"{name:<14}{r['n_train_queries']:>8}{cells}")
    print("cells: mean worst shortfall over dims on the scoring half (share of splits within 0.01)")
    return payload


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    return run_command(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
