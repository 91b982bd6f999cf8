import numpy as np

from matryoshka_adaptor.training.selection import choose_start, paired_gain_test


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
