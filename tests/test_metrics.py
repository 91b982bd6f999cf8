import math

import numpy as np
import pytest
import pytrec_eval
import torch

from matryoshka_adaptor.metrics import ndcg_at_k, ndcg_per_query, relevance_matrix


def trec_ndcg(scores: np.ndarray, rel: np.ndarray, k: int) -> float:
    n_q, n_d = rel.shape
    qrels = {f"q{i}": {f"d{j}": int(rel[i, j]) for j in range(n_d) if rel[i, j]} for i in range(n_q)}
    run = {f"q{i}": {f"d{j}": float(scores[i, j]) for j in range(n_d)} for i in range(n_q)}
    per_query = pytrec_eval.RelevanceEvaluator(qrels, {f"ndcg_cut.{k}"}).evaluate(run)
    return float(np.mean([v[f"ndcg_cut_{k}"] for v in per_query.values()]))


@pytest.mark.parametrize("graded", [False, True])
@pytest.mark.parametrize("k", [5, 10])
def test_ndcg_matches_trec_eval(graded: bool, k: int) -> None:
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((6, 30))
    rel = (rng.random((6, 30)) < 0.15) * (rng.integers(1, 4, (6, 30)) if graded else 1)
    rel[:, 0] = np.maximum(rel[:, 0], 1)  # every query has a relevant document
    expected = trec_ndcg(scores, rel, k)
    assert 0.05 < expected < 0.95  # a ranking neither perfect nor hopeless
    got = ndcg_at_k(torch.from_numpy(scores), torch.from_numpy(rel.astype(np.float32)), k=k)
    assert got == pytest.approx(expected, abs=1e-6)


def test_perfect_ranking_is_one() -> None:
    rel = torch.tensor([[0.0, 1.0, 0.0, 2.0], [1.0, 0.0, 0.0, 0.0]])
    scores = torch.tensor([[0.1, 0.5, 0.2, 0.9], [0.9, 0.2, 0.1, 0.0]])
    assert ndcg_at_k(scores, rel) == pytest.approx(1.0)
    swapped = torch.tensor([[0.1, 0.9, 0.2, 0.5], [0.9, 0.2, 0.1, 0.0]])  # grade 1 above grade 2 in query 0
    assert ndcg_at_k(swapped, rel) < 1.0


def test_ndcg_hand_computed_and_skips_queries_without_relevant_docs() -> None:
    rel = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    scores = torch.tensor([[0.9, 0.5, 0.1], [0.3, 0.2, 0.1]])  # relevant doc ranked 2nd; query 1 has none
    assert ndcg_at_k(scores, rel) == pytest.approx(1 / math.log2(3))
    assert math.isnan(ndcg_at_k(scores[1:], rel[1:]))


def test_relevance_matrix() -> None:
    rel = relevance_matrix({"a": {"x": 2}, "b": {"y": 1, "x": 0}}, ["b", "a", "c"], {"x": 0, "y": 1})
    assert rel.dtype == torch.float32
    assert rel.tolist() == [[0.0, 1.0], [2.0, 0.0], [0.0, 0.0]]


def test_relevance_matrix_clamps_negative_labels() -> None:
    assert relevance_matrix({"a": {"x": -1, "y": 3}}, ["a"], {"x": 0, "y": 1}).tolist() == [[0.0, 3.0]]


def test_ndcg_per_query_matches_the_dense_version() -> None:
    rng = np.random.default_rng(3)
    scores = torch.from_numpy(rng.standard_normal((6, 30)))
    rel = np.zeros((6, 30), dtype=np.float32)
    rel[rng.integers(6, size=20), rng.integers(30, size=20)] = rng.integers(1, 3, size=20)
    judgments = [{int(d): float(rel[q, d]) for d in np.flatnonzero(rel[q])} for q in range(6)]
    judgments.append({})  # a query without relevant documents: NaN, skipped by the mean as ndcg_at_k skips it
    scores = torch.cat([scores, scores[:1]])
    per_query = ndcg_per_query(scores.topk(10, dim=1).indices, judgments)
    assert np.isnan(per_query[-1]) and np.isnan(per_query).sum() == 1 + sum(not j for j in judgments[:-1])
    assert np.nanmean(per_query) == pytest.approx(ndcg_at_k(scores[:-1], torch.from_numpy(rel)))
