import numpy as np
import pytest

from matryoshka_adaptor.training.selection import EpochChoice, choose_start, paired_gain_test, worst_shortfalls


def test_choose_start_minimises_the_worst_shortfall_at_any_dim() -> None:
    scores = {
        "wins_on_average": [0.50, 0.70, 0.90],  # 0.10 short of the best at the last dim
        "even": [0.45, 0.68, 0.98],  # never more than 0.05 short
        "poor": [0.30, 0.50, 0.70],
    }
    assert choose_start(scores) == "even"


def test_choose_start_breaks_ties_by_the_mean() -> None:
    assert choose_start({"a": [0.5, 0.6], "b": [0.5, 0.6], "c": [0.5, 0.6]}) == "a"
    assert choose_start({"a": [0.40, 0.6], "b": [0.40, 0.7]}) == "b"


def test_paired_test_accepts_a_consistent_gain() -> None:
    rng = np.random.default_rng(0)
    start = rng.uniform(0, 1, (200, 3))
    test = paired_gain_test(start + 0.05 + 0.02 * rng.standard_normal((200, 3)), start, level=0.01, max_dim_drop=0.005)
    assert test.accepted and test.n_queries == 200 and abs(test.mean_gain - 0.05) < 0.01


def test_paired_test_rejects_noise_and_a_dim_that_drops() -> None:
    rng = np.random.default_rng(0)
    start = rng.uniform(0, 1, (200, 3))
    noise = paired_gain_test(start + 0.2 * rng.standard_normal((200, 3)), start, level=0.01, max_dim_drop=0.005)
    assert not noise.accepted
    lopsided = start + np.array([0.2, 0.2, -0.05])  # a big mean gain, but the last dim loses
    test = paired_gain_test(lopsided, start, level=0.01, max_dim_drop=0.005)
    assert not test.accepted and test.mean_gain > 0.1 and test.worst_dim_gain == -0.05


def test_paired_test_is_a_t_test_so_five_queries_need_a_larger_gain() -> None:
    """2.6 standard errors pass a z-test at 1% but not a t-test with 4 degrees of freedom (critical 3.75)."""
    start = np.zeros((5, 1))
    gains = np.array([0.26, 0.0, 0.13, 0.39, 0.13])[:, None]  # mean 0.182, standard error 0.066: t = 2.76
    test = paired_gain_test(start + gains, start, level=0.01, max_dim_drop=0.005)
    assert not test.accepted and abs(test.critical_t - 3.747) < 0.001
    assert paired_gain_test(np.tile(start + gains, (8, 1)), np.zeros((40, 1)), level=0.01, max_dim_drop=0.005).accepted


def test_paired_test_skips_queries_without_a_score_and_needs_two() -> None:
    start = np.array([[0.1, 0.2], [np.nan, np.nan], [0.3, 0.3]])
    assert paired_gain_test(start + 0.1, start, level=0.2, max_dim_drop=0.0).n_queries == 2
    assert not paired_gain_test(start[:1] + 0.5, start[:1], level=0.2, max_dim_drop=0.0).accepted


def test_paired_test_counts_a_query_in_many_languages_once() -> None:
    """Eight translations of five questions are five observations, not forty: the same gains fail again."""
    gains = np.tile(np.array([0.26, 0.0, 0.13, 0.39, 0.13]), 8)[:, None]
    clusters = np.tile(np.arange(5), 8)
    test = paired_gain_test(gains, np.zeros((40, 1)), level=0.01, max_dim_drop=0.005, clusters=clusters)
    assert not test.accepted and test.n_queries == 5 and abs(test.critical_t - 3.747) < 0.001


def start_choice(probes: list[float] | None = None) -> EpochChoice:
    """A start scoring [0.5, 0.7] on the queries (the base model [0.6, 0.6]) and `probes` on the probe documents."""
    return EpochChoice.at_start("start", np.full((20, 2), 0.5), [0.5, 0.7], [0.6, 0.6], probes or [], max_dim_drop=0.01)


def test_epoch_choice_keeps_no_epoch_that_drops_a_dim_below_the_start_or_the_base_model() -> None:
    choice = start_choice()
    assert choice.reference == [0.6, 0.7] and choice.best_score == 0.6
    assert choice.offer(1, None, [0.58, 0.9], [], lambda: "below the base model at dim 0") == -float("inf")
    assert abs(choice.offer(2, None, [0.595, 0.705], [], lambda: "within the tolerance, higher mean") - 0.65) < 1e-9
    assert choice.offer(3, None, [0.6, 0.69], [], lambda: "lower mean") < 0.65
    assert (choice.best_epoch, choice.best_state) == (2, "within the tolerance, higher mean")


def test_epoch_choice_ranks_by_the_probes_when_there_are_any_and_guards_with_the_queries() -> None:
    choice = start_choice(probes=[0.8, 0.9])
    choice.offer(1, None, [0.6, 0.7], [0.81, 0.91], lambda: "probes gain")
    choice.offer(2, None, [0.9, 0.95], [0.805, 0.905], lambda: "queries gain more, probes less")
    choice.offer(3, None, [0.6, 0.68], [0.95, 0.95], lambda: "probes gain most, a query dim drops")
    assert choice.best_state == "probes gain"


