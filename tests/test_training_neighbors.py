import pytest
import torch
import torch.nn.functional as F

from matryoshka_adaptor.errors import InputError
from matryoshka_adaptor.training.neighbors import choose_method, mine_neighbors

X = torch.randn(50, 8, generator=torch.Generator().manual_seed(0))


def brute_force(x: torch.Tensor, k: int) -> torch.Tensor:
    unit = F.normalize(x, dim=1)
    sims = unit @ unit.T
    sims.fill_diagonal_(-2)  # below any cosine
    return sims.topk(k, dim=1).indices


@pytest.mark.parametrize("k", [1, 5, 49])
def test_neighbors_are_the_true_top_k_without_self(k: int) -> None:
    nbrs = mine_neighbors(X, k, memory_bytes=4 * 50 * 7)
    assert nbrs.shape == (50, k) and nbrs.dtype == torch.long
    assert torch.equal(nbrs, brute_force(X, k))
    assert not (nbrs == torch.arange(50)[:, None]).any()


def test_neighbors_use_cosine_not_dot_product() -> None:
    x = torch.tensor([[1.0, 0.0], [10.0, 10.0], [0.9, 0.1]])  # row 1 has the largest dot product with row 0
    assert mine_neighbors(x, 1)[0].item() == 2


@pytest.mark.parametrize("rows_per_block", [1, 3, 16, 49, 50, 1000])
def test_block_size_does_not_change_the_result(rows_per_block: int) -> None:
    assert torch.equal(mine_neighbors(X, 4, memory_bytes=4 * 50 * rows_per_block), brute_force(X, 4))


def test_anchor_subset_searches_the_whole_corpus() -> None:
    anchors = torch.tensor([3, 17, 40])
    assert torch.equal(mine_neighbors(X, 4, anchors), brute_force(X, 4)[anchors])


def test_ivf_finds_nearly_all_true_neighbours() -> None:
    g = torch.Generator().manual_seed(1)
    centres = torch.randn(20, 16, generator=g)
    x = centres[torch.randint(20, (2000,), generator=g)] + 0.3 * torch.randn(2000, 16, generator=g)
    exact = mine_neighbors(x, 5, method="exact")
    ivf = mine_neighbors(x, 5, method="ivf")
    assert ivf.shape == (2000, 5) and not (ivf == torch.arange(2000)[:, None]).any()
    recall = sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(exact, ivf)) / exact.numel()
    assert recall > 0.95
    assert torch.equal(ivf, mine_neighbors(x, 5, method="ivf"))  # seeded: a resumed run mines the same


def test_auto_is_exact_on_gpu_or_small_corpora() -> None:
    assert choose_method("auto", 100_000, 100_000, torch.device("cpu")) == "exact"
    assert choose_method("auto", 1_000_000, 1_000_000, torch.device("cpu")) == "ivf"
    assert choose_method("auto", 1_000_000, 1_000_000, torch.device("cuda")) == "exact"
    with pytest.raises(InputError, match="neighbour search 'hnsw'"):
        choose_method("hnsw", 1, 2, torch.device("cpu"))


@pytest.mark.parametrize("k", [0, 50, 51])
def test_k_must_be_between_1_and_n_minus_1(k: int) -> None:
    with pytest.raises(InputError, match=f"k={k} needs 1 <= k < corpus size 50"):
        mine_neighbors(X, k)
