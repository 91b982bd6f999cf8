"""Choices a run makes from training-time evidence only: which start map, which epoch, and whether to keep a stage.

A handful of validation queries cannot pick an epoch (5 of CACM's 26 training queries move by 0.1 from one epoch
to the next by chance), so each choice uses the evidence that is not noise for it:
- the start map is a training-free choice, so it is scored on *all* training queries (none is trained on yet);
- the unsupervised stage never sees a query, so its epochs are scored on a corpus-only criterion (how well the
  truncated adapted vectors keep held-out documents' full-dim neighbours), guarded by all training queries;
- the supervised stage trains on queries, so it is scored on held-out ones, and it is kept only when its gain over
  its start is significant in a paired t-test over those queries; otherwise the start is kept (do no harm). A t-test,
  not a z-test: with CACM's 5 held-out queries the normal approximation would accept gains that are noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import t as student_t


def choose_start(scores: dict[str, list[float]]) -> str:
    """The candidate whose worst shortfall, over dims, against the best candidate at that dim is smallest (ties:
    the higher mean). Every dim counts: a start that wins on average but loses badly at one dim is not chosen."""
    if not scores:
        raise ValueError("choose_start: no candidates")
    table = np.array(list(scores.values()), dtype=np.float64)
    best = table.max(axis=0)
    regret = {name: float(np.max(best - row)) for name, row in zip(scores, table)}
    return min(scores, key=lambda name: (round(regret[name], 4), -float(np.mean(scores[name]))))


@dataclass
class PairedTest:
    """One-sided paired t-test of a new state against its start over the same queries."""

    n_queries: int  # independent observations: the queries, or their clusters
    mean_gain: float  # mean over queries of (new - start) nDCG@10, each averaged over dims
    standard_error: float
    critical_t: float  # the gain must exceed this many standard errors
    worst_dim_gain: float  # the smallest mean gain at any single dim
    accepted: bool


def paired_gain_test(
    new: np.ndarray, start: np.ndarray, level: float, max_dim_drop: float, clusters: np.ndarray | None = None
) -> PairedTest:
    """Accept `new` over `start` ((queries, dims) per-query nDCG@10, NaN rows skipped) when the mean gain (each
    query's averaged over dims) is significantly above 0 at the one-sided `level` of a paired t-test, and no dim's
    mean gain is below -max_dim_drop. `clusters` (per query): queries that are not independent (one question in
    several languages) are averaged into one observation first, so n counts clusters."""
    keep = ~(np.isnan(new).any(axis=1) | np.isnan(start).any(axis=1))
    diff = new[keep] - start[keep]
    per_query = diff.mean(axis=1)
    if clusters is not None:
        codes, inverse = np.unique(clusters[keep], return_inverse=True)
        per_query = np.bincount(inverse, weights=per_query, minlength=len(codes)) / np.bincount(inverse, minlength=len(codes))
    n = len(per_query)
    if n < 2:
        return PairedTest(n, float("nan"), float("nan"), float("nan"), float("nan"), False)
    mean, se = float(per_query.mean()), float(per_query.std(ddof=1) / math.sqrt(n))
    critical = float(student_t.ppf(1.0 - level, n - 1))
    worst = float(diff.mean(axis=0).min())
    accepted = mean > 0 and mean > critical * se and worst >= -max_dim_drop
    return PairedTest(n, round(mean, 5), round(se, 5), round(critical, 3), round(worst, 5), bool(accepted))
