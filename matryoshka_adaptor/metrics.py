"""nDCG@k from a score matrix or a ranking, as trec_eval computes it (linear gain), for validation inside training.

The reported scores come from MTEB (eval.py); this one is for choosing the stopping point, many times a run.
"""

from __future__ import annotations

import numpy as np
import torch


def ndcg_at_k(scores: torch.Tensor, relevance: torch.Tensor, k: int = 10) -> float:
    """Mean nDCG@k over queries: scores and relevance are (queries, docs); rows without relevant docs are skipped."""
    k = min(k, scores.shape[1])
    discounts = 1.0 / torch.log2(torch.arange(2, k + 2, device=scores.device, dtype=torch.float64))
    top = scores.topk(k, dim=1).indices
    dcg = (relevance.gather(1, top).double() * discounts).sum(dim=1)
    ideal = (relevance.double().topk(k, dim=1).values * discounts).sum(dim=1)
    keep = ideal > 0
    return float((dcg[keep] / ideal[keep]).mean()) if bool(keep.any()) else float("nan")


def ndcg_per_query(top: torch.Tensor, judgments: list[dict[int, float]], k: int = 10) -> np.ndarray:
    """nDCG@k of each query from its ranked document rows (queries, >= k) and its judgments {doc row: y}, for
    corpora too large for a dense relevance matrix: ndcg_at_k's gains and discounts, NaN for a query without
    relevant documents (ndcg_at_k skips those), so that two rankings can be compared query by query."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    out = np.full(len(judgments), np.nan)
    for i, (ranked, judged) in enumerate(zip(top[:, :k].tolist(), judgments)):
        gains = sorted((max(y, 0.0) for y in judged.values()), reverse=True)[:k]
        ideal = float(np.dot(gains, discounts[: len(gains)]))
        if ideal > 0:
            out[i] = sum(max(judged.get(d, 0.0), 0.0) * w for d, w in zip(ranked, discounts)) / ideal
    return out


def relevance_matrix(
    qrels: dict[str, dict[str, int]], query_ids: list[str], doc_index: dict[str, int]
) -> torch.Tensor:
    """Dense (len(query_ids), len(doc_index)) relevance from qrels; unjudged pairs are 0."""
    rel = np.zeros((len(query_ids), len(doc_index)), dtype=np.float32)
    for row, qid in enumerate(query_ids):
        for did, y in qrels.get(qid, {}).items():
            rel[row, doc_index[did]] = max(y, 0)
    return torch.from_numpy(rel)
