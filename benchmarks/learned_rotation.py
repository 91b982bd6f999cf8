"""A probe of one direction for the unsupervised stage, on training queries only: a learned rotation.

    MATRYOSHKA_DATA_ROOT=../shared/data/beir python benchmarks/learned_rotation.py [--collections=...] [--seeds=1,2,3,4,5]

The paper's corpus-only terms do not move the adaptor from its start map (README). This asks whether a better start
exists among rotations, which keep every full-dim cosine by construction (no loss at full width is possible). Per
collection and seed it starts from the centred-axes rotation R, as `main.py --seed=N` does for its anchors and their
k = 10 corpus neighbours (`Trainer`), and learns an orthogonal Q (torch's orthogonal parametrisation, starting at the
identity) such that each anchor ranks its full-dim neighbours first at every prefix: `losses.rank_loss` with each
anchor as the query, its neighbours (and itself) relevant, and the batch's other anchors and neighbours as negatives.
After each epoch the map Q·R is scored at every dim by the collection's TRAINING queries (never trained on here) and by
the held-out probe documents; the test split is never read. Not a quality claim: a direction for a later default.
Writes results/learned_rotation.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)

import torch  # noqa: E402
from torch.nn.utils.parametrizations import orthogonal  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

import main as train_entry  # noqa: E402
from benchmarks.suite import data_root, ints, mean_std  # noqa: E402
from matryoshka_adaptor.data import DATA_ROOT_ENV  # noqa: E402
from matryoshka_adaptor.encoders import EmbeddedDataset  # noqa: E402
from matryoshka_adaptor.errors import run_command  # noqa: E402
from matryoshka_adaptor.eval import write_json_atomic  # noqa: E402
from matryoshka_adaptor.losses import rank_loss  # noqa: E402
from matryoshka_adaptor.train import Supervision, Trainer, seed_everything  # noqa: E402


def learn(name: str, root: str, seeds: list[int], epochs: int, lr: float) -> list[dict[str, list[list[float]]]]:
    """Per seed, per epoch (0 = the centred-axes rotation), per dim: training queries' and probes' nDCG@10 of Q·R;
    the collection is read once for all seeds."""
    run, _ = train_entry.parse_args([f"--dataset={name}", f"--data_root={root}"])
    embedded, qrels, _ = train_entry.source_of(run).load("train")
    queries = Supervision.from_qrels(qrels, embedded.query_index, embedded.query_embeddings, embedded.doc_index)
    return [learn_seed(embedded, queries, run["device"], seed, epochs, lr) for seed in seeds]


def learn_seed(
    embedded: EmbeddedDataset, queries: Supervision, device: str, seed: int, epochs: int, lr: float
) -> dict[str, list[list[float]]]:
    """One seed of `learn`: the anchors, neighbours and probes of `main.py --seed=N`, then Q trained from I."""
    _, config = train_entry.parse_args([f"--dataset={embedded.name}", f"--seed={seed}", "--input_rotation=centred_axes"])
    seed_everything(seed)
    trainer = Trainer(embedded.doc_embeddings, config, device)
    adaptor = trainer.new_adaptor(embedded.base_model, {})
    start = adaptor.rotation.clone()
    z = adaptor.rotate(trainer.corpus)
    linear = torch.nn.Linear(z.shape[1], z.shape[1], bias=False, device=z.device)
    torch.nn.init.eye_(linear.weight)  # orthogonal() starts from the weight it is given: Q = I, the map is R
    q = orthogonal(linear)
    optimizer = torch.optim.Adam(q.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    log: dict[str, list[list[float]]] = {"train_queries": [], "probes": []}

    def score() -> None:
        with torch.no_grad():
            adaptor.rotation.copy_(q.weight @ start)
        log["train_queries"].append(trainer.validate(adaptor, queries))
        log["probes"].append(trainer.validate(adaptor, trainer.probes))

    score()
    for _ in tqdm(range(epochs), desc=f"{embedded.name} seed {seed}", leave=False):
        for batch in torch.randperm(len(trainer.anchors), generator=generator).split(config.unsup_batch_size):
            anchors, neighbors = trainer.anchors[batch], trainer.neighbors[batch]
            rows, inverse = torch.unique(torch.cat([anchors, neighbors.flatten()]), return_inverse=True)
            own, theirs = inverse[: len(batch)], inverse[len(batch) :].view(neighbors.shape)
            relevance = torch.zeros((len(batch), len(rows)), device=z.device)
            relevance.scatter_(1, theirs, 1.0)
            relevance[torch.arange(len(batch)), own] = 1.0
            out = q(z[rows])
            loss = rank_loss(out[own], out, relevance, trainer.dims, trainer.weights, config.rank_temperature)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        score()
    return {**log, "dims": list(trainer.dims)}


def summary(runs: list[dict[str, list[list[float]]]], key: str, epoch: int) -> dict[str, dict[str, float]]:
    """Mean ± std over seeds of the gain over the start at `epoch`, per dim."""
    dims = tuple(runs[0]["dims"])
    gains = [{d: after - before for d, after, before in zip(dims, r[key][epoch], r[key][0])} for r in runs]
    return mean_std(gains, dims)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--collections", default="scifact,cacm,medline,xquad-r-en")
    p.add_argument("--seeds", default="1,2,3,4,5")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--beir_root", default=os.environ.get(DATA_ROOT_ENV, "../shared/data/beir"))
    p.add_argument("--xquad_root", default=None)
    p.add_argument("--results", default="results/learned_rotation.json")
    args = p.parse_args(argv)

    def action() -> None:
        begin, out = time.perf_counter(), {}
        for name in args.collections.split(","):
            runs = learn(name, data_root(name, args), ints(args.seeds), args.epochs, args.lr)
            out[name] = {
                "dims": runs[0]["dims"],
                "start_train_queries": runs[0]["train_queries"][0],
                "gain_at_last_epoch": {k: summary(runs, k, args.epochs) for k in ("train_queries", "probes")},
                "per_seed": runs,
            }
            for key in ("train_queries", "probes"):
                gains = out[name]["gain_at_last_epoch"][key]
                print(f"{name:<11} {key:<13}" + "".join(f"{g['mean']:>+9.4f}±{g['std']:.3f}" for g in gains.values()))
        write_json_atomic(Path(args.results), {
            "command": "python benchmarks/learned_rotation.py " + " ".join(argv), "epochs": args.epochs, "lr": args.lr,
            "seeds": ints(args.seeds), "collections": out, "seconds": round(time.perf_counter() - begin, 1),
        })

    return run_command(action)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
