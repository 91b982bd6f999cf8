import pytest
import torch
import torch.nn.functional as F

from matryoshka_adaptor.errors import InputError
from matryoshka_adaptor.neighbors import mine_neighbors

X = torch.randn(50, 8, generator=torch.Generator().manual_seed(0))


def brute_force(x: torch.Tensor, k: int) -> torch.Tensor:
    unit = F.normalize(x, dim=1)
    sims = unit @ unit.T
    sims.fill_diagonal_(-2)  # below any cosine
    return sims.topk(k, dim=1).indices


@pytest.mark.parametrize("k", [1, 5, 49])
def test_neighbors_are_the_true_top_k_without_self(k: int) -> None:
    nbrs = mine_neighbors(X, k, block_size=7)
    assert nbrs.shape == (50, k) and nbrs.dtype == torch.long
    assert torch.equal(nbrs, brute_force(X, k))
    assert not (nbrs == torch.arange(50)[:, None]).any()


def test_neighbors_use_cosine_not_dot_product() -> None:
    x = torch.tensor([[1.0, 0.0], [10.0, 10.0], [0.9, 0.1]])  # row 1 has the largest dot product with row 0
    assert mine_neighbors(x, 1)[0].item() == 2


@pytest.mark.parametrize("block_size", [1, 3, 16, 49, 50, 1000])
def test_block_size_does_not_change_the_result(block_size: int) -> None:
    assert torch.equal(mine_neighbors(X, 4, block_size=block_size), brute_force(X, 4))


@pytest.mark.parametrize("k", [0, 50, 51])
def test_k_must_be_between_1_and_n_minus_1(k: int) -> None:
    with pytest.raises(InputError, match=f"k={k} needs 1 <= k < corpus size 50"):
        mine_neighbors(X, k)
