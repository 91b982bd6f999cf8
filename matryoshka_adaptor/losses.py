"""Matryoshka-Adaptor losses (Yoon et al., 2024), each a pure function of embeddings.

Every loss is averaged over its items and over the Matryoshka dims (optionally weighted), so the learning
rate does not depend on the batch size or on how many dims are trained. Sums in the paper's notation become
means here; the weights alpha, beta, gamma that balance the terms live in the training config.
"""

from __future__ import annotations

from collections.abc import Sequence

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
    return prefix_cosines(a, b, (dim,))[0]


def prefix_cosines(a: torch.Tensor, b: torch.Tensor, dims: Sequence[int], eps: float = 1e-12) -> tuple[torch.Tensor, ...]:
    """prefix_cosine(a, b, m) for each m in increasing `dims`: a (..., p, d) and b (..., n, d) give (..., p, n) each.
    Norms clamp at eps as F.normalize's do."""
    widths = [m - lo for lo, m in zip((0, *dims), dims)]
    if any(w <= 0 for w in widths):
        raise InputError(f"prefix dims {tuple(dims)}: expected strictly increasing")
    return _PrefixCosines.apply(a, b, tuple(widths), eps)


class _PrefixCosines(torch.autograd.Function):
    """Dot products and squared norms summed block by block (the coordinates between consecutive dims), so each
    coordinate is multiplied once: a matrix product over 384 columns for the default ladder instead of 1,392.
    The gradient is written out, walking the dims from the widest down: autograd's made about twice as many passes
    over each (p, n) matrix, and with SciFact's whole corpus as rank candidates those passes cost more than the
    matrix products."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor, widths: tuple[int, ...], eps: float) -> tuple[torch.Tensor, ...]:
        xs, ys = _blocks(a, widths), _blocks(b, widths)
        dots: torch.Tensor | None = None
        sq_a: torch.Tensor | float = 0.0
        sq_b: torch.Tensor | float = 0.0
        outs, inv_a, inv_b, norm_grad_a, norm_grad_b = [], [], [], [], []
        for x, y in zip(xs, ys):
            dots = _add_product(dots, x, y)
            sq_a, sq_b = sq_a + x.pow(2).sum(-1), sq_b + y.pow(2).sum(-1)
            for sq, inv, norm_grad in ((sq_a, inv_a, norm_grad_a), (sq_b, inv_b, norm_grad_b)):
                inv.append(sq.clamp_min(eps**2).rsqrt())
                # 1 / |x|^2, or 0 where the norm is clamped: a constant passes no gradient
                norm_grad.append(torch.where(sq >= eps**2, inv[-1] * inv[-1], 0.0))
            outs.append(torch.mul(dots, inv_a[-1][..., :, None]).mul_(inv_b[-1][..., None, :]))
        ctx.save_for_backward(a, b, *outs, *inv_a, *inv_b, *norm_grad_a, *norm_grad_b)
        ctx.widths = widths
        ctx.set_materialize_grads(False)  # a dim nobody used passes None, and no zeros are made for it
        return tuple(outs)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, *grads: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        a, b, *saved = ctx.saved_tensors
        k = len(ctx.widths)
        outs, inv_a, inv_b, norm_grad_a, norm_grad_b = (saved[i * k : (i + 1) * k] for i in range(5))
        xs, ys = _blocks(a, ctx.widths), _blocks(b, ctx.widths)
        # block t feeds every dim from t on: carry the sums over those dims from the widest down
        # d cos / d dots = inv_a inv_b;  d cos / d x through the norm = -cos x / |x|^2 (and b's alike)
        dots_grad: torch.Tensor | None = None
        coef_a: torch.Tensor | float = 0.0
        coef_b: torch.Tensor | float = 0.0
        grad_a, grad_b = [None] * k, [None] * k
        for t in reversed(range(k)):
            g = grads[t]
            if g is not None:
                scaled = torch.mul(g, inv_a[t][..., :, None]).mul_(inv_b[t][..., None, :])
                dots_grad = scaled if dots_grad is None else dots_grad.add_(scaled)
                g_cos = g * outs[t]
                coef_a = coef_a - g_cos.sum(-1) * norm_grad_a[t]
                coef_b = coef_b - g_cos.sum(-2) * norm_grad_b[t]
            if dots_grad is None:  # no dim from t on has a gradient
                grad_a[t], grad_b[t] = torch.zeros_like(xs[t]), torch.zeros_like(ys[t])
                continue
            grad_a[t] = dots_grad @ ys[t] + coef_a[..., None] * xs[t]
            grad_b[t] = dots_grad.transpose(-1, -2) @ xs[t] + coef_b[..., None] * ys[t]
        rest = a.shape[-1] - sum(ctx.widths)  # coordinates no dim reads
        if rest:
            grad_a.append(a.new_zeros((*a.shape[:-1], rest)))
            grad_b.append(b.new_zeros((*b.shape[:-1], rest)))
        return torch.cat(grad_a, -1), torch.cat(grad_b, -1), None, None


def _add_product(dots: torch.Tensor | None, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """dots + x yᵀ (batched over leading dims), written into dots itself."""
    if dots is None:
        return x @ y.transpose(-1, -2)
    if dots.dim() == 2:  # the big case (queries against candidates): addmm adds as it multiplies
        return dots.addmm_(x, y.T)
    return dots.add_(x @ y.transpose(-1, -2))


def _blocks(x: torch.Tensor, widths: tuple[int, ...]) -> tuple[torch.Tensor, ...]:
    """The coordinates between consecutive dims, as views."""
    return x[..., : sum(widths)].split(list(widths), dim=-1)


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
    # a 0/1 weight rather than boolean indexing: indexing's backward scatters into a zeroed matrix at every dim
    not_self = torch.ones((n, n_cols), dtype=base.dtype, device=base.device)
    rows = torch.arange(n, device=base.device)
    not_self[rows, rows + offset] = 0
    target = prefix_cosine(base, base_cols, base.shape[1])
    gaps = [((s - target).abs() * not_self).sum() for s in prefix_cosines(adapted, adapted_cols, dims)]
    return torch.stack(gaps) @ weights.to(base.device) / (n * n_cols - n)


def topk_loss(
    base: torch.Tensor,
    adapted: torch.Tensor,
    base_neighbors: torch.Tensor,
    adapted_neighbors: torch.Tensor,
    dims: Sequence[int],
    weights: torch.Tensor,
) -> torch.Tensor:
    """L_topk: like L_pair but over j in NN_k(i): anchors (n, d), their neighbours (n, k, d)."""
    # each anchor as a batch of one row against its k neighbours: (n, 1, k) cosines
    target = prefix_cosine(base[:, None], base_neighbors, base.shape[1])
    gaps = [(s - target).abs().mean() for s in prefix_cosines(adapted[:, None], adapted_neighbors, dims)]
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
    pair_weight = pair_weight * share[:, None]
    per_dim = [_PairSoftplus.apply(cosine, q_idx, pos_idx, pair_weight, temperature)
               for cosine in prefix_cosines(queries, docs, dims)]
    return torch.stack(per_dim) @ weights.to(queries.device)


class _PairSoftplus(torch.autograd.Function):
    """sum over pairs p = (query i, relevant doc j) and docs k of w_pk softplus((s_ik - s_ij) / T), s a (q, n)
    cosine matrix, with its gradient written out: autograd's made about three times as many passes over the
    (pairs, docs) matrix at every dim, which on SciFact cost more than the matrix products."""

    @staticmethod
    def forward(ctx, s: torch.Tensor, q_idx: torch.Tensor, pos_idx: torch.Tensor, weight: torch.Tensor,
                temperature: float) -> torch.Tensor:
        one_each = len(q_idx) == len(s)  # every query has one relevant document (q_idx is sorted): rows are s's own
        rows = s if one_each else s.index_select(0, q_idx)
        diff = (rows - rows.gather(1, pos_idx[:, None])).div_(temperature)
        # d/d diff of softplus is the sigmoid; the 1/T of the chain rule is folded in here, once
        ctx.save_for_backward(torch.sigmoid(diff).mul_(weight).div_(temperature), q_idx, pos_idx)
        ctx.one_each, ctx.shape = one_each, s.shape
        return F.softplus(diff).mul_(weight).sum()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        pair_grad, q_idx, pos_idx = ctx.saved_tensors
        pair_grad = pair_grad * grad  # (P, n): d loss / d s_ik of each pair's row
        # s_ij sits in every difference of its pair's row with a minus sign
        at_positive = -pair_grad.sum(dim=1, keepdim=True)
        pair_grad.scatter_add_(1, pos_idx[:, None], at_positive)
        if ctx.one_each:
            return pair_grad, None, None, None, None
        return pair_grad.new_zeros(ctx.shape).index_add_(0, q_idx, pair_grad), None, None, None, None


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
