"""What does a training setting cost or buy, in quality and in time? On training queries only.

    MATRYOSHKA_DATA_ROOT=../shared/data/beir python benchmarks/held_out_settings.py [--set=KEY=VALUE,...]
        [--seeds=1,2,3,4,5] [--dataset=scifact]

As benchmarks/epoch_rule.py: the dataset's training queries are split once (seed 0) into a held-out 20% and 80% to
train on. On the 80% both stages train exactly as `python main.py --dataset=NAME --seed=N --KEY=VALUE ...` trains
them on all training queries (its seeded validation split, its refits), timed; the adaptor is then scored on the
held-out 20% at every dim. Run it once without `--set` and once with, and compare the two files: a setting that
saves time is worth adopting only if its held-out scores stay within the seeds' spread of the default's. The test
split is never read. Writes results/held_out_settings_<dataset>[_<settings>].json.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path[0] = str(Path(__file__).resolve().parent.parent)

from matryoshka_adaptor.numerics import pin_at_startup  # noqa: E402

if __name__ == "__main__":
    pin_at_startup()  # before numpy and torch load, as main.py (matryoshka_adaptor/numerics.py)

import numpy as np  # noqa: E402

from benchmarks.epoch_rule import held_out_parser, held_out_split  # noqa: E402
from benchmarks.suite import ints, settings_tag  # noqa: E402
from matryoshka_adaptor.errors import run_command  # noqa: E402
from matryoshka_adaptor.eval import write_json_atomic  # noqa: E402
from matryoshka_adaptor.train import Trainer, seed_everything  # noqa: E402


def settings_args(settings: str) -> list[str]:
    """'a=1,b=2' -> ['--a=1', '--b=2'] for main.py's parser, which checks every key and value."""
    return [f"--{s.strip()}" for s in settings.split(",") if s.strip()]


def run(args: argparse.Namespace) -> None:
    settings = settings_args(args.set)
    embedded, config, inner, held = held_out_split(args.dataset, settings)
    out: dict[int, Any] = {}
    for seed in ints(args.seeds):
        cfg = replace(config, seed=seed)
        seed_everything(seed)
        start = time.perf_counter()
        fit, choose = inner.split(cfg.val_fraction, seed)
        trainer = Trainer(embedded.doc_embeddings, cfg, "auto", evidence=inner)
        adaptor = trainer.new_adaptor(embedded.base_model, {})
        logs = [trainer.run_stage(adaptor, stage, fit, choose) for stage in ("unsupervised", "supervised")]
        seconds = round(time.perf_counter() - start, 1)
        out[seed] = {
            "held_out": [round(s, 5) for s in trainer.validate(adaptor, held)],
            "kept_epochs": [log.best_epoch for log in logs],
            "seconds": seconds,
        }
        print(f"seed {seed}: {out[seed]}", flush=True)
    table = np.array([row["held_out"] for row in out.values()])
    seconds = np.array([row["seconds"] for row in out.values()])
    payload = {
        "command": "python benchmarks/held_out_settings.py " + " ".join(sys.argv[1:]),
        "settings": args.set or "defaults",
        "metric": f"nDCG@10 on a fixed held-out 20% of {args.dataset}'s training queries ({len(held.queries)}) per dim",
        "dims": list(trainer.dims),
        "per_seed": out,
        "mean": [round(float(x), 4) for x in table.mean(axis=0)],
        "std": [round(float(x), 4) for x in table.std(axis=0, ddof=1)] if len(table) > 1 else None,
        "seconds": {"mean": round(float(seconds.mean()), 1), "min": float(seconds.min()), "max": float(seconds.max())},
    }
    label = "_" + settings_tag(settings) if settings else ""
    write_json_atomic(Path(f"results/held_out_settings_{args.dataset}{label}.json"), payload)
    print("dims   ", " ".join(f"{d:>6}" for d in payload["dims"]))
    print("mean   ", " ".join(f"{x:.4f}" for x in payload["mean"]))
    if payload["std"]:
        print("std    ", " ".join(f"{x:.4f}" for x in payload["std"]))
    print(f"training seconds a seed: {payload['seconds']}")


def main(argv: list[str]) -> int:
    p = held_out_parser(__doc__)
    p.add_argument("--set", default="", help="TrainConfig settings as main.py takes them: KEY=VALUE,KEY=VALUE")
    args = p.parse_args(argv)
    return run_command(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
