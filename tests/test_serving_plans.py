import numpy as np
import pytest
import torch

from matryoshka_adaptor.metrics import ndcg_at_k
from matryoshka_adaptor.serving.plans import (
    best_within,
    frontier,
    megabytes_per_million,
    ndcg_of_ranking,
    plan_grid,
    score_plans,
    smallest_dim_within,
)
from matryoshka_adaptor.vectors import unit_rows

RNG = np.random.default_rng(0)
DOCS = RNG.standard_normal((60, 16)).astype(np.float32)
QUERIES = RNG.standard_normal((5, 16)).astype(np.float32)


def unit_prefix(x: np.ndarray, dim: int) -> np.ndarray:
    return unit_rows(x[:, :dim])


def test_ndcg_of_a_ranking_matches_the_dense_metric_and_ignores_padding() -> None:
    scores = torch.from_numpy(unit_rows(QUERIES) @ unit_rows(DOCS).T).double()
    rel = (torch.rand(5, 60, generator=torch.Generator().manual_seed(0)) > 0.8).double()
    ranking = torch.argsort(scores, dim=1, descending=True).numpy()[:, :10]
    assert ndcg_of_ranking(ranking, rel) == pytest.approx(ndcg_at_k(scores, rel, 10), abs=1e-9)
    padded = np.concatenate([ranking[:, :3], np.full((5, 7), -1)], axis=1)
    assert ndcg_of_ranking(padded, rel) == pytest.approx(ndcg_of_ranking(ranking[:, :3], rel), abs=1e-12)


def test_plan_grid_skips_what_cannot_exist() -> None:
    plans = plan_grid(16, (4, 8, 16))
    assert not [p for p in plans if p.precision == "binary" and p.dim == 4]  # bits come in whole bytes
    assert not [p for p in plans if p.dim == 16 and p.rescore != "none"]  # nothing left to re-score
    assert len(plans) == 3 * 2 + 4 * 2 + 4


def test_scored_plans_agree_with_exact_search_where_they_must() -> None:
    rel = torch.zeros(5, 60, dtype=torch.float64)
    rel[torch.arange(5), torch.from_numpy(np.argmax(unit_rows(QUERIES) @ unit_rows(DOCS).T, axis=1))] = 1.0
    rows = score_plans(unit_prefix, DOCS, QUERIES, rel, (4, 8, 16), shortlist=60)
    by = {(r["dim"], r["precision"], r["rescore"]): r for r in rows}
    assert by[16, "float32", False]["ndcg_at_10"] == pytest.approx(1.0)  # each query's relevant doc is its nearest
    assert by[4, "float32", True]["ndcg_at_10"] == pytest.approx(1.0)  # a shortlist of everything, re-scored in full
    assert by[8, "binary", False]["bytes_per_vector"] == 1 and by[8, "int8", True]["rescore_bytes_per_vector"] == 64


def test_best_plan_within_a_budget_and_the_frontier() -> None:
    rows = [
        {"dim": 64, "precision": "binary", "rescore": False, "bytes_per_vector": 8, "ndcg_at_10": 0.50},
        {"dim": 16, "precision": "int8", "rescore": False, "bytes_per_vector": 16, "ndcg_at_10": 0.48},
        {"dim": 32, "precision": "int8", "rescore": False, "bytes_per_vector": 32, "ndcg_at_10": 0.60},
        {"dim": 32, "precision": "float16", "rescore": False, "bytes_per_vector": 64, "ndcg_at_10": 0.60},
        {"dim": 32, "precision": "int8", "rescore": True, "bytes_per_vector": 32, "ndcg_at_10": 0.70},
    ]
    assert best_within(rows, 16, rescore=False)["precision"] == "binary"  # more quality for fewer bytes
    assert best_within(rows, 64, rescore=False)["bytes_per_vector"] == 32  # a tie goes to the cheaper plan
    assert best_within(rows, 4, rescore=False) is None
    assert best_within(rows, 64, rescore=True)["ndcg_at_10"] == 0.70
    assert [r["bytes_per_vector"] for r in frontier(rows, rescore=False)] == [8, 32]


def test_choosing_a_dim_and_its_memory() -> None:
    scores = {16: 0.30, 32: 0.50, 64: 0.62, 128: 0.645, 384: 0.65}
    assert smallest_dim_within(scores, 0.645, 0.01) == 128
    assert smallest_dim_within(scores, 0.645, 0.05) == 64
    assert smallest_dim_within(scores, 0.9, 0.01) is None
    assert megabytes_per_million(64) == 256.0 and megabytes_per_million(64, "int8") == 64.0
