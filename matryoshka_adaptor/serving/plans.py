"""Which serving plan to pick: nDCG@10 of every (dim, precision, re-score or not) plan against the bytes it stores.

A plan is an AdaptedIndex: an exact (flat) index over the first `dim` dims at `precision`, optionally re-scoring
a shortlist with the full float32 vectors. Its cost is the prefix index's bytes per vector, what a server keeps in
RAM; re-scoring vectors are read for the shortlist only and can live on disk, so they are reported apart. The same
index type serves the benchmark (benchmarks/serving.py) and this quality check: one implementation, not two.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch

from ..metrics import ndcg_at_k
from .config import PRECISIONS, IndexConfig, vector_bytes
from .index import AdaptedIndex

BUDGETS = (16, 32, 64, 128, 256)  # bytes per vector a user may have for the in-memory index
Transform = Callable[[np.ndarray, int], np.ndarray]


def ndcg_of_ranking(ranking: np.ndarray, relevance: torch.Tensor, k: int = 10) -> float:
    """nDCG@k of ranked document positions (queries, >= k; -1 pads) against a dense relevance matrix."""
    scores = torch.full((relevance.shape[0], relevance.shape[1] + 1), -float("inf"), dtype=torch.float64)
    ranks = torch.arange(ranking.shape[1], 0, -1, dtype=torch.float64).expand(ranking.shape[0], -1)
    positions = torch.from_numpy(np.where(ranking >= 0, ranking, relevance.shape[1]))  # padding -> a spare column
    scores.scatter_(1, positions, ranks)
    return ndcg_at_k(scores[:, :-1], relevance, k)


def plan_grid(full: int, dims: Iterable[int], precisions: Iterable[str] = PRECISIONS, **index: Any) -> list[IndexConfig]:
    """Every plan: each dim at each precision (binary needs whole bytes), with and without re-scoring (a
    full-width prefix has nothing to re-score); `index` holds IndexConfig's index knobs (default: flat)."""
    plans = []
    for dim in dims:
        for precision in precisions:
            if precision == "binary" and dim % 8:
                continue
            for rescore in ("none", "float32") if dim < full else ("none",):
                plans.append(IndexConfig(dim=dim, full_dim=full, precision=precision, rescore=rescore, **index))
    return plans


def score_plans(transform: Transform, docs: np.ndarray, queries: np.ndarray, relevance: torch.Tensor,
                dims: tuple[int, ...], shortlist: int, precisions: Iterable[str] = PRECISIONS) -> list[dict[str, Any]]:
    """nDCG@10 of every plan of plan_grid for one method, with the bytes per vector each stores."""
    full = dims[-1]
    d_full, q_full = transform(docs, full), transform(queries, full)
    rows = []
    for config in plan_grid(full, dims, precisions):
        ranking, _ = AdaptedIndex.build(d_full, config).search(q_full, top_k=10, shortlist=min(shortlist, len(docs)))
        rows.append({
            "dim": config.dim, "precision": config.precision, "rescore": config.rescore != "none",
            "bytes_per_vector": config.prefix_bytes_per_vector,
            "rescore_bytes_per_vector": config.rescore_bytes_per_vector,
            "ndcg_at_10": round(ndcg_of_ranking(ranking, relevance), 5),
        })
    return rows


def best_within(rows: list[dict[str, Any]], budget: float, rescore: bool) -> dict[str, Any] | None:
    """The highest-nDCG plan whose prefix index fits `budget` bytes per vector (ties: fewer bytes)."""
    fits = [r for r in rows if r["bytes_per_vector"] <= budget and r["rescore"] == rescore]
    return max(fits, key=lambda r: (r["ndcg_at_10"], -r["bytes_per_vector"])) if fits else None


def frontier(rows: list[dict[str, Any]], rescore: bool) -> list[dict[str, Any]]:
    """The plans no cheaper plan matches: nDCG@10 rising with bytes per vector."""
    out: list[dict[str, Any]] = []
    for r in sorted((r for r in rows if r["rescore"] == rescore), key=lambda r: (r["bytes_per_vector"], -r["ndcg_at_10"])):
        if not out or r["ndcg_at_10"] > out[-1]["ndcg_at_10"]:
            out.append(r)
    return out


def plan_label(row: dict[str, Any] | None) -> str:
    if row is None:
        return "none fits"
    return f"{row['dim']}d {row['precision']}{' +rescore' if row['rescore'] else ''} {row['ndcg_at_10']:.4f}"


def smallest_dim_within(scores: dict[int, float], target: float, fraction: float) -> int | None:
    """The smallest dim whose score is at least (1 - fraction) x target, or None."""
    ok = [d for d, s in sorted(scores.items()) if s >= (1.0 - fraction) * target]
    return ok[0] if ok else None


def megabytes_per_million(dim: int, precision: str = "float32") -> float:
    return vector_bytes(dim, precision) * 1_000_000 / 1e6
