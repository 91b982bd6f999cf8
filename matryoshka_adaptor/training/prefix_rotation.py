"""An opt-in refinement of the start map (TrainConfig.prefix_rotation = B): an orthogonal mix Q of its first B
coordinates, learned so that each anchor document ranks its corpus neighbours first at every dim up to B.

Why a block, and why a rotation (benchmarks/learned_rotation.py, README): freed of L_rec, the paper's terms lower
their loss while truncated vectors keep neighbourhoods worse; a ranking objective on a rotation of all coordinates
gains at small dims but loses held-out documents' neighbours at 128-320 dims. Mixing only the first B coordinates
keeps the span of every prefix of B or more dims, so those keep the start's cosines exactly: only smaller prefixes
change. Epochs are chosen as the unsupervised stage's are (probe documents' neighbourhoods, guarded by all training
queries), with epoch 0, the start itself, a candidate. The probes alone overrate it (they gain at 16 dims on every
collection of the suite, the training queries on SciFact alone), so the kept epoch must then pass the supervised
stage's paired t-test against the start over all training queries (none of them trained on: the objective is
corpus-only); otherwise the start is kept. Without training queries it is kept untested, with a warning.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.nn.utils.parametrizations import orthogonal
from tqdm.auto import tqdm

from ..errors import InputError
from ..losses import dim_weights, neighbor_rank_loss
from .optimizer import PortableAdamW
from .selection import EpochChoice

if TYPE_CHECKING:
    from ..model import MatryoshkaAdaptor
    from ..train import Trainer

logger = logging.getLogger(__name__)


class PrefixRotation(torch.nn.Module):
    """x -> (Q·x[:block], x[block:]) with Q orthogonal, starting at the identity."""

    def __init__(self, width: int, block: int, device: torch.device | str = "cpu") -> None:
        super().__init__()
        if not 2 <= block <= width:
            raise InputError(f"prefix rotation block {block}: expected 2 <= block <= {width} (the width)")
        linear = torch.nn.Linear(block, block, bias=False, device=device)
        torch.nn.init.eye_(linear.weight)  # orthogonal() starts from the weight it is given: Q = I
        self.q, self.width, self.block = orthogonal(linear), width, block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.q(x[:, : self.block]), x[:, self.block :]], dim=1)

    def matrix(self) -> torch.Tensor:
        """The (width, width) matrix of the map."""
        m = torch.eye(self.width, device=self.q.weight.device)
        m[: self.block, : self.block] = self.q.weight
        return m


def anchor_rank_loss(
    q: torch.nn.Module,
    z: torch.Tensor,
    anchors: torch.Tensor,
    neighbors: torch.Tensor,
    dims: list[int],
    weights: torch.Tensor,
    temperature: float,
) -> torch.Tensor:
    """losses.neighbor_rank_loss of a batch of anchors (b,) and their corpus neighbours (b, k), rows of z, mapped by q:
    each distinct row once, the batch's other anchors and neighbours the negatives."""
    rows, inverse = torch.unique(torch.cat([anchors, neighbors.flatten()]), return_inverse=True)
    own, theirs = inverse[: len(anchors)], inverse[len(anchors) :].view(neighbors.shape)
    return neighbor_rank_loss(q(z[rows]), own, theirs, dims, weights, temperature)


def refine_start(trainer: Trainer, adaptor: MatryoshkaAdaptor) -> dict[str, Any]:
    """Replace the adaptor's start rotation R by Q·R with Q = PrefixRotation(d, prefix_rotation) trained on the
    trainer's anchors and neighbours until the criterion stops improving for `patience` epochs; the best epoch is
    kept if it passes the paired test on the training queries (the module's docstring). Returns the log recorded in
    the adaptor's config. A resumed run (main.py --resume) computes it again, to the
    same Q since it is seeded, before its checkpoint's state replaces the adaptor's."""
    c = trainer.config
    block, width = c.prefix_rotation, adaptor.config.input_dim
    dims = [m for m in trainer.dims if m <= block]
    if len(dims) < 2 or dims[-1] != block:
        raise InputError(
            f"prefix_rotation {block}: expected one of the Matryoshka dims {list(trainer.dims[1:])} (the dims below "
            "it are the ones it can change)"
        )
    if trainer.probes is None:
        logger.warning("prefix rotation: no probe documents to choose its epochs (corpus too small): skipped")
        return {"block": block, "skipped": "no probe documents"}
    began = time.perf_counter()
    weights = dim_weights(dims, c.dim_weighting).to(trainer.device)
    with torch.no_grad():
        z = adaptor.rotate(trainer.corpus)
    start = adaptor.rotation.clone()
    q = PrefixRotation(width, block, trainer.device)
    optimizer = PortableAdamW(q.parameters(), lr=c.unsup_lr, weight_decay=c.weight_decay)
    generator = torch.Generator().manual_seed(c.seed + 3)

    def scores() -> tuple[np.ndarray | None, list[float], list[float]]:
        with torch.no_grad():
            adaptor.rotation.copy_(q.matrix() @ start)
        return trainer.epoch_scores(adaptor, trainer.evidence, trainer.probes)

    per_query, val, probe = scores()
    log: dict[str, Any] = {"block": block, "val_ndcg_at_10": [val], "probe_ndcg_at_10": [probe], "loss": []}
    base = trainer.validate(None, trainer.evidence)
    choice = EpochChoice.at_start(start, per_query, val, base, probe, c.max_dim_drop)  # as the unsupervised stage's
    stopped = "epoch cap"
    for epoch in range(1, c.unsup_epochs + 1):
        total, batches = 0.0, torch.randperm(len(trainer.anchors), generator=generator).split(c.unsup_batch_size)
        for batch in tqdm(batches, desc=f"prefix rotation epoch {epoch}", leave=False, disable=not trainer.world.is_main):
            loss = anchor_rank_loss(q, z, trainer.anchors[batch], trainer.neighbors[batch], dims, weights, c.rank_temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item()
        log["loss"].append(round(total / len(batches), 6))
        per_query, val, probe = scores()
        log["val_ndcg_at_10"].append(val)
        log["probe_ndcg_at_10"].append(probe)
        score = choice.offer(epoch, per_query, val, probe, adaptor.rotation.clone)
        logger.info("prefix rotation: epoch %d loss %.4f probe documents' neighbours nDCG@10 %.4f", epoch, log["loss"][-1], score)
        if choice.patience_spent(epoch, c.patience):
            stopped = "patience"
            break
    if choice.best_epoch > 0 and choice.start_per_query is None:
        logger.warning("prefix rotation: no training queries to test epoch %d against the start: kept untested", choice.best_epoch)
    items = trainer.evidence.items if trainer.evidence is not None else None
    test = choice.test_best(c.significance, items, "prefix rotation")
    log["test"] = asdict(test) if test is not None else None
    # seeded, so every process computes the same Q; the broadcast guards against a GPU's rounding differing
    adaptor.rotation.copy_(trainer.world.broadcast_(choice.best_state))
    logger.info("prefix rotation: keeping epoch %d of %d (%s)", choice.best_epoch, len(log["loss"]), stopped)
    seconds = round(time.perf_counter() - began, 1)
    return {**log, "best_epoch": choice.best_epoch, "epochs_run": len(log["loss"]), "stopped": stopped, "seconds": seconds}
