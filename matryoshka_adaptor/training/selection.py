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

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from scipy.special import stdtrit  # the Student t quantile; scipy.stats (the same function) adds 1.6 s to every start

logger = logging.getLogger(__name__)


def worst_shortfalls(scores: dict[str, list[float]], reference: tuple[str, ...] | None = None) -> dict[str, float]:
    """Each candidate's worst shortfall, over dims, against the best candidate at that dim (0 for one that is
    best at every dim); `scores` holds each candidate's score per dim. With `reference`, against the best of those
    candidates alone (negative for one above all of them at every dim)."""
    table = np.array(list(scores.values()), dtype=np.float64)
    best = (table if reference is None else np.array([scores[m] for m in reference], dtype=np.float64)).max(axis=0)
    return {name: float(np.max(best - row)) for name, row in zip(scores, table)}


def choose_start(scores: dict[str, list[float]]) -> str:
    """The candidate whose worst shortfall, over dims, against the best candidate at that dim is smallest (ties:
    the higher mean). Every dim counts: a start that wins on average but loses badly at one dim is not chosen."""
    if not scores:
        raise ValueError("choose_start: no candidates")
    regret = worst_shortfalls(scores)
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
    # per dim, the mean gain and its standard error over the same observations: whether the queries could resolve
    # a loss of max_dim_drop at a dim at all (gain - critical_t * se is the one-sided lower bound there)
    dim_gains: list[float] = field(default_factory=list)
    dim_standard_errors: list[float] = field(default_factory=list)

    def __str__(self) -> str:
        return (f"gain {self.mean_gain:.4f} ± {self.standard_error:.4f} (se) over {self.n_queries} queries, worst dim "
                f"{self.worst_dim_gain:+.4f}")


def paired_gain_test(
    new: np.ndarray, start: np.ndarray, level: float, max_dim_drop: float, clusters: np.ndarray | None = None
) -> PairedTest:
    """Accept `new` over `start` ((queries, dims) per-query nDCG@10, NaN rows skipped) when the mean gain (each
    query's averaged over dims) is significantly above 0 at the one-sided `level` of a paired t-test, and no dim's
    mean gain is below -max_dim_drop. `clusters` (per query): queries that are not independent (one question in
    several languages) are averaged into one observation first, so n counts clusters."""
    keep = ~(np.isnan(new).any(axis=1) | np.isnan(start).any(axis=1))
    diff = new[keep] - start[keep]
    observed = diff  # (observations, dims): the queries, or their clusters' means
    if clusters is not None:
        codes, inverse = np.unique(clusters[keep], return_inverse=True)
        sizes = np.bincount(inverse, minlength=len(codes))
        observed = np.stack([np.bincount(inverse, weights=col, minlength=len(codes)) for col in diff.T], axis=1) / sizes[:, None]
    per_query = observed.mean(axis=1)
    n = len(per_query)
    if n < 2:
        return PairedTest(n, float("nan"), float("nan"), float("nan"), float("nan"), False)
    mean, se = float(per_query.mean()), float(per_query.std(ddof=1) / math.sqrt(n))
    critical = float(stdtrit(n - 1, 1.0 - level))
    dim_gains = diff.mean(axis=0)
    worst = float(dim_gains.min())
    accepted = mean > 0 and mean > critical * se and worst >= -max_dim_drop
    dim_se = observed.std(axis=0, ddof=1) / math.sqrt(n)
    return PairedTest(
        n, round(mean, 5), round(se, 5), round(critical, 3), round(worst, 5), bool(accepted),
        [round(float(g), 5) for g in dim_gains], [round(float(e), 5) for e in dim_se],
    )


