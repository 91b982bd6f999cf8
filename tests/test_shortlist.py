import numpy as np
import pytest
import torch

from matryoshka_adaptor.metrics import ndcg_at_k
from matryoshka_adaptor.shortlist import (
    compare_search_plans,
    megabytes_per_million,
    ndcg_of_ranking,
    one_stage,
    shortlist_rerank,
    smallest_dim_within,
)

RNG = np.random.default_rng(0)
DOCS = RNG.standard_normal((60, 8)).astype(np.float32)
QUERIES = RNG.standard_normal((5, 8)).astype(np.float32)


def unit_prefix(x: np.ndarray, dim: int) -> np.ndarray:
    y = x[:, :dim]
    return y / np.linalg.norm(y, axis=1, keepdims=True)


def test_one_stage_is_the_exact_top_10_and_a_full_shortlist_changes_nothing() -> None:
    q, d = unit_prefix(QUERIES, 8), unit_prefix(DOCS, 8)
    assert one_stage(q[0], d).tolist() == np.argsort(-(d @ q[0]))[:10].tolist()
    q2, d2 = unit_prefix(QUERIES, 2), unit_prefix(DOCS, 2)
    assert shortlist_rerank(q2[0], d2, q[0], d, shortlist=60).tolist() == one_stage(q[0], d).tolist()
    assert set(shortlist_rerank(q2[0], d2, q[0], d, shortlist=15)) <= set(np.argsort(-(d2 @ q2[0]))[:15])


def test_ndcg_of_ranking_matches_the_score_matrix_version() -> None:
    rel = torch.zeros(5, 60)
    rel[torch.arange(5), torch.tensor([3, 7, 11, 0, 59])] = 1
    scores = unit_prefix(QUERIES, 8) @ unit_prefix(DOCS, 8).T
    ranking = np.argsort(-scores, axis=1)[:, :10]
    assert ndcg_of_ranking(ranking, rel) == pytest.approx(ndcg_at_k(torch.from_numpy(scores), rel))


def test_compare_search_plans_reports_every_k() -> None:
    rel = torch.zeros(5, 60)
    rel[:, 0] = 1
    out = compare_search_plans(unit_prefix, DOCS, QUERIES, rel, (2, 4, 8), shortlist=20, repeats=1)
    assert set(out["one_stage"]) == {"2", "4", "8"} and set(out["shortlist_rerank"]) == {"2", "4"}
    assert all(r["ms_per_query"] > 0 and 0 <= r["ndcg_at_10"] <= 1 for r in out["shortlist_rerank"].values())


def test_choosing_a_dim() -> None:
    scores = {16: 0.3, 64: 0.62, 128: 0.64, 384: 0.645}
    assert smallest_dim_within(scores, 0.645, 0.01) == 128
    assert smallest_dim_within(scores, 0.645, 0.05) == 64
    assert smallest_dim_within(scores, 0.9, 0.01) is None
    assert megabytes_per_million(64) == 256.0
