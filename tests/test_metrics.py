import math

import numpy as np
import pytest
import pytrec_eval
import torch

from matryoshka_adaptor.errors import InputError
from matryoshka_adaptor.metrics import Judgments, ndcg_at_k, ndcg_per_query, relevance_matrix


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


def test_judgments_equal_a_loop_over_queries_bit_for_bit() -> None:
    # validation picks epochs by comparing these scores, so the arrayed version must not move them by one bit
    rng = np.random.default_rng(5)
    discounts = 1.0 / np.log2(np.arange(2, 12))
    judgments = [{int(d): float(np.float32(rng.random() * 3 - 0.5)) for d in rng.choice(40, 4, replace=False)}
                 for _ in range(30)]
    top = np.stack([rng.permutation(60)[:10] for _ in range(30)])  # rows past every judged one too
    loop = []
    for ranked, judged in zip(top.tolist(), judgments):
        ideal = float(np.dot(sorted((max(y, 0.0) for y in judged.values()), reverse=True), discounts[: len(judged)]))
        dcg = sum(max(judged.get(d, 0.0), 0.0) * w for d, w in zip(ranked, discounts))
        loop.append(dcg / ideal if ideal > 0 else np.nan)
    np.testing.assert_array_equal(Judgments(judgments).ndcg(top), np.array(loop))


def test_judgments_never_credit_a_row_past_the_judged_ones_to_the_next_query() -> None:
    # (query, doc) keys are query * width + doc: doc 3 of query 0 must not read as doc 1 of query 1
    assert Judgments([{0: 1.0}, {1: 2.0}], k=1).ndcg(np.array([[3], [1]])).tolist() == [0.0, 1.0]


def test_judgments_refuse_a_ranking_of_other_queries() -> None:
    with pytest.raises(InputError, match="ranking of 1 queries: expected one row per judged query \\(2\\)"):
        Judgments([{0: 1.0}, {1: 1.0}]).ndcg(np.array([[0, 1]]))
