"""When should the supervised stage stop: after how many epochs without gain, and does a gain that small count?
On training queries only.

    MATRYOSHKA_DATA_ROOT=../shared/data/beir python benchmarks/stopping_rule.py [--dataset=scifact] [--seeds=1,2,3,4,5]

As benchmarks/epoch_rule.py: the dataset's training queries are split once (seed 0) into a held-out 20% and 80% to
train on. On the 80% both stages train as main.py trains them, except that the supervised stage runs on with a
patience of RECORD_PATIENCE epochs and keeps every epoch's state. Each rule (a patience past the start's score, and
the gain an epoch needs to reset it: `sup_patience`, `sup_min_gain`) is then replayed on the same validation scores
through the stage's own EpochChoice: where it stops, which epoch it keeps, whether that epoch passes the paired test.
Every rule stops no later than the recording did, so the replay is the run that rule would have made. The kept
epoch is refit as main.py refits it (`refit_members` refits on all of the 80%, averaged; the refit to epoch e is the
first e epochs of one longer refit), its learned tail tested, and scored on the held-out 20% at every dim. The time
a rule would take is the recording's seconds a supervised and a refit epoch times its epochs. The test split is never
read. Writes results/stopping_rule_<dataset>.json.
"""

from __future__ import annotations

import argparse
import copy
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

from benchmarks.epoch_rule import RecordingTrainer, held_out_parser, held_out_split  # noqa: E402
from benchmarks.suite import ints  # noqa: E402
from matryoshka_adaptor.errors import run_command  # noqa: E402
from matryoshka_adaptor.eval import write_json_atomic  # noqa: E402
from matryoshka_adaptor.losses import tail_start  # noqa: E402
from matryoshka_adaptor.model import MatryoshkaAdaptor  # noqa: E402
from matryoshka_adaptor.train import column_means, seed_everything  # noqa: E402
from matryoshka_adaptor.training.selection import EpochChoice  # noqa: E402

RECORD_PATIENCE = 15  # with no minimum gain: no rule below waits longer, so none would have run past the recording
RULES = {  # name: (sup_patience, sup_min_gain)
    "patience 5": (5, 0.0),
    "patience 10": (10, 0.0),
    "patience 15": (15, 0.0),
    "patience 10, min gain 0.001": (10, 0.001),
    "patience 15, min gain 0.001": (15, 0.001),
    "patience 15, min gain 0.002": (15, 0.002),
}


def replay(
    trainer: RecordingTrainer, choose: Any, means: list[list[float]], base: list[float], patience: int, min_gain: float
) -> tuple[int, int, bool]:
    """(the epoch the rule stops after, the epoch it keeps, whether that epoch passed the paired test), replayed on
    the recorded supervised epochs (`means`: each one's validation nDCG@10 per dim; `base`: the base model's) as
    Trainer.run_stage plays them."""
    c = trainer.config
    choice = EpochChoice.at_start(trainer.states[0], trainer.per_query[0], means[0], base, [], c.max_dim_drop, min_gain)
    stop = len(trainer.states) - 1
    for epoch in range(1, len(trainer.states)):
        choice.offer(epoch, trainer.per_query[epoch], means[epoch], [], lambda e=epoch: trainer.states[e])
        if choice.patience_spent(epoch, choice.patience(c.patience, patience)):
            stop = epoch
            break
    test = choice.test_best(c.significance, choose.items, f"supervised ({patience}, {min_gain})")
    return stop, choice.best_epoch, bool(test and test.accepted)


def refit_scores(
    trainer: RecordingTrainer, adaptor: MatryoshkaAdaptor, choose: Any, held: Any, epochs: set[int]
) -> tuple[dict[int, list[float]], float]:
    """Held-out nDCG@10 per dim of the refit to each of `epochs` (0: the start, no refit), its tail tested as
    run_stage tests it; and the seconds of one refit epoch."""
    out: dict[int, list[float]] = {}
    adaptor.load_state_dict(trainer.states[0])
    out[0] = [round(s, 5) for s in trainer.validate(adaptor, held)]
    last = max(epochs)
    if last == 0:
        return out, float("nan")
    template = copy.deepcopy(adaptor)
    members = trainer.config.refit_members
    trainer.averaging, trainer.trained = True, []
    start = time.perf_counter()
    trainer.refit(adaptor, trainer.distributed(adaptor), trainer.states[0], last)
    seconds = (time.perf_counter() - start) / (last * members)
    trainer.averaging = False
    for epoch in sorted(epochs - {0}):
        learned = copy.deepcopy(template)
        learned.load_state_dict(trainer.states[epoch])
        tail = trainer.test_learned_tail(learned, choose, trainer.per_query[epoch])
        parts = []
        for k in range(members):
            part = copy.deepcopy(template)
            part.load_state_dict(trainer.trained[k * last + epoch - 1])
            parts.append(part)
        model = copy.deepcopy(template)
        model.take_mlp(MatryoshkaAdaptor.average(parts) if members > 1 else parts[0])
        if tail is not None and not tail.accepted:
            model.reset_tail(tail_start(trainer.dims, trainer.corpus.shape[1]))
        out[epoch] = [round(s, 5) for s in trainer.validate(model, held)]
    return out, seconds


