import math

import pytest
import torch
import torch.nn.functional as F

from matryoshka_adaptor.config import AdaptorConfig
from matryoshka_adaptor.errors import InputError
from matryoshka_adaptor.losses import (
    default_dims,
    dim_weights,
    neighbor_rank_loss,
    pair_loss,
    prefix_cosine,
    prefix_cosines,
    rank_loss,
    reconstruction_loss,
    tail_start,
    topk_loss,
    validate_dims,
)
from matryoshka_adaptor.model import MatryoshkaAdaptor
from matryoshka_adaptor.vectors import pca_rotation

W1 = torch.ones(1)
W2 = torch.tensor([0.5, 0.5])
X = torch.randn(6, 8, generator=torch.Generator().manual_seed(0))
NEXT = [1, 2, 3, 4, 5, 0]  # each row's "neighbour" for the top-k loss


@pytest.mark.parametrize("rotation", [None, "pca"])
def test_new_adaptor_gives_zero_pair_and_topk_loss_at_full_dim_only(rotation) -> None:
    r = None if rotation is None else pca_rotation(X.numpy())
    adapted = MatryoshkaAdaptor(AdaptorConfig(input_dim=8, hidden_dim=4), r)(X).detach()
    base_nbrs, adapted_nbrs = X[NEXT].unsqueeze(1), adapted[NEXT].unsqueeze(1)
    assert pair_loss(X, adapted, [8], W1) == pytest.approx(0.0, abs=1e-5)
    assert topk_loss(X, adapted, base_nbrs, adapted_nbrs, [8], W1) == pytest.approx(0.0, abs=1e-5)
    assert pair_loss(X, adapted, [2], W1) > 0.01  # truncation does change cosines
    assert topk_loss(X, adapted, base_nbrs, adapted_nbrs, [2], W1) > 0.01


def test_pair_loss_hand_computed_3x2() -> None:
    base = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # cosines (01, 02, 12): 0, 1/r2, 1/r2
    adapted = torch.tensor([[1.0, 0.0], [1.0, 1.0], [-1.0, 1.0]])
    r2 = math.sqrt(2)
    at_dim_1 = (1 + (1 + 1 / r2) + (1 + 1 / r2)) / 3  # prefix cosines 1, -1, -1
    at_dim_2 = (1 / r2 + r2 + 1 / r2) / 3  # cosines 1/r2, -1/r2, 0
    expected = 0.25 * at_dim_1 + 0.75 * at_dim_2
    assert pair_loss(base, adapted, [1, 2], torch.tensor([0.25, 0.75])) == pytest.approx(expected, abs=1e-6)


def test_pair_loss_needs_two_embeddings() -> None:
    with pytest.raises(InputError, match="at least 2 embeddings, got 1"):
        pair_loss(X[:1], X[:1], [8], W1)


def test_topk_loss_hand_computed() -> None:
    base = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    base_nbrs = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 1.0]]])  # cosines 1, 0 | 1, 1/r2
    adapted = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    adapted_nbrs = torch.tensor([[[1.0, 1.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 0.0]]])  # cosines 1, 1/r2 | 1, 0
    r2 = math.sqrt(2)
    expected = (0 + 1 / r2 + 0 + 1 / r2) / 4
    assert topk_loss(base, adapted, base_nbrs, adapted_nbrs, [2], W1) == pytest.approx(expected, abs=1e-6)


def test_reconstruction_loss() -> None:
    a = torch.zeros(2, 3)
    b = torch.tensor([[1.0, -1.0, 0.0], [0.0, 0.0, 2.0]])
    assert reconstruction_loss(b, b.clone()) == 0
    # mean over embeddings of the L1 norm of the difference (coordinates summed, as in the paper)
    assert reconstruction_loss(a, b) == pytest.approx((2.0 + 2.0) / 2)
    assert reconstruction_loss(b, a) == pytest.approx(2.0)


