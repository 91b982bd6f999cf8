"""Matryoshka-Adaptor losses (Yoon et al., 2024), each a pure function of embeddings.

Every loss is averaged over its items and over the Matryoshka dims (optionally weighted), so the learning
rate does not depend on the batch size or on how many dims are trained. Sums in the paper's notation become
means here; the weights alpha, beta, gamma that balance the terms live in the training config.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F

from .errors import InputError


def validate_dims(dims: Sequence[int], embedding_dim: int | None = None) -> tuple[int, ...]:
    """Matryoshka dims must be strictly increasing positive ints no larger than the embedding size (if given)."""
    dims = tuple(int(m) for m in dims)
    if not dims:
        raise InputError("matryoshka dims: expected at least one dim, got none")
    if dims[0] < 1 or any(b <= a for a, b in zip(dims, dims[1:])):
        raise InputError(f"matryoshka dims {list(dims)}: expected strictly increasing positive ints")
    if embedding_dim is not None and dims[-1] > embedding_dim:
        raise InputError(
            f"matryoshka dims {list(dims)}: dim {dims[-1]} is larger than the embedding size {embedding_dim}"
        )
    return dims


def default_dims(width: int) -> tuple[int, ...]:
    """The Matryoshka ladder for a width: powers of two from 16, then steps of about width/6 (a multiple of 64 for
    widths from 384, else of 8) up to the width itself; for 384 dims: 16, 32, 64, 128, 192, 256, 320, 384."""
    unit = 64 if width >= 384 else 8
    step = max(unit, round(width / 6 / unit) * unit)
    small = [m for m in (16, 32, 64, 128, 256, 512) if m < min(step, width)]
    return tuple(small + [m for m in range(step, width, step)] + [width])


def tail_start(dims: Sequence[int], width: int) -> int | None:
    """The first coordinate only the full width sees: the largest dim below `width` (None when no dim is below it)."""
    prefixes = [m for m in dims if m < width]
    return max(prefixes) if prefixes else None


def dim_weights(dims: Sequence[int], weighting: str) -> torch.Tensor:
    """Weights over dims that sum to 1: 'uniform' (the paper), or 'log' (more weight to small dims)."""
    if weighting == "uniform":
        w = torch.ones(len(dims))
    elif weighting == "log":
        w = 1.0 / torch.log2(torch.tensor(dims, dtype=torch.float32) + 1.0)
    else:
        raise InputError(f"dim weighting {weighting!r}: expected 'uniform' or 'log'")
    return w / w.sum()


def prefix_cosine(a: torch.Tensor, b: torch.Tensor, dim: int) -> torch.Tensor:
    """Cosine similarity matrix (len(a), len(b)) between the first `dim` coordinates of a and of b."""
    return next(prefix_cosines(a, b, (dim,)))


def prefix_cosines(a: torch.Tensor, b: torch.Tensor, dims: Sequence[int], eps: float = 1e-12) -> Iterator[torch.Tensor]:
    """prefix_cosine(a, b, m) for each m in increasing `dims`, one at a time. Dot products and squared norms are
    summed block by block (the coordinates between consecutive dims), so each coordinate is multiplied once: a
    matrix product over 384 columns for the default ladder instead of 1,392. Norms clamp at eps as F.normalize's do."""
    dots: torch.Tensor | float = 0.0
    sq_a: torch.Tensor | float = 0.0
    sq_b: torch.Tensor | float = 0.0
    lo = 0
    for m in dims:
        if m <= lo:
            raise InputError(f"prefix dims {tuple(dims)}: expected strictly increasing")
        x, y = a[..., lo:m], b[..., lo:m]
        dots = dots + x @ y.transpose(-1, -2)
        sq_a, sq_b = sq_a + x.pow(2).sum(-1), sq_b + y.pow(2).sum(-1)
        yield dots / (sq_a.sqrt().clamp_min(eps)[..., :, None] * sq_b.sqrt().clamp_min(eps)[..., None, :])
        lo = m


def _rowwise_prefix_cosine(a: torch.Tensor, b: torch.Tensor, dim: int) -> torch.Tensor:
    """Cosine between a[i] (n, d) and each of b[i] (n, k, d) over the first `dim` coords: shape (n, k)."""
    return torch.einsum("nd,nkd->nk", F.normalize(a[:, :dim], dim=-1), F.normalize(b[..., :dim], dim=-1))