def test_epoch_choice_runs_out_of_patience_counting_from_its_best_epoch() -> None:
    choice = start_choice()
    choice.offer(3, None, [0.7, 0.8], [], lambda: "best")
    assert not choice.patience_spent(4, patience=2) and choice.patience_spent(5, patience=2)
    no_criterion = EpochChoice.at_start("start", None, [], [], [], max_dim_drop=0.01)
    no_criterion.offer(1, None, [], [], lambda: "last")
    assert no_criterion.best_state == "last" and not no_criterion.patience_spent(50, patience=2)


def test_epoch_choice_switches_to_the_past_start_patience_once_an_epoch_beats_the_start() -> None:
    choice = start_choice()
    choice.offer(1, None, [0.1, 0.1], [], lambda: "worse than the start")
    assert choice.patience(at_start=10, past_start=15) == 10
    choice.offer(2, None, [0.7, 0.8], [], lambda: "better")
    assert choice.patience(at_start=10, past_start=15) == 15


def test_epoch_choice_counts_patience_from_its_last_gain_above_min_gain_but_keeps_its_best_epoch() -> None:
    choice = EpochChoice.at_start("start", None, [0.6, 0.6], [0.5, 0.5], [], max_dim_drop=0.01, min_gain=0.01)
    for epoch, mean in ((1, 0.62), (2, 0.625), (3, 0.628), (4, 0.629)):  # a creep: each a new best, none 0.01 above 0.62
        choice.offer(epoch, None, [mean, mean], [], lambda e=epoch: f"epoch {e}")
    assert (choice.best_epoch, choice.best_state, choice.gain_epoch) == (4, "epoch 4", 1)
    assert not choice.patience_spent(2, patience=2) and choice.patience_spent(3, patience=2)
    choice.offer(5, None, [0.635, 0.635], [], lambda: "epoch 5")  # 0.635 > 0.62 + 0.01: a gain, patience restarts
    assert (choice.best_epoch, choice.gain_epoch) == (5, 5) and not choice.patience_spent(6, patience=2)


def test_epoch_choice_test_gives_way_to_the_start_unless_the_gain_is_significant() -> None:
    rng = np.random.default_rng(0)
    start = rng.uniform(0, 1, (60, 2))
    for gain, kept in ((0.05, True), (0.0, False)):
        choice = EpochChoice.at_start("start", start, [0.5, 0.5], [0.5, 0.5], [], max_dim_drop=0.01)
        choice.offer(4, start + gain + 0.01 * rng.standard_normal(start.shape), [0.6, 0.6], [], lambda: "epoch 4")
        test = choice.test_best(level=0.01, clusters=None, name="test")
        assert test is not None and test.accepted is kept
        assert (choice.best_epoch, choice.best_state) == ((4, "epoch 4") if kept else (0, "start"))
    assert start_choice().test_best(level=0.01, clusters=None, name="test") is None  # the start is best: nothing to test


def test_epoch_choice_round_trips_through_its_state_dict() -> None:
    choice = start_choice(probes=[0.8, 0.9])
    choice.offer(1, np.ones((20, 2)), [0.6, 0.7], [0.85, 0.9], lambda: "epoch 1")
    again = EpochChoice(**choice.state_dict())
    assert again.best_epoch == 1 and again.best_state == "epoch 1" and again.reference == choice.reference


def test_paired_test_reports_each_dims_gain_and_standard_error_over_independent_observations() -> None:
    rng = np.random.default_rng(0)
    gains = np.array([0.05, 0.0]) + np.array([0.01, 0.1]) * rng.standard_normal((25, 2))  # dim 1: noise only
    test = paired_gain_test(gains, np.zeros((25, 2)), level=0.01, max_dim_drop=0.5)
    assert abs(test.dim_gains[0] - 0.05) < 0.005 and test.dim_gains[1] == test.worst_dim_gain
    assert test.dim_standard_errors[1] > 5 * test.dim_standard_errors[0]
    # four translations of 25 questions are 25 observations: the same standard errors, not half of them
    tiled = paired_gain_test(np.tile(gains, (4, 1)), np.zeros((100, 2)), 0.01, 0.5, clusters=np.tile(np.arange(25), 4))
    assert np.allclose(tiled.dim_standard_errors, test.dim_standard_errors, atol=1e-5)
    assert np.allclose(tiled.dim_gains, test.dim_gains, atol=1e-5)


def test_worst_shortfalls_are_each_candidates_largest_gap_to_the_best_at_any_dim() -> None:
    shortfalls = worst_shortfalls({"a": [0.5, 0.2], "b": [0.4, 0.6], "c": [0.5, 0.6]})
    assert shortfalls == pytest.approx({"a": 0.4, "b": 0.1, "c": 0.0})
    # against a reference set: a candidate outside it can be above the reference's best at every dim
    against_b = worst_shortfalls({"a": [0.5, 0.2], "b": [0.4, 0.6], "c": [0.5, 0.7]}, reference=("b",))
    assert against_b == pytest.approx({"a": 0.4, "b": 0.0, "c": -0.1})
