"""Multi-process training on PyTorch's own engine: `torchrun --nproc_per_node=N main.py ...`.

Every process holds the corpus and draws the same batches from the same seeded generator; each takes a
contiguous share of every batch, and DistributedDataParallel averages the gradients. L_pair needs every pair of
the batch, so the adapted anchors are gathered with a differentiable all-gather: each process computes its rows
against all columns, and the shares' losses are weighted so the average equals the single-process loss.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

BARRIER_TIMEOUT = timedelta(hours=12)  # rank 0 may spend hours encoding a large corpus while the others wait


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def share(self, n: int) -> tuple[int, int]:
        """[start, end) of this process's contiguous share of n items (sizes differ by at most one)."""
        return n * self.rank // self.size, n * (self.rank + 1) // self.size

    def gather_rows(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """All processes' shares of n rows, in order, keeping the autograd graph (each share is `x` somewhere)."""
        if self.size == 1:
            return x
        from torch.distributed.nn.functional import all_gather

        width = -(-n // self.size)  # all_gather needs equal shapes: pad each share to the largest
        padded = torch.cat([x, x.new_zeros((width - len(x), *x.shape[1:]))])
        parts = all_gather(padded)
        sizes = [n * (r + 1) // self.size - n * r // self.size for r in range(self.size)]
        return torch.cat([p[:s] for p, s in zip(parts, sizes)])

    def mean(self, value: float) -> float:
        if self.size == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t.item()) / self.size

    def broadcast_(self, x: torch.Tensor) -> torch.Tensor:
        """`x` replaced in place by the first process's copy (every process then holds the same tensor)."""
        if self.size > 1:
            dist.broadcast(x, src=0)
        return x

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()


def current_world() -> World:
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def init_from_env(device: str) -> World:
    """Join the process group torchrun describes in the environment (NCCL on GPUs, gloo on CPU); a plain
    `python main.py` is a world of one."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return current_world()
    cuda = device != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo", timeout=BARRIER_TIMEOUT)
    return current_world()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