def test_rank_loss_prefers_the_relevant_document_above() -> None:
    q = torch.tensor([[1.0, 0.0]])
    good = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # relevant doc 0 scores above doc 1
    bad = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    rel = torch.tensor([[1.0, 0.0]])
    assert rank_loss(q, good, rel, [2], W1, 0.1) < rank_loss(q, bad, rel, [2], W1, 0.1)
    # the exact values: softplus((s_k - s_j) / T) with (s_j, s_k) = (1, 0), then (0, 1)
    assert rank_loss(q, good, rel, [2], W1, 0.1) == pytest.approx(F.softplus(torch.tensor(-10.0)).item(), rel=1e-5)
    assert rank_loss(q, bad, rel, [2], W1, 0.1) == pytest.approx(F.softplus(torch.tensor(10.0)).item(), rel=1e-5)


def test_rank_loss_weights_pairs_by_label_gap() -> None:
    q = torch.tensor([[1.0, 0.0]])
    docs = torch.tensor([[0.6, 0.8], [1.0, 0.0]])
    one = rank_loss(q, docs, torch.tensor([[1.0, 0.0]]), [2], W1, 0.5)
    three = rank_loss(q, docs, torch.tensor([[3.0, 0.0]]), [2], W1, 0.5)
    assert three.item() == pytest.approx(3 * one.item(), rel=1e-5)
    ties = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])  # all tie: each pair costs gap * log 2
    # pairs (0,1) gap 1, (0,2) gap 2, (1,2) gap 1: 4 log 2 over 2 relevant docs
    assert rank_loss(q, ties, torch.tensor([[2.0, 1.0, 0.0]]), [2], W1, 1.0) == pytest.approx(2 * math.log(2), rel=1e-5)


def test_rank_loss_averages_queries() -> None:
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    docs = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    rel = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # query 0 ranks it right, query 1 wrong
    expected = (F.softplus(torch.tensor(-1.0)) + F.softplus(torch.tensor(1.0))).item() / 2
    assert rank_loss(q, docs, rel, [2], W1, 1.0) == pytest.approx(expected, rel=1e-5)


def rank_formula(q: torch.Tensor, docs: torch.Tensor, rel: torch.Tensor, dims: list[int], weights: torch.Tensor,
                 t: float) -> torch.Tensor:
    """L_rank written as loops: per dim, the mean over queries of
    (1 / |relevant|) sum_{j,k: y_ij > y_ik} (y_ij - y_ik) softplus((s_ik - s_ij) / t)."""
    n = len(docs)
    total = torch.zeros((), dtype=q.dtype)
    for w, m in zip(weights.tolist(), dims):
        s = normalised_prefix_cosine(q, docs, m) / t
        per_query = [
            sum((y[j] - y[k]) * F.softplus(s[i, k] - s[i, j]) for j in range(n) for k in range(n) if y[j] > y[k])
            / int((y > 0).sum())
            for i, y in enumerate(rel)
        ]
        total = total + w * sum(per_query) / len(rel)
    return total


GRADED = torch.tensor([[2.0, 0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 0, 3, 0], [1, 1, 2, 0, 0, 0, 1]])
ONE_EACH = torch.tensor([[0.0, 0, 1, 0, 0, 0, 0], [1.0, 0, 0, 0, 0, 0, 0], [0.0, 0, 0, 0, 0, 0, 1]])


def test_rank_loss_is_the_formula_summed_pair_by_pair() -> None:
    """Queries with different numbers of relevant documents and graded labels."""
    g = torch.Generator().manual_seed(1)
    q, docs = torch.randn(3, 8, generator=g), torch.randn(7, 8, generator=g)
    expected = rank_formula(q, docs, GRADED, [4, 8], W2, 0.3).item()
    assert rank_loss(q, docs, GRADED, [4, 8], W2, 0.3).item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("rel", [GRADED, ONE_EACH], ids=["graded", "one relevant each"])
def test_rank_loss_gradient_is_the_formula_s(rel: torch.Tensor) -> None:
    """The hand-written backward against autograd through the loops, for queries and documents alike."""
    g = torch.Generator().manual_seed(2)
    q = torch.randn(3, 8, generator=g, dtype=torch.float64, requires_grad=True)
    docs = torch.randn(7, 8, generator=g, dtype=torch.float64, requires_grad=True)
    rel, weights = rel.double(), W2.double()
    got = torch.autograd.grad(rank_loss(q, docs, rel, [4, 8], weights, 0.3), (q, docs))
    want = torch.autograd.grad(rank_formula(q, docs, rel, [4, 8], weights, 0.3), (q, docs))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize(
    ("relevance", "temperature", "match"),
    [
        ([[1.0, 0.0], [0.0, 0.0]], 0.1, "at least one relevant document"),
        ([[1.0, 0.0], [0.0, 1.0]], 0.0, r"temperature 0.0: expected > 0"),
        ([[1.0, 0.0], [0.0, 1.0]], -1.0, r"temperature -1.0: expected > 0"),
    ],
)
def test_rank_loss_rejects_bad_input(relevance, temperature, match) -> None:
    with pytest.raises(InputError, match=match):
        rank_loss(X[:2], X[:2], torch.tensor(relevance), [8], W1, temperature)


