import pytest
import torch
import torch.nn.functional as F

from matryoshka_adaptor.errors import InputError
from matryoshka_adaptor.neighbors import mine_neighbors

X = torch.randn(50, 8, generator=torch.Generator().manual_seed(0))


def test_neighbors_are_the_true_top_k_without_self() -> None:
    nbrs = mine_neighbors(X, 5, block_size=7)
    sims = F.normalize(X, dim=1) @ F.normalize(X, dim=1).T
    sims.fill_diagonal_(-2)
    assert torch.equal(nbrs, sims.topk(5, dim=1).indices)
    assert not (nbrs == torch.arange(50)[:, None]).any()


def test_block_size_does_not_change_the_result() -> None:
    assert torch.equal(mine_neighbors(X, 4, block_size=3), mine_neighbors(X, 4, block_size=1000))


def test_k_must_be_smaller_than_the_corpus() -> None:
    with pytest.raises(InputError, match="k=50"):
        mine_neighbors(X, 50)
