"""How much of the supervised stage's seed spread is the refit's batch order, and does averaging refits
(`--refit_members=k`) remove it? On training queries only.

    MATRYOSHKA_DATA_ROOT=../shared/data/beir python benchmarks/refit_members.py [--seeds=1,2,3,4,5] [--members=4]

As benchmarks/epoch_rule.py: SciFact's training queries are split once (seed 0) into a held-out 20% and 80% to train
on; both stages train on the 80% exactly as main.py trains them. The stage's epoch is then refit `members` times from
its start, member k with the batch order of `--refit_members` (generator seed + 2 + 1000k; member 0 is the single
refit of `--refit_members=1`), and the members' average is built as `--refit_members` builds it. Each member and the
averages of the first 2 and of all are scored on the held-out 20% at every dim. The test split is never read.
Writes results/refit_members_<dataset>.json.
"""

from __future__ import annotations

import argparse
import copy
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path[0] = str(Path(__file__).resolve().parent.parent)

from matryoshka_adaptor.numerics import pin_at_startup  # noqa: E402

if __name__ == "__main__":
    pin_at_startup()  # before numpy and torch load, as main.py (matryoshka_adaptor/numerics.py)

import numpy as np  # noqa: E402

from benchmarks.epoch_rule import finish, held_out_split, train_both_stages  # noqa: E402
from benchmarks.suite import ints  # noqa: E402
from matryoshka_adaptor.errors import InputError, run_command  # noqa: E402
from matryoshka_adaptor.eval import write_json_atomic  # noqa: E402
from matryoshka_adaptor.model import MatryoshkaAdaptor  # noqa: E402
from matryoshka_adaptor.train import REFIT_MEMBER_STRIDE  # noqa: E402


def rounded(scores: list[float]) -> list[float]:
    return [round(s, 5) for s in scores]


def run(args: argparse.Namespace) -> None:
    if args.members < 2:
        raise InputError(f"--members={args.members}: expected at least 2 refits to average")
    embedded, config, inner, held = held_out_split(args.dataset)
    out: dict[int, Any] = {}
    for seed in ints(args.seeds):
        trainer, adaptor, log, choose = train_both_stages(embedded, config, inner, seed)
        cfg = trainer.config
        members = []
        for k in range(args.members):  # member k's batch order is the one --refit_members gives it
            trainer.config = replace(cfg, seed=seed + REFIT_MEMBER_STRIDE * k)
            finish(trainer, adaptor, log.best_epoch, choose, cfg.significance)
            members.append(copy.deepcopy(adaptor))
        trainer.config = cfg
        out[seed] = {
            "best_epoch": log.best_epoch,
            "members": [rounded(trainer.validate(m, held)) for m in members],
            "average_of_2": rounded(trainer.validate(MatryoshkaAdaptor.average(members[:2]), held)),
            f"average_of_{args.members}": rounded(trainer.validate(MatryoshkaAdaptor.average(members), held)),
        }
        print(f"seed {seed}: {out[seed]}", flush=True)
    rows = {
        "single_refit": np.array([r["members"][0] for r in out.values()]),
        "average_of_2": np.array([r["average_of_2"] for r in out.values()]),
        f"average_of_{args.members}": np.array([r[f"average_of_{args.members}"] for r in out.values()]),
    }
    members_table = np.array([r["members"] for r in out.values()])  # (seeds, members, dims)
    payload = {
        "command": "python benchmarks/refit_members.py " + " ".join(sys.argv[1:]),
        "metric": f"nDCG@10 on a fixed held-out 20% of {args.dataset}'s training queries ({len(held.queries)}) per dim",
        "dims": list(trainer.dims),
        "per_seed": out,
        "mean": {k: [round(float(x), 4) for x in t.mean(axis=0)] for k, t in rows.items()},
        "std_over_seeds": {k: [round(float(x), 4) for x in t.std(axis=0, ddof=1)] for k, t in rows.items()},
        "within_seed_member_std": [round(float(x), 4) for x in members_table.std(axis=1, ddof=1).mean(axis=0)],
    }
    write_json_atomic(Path(f"results/refit_members_{args.dataset}.json"), payload)
    for key in ("mean", "std_over_seeds"):
        for name, values in payload[key].items():
            print(f"{key:<15}{name:<16}", " ".join(f"{x:.4f}" for x in values))
    print(f"{'within-seed member std':<31}", " ".join(f"{x:.4f}" for x in payload["within_seed_member_std"]))


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="1,2,3,4,5")
    p.add_argument("--members", type=int, default=4)
    p.add_argument("--dataset", default="scifact")
    args = p.parse_args(argv)
    return run_command(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