def run(args: argparse.Namespace) -> None:
    recording = [f"--sup_patience={RECORD_PATIENCE}", "--sup_min_gain=0"]
    embedded, config, inner, held = held_out_split(args.dataset, recording)
    out: dict[int, Any] = {}
    for seed in ints(args.seeds):
        cfg = replace(config, seed=seed, refit=False)  # refit below, once per kept epoch
        seed_everything(seed)
        fit, choose = inner.split(cfg.val_fraction, seed)
        trainer = RecordingTrainer(embedded.doc_embeddings, cfg, "auto", evidence=inner)
        adaptor = trainer.new_adaptor(embedded.base_model, {})
        start = time.perf_counter()
        trainer.run_stage(adaptor, "unsupervised", fit, choose)
        unsup_seconds = time.perf_counter() - start
        trainer.recording, trainer.states, trainer.per_query = True, [], []
        start = time.perf_counter()
        log = trainer.run_stage(adaptor, "supervised", fit, choose)
        epoch_seconds = (time.perf_counter() - start) / max(1, log.epochs_run)
        trainer.recording = False
        means = [column_means(pq) for pq in trainer.per_query]
        base = trainer.validate(None, choose)  # one validation pass, shared by every rule's replay
        picks = {name: replay(trainer, choose, means, base, *rule) for name, rule in RULES.items()}
        held_out, refit_seconds = refit_scores(trainer, adaptor, choose, held, {kept for _, kept, _ in picks.values()})
        row: dict[str, Any] = {
            "epochs_recorded": log.epochs_run,
            "validation_mean": [round(float(np.mean(m)), 5) for m in means],
        }
        for name, (stop, kept, passed) in picks.items():
            seconds = unsup_seconds + stop * epoch_seconds + (kept * cfg.refit_members * refit_seconds if kept else 0)
            row[name] = {"stopped": stop, "kept": kept, "test_passed": passed, "seconds": round(seconds, 1),
                         "held_out": held_out[kept]}
        out[seed] = row
        print(f"seed {seed}: recorded {log.epochs_run} epochs; " + "; ".join(
            f"{n}: stop {row[n]['stopped']} keep {row[n]['kept']} mean {np.mean(row[n]['held_out']):.4f}"
            for n in RULES), flush=True)
    table = {n: np.array([row[n]["held_out"] for row in out.values()]) for n in RULES}
    first = next(iter(RULES))
    payload = {
        "command": "python benchmarks/stopping_rule.py " + " ".join(sys.argv[1:]),
        "metric": f"nDCG@10 on a fixed held-out 20% of {args.dataset}'s training queries ({len(held.queries)}) per dim",
        "rules": {n: {"sup_patience": p, "sup_min_gain": g} for n, (p, g) in RULES.items()},
        "dims": list(trainer.dims),
        "per_seed": out,
        "mean": {n: [round(float(x), 4) for x in t.mean(axis=0)] for n, t in table.items()},
        "std": {n: [round(float(x), 4) for x in t.std(axis=0, ddof=1)] for n, t in table.items()} if len(out) > 1 else None,
        f"minus_{first.replace(' ', '_')}": {n: [round(float(x), 4) for x in (t - table[first]).mean(axis=0)]
                                             for n, t in table.items()},
        "seconds": {n: round(float(np.mean([row[n]["seconds"] for row in out.values()])), 1) for n in RULES},
    }
    write_json_atomic(Path(f"results/stopping_rule_{args.dataset}.json"), payload)
    print("dims", " ".join(f"{d:>7}" for d in payload["dims"]))
    for n in RULES:
        print(f"{n:<30}", " ".join(f"{x:+.4f}" for x in payload[f"minus_{first.replace(' ', '_')}"][n]),
              f"  {payload['seconds'][n]} s")


def main(argv: list[str]) -> int:
    args = held_out_parser(__doc__).parse_args(argv)
    return run_command(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
