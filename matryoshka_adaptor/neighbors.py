"""Nearest neighbours over the whole corpus, mined once, in blocks so memory stays O(block x N), not O(N^2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .errors import InputError


def mine_neighbors(embeddings: torch.Tensor, k: int, block_size: int = 2048) -> torch.Tensor:
    """(N, k) indices of each row's k most cosine-similar other rows, most similar first."""
    n = embeddings.shape[0]
    if not 1 <= k < n:
        raise InputError(f"top-k neighbours: k={k} needs 1 <= k < corpus size {n}")
    unit = F.normalize(embeddings.float(), dim=-1)
    out = torch.empty((n, k), dtype=torch.long, device=embeddings.device)
    starts = range(0, n, block_size)
    for start in tqdm(starts, desc="mining neighbours", disable=len(starts) < 8, leave=False):
        sims = unit[start : start + block_size] @ unit.T
        rows = torch.arange(sims.shape[0], device=sims.device)
        sims[rows, rows + start] = -float("inf")  # a document is not its own neighbour
        out[start : start + block_size] = sims.topk(k, dim=1).indices
    return out