@dataclass
class EpochChoice:
    """A stage's best epoch so far, epoch 0 (its start) included, under the do-no-harm rule: an epoch counts only if
    no dim of its query scores falls more than `max_dim_drop` below `reference` (per dim, the better of the start
    and the base model) and no dim of its probe scores below the start's; of those, the highest mean over dims of
    the criterion (the probes when there are any, else the queries) wins. Without either every epoch replaces the
    last. `*_state` is whatever the caller restores (a state dict, a rotation); `*_per_query` the (queries, dims)
    nDCG@10 of the queries, for the paired test. Patience counts from `gain_epoch`, the last epoch that beat the
    criterion's previous such epoch by more than `min_gain` (with 0, the best epoch): a long creep of tiny new bests
    does not keep a stage running, though the best of them is still the one kept."""

    start_state: Any
    start_per_query: np.ndarray | None
    start_score: float
    reference: list[float]
    probe_reference: list[float]
    max_dim_drop: float
    best_state: Any
    best_per_query: np.ndarray | None
    best_score: float
    best_epoch: int = 0
    min_gain: float = 0.0
    gain_epoch: int = 0
    gain_score: float | None = None  # None: the start's

    @classmethod
    def at_start(
        cls,
        state: Any,
        per_query: np.ndarray | None,
        scores: list[float],
        base_scores: list[float],
        probe_scores: list[float],
        max_dim_drop: float,
        min_gain: float = 0.0,
    ) -> EpochChoice:
        """The choice before any epoch: the start, scored by `scores` (queries) and `probe_scores`, per dim."""
        criterion = probe_scores or scores
        score = float(np.mean(criterion)) if criterion else float("nan")
        return cls(
            start_state=state,
            start_per_query=per_query,
            start_score=score,
            reference=[max(a, b) for a, b in zip(scores, base_scores)],
            probe_reference=probe_scores,
            max_dim_drop=max_dim_drop,
            best_state=state,
            best_per_query=per_query,
            best_score=score,
            min_gain=min_gain,
        )

    @property
    def has_criterion(self) -> bool:
        return bool(self.probe_reference or self.reference)

    def score(self, scores: list[float], probe_scores: list[float]) -> float:
        """The criterion's mean over dims; -inf when some dim of either falls more than max_dim_drop below its
        reference; NaN without a criterion."""
        for got, ref in ((scores, self.reference), (probe_scores, self.probe_reference)):
            if any(s < r - self.max_dim_drop for s, r in zip(got, ref)):
                return -float("inf")
        criterion = probe_scores or scores
        return float(np.mean(criterion)) if criterion else float("nan")

    def offer(
        self, epoch: int, per_query: np.ndarray | None, scores: list[float], probe_scores: list[float], state: Callable[[], Any]
    ) -> float:
        """Score an epoch and make it the best when it beats the best so far (`state()` snapshots it then)."""
        score = self.score(scores, probe_scores)
        if not self.has_criterion or score > self.best_score:
            self.best_score, self.best_epoch, self.best_per_query, self.best_state = score, epoch, per_query, state()
        if score > (self.start_score if self.gain_score is None else self.gain_score) + self.min_gain:
            self.gain_epoch, self.gain_score = epoch, score
        return score

    def patience(self, at_start: int, past_start: int) -> int:
        """The patience in force: `past_start` once some epoch has beaten the start, `at_start` until then (a
        stage that has not yet beaten its start is slow to start, not on a plateau)."""
        return past_start if self.best_epoch > 0 else at_start

    def patience_spent(self, epoch: int, patience: int) -> bool:
        """Whether `patience` epochs up to `epoch` have passed without a gain of more than `min_gain` (never without
        a criterion)."""
        return self.has_criterion and epoch - self.gain_epoch >= patience

    def test_best(self, level: float, clusters: np.ndarray | None, name: str) -> PairedTest | None:
        """The paired test (at one-sided `level`) of the best epoch against the start, None when the start is best
        or has no query scores; a refused epoch gives way to the start. `name` labels the log line."""
        if self.best_epoch == 0 or self.start_per_query is None:
            return None
        test = paired_gain_test(self.best_per_query, self.start_per_query, level, self.max_dim_drop, clusters)
        if not test.accepted:
            logger.info("%s: epoch %d refused at level %g (%s): keeping the start", name, self.best_epoch, level, test)
            self.best_state, self.best_per_query, self.best_score, self.best_epoch = (
                self.start_state, self.start_per_query, self.start_score, 0,
            )
        return test

    def state_dict(self) -> dict[str, Any]:
        """Its fields, for a checkpoint (EpochChoice(**state) restores it)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}
