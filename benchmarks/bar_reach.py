"""Is the unsupervised do-no-harm bar within reach of any start map on test? Where none reaches it, no rule can.

    MATRYOSHKA_DATA_ROOT=../shared/data/beir python benchmarks/bar_reach.py [--collections=cacm,medline,...]
        [--model=... | --encoder=...] [--results=results/bar_reach.json]

The unsupervised adaptor ends at (or within a few thousandths of) the training-free start map it chose on the
training queries (training.selection.choose_start). The bar scores it on
test at every dim against the best at that dim, picked on test, of a few training-free maps: base, centred PCA and
the centred-axes rotation for issue 8, base and the centred-axes rotation for issue 9. Here every start map
(vectors.START_MAPS) is scored on test the same way, so a miss reads as one of:
- a choice miss: some start map is within the tolerance at every dim on test, but not the one the training
  queries chose (`chosen_on_train`);
- out of reach: no start map is, the bar's own reference maps included (each one is beaten by another at some dim).
It also gives each map's full-width score: the unsupervised objective asks every prefix to keep the start map's
full-width cosines, so that is the score it aims for at every dim; where it is below the bar at some dim
(`full_width_shortfall` < -tolerance), training that meets the objective does not meet the bar either.
Test qrels are read after the choice, only to score; nothing is chosen from them. Writes --results.
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
from benchmarks.start_choice import per_query_by_map  # noqa: E402
from benchmarks.suite import base_model_args, data_root, names_of  # noqa: E402
from matryoshka_adaptor.data import DATA_ROOT_ENV  # noqa: E402
from matryoshka_adaptor.data.sources import Source  # noqa: E402
from matryoshka_adaptor.encoders import DEFAULT_MODEL  # noqa: E402
from matryoshka_adaptor.errors import run_command  # noqa: E402
from matryoshka_adaptor.eval import write_json_atomic  # noqa: E402
from matryoshka_adaptor.training.selection import choose_start  # noqa: E402

# each issue's reference maps (start-map names: `none` is the base model, `centred_axes` the centred-axes rotation)
BARS = {"issue_8": ("none", "centred_pca", "centred_axes"), "issue_9": ("none", "centred_axes")}
TOLERANCE = 0.01  # both issues' tolerance for the unsupervised adaptor


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--collections", default="scifact,cacm,medline,xquad-r-en")
    p.add_argument("--beir_root", default=os.environ.get(DATA_ROOT_ENV, "../shared/data/beir"))
    p.add_argument("--xquad_root", default=None, help="folder holding xquad-r/ (default: the BEIR root's parent)")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--encoder", default=None)
    p.add_argument("--results", default="results/bar_reach.json")
    return p.parse_args(argv)


def reach(means: dict[str, np.ndarray], reference: tuple[str, ...], dims: list[int]) -> dict[str, Any]:
    """Each map's worst shortfall over dims against the reference maps' best at each dim, and its full-width
    score's; the maps within the tolerance at every dim."""
    best = np.max([means[m] for m in reference], axis=0)
    maps = {}
    for m, v in means.items():
        worst = int(np.argmin(v - best))
        maps[m] = {
            "worst_shortfall": round(float(v[worst] - best[worst]), 4), "worst_dim": dims[worst],
            "full_width_shortfall": round(float(v[-1] - best.max()), 4),
        }
    return {
        "best_per_dim": [round(float(b), 4) for b in best],
        "maps": maps,
        "within_tolerance": [m for m, r in maps.items() if r["worst_shortfall"] >= -TOLERANCE],
        "full_width_within_tolerance": [m for m, r in maps.items() if r["full_width_shortfall"] >= -TOLERANCE],
    }


def collection(name: str, args: argparse.Namespace) -> dict[str, Any]:
    source = Source(dataset=name, data_root=data_root(name, args), model=args.model, encoder=args.encoder)
    _, train = per_query_by_map(source, "train")
    dims, test_queries = per_query_by_map(source, "test")  # scored after the choice above, which never sees it
    test = {m: v.mean(axis=0) for m, v in test_queries.items()}
    return {
        "chosen_on_train": choose_start({m: v.mean(axis=0).tolist() for m, v in train.items()}),
        "dims": dims,
        "test_means": {m: [round(float(x), 4) for x in v] for m, v in test.items()},
        "bars": {bar: reach(test, reference, dims) for bar, reference in BARS.items()},
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    start = time.perf_counter()
    names = names_of(args.collections)
    results = {n: collection(n, args) for n in names}
    payload = {
        "command": "python benchmarks/bar_reach.py " + " ".join(sys.argv[1:]),
        "metric": "nDCG@10 per query, exact cosine search (trec_eval's formula), mean over the split's queries",
        "machine": machine.summary(),  # the numerics mode keys which cached vectors it read
        "base_model_args": base_model_args(args),
        "tolerance": TOLERANCE,
        "collections": results,
        "seconds": round(time.perf_counter() - start, 1),
    }
    write_json_atomic(Path(args.results), payload)
    for name, r in results.items():
        for bar, b in r["bars"].items():
            chosen = b["maps"][r["chosen_on_train"]]
            print(f"{name:<12} {bar}: chosen {r['chosen_on_train']} {chosen['worst_shortfall']:+.4f} ({chosen['worst_dim']});"
                  f" within {TOLERANCE} on test: {', '.join(b['within_tolerance']) or 'no start map'};"
                  f" full width within: {', '.join(b['full_width_within_tolerance']) or 'no start map'}")
    return payload


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    return run_command(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
