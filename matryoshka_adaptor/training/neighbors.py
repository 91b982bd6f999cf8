"""Nearest neighbours for L_topk, mined once over the whole corpus before training.

Exact search runs in blocks of anchors sized so a block's similarity matrix stays under `memory_bytes`:
memory is O(block x N), never O(N^2). Its time is still O(anchors x N): 2 minutes for 100k x 100k on two CPU
cores, so about 3 hours for 1M x 1M; large corpora on the CPU use an inverted-file index instead (faiss
IVF-Flat, inner product on unit vectors): 11 minutes for 1M x 1M there, recall@10 1.000 on the benchmark's
clustered vectors (benchmarks/scale.py). On a GPU exact search is fast enough at any size.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..errors import InputError

logger = logging.getLogger(__name__)

METHODS = ("auto", "exact", "ivf")
EXACT_LIMIT = 10**10  # anchors x corpus similarities above which 'auto' picks IVF on the CPU (100k x 100k)


def choose_method(method: str, n_anchors: int, n: int, device: torch.device) -> str:
    if method not in METHODS:
        raise InputError(f"neighbour search {method!r}: expected one of {list(METHODS)}")
    if method != "auto":
        return method
    return "exact" if device.type == "cuda" or n_anchors * n <= EXACT_LIMIT else "ivf"


def mine_neighbors(
    embeddings: torch.Tensor,
    k: int,
    anchors: torch.Tensor | None = None,
    method: str = "auto",
    memory_bytes: int = 2**28,
    seed: int = 0,
) -> torch.Tensor:
    """(len(anchors), k) corpus rows most cosine-similar to each anchor row (default: every row), best first,
    never the anchor itself."""
    n = embeddings.shape[0]
    if not 1 <= k < n:
        raise InputError(f"top-k neighbours: k={k} needs 1 <= k < corpus size {n}")
    anchors = torch.arange(n, device=embeddings.device) if anchors is None else anchors.to(embeddings.device)
    chosen = choose_method(method, len(anchors), n, embeddings.device)
    logger.info("mining %d neighbours for %d anchors among %d documents (%s)", k, len(anchors), n, chosen)
    if chosen == "exact":
        return _exact(embeddings, k, anchors, memory_bytes)
    return _ivf(embeddings, k, anchors, seed).to(embeddings.device)


def _exact(embeddings: torch.Tensor, k: int, anchors: torch.Tensor, memory_bytes: int) -> torch.Tensor:
    n = embeddings.shape[0]
    block = max(1, memory_bytes // (4 * n))
    inv_norms = 1.0 / embeddings.float().norm(dim=1).clamp_min(1e-12)  # cosines without a normalised copy
    out = torch.empty((len(anchors), k), dtype=torch.long, device=embeddings.device)
    starts = range(0, len(anchors), block)
    for start in tqdm(starts, desc="mining neighbours", disable=len(starts) < 8, leave=False):
        rows = anchors[start : start + block]
        sims = (F.normalize(embeddings[rows].float(), dim=-1) @ embeddings.float().T) * inv_norms
        sims[torch.arange(len(rows), device=sims.device), rows] = -float("inf")  # a document is not its own neighbour
        out[start : start + block] = sims.topk(k, dim=1).indices
    return out


def _unit_block(x: torch.Tensor) -> np.ndarray:
    return F.normalize(x.float(), dim=-1).cpu().numpy()


def _ivf(embeddings: torch.Tensor, k: int, anchors: torch.Tensor, seed: int, block: int = 65536) -> torch.Tensor:
    """Approximate neighbours from a faiss IVF-Flat index: sqrt(N)*4 lists, 32 probed. Vectors are normalised a
    block at a time, so the index (one copy of the corpus) is the only extra memory."""
    import faiss

    faiss.omp_set_num_threads(torch.get_num_threads())
    n, d = embeddings.shape
    nlist = max(1, min(int(4 * math.sqrt(n)), n // 39))  # faiss wants >= 39 training points per list
    quantizer = faiss.IndexFlatIP(d)
    index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    sample = np.sort(np.random.default_rng(seed).choice(n, size=min(n, 64 * nlist), replace=False))
    index.train(_unit_block(embeddings[torch.from_numpy(sample).to(embeddings.device)]))
    for start in tqdm(range(0, n, block), desc="indexing", leave=False):
        index.add(_unit_block(embeddings[start : start + block]))
    index.nprobe = min(nlist, 32)
    out = np.empty((len(anchors), k), dtype=np.int64)
    for start in tqdm(range(0, len(anchors), block), desc="mining neighbours", leave=False):
        rows = anchors[start : start + block]
        _, found = index.search(_unit_block(embeddings[rows]), k + 1)
        out[start : start + block] = _drop_self(found, rows.cpu().numpy(), k)
    return torch.from_numpy(out)


def _drop_self(found: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """The k best of k+1 hits that are not the anchor itself (or -1 padding from lists too short to fill k)."""
    keep = (found != rows[:, None]) & (found >= 0)
    if not keep.sum(axis=1).min() >= k:
        raise InputError(f"IVF search found fewer than k={k} neighbours for some anchors; use neighbor_search='exact'")
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(found, order, axis=1)
