"""Which epoch should the supervised stage keep: the best held-out mean, or the earliest within a paired standard error
of it (the one-standard-error rule)? And would averaging the refit's last weights steady it? On training queries only.

    MATRYOSHKA_DATA_ROOT=../shared/data/beir python benchmarks/epoch_rule.py [--seeds=1,2,3,4,5] [--dataset=scifact]

SciFact's training queries are split once, with a fixed seed (0) for every training seed, into 20% held out and 80%
to train on; so the seeds' spread on the held-out 20% is the spread a test split shows. On the 80% both stages train
exactly as main.py trains them (its own seeded split of the 80% chooses the epoch), except that every supervised
epoch's state is kept. Each rule then picks an epoch from the same validation scores, the paired test and the tail
test judge it as the stage judges its epoch, and the refit trains from the stage's start on all of the 80% for that
many epochs; `best_averaged` is the best epoch's refit with the weights of its last quarter of epochs averaged
(tail averaging, which damps the step-to-step noise of a constant learning rate). Each is scored on the held-out 20%
at every dim. The test split is never read.
Writes results/epoch_rule_<dataset>.json.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path[0] = str(Path(__file__).resolve().parent.parent)

from matryoshka_adaptor.numerics import pin_at_startup  # noqa: E402

if __name__ == "__main__":
    pin_at_startup()  # before numpy and torch load, as main.py (matryoshka_adaptor/numerics.py)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import main as train_entry  # noqa: E402
from benchmarks.suite import ints  # noqa: E402
from matryoshka_adaptor.errors import run_command  # noqa: E402
from matryoshka_adaptor.eval import write_json_atomic  # noqa: E402
from matryoshka_adaptor.losses import tail_start  # noqa: E402
from matryoshka_adaptor.model import MatryoshkaAdaptor  # noqa: E402
from matryoshka_adaptor.train import (  # noqa: E402
    StageLog, Supervision, TrainConfig, Trainer, column_means, seed_everything, split_validation,
)
from matryoshka_adaptor.training.selection import EpochChoice  # noqa: E402

HELD_OUT_SEED = 0  # the held-out 20% is the same for every training seed
RULES = ("best", "one_se", "best_averaged")


class RecordingTrainer(Trainer):
    """A Trainer that keeps every scored state of its supervised stage and its per-query validation scores, and
    while `averaging`, the state after every training epoch (the refit's)."""

    recording = averaging = False
    states: list[dict[str, Any]]
    per_query: list[np.ndarray]
    trained: list[dict[str, Any]]

    def epoch_scores(
        self, adaptor: MatryoshkaAdaptor, queries: Supervision | None, probes: Supervision | None
    ) -> tuple[np.ndarray | None, list[float], list[float]]:
        out = super().epoch_scores(adaptor, queries, probes)
        if self.recording:
            self.states.append(copy.deepcopy(adaptor.state_dict()))
            self.per_query.append(out[0])
        return out

    def train_epoch(
        self, adaptor: MatryoshkaAdaptor, module: torch.nn.Module, optimizer: torch.optim.Optimizer,
        generator: torch.Generator, train: Supervision | None, desc: str,
    ) -> float:
        loss = super().train_epoch(adaptor, module, optimizer, generator, train, desc)
        if self.averaging:
            self.trained.append(copy.deepcopy(adaptor.state_dict()))
        return loss


def one_se_epoch(per_query: list[np.ndarray], scores: list[float], best: int) -> int:
    """The earliest admissible epoch whose validation mean over dims is within one paired standard error (over
    queries) of the best epoch's."""
    top = per_query[best].mean(axis=1)
    for epoch in range(best + 1):
        if scores[epoch] == -math.inf:
            continue
        diff = top - per_query[epoch].mean(axis=1)
        if diff.mean() <= diff.std(ddof=1) / math.sqrt(len(diff)):
            return epoch
    return best


def finish(
    trainer: RecordingTrainer, adaptor: MatryoshkaAdaptor, epoch: int, queries: Supervision, level: float,
    average: bool = False,
) -> dict[str, Any]:
    """The stage's end for `epoch`: its paired test against the start, the tail test, the refit (with `average`, its
    last quarter of epochs' weights averaged); the adaptor left as main.py would save it."""
    c = trainer.config
    choice = EpochChoice.at_start(trainer.states[0], trainer.per_query[0], [], [], [], c.max_dim_drop)
    choice.best_state, choice.best_per_query, choice.best_epoch = trainer.states[epoch], trainer.per_query[epoch], epoch
    test = choice.test_best(level, queries.items, "supervised")
    kept = choice.best_epoch
    adaptor.load_state_dict(trainer.states[kept])
    tail = trainer.test_learned_tail(adaptor, queries, trainer.per_query[kept]) if kept > 0 else None
    if kept > 0:
        trainer.averaging, trainer.trained = average, []
        trainer.refit(adaptor, trainer.distributed(adaptor), trainer.states[0], kept)
        trainer.averaging = False
        if average:
            last = trainer.trained[-max(1, round(kept / 4)):]
            adaptor.load_state_dict({k: torch.stack([s[k] for s in last]).mean(dim=0) for k in last[0]})
    if tail is not None and not tail.accepted:
        adaptor.reset_tail(tail_start(trainer.dims, trainer.corpus.shape[1]))
    return {"epoch": epoch, "kept": kept, "test_accepted": bool(test and test.accepted)}


def held_out_split(dataset: str, settings: Sequence[str] = ()) -> tuple[Any, TrainConfig, Supervision, Supervision]:
    """(the dataset's embeddings, main.py's config for it with `settings` ('--key=value' as main.py takes them),
    the 80% of training queries to train on, the held-out 20%), the split the same for every training seed."""
    run_keys, config = train_entry.parse_args([f"--dataset={dataset}", *settings])
    embedded, qrels, _ = train_entry.source_of(run_keys).load("train")
    sup = Supervision.from_qrels(qrels, embedded.query_index, embedded.query_embeddings, embedded.doc_index)
    inner_rows, held_rows = split_validation(len(sup.queries), config.val_fraction, HELD_OUT_SEED)
    return embedded, config, sup.subset(inner_rows), sup.subset(held_rows)


def train_both_stages(
    embedded: Any, config: TrainConfig, inner: Supervision, seed: int
) -> tuple[RecordingTrainer, MatryoshkaAdaptor, StageLog, Supervision]:
    """Both stages on `inner` as main.py trains them (its own seeded split of `inner` chooses the epoch), no refit,
    every supervised state recorded: (trainer, adaptor at the kept epoch, the supervised log, the choosing split)."""
    cfg = replace(config, seed=seed, refit=False, refit_members=1)  # the callers refit, one member per call
    seed_everything(seed)
    fit_rows, choose_rows = split_validation(len(inner.queries), cfg.val_fraction, seed)
    fit, choose = inner.subset(fit_rows), inner.subset(choose_rows)
    trainer = RecordingTrainer(embedded.doc_embeddings, cfg, "auto", evidence=inner)
    adaptor = trainer.new_adaptor(embedded.base_model, {})
    trainer.run_stage(adaptor, "unsupervised", fit, choose)
    trainer.recording, trainer.states, trainer.per_query = True, [], []
    log = trainer.run_stage(adaptor, "supervised", fit, choose)
    trainer.recording = False
    return trainer, adaptor, log, choose


def run(args: argparse.Namespace) -> None:
    embedded, config, inner, held = held_out_split(args.dataset)
    out: dict[int, Any] = {}
    for seed in ints(args.seeds):
        start = time.perf_counter()
        trainer, adaptor, log, choose = train_both_stages(embedded, config, inner, seed)
        cfg = trainer.config
        means = [column_means(pq) for pq in trainer.per_query]  # as the stage scores its epochs
        choice = EpochChoice.at_start(None, None, means[0], trainer.validate(None, choose), [], cfg.max_dim_drop)
        scores = [choice.score(m, []) for m in means]  # the stage's own criterion: -inf where a dim drops too far
        best = int(np.argmax(scores))
        picks = {"best": best, "one_se": one_se_epoch(trainer.per_query, scores, best), "best_averaged": best}
        row: dict[str, Any] = {"epochs_run": log.epochs_run, "stage_kept": log.best_epoch}
        for rule, epoch in picks.items():
            row[rule] = finish(trainer, adaptor, epoch, choose, cfg.significance, average=rule == "best_averaged")
            row[rule]["held_out"] = [round(s, 5) for s in trainer.validate(adaptor, held)]
        row["seconds"] = round(time.perf_counter() - start, 1)
        out[seed] = row
        print(f"seed {seed}: epochs {picks} of {log.epochs_run}; held-out " + "; ".join(
            f"{r} {row[r]['held_out']}" for r in RULES), flush=True)
    table = {r: np.array([row[r]["held_out"] for row in out.values()]) for r in RULES}
    payload = {
        "command": "python benchmarks/epoch_rule.py " + " ".join(sys.argv[1:]),
        "metric": f"nDCG@10 on a fixed held-out 20% of {args.dataset}'s training queries ({len(held.queries)}) per dim",
        "dims": list(trainer.dims),
        "per_seed": out,
        "mean": {r: [round(float(x), 4) for x in t.mean(axis=0)] for r, t in table.items()},
        "std": {r: [round(float(x), 4) for x in t.std(axis=0, ddof=1)] for r, t in table.items()},
        **{f"{r}_minus_best_mean": [round(float(x), 4) for x in (table[r] - table["best"]).mean(axis=0)]
           for r in RULES[1:]},
    }
    write_json_atomic(Path(f"results/epoch_rule_{args.dataset}.json"), payload)
    for key in ("mean", "std"):
        for r in RULES:
            print(f"{key:<5}{r:<8}", " ".join(f"{x:.4f}" for x in payload[key][r]))


def held_out_parser(doc: str) -> argparse.ArgumentParser:
    """The command line of the scripts that score on held_out_split's 20%: --seeds and --dataset."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--seeds", default="1,2,3,4,5")
    p.add_argument("--dataset", default="scifact")
    return p


def main(argv: list[str]) -> int:
    args = held_out_parser(__doc__).parse_args(argv)
    return run_command(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