def _pair(adapted):
    return pair_loss(X, adapted, [3, 8], W2)


def _topk(adapted):
    return topk_loss(X, adapted, X[NEXT].unsqueeze(1), adapted[NEXT].unsqueeze(1), [3, 8], W2)


def _rec(adapted):
    return reconstruction_loss(X, adapted)


def _rank(adapted):
    return rank_loss(adapted[:2], adapted, torch.tensor([[0.0, 1, 0, 0, 0, 0], [1.0, 0, 0, 0, 0, 2]]), [3], W1, 0.1)


@pytest.mark.parametrize("loss", [_pair, _topk, _rec, _rank])
def test_gradients_reach_the_adapted_embeddings(loss) -> None:
    adapted = (X + 0.1 * torch.randn(6, 8, generator=torch.Generator().manual_seed(1))).requires_grad_()
    loss(adapted).backward()
    assert adapted.grad is not None and adapted.grad.abs().sum() > 0
    assert torch.isfinite(adapted.grad).all()


@pytest.mark.parametrize(
    ("dims", "match"),
    [
        ([], "expected at least one dim, got none"),
        ([32, 16], r"\[32, 16\]: expected strictly increasing"),
        ([16, 16], r"\[16, 16\]: expected strictly increasing"),
        ([0, 8], r"\[0, 8\]: expected strictly increasing positive"),
        ([-4, 8], "positive"),
        ([16, 512], "dim 512 is larger than the embedding size 384"),
    ],
)
def test_validate_dims_rejects(dims: list[int], match: str) -> None:
    with pytest.raises(InputError, match=match):
        validate_dims(dims, 384)


def test_validate_dims_accepts() -> None:
    assert validate_dims([16, 64, 384], 384) == (16, 64, 384)
    assert validate_dims([16, 4096]) == (16, 4096)  # no width given: no upper bound


@pytest.mark.parametrize("name", ["uniform", "log"])
def test_dim_weights_sum_to_one(name: str) -> None:
    w = dim_weights([16, 64, 384], name)
    assert w.shape == (3,) and w.sum() == pytest.approx(1.0) and (w > 0).all()


def test_dim_weights_shapes() -> None:
    assert dim_weights([16, 64, 384], "uniform").tolist() == pytest.approx([1 / 3] * 3)
    log = dim_weights([16, 384], "log")
    assert log[0] > log[1]
    with pytest.raises(InputError, match="weighting 'cubic': expected 'uniform' or 'log'"):
        dim_weights([16], "cubic")


def test_prefix_cosine_uses_only_the_prefix() -> None:
    a = torch.tensor([[1.0, 0.0, 5.0]])
    b = torch.tensor([[1.0, 0.0, -5.0]])
    assert prefix_cosine(a, b, 2).item() == pytest.approx(1.0)
    assert prefix_cosine(a, b, 3).item() == pytest.approx(-24 / 26)


def normalised_prefix_cosine(a: torch.Tensor, b: torch.Tensor, m: int) -> torch.Tensor:
    """The definition, each prefix normalised on its own, differentiated by autograd."""
    return F.normalize(a[..., :m], dim=-1) @ F.normalize(b[..., :m], dim=-1).transpose(-1, -2)


def test_prefix_cosines_equal_each_prefix_normalised_on_its_own() -> None:
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(5, 12, generator=g), torch.randn(7, 12, generator=g)
    a[0, :3] = 0  # a zero prefix: cosine 0, as F.normalize's clamped norm gives
    dims = (3, 4, 9, 12)
    for m, cosine in zip(dims, prefix_cosines(a, b, dims), strict=True):
        assert torch.allclose(cosine, normalised_prefix_cosine(a, b, m), atol=1e-6)


