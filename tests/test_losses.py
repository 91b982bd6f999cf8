import math

import pytest
import torch
import torch.nn.functional as F

from matryoshka_adaptor.errors import InputError
from matryoshka_adaptor.losses import (
    dim_weights,
    pair_loss,
    prefix_cosine,
    rank_loss,
    reconstruction_loss,
    topk_loss,
    validate_dims,
)

W2 = torch.tensor([0.5, 0.5])


def test_identity_gives_zero_pair_and_topk_loss_at_full_dim() -> None:
    x = torch.randn(6, 8, generator=torch.Generator().manual_seed(0))
    nbrs = x[[1, 2, 3, 4, 5, 0]].unsqueeze(1)
    assert pair_loss(x, x, [8], torch.ones(1)) == pytest.approx(0.0, abs=1e-6)
    assert topk_loss(x, x, nbrs, nbrs, [8], torch.ones(1)) == pytest.approx(0.0, abs=1e-6)
    assert pair_loss(x, x, [2], torch.ones(1)) > 0.01  # truncation does change cosines


def test_pair_loss_hand_computed() -> None:
    base = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # cosine 0
    adapted = torch.tensor([[1.0, 0.0], [1.0, 1.0]])  # cosine 1/sqrt(2) at dim 2, 1 at dim 1
    expected = 0.5 * (1 / math.sqrt(2)) + 0.5 * 1.0
    assert pair_loss(base, adapted, [1, 2], W2) == pytest.approx(expected, abs=1e-6)


def test_topk_loss_hand_computed() -> None:
    base = torch.tensor([[1.0, 0.0]])
    base_nbrs = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # cosines 1, 0
    adapted_nbrs = torch.tensor([[[1.0, 1.0], [0.0, 1.0]]])  # cosines 1/sqrt(2), 0
    expected = (1 - 1 / math.sqrt(2)) / 2
    assert topk_loss(base, base, base_nbrs, adapted_nbrs, [2], torch.ones(1)) == pytest.approx(expected, abs=1e-6)


def test_reconstruction_loss_is_mean_l1_norm() -> None:
    a = torch.zeros(2, 3)
    b = torch.tensor([[1.0, -1.0, 0.0], [0.0, 0.0, 2.0]])
    assert reconstruction_loss(a, a) == 0
    assert reconstruction_loss(a, b) == pytest.approx(2.0)


def test_rank_loss_prefers_the_relevant_document() -> None:
    q = torch.tensor([[1.0, 0.0]])
    good = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # relevant doc 0 scores above doc 1
    bad = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    rel = torch.tensor([[1.0, 0.0]])
    assert rank_loss(q, good, rel, [2], torch.ones(1), 0.1) < rank_loss(q, bad, rel, [2], torch.ones(1), 0.1)
    # the exact value: softplus((s_k - s_j) / T) with s_j = 1, s_k = 0
    assert rank_loss(q, good, rel, [2], torch.ones(1), 0.1) == pytest.approx(F.softplus(torch.tensor(-10.0)).item())


def test_rank_loss_weights_graded_pairs_by_label_gap() -> None:
    q = torch.tensor([[1.0, 0.0]])
    docs = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])  # all tie: each pair costs log 2
    rel = torch.tensor([[2.0, 1.0, 0.0]])
    # pairs (0,1) gap 1, (0,2) gap 2, (1,2) gap 1: 4 log 2 over 2 relevant docs
    assert rank_loss(q, docs, rel, [2], torch.ones(1), 1.0) == pytest.approx(2 * math.log(2), rel=1e-5)


def test_rank_loss_rejects_bad_input() -> None:
    q, docs = torch.ones(1, 2), torch.ones(2, 2)
    with pytest.raises(InputError, match="at least one relevant"):
        rank_loss(q, docs, torch.zeros(1, 2), [2], torch.ones(1), 0.1)
    with pytest.raises(InputError, match="temperature"):
        rank_loss(q, docs, torch.tensor([[1.0, 0.0]]), [2], torch.ones(1), 0.0)


def test_gradients_reach_the_adapted_embeddings() -> None:
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(1))
    adapted = (x + 0.1).requires_grad_()
    (pair_loss(x, adapted, [3, 6], W2) + rank_loss(adapted[:1], adapted, torch.tensor([[0.0, 1, 0, 0]]), [3], torch.ones(1), 0.1)).backward()
    assert adapted.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("dims", "match"),
    [([], "at least one"), ([32, 16], "increasing"), ([16, 16], "increasing"), ([0, 8], "positive"), ([16, 512], "larger than")],
)
def test_validate_dims_rejects(dims: list[int], match: str) -> None:
    with pytest.raises(InputError, match=match):
        validate_dims(dims, 384)


def test_dim_weights() -> None:
    for name in ("uniform", "log"):
        assert dim_weights([16, 64, 384], name).sum() == pytest.approx(1.0)
    log = dim_weights([16, 384], "log")
    assert log[0] > log[1]
    with pytest.raises(InputError, match="weighting"):
        dim_weights([16], "cubic")


def test_prefix_cosine_uses_only_the_prefix() -> None:
    a = torch.tensor([[1.0, 0.0, 5.0]])
    b = torch.tensor([[1.0, 0.0, -5.0]])
    assert prefix_cosine(a, b, 2).item() == pytest.approx(1.0)
    assert prefix_cosine(a, b, 3).item() < 0
