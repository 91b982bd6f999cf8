import numpy as np
import pytest
import pytrec_eval
import torch

from matryoshka_adaptor.metrics import ndcg_at_k, relevance_matrix


@pytest.mark.parametrize("graded", [False, True])
def test_ndcg_matches_trec_eval(graded: bool) -> None:
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((6, 30))
    rel = (rng.random((6, 30)) < 0.15) * (rng.integers(1, 4, (6, 30)) if graded else 1)
    rel[:, 0] = np.maximum(rel[:, 0], 1)  # every query has a relevant document
    qrels = {f"q{i}": {f"d{j}": int(rel[i, j]) for j in range(30) if rel[i, j]} for i in range(6)}
    run = {f"q{i}": {f"d{j}": float(scores[i, j]) for j in range(30)} for i in range(6)}
    expected = np.mean([v["ndcg_cut_10"] for v in pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(run).values()])
    assert ndcg_at_k(torch.from_numpy(scores), torch.from_numpy(rel.astype(np.float32))) == pytest.approx(expected, abs=1e-6)


def test_perfect_ranking_is_one_and_queries_without_relevant_docs_are_skipped() -> None:
    rel = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    scores = torch.tensor([[0.1, 0.9, 0.2], [0.3, 0.2, 0.1]])
    assert ndcg_at_k(scores, rel) == pytest.approx(1.0)


def test_relevance_matrix() -> None:
    rel = relevance_matrix({"a": {"x": 2}, "b": {"y": 1, "x": 0}}, ["b", "a"], {"x": 0, "y": 1})
    assert rel.tolist() == [[0.0, 1.0], [2.0, 0.0]]