@pytest.mark.parametrize(
    ("a_shape", "b_shape", "dims", "used"),
    [
        ((5, 12), (7, 12), (3, 4, 9, 12), (0, 1, 2, 3)),
        ((5, 12), (7, 12), (3, 4, 9), (0, 2)),  # coordinates no dim reads; a dim whose cosines go unused
        ((5, 12), (7, 12), (3, 4, 9), (0,)),  # the widest dims unused
        ((5, 1, 12), (5, 4, 12), (2, 6, 12), (0, 1, 2)),  # a batch of rows, each against its own k (L_topk's shape)
    ],
    ids=["every dim", "some dims", "narrowest only", "batched"],
)
def test_prefix_cosines_gradient_is_the_definition_s(a_shape, b_shape, dims, used) -> None:
    g = torch.Generator().manual_seed(3)
    a = torch.randn(a_shape, generator=g, dtype=torch.float64)
    b = torch.randn(b_shape, generator=g, dtype=torch.float64)
    a[0, ..., :2] = 0  # a zero prefix: its clamped norm passes no gradient, as F.normalize's
    a.requires_grad_(), b.requires_grad_()
    upstream = [torch.randn(a_shape[:-1] + b_shape[-2:-1], generator=g, dtype=torch.float64) for _ in dims]
    got = torch.autograd.grad(sum((prefix_cosines(a, b, dims)[i] * upstream[i]).sum() for i in used), (a, b))
    want = torch.autograd.grad(
        sum((normalised_prefix_cosine(a, b, dims[i]) * upstream[i]).sum() for i in used), (a, b)
    )
    for x, y in zip(got, want):
        torch.testing.assert_close(x, y)


def test_prefix_cosines_refuse_dims_out_of_order() -> None:
    with pytest.raises(InputError, match=r"prefix dims \(4, 2\): expected strictly increasing"):
        prefix_cosines(X, X, (4, 2))


@pytest.mark.parametrize("width", [64, 100, 384, 768, 1024, 1536])
def test_default_dims_fit_the_width(width: int) -> None:
    dims = default_dims(width)
    assert validate_dims(dims, width) == dims and dims[-1] == width


def test_default_dims_for_minilm() -> None:
    assert default_dims(384) == (16, 32, 64, 128, 192, 256, 320, 384)


def test_tail_start_is_the_largest_dim_below_the_width() -> None:
    assert tail_start(default_dims(384), 384) == 320
    assert tail_start((16, 64), 384) == 64  # past the largest dim only the full width sees the coordinates
    assert tail_start((384,), 384) is None


def test_pair_loss_of_shares_against_all_columns_averages_to_the_whole() -> None:
    """How a process of a multi-process run computes L_pair: its rows against every column, weighted by share."""
    adapted = X + 0.1 * torch.randn(X.shape, generator=torch.Generator().manual_seed(5))
    whole = pair_loss(X, adapted, [3, 8], W2)
    shares = [(0, 5), (5, len(X))]
    parts = [pair_loss(X[a:b], adapted[a:b], [3, 8], W2, X, adapted, offset=a) * (b - a) / len(X) for a, b in shares]
    assert sum(parts) == pytest.approx(float(whole), rel=1e-6)


def test_neighbor_rank_loss_is_rank_loss_with_each_anchor_as_the_query() -> None:
    anchors, neighbors = torch.tensor([0, 3]), torch.tensor([[1], [4]])
    relevance = torch.zeros(2, 6)
    relevance[0, [0, 1]] = relevance[1, [3, 4]] = 1.0
    expected = rank_loss(X[anchors], X, relevance, [2, 8], W2, 0.1)
    assert neighbor_rank_loss(X, anchors, neighbors, [2, 8], W2, 0.1) == pytest.approx(expected.item(), rel=1e-6)
    moved = X.clone()
    moved[1] = X[0]  # anchor 0's neighbour now coincides with it: ranked first at every dim, a lower loss
    assert neighbor_rank_loss(moved, anchors, neighbors, [2, 8], W2, 0.1) < neighbor_rank_loss(X, anchors, neighbors, [2, 8], W2, 0.1)
