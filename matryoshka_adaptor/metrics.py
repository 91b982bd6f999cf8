"""nDCG@k from a score matrix or a ranking, as trec_eval computes it (linear gain), for validation inside training.

The reported scores come from MTEB (eval.py); this one is for choosing the stopping point, many times a run.
`qrels_by_row` checks the judgments a caller holds in memory (train.fit, eval.evaluate_arrays) for both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from .errors import InputError


def ndcg_at_k(scores: torch.Tensor, relevance: torch.Tensor, k: int = 10) -> float:
    """Mean nDCG@k over queries: scores and relevance are (queries, docs); rows without relevant docs are skipped."""
    k = min(k, scores.shape[1])
    discounts = 1.0 / torch.log2(torch.arange(2, k + 2, device=scores.device, dtype=torch.float64))
    top = scores.topk(k, dim=1).indices
    dcg = (relevance.gather(1, top).double() * discounts).sum(dim=1)
    ideal = (relevance.double().topk(k, dim=1).values * discounts).sum(dim=1)
    keep = ideal > 0
    return float((dcg[keep] / ideal[keep]).mean()) if bool(keep.any()) else float("nan")


class Judgments:
    """Per query its judged documents {doc row: y}, held as sorted (query, doc) keys with their gains and each
    query's ideal DCG@k, built once: validation ranks the same queries every epoch, and nDCG@k of a ranking is then
    a few array operations (the same float operations, in the same order, as a loop over queries would do)."""

    def __init__(self, judgments: list[dict[int, float]], k: int = 10) -> None:
        self.k, self.n_queries = k, len(judgments)
        self.discounts = 1.0 / np.log2(np.arange(2, k + 2))
        self.width = 1 + max((d for judged in judgments for d in judged), default=0)  # doc rows are below it
        query = np.repeat(np.arange(self.n_queries, dtype=np.int64), [len(judged) for judged in judgments])
        doc = np.fromiter((d for judged in judgments for d in judged), dtype=np.int64, count=len(query))
        gain = np.fromiter((max(y, 0.0) for judged in judgments for y in judged.values()), dtype=np.float64, count=len(query))
        keys = query * self.width + doc
        order = np.argsort(keys)
        self.keys, self.gains = keys[order], gain[order]
        ideal = []
        for judged in judgments:
            best = sorted((max(y, 0.0) for y in judged.values()), reverse=True)[:k]
            ideal.append(float(np.dot(best, self.discounts[: len(best)])))
        self.ideal = np.array(ideal, dtype=np.float64)

    def ndcg(self, top: torch.Tensor | np.ndarray) -> np.ndarray:
        """nDCG@k of each query from its ranked document rows (queries, >= k; fewer when the corpus is smaller),
        NaN for a query without relevant documents."""
        ranked = np.asarray(top)[:, : self.k].astype(np.int64)
        if len(ranked) != self.n_queries:
            raise InputError(f"ranking of {len(ranked)} queries: expected one row per judged query ({self.n_queries})")
        if not len(self.keys):  # nothing judged: every ideal DCG is 0
            return np.full(self.n_queries, np.nan)
        keys = np.arange(self.n_queries, dtype=np.int64)[:, None] * self.width + np.minimum(ranked, self.width - 1)
        at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        gains = np.where((ranked < self.width) & (self.keys[at] == keys), self.gains[at], 0.0)
        dcg = np.zeros(self.n_queries)
        for rank in range(ranked.shape[1]):  # rank by rank, as a running sum over each query's list would add them
            dcg = dcg + gains[:, rank] * self.discounts[rank]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.ideal > 0, dcg / self.ideal, np.nan)


def ndcg_per_query(top: torch.Tensor | np.ndarray, judgments: list[dict[int, float]], k: int = 10) -> np.ndarray:
    """nDCG@k of each query from its ranked document rows (queries, >= k) and its judgments {doc row: y}, for
    corpora too large for a dense relevance matrix: ndcg_at_k's gains and discounts, NaN for a query without
    relevant documents (ndcg_at_k skips those), so that two rankings can be compared query by query."""
    return Judgments(judgments, k).ndcg(top)


def relevance_matrix(
    qrels: dict[str, dict[str, int]], query_ids: list[str], doc_index: dict[str, int]
) -> torch.Tensor:
    """Dense (len(query_ids), len(doc_index)) relevance from qrels; unjudged pairs are 0."""
    rel = np.zeros((len(query_ids), len(doc_index)), dtype=np.float32)
    for row, qid in enumerate(query_ids):
        for did, y in qrels.get(qid, {}).items():
            rel[row, doc_index[did]] = max(y, 0)
    return torch.from_numpy(rel)


def qrels_by_row(qrels: Mapping[int, Mapping[int, float]], n_queries: int, n_documents: int) -> dict[str, dict[str, float]]:
    """In-memory qrels {query row: {document row: relevance}}, checked against the vectors' row counts, keyed by
    str(row) as id-keyed readers (Supervision.from_qrels, MTEB) take them; a bad row or relevance is an InputError
    naming it."""

    def row(value: Any, n: int, what: str) -> str:
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not 0 <= value < n:
            raise InputError(f"qrels: {what} {value!r}: expected a row of the {what} vectors, 0..{n - 1}")
        return str(int(value))

    out: dict[str, dict[str, float]] = {}
    for q, docs in qrels.items():
        judged = out.setdefault(row(q, n_queries, "query"), {})
        for d, y in docs.items():
            if not isinstance(y, (int, float, np.integer, np.floating)) or not np.isfinite(y):
                raise InputError(f"qrels: query {q}, document {d}: relevance {y!r}, expected a finite number")
            judged[row(d, n_documents, "document")] = float(y)
    return out