def pair_loss(
    base: torch.Tensor,
    adapted: torch.Tensor,
    dims: Sequence[int],
    weights: torch.Tensor,
    base_cols: torch.Tensor | None = None,
    adapted_cols: torch.Tensor | None = None,
    offset: int = 0,
) -> torch.Tensor:
    """L_pair: mean over pairs i != j and dims m of |cos(ce_i, ce_j) - cos(ĉe_i[:m], ĉe_j[:m])|.

    Rows i are `base`/`adapted`; columns j are `base_cols`/`adapted_cols` (default: the rows), with row i being
    column offset + i. A process of a multi-process run passes its share of the batch as rows and the whole
    batch as columns, so the shares' means, weighted by their sizes, are the whole batch's mean.
    """
    base_cols = base if base_cols is None else base_cols
    adapted_cols = adapted if adapted_cols is None else adapted_cols
    n, n_cols = base.shape[0], base_cols.shape[0]
    if n_cols < 2:
        raise InputError(f"pair_loss: expected a batch of at least 2 embeddings, got {n_cols}")
    not_self = torch.ones((n, n_cols), dtype=torch.bool, device=base.device)
    rows = torch.arange(n, device=base.device)
    not_self[rows, rows + offset] = False
    target = prefix_cosine(base, base_cols, base.shape[1])[not_self]
    gaps = [(s[not_self] - target).abs().mean() for s in prefix_cosines(adapted, adapted_cols, dims)]
    return torch.stack(gaps) @ weights.to(base.device)


def topk_loss(
    base: torch.Tensor,
    adapted: torch.Tensor,
    base_neighbors: torch.Tensor,
    adapted_neighbors: torch.Tensor,
    dims: Sequence[int],
    weights: torch.Tensor,
) -> torch.Tensor:
    """L_topk: like L_pair but over j in NN_k(i): anchors (n, d), their neighbours (n, k, d)."""
    target = _rowwise_prefix_cosine(base, base_neighbors, base.shape[1])
    gaps = [(_rowwise_prefix_cosine(adapted, adapted_neighbors, m) - target).abs().mean() for m in dims]
    return torch.stack(gaps) @ weights.to(base.device)


def reconstruction_loss(reference: torch.Tensor, adapted: torch.Tensor) -> torch.Tensor:
    """L_rec: mean over embeddings of the L1 norm |ĉe_i - ce_i| (summed over coordinates, as in the paper)."""
    return (adapted - reference).abs().sum(dim=-1).mean()


def rank_loss(
    queries: torch.Tensor,
    docs: torch.Tensor,
    relevance: torch.Tensor,
    dims: Sequence[int],
    weights: torch.Tensor,
    temperature: float,
) -> torch.Tensor:
    """L_rank: sum over j, k with y_ij > y_ik of (y_ij - y_ik) * log(1 + exp((s_ik - s_ij) / T)) at each dim.

    queries (q, d) and docs (n, d) are adapted embeddings; relevance (q, n) holds y (0 = not relevant). For each
    query the pairs are summed over k and averaged over its relevant j, then averaged over queries and dims.
    The temperature T departs from the paper: cosines lie in [-1, 1], so without it the softplus barely
    separates a near miss from an easy negative and the easy ones (most of a corpus) swamp the gradient.
    Summing over k (not averaging) keeps the loss the count of confusing negatives, whatever the corpus size.
    """
    if temperature <= 0:
        raise InputError(f"rank temperature {temperature}: expected > 0")
    relevance = relevance.to(queries.dtype)
    positive = relevance > 0
    n_pos = positive.sum(dim=1)
    if bool((n_pos == 0).any()):
        raise InputError("rank_loss: every query needs at least one relevant document")
    # one row per (query i, relevant doc j), not a (q, max positives, n) block padded to the largest query's count:
    # most queries have one or two relevant documents, so padding multiplied the work by the batch's maximum
    q_idx, pos_idx = positive.nonzero(as_tuple=True)  # (P,) each
    pair_weight = (relevance[q_idx, pos_idx][:, None] - relevance[q_idx]).clamp(min=0)  # (y_ij - y_ik)+: (P, n)
    share = 1.0 / (n_pos[q_idx].to(queries.dtype) * len(queries))  # mean over a query's j, then over queries
    per_dim = []
    for cosine in prefix_cosines(queries, docs, dims):
        # (P, n): row i of s for each pair; index_select, as its backward adds rows where indexing's sorts them
        s = (cosine / temperature).index_select(0, q_idx)
        pair_loss_ = F.softplus(s - s.gather(1, pos_idx[:, None])) * pair_weight
        per_dim.append(pair_loss_.sum(dim=1) @ share)
    return torch.stack(per_dim) @ weights.to(queries.device)


def neighbor_rank_loss(
    adapted: torch.Tensor,
    anchors: torch.Tensor,
    neighbors: torch.Tensor,
    dims: Sequence[int],
    weights: torch.Tensor,
    temperature: float,
) -> torch.Tensor:
    """L_rank with documents as queries: each anchor row of `adapted` (n, d) ranks itself and its neighbour rows
    above every other row, at each dim. anchors (b,) and neighbors (b, k) are row indices into `adapted`."""
    relevance = torch.zeros((len(anchors), len(adapted)), device=adapted.device)
    relevance.scatter_(1, neighbors, 1.0)
    relevance[torch.arange(len(anchors), device=adapted.device), anchors] = 1.0
    return rank_loss(adapted[anchors], adapted, relevance, dims, weights, temperature)
