"""The statistics behind the claim checks, against hand computations and scipy."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps

from cass_bench.evaluation.chance import score_macro_f1 as macro_f1
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower

from cass_bench.report.stats.bootstrap import bootstrap_interval, bootstrap_pvalue
from cass_bench.report.stats.intervals import (MAX_EXACT_SEEDS, SIGN_FLIP, T_TEST, ZERO_VARIANCE, Interval,
                                               paired_interval, paired_t_pvalue, sign_flip_pvalue, t_interval)
from cass_bench.report.stats.multiple import holm
from cass_bench.report.stats.power import (MAX_SEEDS, critical_noncentrality, detectable_effect, power_of,
                                           seeds_needed, spread_range)
from cass_bench.report.stats.verdicts import outcome


def test_paired_interval_is_scipys_t_interval_and_its_p_the_exact_sign_flip() -> None:
    d = np.array([1.0, 3.0, 2.0, 6.0])
    iv = paired_interval(d)
    low, high = sps.t.interval(0.95, 3, loc=d.mean(), scale=sps.sem(d))
    assert (iv.mean, iv.low, iv.high, iv.n, iv.method) == pytest.approx((3.0, low, high, 4, "t"))
    assert iv.test == SIGN_FLIP and iv.p == pytest.approx(_brute_force_sign_flip(d)) == 2 / 16
    t_only = paired_interval(d, exact=False)
    assert t_only.test == T_TEST and t_only.p == pytest.approx(sps.ttest_1samp(d, 0).pvalue)
    many = np.random.default_rng(3).normal(1, 2, MAX_EXACT_SEEDS + 1)
    assert paired_interval(many).test == T_TEST  # above 16 seeds 2^n flips are too many: the t test
    two = paired_interval([1.0, 2.0])
    assert two.high - two.low == pytest.approx(2 * 12.706 * 0.5, rel=1e-3)  # sd 0.707, se 0.5


def _brute_force_sign_flip(d: np.ndarray) -> float:
    flips = np.array(list(itertools.product((1.0, -1.0), repeat=len(d))))
    return float(np.mean(np.abs(flips @ d) >= abs(d.sum()) - 1e-9))


@pytest.mark.parametrize("n", [2, 5, 9, 12, 16])
def test_the_exact_sign_flip_p_equals_a_brute_force_enumeration(n: int) -> None:
    rng = np.random.default_rng(n)
    for shift in (0.0, 0.7, 2.0):
        d = rng.normal(shift, 1.0, n)
        assert sign_flip_pvalue(d) == pytest.approx(_brute_force_sign_flip(d))
    tied = np.array([1.0, -1.0, 2.0, -2.0, 0.0])[: max(n, 2)]  # ties between flips count as extreme
    assert sign_flip_pvalue(tied) == pytest.approx(_brute_force_sign_flip(tied))
    with pytest.raises(ValueError, match="2\\^17"):
        sign_flip_pvalue(np.ones(17))


def test_equal_differences_get_zero_variance_not_p_0() -> None:
    for d in ([1.0, 1.0, 1.0], [0.0, 0.0], [2.5] * 12):
        iv = paired_interval(d)
        assert iv.test == ZERO_VARIANCE and math.isnan(iv.p) and not iv.bounded and iv.n == len(d)
        assert outcome(iv).startswith("inconclusive")  # no zero-width interval to be "supported"
    assert t_interval(1.0, 0.0, 4).test == ZERO_VARIANCE and math.isnan(t_interval(1.0, 0.0, 4).p)


def test_one_difference_has_no_t_interval() -> None:
    iv = paired_interval([2.5])
    assert iv.mean == 2.5 and iv.n == 1 and iv.method == "none" and math.isnan(iv.low) and math.isnan(iv.high)
    assert math.isnan(iv.p) and not iv.bounded
    assert paired_interval([]).n == 0


def test_paired_t_pvalue_matches_scipy_ttest_rel() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 6), rng.normal(0.5, 1, 6)
    assert paired_t_pvalue(a - b) == pytest.approx(sps.ttest_rel(a, b).pvalue)
    assert math.isnan(paired_t_pvalue([1.0, 1.0, 1.0])) and math.isnan(paired_t_pvalue([1.0]))


def test_holm_against_a_hand_computed_example_and_statsmodels() -> None:
    # sorted: 0.01 x 3 = 0.03; 0.02 x 2 = 0.04; 0.04 x 1 = 0.04 (monotone); input order kept
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    # monotone: 0.01 x 3 = 0.03; 0.011 x 2 = 0.022 -> raised to 0.03; 0.5 x 1 = 0.5
    assert holm([0.5, 0.011, 0.01]) == pytest.approx([0.5, 0.03, 0.03])
    assert holm([0.5, 0.6, 0.7]) == pytest.approx([1.0, 1.0, 1.0])
    adjusted = holm([0.01, float("nan"), 0.04])
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.04)
    p = np.random.default_rng(2).random(12) ** 3
    assert holm(p) == pytest.approx(multipletests(p, method="holm")[1])


def test_bootstrap_of_identical_scores_is_zero() -> None:
    rng = np.random.default_rng(0)
    y, scores = rng.integers(0, 3, 200), rng.random((200, 3))
    iv = bootstrap_interval(y, scores, scores.copy(), macro_f1, n_boot=200)
    assert (iv.mean, iv.low, iv.high, iv.n, iv.method) == (0.0, 0.0, 0.0, 1, "bootstrap")
    assert iv.p == 1.0


def test_bootstrap_of_perfect_against_random_is_above_zero() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    perfect, random = np.eye(3)[y], rng.random((200, 3))
    iv = bootstrap_interval(y, perfect, random, macro_f1, n_boot=300, seed=1)
    assert 0 < iv.low < iv.mean < iv.high <= 1 and iv.mean == pytest.approx(1 - macro_f1(y, random))
    assert iv.p < 0.01
    assert bootstrap_interval(y, perfect, random, macro_f1, n_boot=300, seed=1) == iv  # seeded
    assert bootstrap_pvalue(np.array([-1.0, 1.0])) == 1.0


def test_macro_f1_multiclass_and_multilabel() -> None:
    y = np.array([0, 0, 1, 2])
    scores = np.eye(3)[[0, 1, 1, 2]]
    assert macro_f1(y, scores) == pytest.approx(np.mean([2 / 3, 2 / 3, 1.0]))
    labels = np.array([[1, 0], [1, 1], [0, 1]])
    assert macro_f1(labels, np.array([[0.9, 0.1], [0.9, 0.2], [0.1, 0.8]])) == pytest.approx(np.mean([1.0, 2 / 3]))


@pytest.mark.parametrize("low, high, n, higher, bound, expected", [
    (0.5, 2.0, 5, True, 0.0, "supported"),
    (-2.0, -0.5, 5, True, 0.0, "contradicted"),
    (-0.5, 2.0, 5, True, 0.0, "inconclusive"),
    (0.5, 2.0, 2, True, 0.0, "inconclusive — too few seeds (2)"),
    (0.20, 0.36, 2, False, 0.36, "supported"),
    (0.37, 0.50, 5, False, 0.36, "contradicted"),
    (0.30, 0.40, 5, False, 0.36, "inconclusive"),
])
def test_outcome(low: float, high: float, n: int, higher: bool, bound: float, expected: str) -> None:
    iv = Interval((low + high) / 2, low, high, n, "t")
    assert outcome(iv, bound, higher, needs_seeds=higher) == expected


def test_outcome_of_one_cost_run_compares_the_point() -> None:
    one = Interval(0.2, math.nan, math.nan, 1, "none")
    assert outcome(one, 0.36, False, needs_seeds=False) == "supported"
    assert outcome(Interval(0.5, math.nan, math.nan, 1, "none"), 0.36, False, needs_seeds=False) == "contradicted"
    assert outcome(one, 0.0) == "inconclusive — too few seeds (1)"
    assert outcome(Interval(0.2, math.nan, math.nan, 4, "none"), 0.0) == "inconclusive"


def test_t_interval_from_summary_figures_equals_the_paired_interval() -> None:
    d = np.array([0.4, 2.5, -1.0, 3.3, 1.1])
    assert t_interval(d.mean(), d.std(ddof=1), d.size) == paired_interval(d, exact=False)
    assert t_interval(2.0, math.nan, 1).n == 1 and not t_interval(2.0, math.nan, 1).bounded


def _simulated_power(effect: float, sd: float, n: int, level: float, reps: int = 40_000) -> float:
    rng = np.random.default_rng(7)
    d = rng.normal(effect, sd, (reps, n))
    t = d.mean(axis=1) / (d.std(axis=1, ddof=1) / math.sqrt(n))
    return float((np.abs(t) > sps.t.ppf(1 - level / 2, n - 1)).mean())


@pytest.mark.parametrize("n, family", [(3, 12), (10, 12), (10, 1), (25, 40)])
def test_detectable_effect_has_the_stated_power_in_simulation(n: int, family: int) -> None:
    mde = detectable_effect(n, 4.0, 0.05, family, 0.8)
    assert _simulated_power(mde, 4.0, n, 0.05 / family) == pytest.approx(0.8, abs=0.01)
    assert _simulated_power(0.8 * mde, 4.0, n, 0.05 / family) < 0.75
    assert mde == pytest.approx(2 * detectable_effect(n, 2.0, 0.05, family, 0.8))  # linear in the spread


def test_detectable_effect_matches_the_normal_approximation_for_many_seeds() -> None:
    n, level = 2000, 0.05 / 12
    normal = (sps.norm.ppf(1 - level / 2) + sps.norm.ppf(0.8)) * 4.0 / math.sqrt(n)
    assert detectable_effect(n, 4.0, 0.05, 12, 0.8) == pytest.approx(normal, rel=0.01)
    assert critical_noncentrality(9, 0.05, 0.8) > critical_noncentrality(99, 0.05, 0.8)
    assert math.isnan(detectable_effect(1, 4.0, 0.05, 12, 0.8)) and math.isnan(detectable_effect(5, math.nan, 0.05, 12,
                                                                                                  0.8))


def test_seeds_needed_is_the_fewest_that_reach_the_power() -> None:
    need = seeds_needed(4.0, 5.0, 0.05, 12, 0.8)
    assert need is not None and need > 2
    assert detectable_effect(need, 4.0, 0.05, 12, 0.8) <= 5.0 < detectable_effect(need - 1, 4.0, 0.05, 12, 0.8)
    assert seeds_needed(4.0, -5.0, 0.05, 12, 0.8) == need  # the size of the effect counts, not its sign
    assert seeds_needed(0.0, 5.0, 0.05, 12, 0.8) == 2
    assert seeds_needed(50.0, 0.01, 0.05, 12, 0.8) is None  # beyond MAX_SEEDS
    assert detectable_effect(MAX_SEEDS, 50.0, 0.05, 12, 0.8) > 0.01
    assert seeds_needed(math.nan, 5.0, 0.05, 12, 0.8) is None
    assert seeds_needed(4.0, 5.0, 0.05, 12, 0.8, cap=need - 1) is None and seeds_needed(4.0, 5.0, 0.05, 12, 0.8,
                                                                                          cap=need) == need


def test_power_agrees_with_statsmodels_ttestpower() -> None:
    for n, m in ((5, 1), (12, 12), (30, 4)):
        effect = detectable_effect(n, 1.0, 0.05, m, 0.8)  # in units of the spread: Cohen's d
        assert TTestPower().power(effect_size=effect, nobs=n, alpha=0.05 / m) == pytest.approx(0.8, abs=1e-4)


def test_the_spread_range_is_the_chi_square_interval_and_carries_into_power() -> None:
    low, high = spread_range(1.0, 12)
    assert (low, high) == pytest.approx((0.708, 1.698), abs=1e-3)  # the x[0.71, 1.70] of 11 df
    sd = np.random.default_rng(4).normal(0, 3.0, (20_000, 12)).std(axis=1, ddof=1)
    covered = np.mean((sd * np.sqrt(11 / sps.chi2.ppf(0.975, 11)) <= 3.0) & (3.0 <= sd * np.sqrt(11 / sps.chi2.ppf(
        0.025, 11))))
    assert covered == pytest.approx(0.95, abs=0.01)
    power = power_of(12, 4.0, 5.0, 0.05, 12, 0.8)
    assert power.mde_range == pytest.approx((detectable_effect(12, 4 * low, 0.05, 12, 0.8),
                                             detectable_effect(12, 4 * high, 0.05, 12, 0.8)))
    assert power.need_range[0] <= power.need <= power.need_range[1]
    assert all(math.isnan(v) for v in spread_range(1.0, 1))
