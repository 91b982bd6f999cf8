"""Was refitting the supervised stage on all training queries a good default? Decided on training queries only.

    MATRYOSHKA_DATA_ROOT=../shared/data/beir python benchmarks/nested_refit.py [--seeds=1,2,3,4,5]

Per seed, the training queries are split as main.py splits them (20% held out, `split_validation(seed)`), and the
held-out 20% play the test. Inside the other 80% a second split chooses the epoch exactly as the supervised stage
does (`refit=False`); then the refit trains from the same start on all of the 80% for that many epochs. Both are
scored on the held-out 20% at every dim. The start is the suite's unsupervised adaptor of that seed
(`<work_dir>/seed<N>/scifact_unsupervised`, made by benchmarks/suite.py). The test split is never read.
Writes results/nested_refit_scifact.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)

from matryoshka_adaptor.numerics import pin_at_startup  # noqa: E402

if __name__ == "__main__":
    pin_at_startup()  # before numpy and torch load, as main.py (matryoshka_adaptor/numerics.py)

import numpy as np  # noqa: E402

import main as train_entry  # noqa: E402
from benchmarks.suite import ints  # noqa: E402
from matryoshka_adaptor.errors import run_command  # noqa: E402
from matryoshka_adaptor.eval import write_json_atomic  # noqa: E402
from matryoshka_adaptor.model import MatryoshkaAdaptor  # noqa: E402
from matryoshka_adaptor.train import Supervision, Trainer, seed_everything, split_validation  # noqa: E402


def run(args: argparse.Namespace) -> None:
    run_keys, config = train_entry.parse_args(["--dataset=scifact"])
    embedded, qrels, _ = train_entry.source_of(run_keys).load("train")
    sup = Supervision.from_qrels(qrels, embedded.query_index, embedded.query_embeddings, embedded.doc_index)
    out = {}
    for seed in ints(args.seeds):
        # the tail test off: it would reset the chosen epoch's tail but not the refit's (trained apart below), and
        # the question is the refit alone, as when results/nested_refit_scifact.json was made
        cfg = replace(config, seed=seed, refit=False, test_tail=False, refit_members=1)  # one refit, as its file's
        seed_everything(seed)
        inner_rows, held_rows = split_validation(len(sup.queries), cfg.val_fraction, seed)
        inner, held = sup.subset(inner_rows), sup.subset(held_rows)
        fit_rows, choose_rows = split_validation(len(inner.queries), cfg.val_fraction, seed + 1000)
        trainer = Trainer(embedded.doc_embeddings, cfg, "auto", evidence=inner)
        start = Path(args.work_dir) / f"seed{seed}" / "scifact_unsupervised"
        chosen = MatryoshkaAdaptor.load(start).to(trainer.device)
        t = time.perf_counter()
        log = trainer.run_stage(chosen, "supervised", inner.subset(fit_rows), inner.subset(choose_rows))
        seconds = [time.perf_counter() - t]
        refit = MatryoshkaAdaptor.load(start).to(trainer.device)
        t = time.perf_counter()
        if log.best_epoch > 0:
            trainer.refit(refit, trainer.distributed(refit), refit.state_dict(), log.best_epoch)
        seconds.append(time.perf_counter() - t)
        out[seed] = {
            "epochs": log.best_epoch,
            "chosen": trainer.validate(chosen, held),
            "refit": trainer.validate(refit, held),
            "seconds": [round(s, 1) for s in seconds],
        }
    chosen, refit = (np.array([r[k] for r in out.values()]) for k in ("chosen", "refit"))
    payload = {
        "command": "python benchmarks/nested_refit.py " + " ".join(sys.argv[1:]),
        "metric": "nDCG@10 on the held-out 20% of SciFact's training queries, per dim",
        "dims": list(trainer.dims),
        "per_seed": out,
        "mean_gain_per_dim": [round(float(g), 4) for g in (refit - chosen).mean(0)],
        "seeds_better_on_mean_over_dims": int(((refit - chosen).mean(1) > 0).sum()),
    }
    write_json_atomic(Path("results/nested_refit_scifact.json"), payload)
    print("mean gain of the refit per dim:", payload["mean_gain_per_dim"], "seeds better:", payload["seeds_better_on_mean_over_dims"])


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="1,2,3,4,5")
    p.add_argument("--work_dir", default=".cache/suite")
    args = p.parse_args(argv)
    return run_command(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
