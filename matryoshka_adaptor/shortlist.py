"""Shortlist and rerank: search with the first k dims, rerank the top N with the full vector; and picking a dim.

This is the use Matryoshka embeddings are bought for: a small index for the first pass, full vectors only for N
candidates. Search here is exact (brute force) and timed one query at a time, as a service answers them: the
latency of a query is what a user waits for, and batching hundreds of queries would hide the memory traffic that
smaller vectors save.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from .metrics import ndcg_at_k

BYTES_PER_FLOAT32 = 4


def _top(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n largest scores, best first."""
    part = np.argpartition(-scores, n - 1)[:n] if n < len(scores) else np.arange(len(scores))
    return part[np.argsort(-scores[part])]


def one_stage(query: np.ndarray, docs: np.ndarray, top: int = 10) -> np.ndarray:
    """The `top` best documents for one query (rows are unit vectors, so dot = cosine)."""
    return _top(docs @ query, top)


def shortlist_rerank(
    query_k: np.ndarray, docs_k: np.ndarray, query_full: np.ndarray, docs_full: np.ndarray, shortlist: int, top: int = 10
) -> np.ndarray:
    """The `top` best documents for one query: `shortlist` candidates by the k-dim vectors, reranked in full."""
    scores = docs_k @ query_k
    candidates = np.argpartition(-scores, shortlist - 1)[:shortlist] if shortlist < len(scores) else np.arange(len(scores))
    return candidates[_top(docs_full[candidates] @ query_full, top)]


def time_per_query(
    plans: dict[str, Callable[[int], np.ndarray]], n_queries: int, repeats: int
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Each plan's rankings and median ms per query, answering queries one at a time as a service would. The
    plans take turns within each repeat, so a slow spell of the machine hits them alike."""
    times: dict[str, list[float]] = {name: [] for name in plans}
    rankings: dict[str, list[np.ndarray]] = {name: [] for name in plans}
    for r in range(repeats):
        for name, plan in plans.items():
            start = time.perf_counter()
            answers = [plan(i) for i in range(n_queries)]
            times[name].append(time.perf_counter() - start)
            if r == 0:
                rankings[name] = answers
    ms = {name: float(np.median(t)) * 1000.0 / n_queries for name, t in times.items()}
    return {name: np.stack(a) for name, a in rankings.items()}, ms


def ndcg_of_ranking(ranking: np.ndarray, relevance: torch.Tensor, k: int = 10) -> float:
    """nDCG@k of ranked document indices (queries, >= k) against a dense relevance matrix."""
    scores = torch.full(relevance.shape, -float("inf"), dtype=torch.float64)
    ranks = torch.arange(ranking.shape[1], 0, -1, dtype=torch.float64).expand(ranking.shape[0], -1)
    scores.scatter_(1, torch.from_numpy(ranking), ranks)
    return ndcg_at_k(scores, relevance, k)


def compare_search_plans(
    transform: Callable[[np.ndarray, int], np.ndarray],
    docs: np.ndarray,
    queries: np.ndarray,
    relevance: torch.Tensor,
    dims: tuple[int, ...],
    shortlist: int,
    repeats: int = 3,
) -> dict[str, dict[str, dict[str, float]]]:
    """nDCG@10 and ms per query of one-stage search at each k and of shortlist@k + full rerank (k < full)."""
    full = dims[-1]
    q_full, d_full = transform(queries, full), transform(docs, full)
    shortlist = min(shortlist, len(docs))
    out: dict[str, dict[str, dict[str, float]]] = {"one_stage": {}, "shortlist_rerank": {}}
    full_plan = lambda i: one_stage(q_full[i], d_full)  # noqa: E731
    for k in dims:
        q_k, d_k = transform(queries, k), transform(docs, k)
        plans = {"one_stage": lambda i, q=q_k, d=d_k: one_stage(q[i], d), "full_dim": full_plan}
        if k != full:
            plans["shortlist_rerank"] = lambda i, q=q_k, d=d_k: shortlist_rerank(q[i], d, q_full[i], d_full, shortlist)
        rankings, ms = time_per_query(plans, len(queries), repeats)
        for name in ("one_stage", "shortlist_rerank"):
            if name in plans:
                out[name][str(k)] = {
                    "ndcg_at_10": round(ndcg_of_ranking(rankings[name], relevance), 5),
                    "ms_per_query": round(ms[name], 4),
                    "full_dim_ms_per_query": round(ms["full_dim"], 4),  # timed in the same loop, for comparison
                }
    return out


def smallest_dim_within(scores: dict[int, float], target: float, fraction: float) -> int | None:
    """The smallest dim whose score is at least (1 - fraction) x target, or None."""
    ok = [d for d, s in sorted(scores.items()) if s >= (1.0 - fraction) * target]
    return ok[0] if ok else None


def megabytes_per_million(dim: int) -> float:
    return dim * BYTES_PER_FLOAT32 * 1_000_000 / 1e6
