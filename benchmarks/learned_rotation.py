"""A probe of one direction for the unsupervised stage, on training queries only: a learned rotation.

    MATRYOSHKA_DATA_ROOT=../shared/data/beir python benchmarks/learned_rotation.py [--objective=rank|paper] [--seeds=...]

The paper's corpus-only terms do not move the adaptor from its start map (README). This asks whether a better start
exists among rotations, which keep every full-dim cosine by construction (no loss at full width is possible). Per
collection and seed it starts from the centred-axes rotation R, as `main.py --seed=N` does for its anchors and their
k = 10 corpus neighbours (`Trainer`), and learns an orthogonal Q (torch's orthogonal parametrisation, starting at the
identity) under one of two corpus-only objectives:
- 'rank': each anchor ranks its full-dim neighbours first at every prefix (`prefix_rotation.anchor_rank_loss`:
  L_rank with each anchor as the query, its neighbours and itself relevant, and the batch's other anchors and
  neighbours as negatives);
- 'paper': the paper's L_topk + alpha * L_pair, against the start's cosines. Its L_rec is left out: it is there to keep
  the full-dim vectors near the start's, and an orthogonal map keeps every full-dim cosine exactly, so this asks
  whether the paper's terms, free of the L_rec that holds the MLP at its start, find a better rotation.
With --block=B, Q mixes only the first B coordinates (the rest pass through: training/prefix_rotation.py's
PrefixRotation, which `--prefix_rotation=B` trains in main.py), so every prefix of B or more dims keeps the start's
cosines exactly and only the smaller prefixes (the objective's dims up to B) can change.
After each epoch the map Q·R is scored at every dim by the collection's TRAINING queries (never trained on here) and by
the held-out probe documents; the test split is never read. Not a quality claim: a direction for a later default.
Writes results/learned_rotation[_paper][_block<B>].json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)

from matryoshka_adaptor.numerics import pin_at_startup  # noqa: E402

if __name__ == "__main__":
    pin_at_startup()  # before numpy and torch load, as main.py (matryoshka_adaptor/numerics.py)

import torch  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

import main as train_entry  # noqa: E402
from benchmarks.suite import data_root, ints, mean_std  # noqa: E402
from matryoshka_adaptor.data import DATA_ROOT_ENV  # noqa: E402
from matryoshka_adaptor.encoders import EmbeddedDataset  # noqa: E402
from matryoshka_adaptor.errors import InputError, run_command  # noqa: E402
from matryoshka_adaptor.eval import write_json_atomic  # noqa: E402
from matryoshka_adaptor.losses import dim_weights, pair_loss, topk_loss  # noqa: E402
from matryoshka_adaptor.train import Supervision, Trainer, seed_everything  # noqa: E402
from matryoshka_adaptor.training.prefix_rotation import PrefixRotation, anchor_rank_loss  # noqa: E402


OBJECTIVES = ("rank", "paper")


def learn(
    name: str, root: str, seeds: list[int], epochs: int, lr: float, objective: str, block: int
) -> list[dict[str, list]]:
    """Per seed, per epoch (0 = the centred-axes rotation), per dim: training queries' and probes' nDCG@10 of Q·R,
    and the objective over all anchors; the collection is read once for all seeds."""
    run, _ = train_entry.parse_args([f"--dataset={name}", f"--data_root={root}"])
    embedded, qrels, _ = train_entry.source_of(run).load("train")
    queries = Supervision.from_qrels(qrels, embedded.query_index, embedded.query_embeddings, embedded.doc_index)
    return [learn_seed(embedded, queries, run["device"], seed, epochs, lr, objective, block) for seed in seeds]


def anchor_loss(
    q: PrefixRotation, z: torch.Tensor, anchors: torch.Tensor, neighbors: torch.Tensor, trainer: Trainer, objective: str,
    dims: list[int], weights: torch.Tensor,
) -> torch.Tensor:
    """The objective on one batch of anchors (b,) and their corpus neighbours (b, k), rows of the start map's z, over
    `dims`, those up to the block (the larger ones cannot change)."""
    c = trainer.config
    if objective == "paper":
        za, zn = z[anchors], z[neighbors]
        qa, qn = q(za), q(zn.flatten(0, 1)).view(zn.shape)
        return topk_loss(za, qa, zn, qn, dims, weights) + c.alpha * pair_loss(za, qa, dims, weights)
    return anchor_rank_loss(q, z, anchors, neighbors, dims, weights, c.rank_temperature)


def learn_seed(
    embedded: EmbeddedDataset, queries: Supervision, device: str, seed: int, epochs: int, lr: float, objective: str,
    block: int,
) -> dict[str, list]:
    """One seed of `learn`: the anchors, neighbours and probes of `main.py --seed=N`, then Q trained from I."""
    _, config = train_entry.parse_args([f"--dataset={embedded.name}", f"--seed={seed}", "--input_rotation=centred_axes"])
    seed_everything(seed)
    trainer = Trainer(embedded.doc_embeddings, config, device)
    adaptor = trainer.new_adaptor(embedded.base_model, {})
    start = adaptor.rotation.clone()
    z = adaptor.rotate(trainer.corpus)
    if block and not trainer.dims[0] < block <= z.shape[1]:
        raise InputError(f"--block={block}: expected a width above the smallest dim {trainer.dims[0]}, at most {z.shape[1]}")
    q = PrefixRotation(z.shape[1], block or z.shape[1], z.device)
    dims = [m for m in trainer.dims if m <= q.block]
    weights = dim_weights(dims, config.dim_weighting).to(z.device)
    optimizer = torch.optim.Adam(q.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    log: dict[str, list] = {"train_queries": [], "probes": [], "loss": []}

    def score() -> None:
        with torch.no_grad():
            adaptor.rotation.copy_(q.matrix() @ start)
            batches = torch.arange(len(trainer.anchors)).split(config.unsup_batch_size)
            loss = sum(anchor_loss(q, z, trainer.anchors[b], trainer.neighbors[b], trainer, objective, dims, weights) * len(b) for b in batches)
        log["loss"].append(round(float(loss) / len(trainer.anchors), 6))  # the objective over all anchors, this epoch's Q
        log["train_queries"].append(trainer.validate(adaptor, queries))
        log["probes"].append(trainer.validate(adaptor, trainer.probes))

    score()
    for _ in tqdm(range(epochs), desc=f"{embedded.name} seed {seed}", leave=False):
        for batch in torch.randperm(len(trainer.anchors), generator=generator).split(config.unsup_batch_size):
            loss = anchor_loss(q, z, trainer.anchors[batch], trainer.neighbors[batch], trainer, objective, dims, weights)
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
    p.add_argument("--objective", choices=OBJECTIVES, default="rank")
    p.add_argument("--block", type=int, default=0, help="Q mixes only the first this-many coordinates (0: all)")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--beir_root", default=os.environ.get(DATA_ROOT_ENV, "../shared/data/beir"))
    p.add_argument("--xquad_root", default=None)
    p.add_argument("--results", default=None, help="default: results/learned_rotation[_paper][_block<B>].json")
    args = p.parse_args(argv)

    def action() -> None:
        begin, out = time.perf_counter(), {}
        for name in args.collections.split(","):
            runs = learn(name, data_root(name, args), ints(args.seeds), args.epochs, args.lr, args.objective, args.block)
            out[name] = {
                "dims": runs[0]["dims"],
                "start_train_queries": runs[0]["train_queries"][0],
                "gain_at_last_epoch": {k: summary(runs, k, args.epochs) for k in ("train_queries", "probes")},
                "loss_mean_over_seeds": [round(sum(r["loss"][e] for r in runs) / len(runs), 6) for e in range(args.epochs + 1)],
                "per_seed": runs,
            }
            for key in ("train_queries", "probes"):
                gains = out[name]["gain_at_last_epoch"][key]
                print(f"{name:<11} {key:<13}" + "".join(f"{g['mean']:>+9.4f}±{g['std']:.3f}" for g in gains.values()))
            loss = out[name]["loss_mean_over_seeds"]
            print(f"{name:<11} objective {loss[0]:.5f} at the start, {loss[-1]:.5f} after epoch {args.epochs}")
        suffix = ("" if args.objective == "rank" else f"_{args.objective}") + (f"_block{args.block}" if args.block else "")
        write_json_atomic(Path(args.results or f"results/learned_rotation{suffix}.json"), {
            "command": "python benchmarks/learned_rotation.py " + " ".join(argv), "objective": args.objective,
            "block": args.block,
            "epochs": args.epochs, "lr": args.lr,
            "seeds": ints(args.seeds), "collections": out, "seconds": round(time.perf_counter() - begin, 1),
        })

    return run_command(action)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
