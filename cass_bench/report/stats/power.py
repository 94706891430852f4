"""What a design of n seeds can detect: the minimum detectable effect of a two-sided paired t test and the seeds an
effect would need, from scipy's noncentral t, with their range from the chi-square interval of the spread.

A row of the claim checks is one paired test over seeds. Its verdict needs Holm's correction over the family of m
rows, whose first step tests at alpha / m; the power statements here use that level (the strictest step), so they
hold whatever the other rows show. Every figure is on the scale of the spread it is given: macro-F1's paired spread
for a declared target effect, ``f1_seed_code``'s for the paper's gain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from scipy import optimize
from scipy import stats as sps

from cass_bench.report.stats.intervals import MAX_EXACT_SEEDS

MAX_SEEDS = 100_000
"""The most seeds :func:`seeds_needed` looks for unless told otherwise."""


@lru_cache(maxsize=None)
def critical_noncentrality(df: int, level: float, power: float) -> float:
    """The noncentrality at which the two-sided t test with ``df`` degrees of freedom at ``level`` rejects with
    probability ``power``: P(|T'| > t_crit) = power for T' ~ noncentral t(df, ncp)."""
    critical = float(sps.t.ppf(1 - level / 2, df))

    def excess(ncp: float) -> float:
        upper, lower = float(sps.nct.sf(critical, df, ncp)), float(sps.nct.cdf(-critical, df, ncp))
        # far from 0 the distant tail underflows to NaN in scipy; it is then 0
        return (upper if math.isfinite(upper) else 1.0) + (lower if math.isfinite(lower) else 0.0) - power

    high = 4 * critical + 10
    while excess(high) < 0:
        high *= 2
    return float(optimize.brentq(excess, 0.0, high, xtol=1e-10))


def holm_first_level(alpha: float, family_size: int) -> float:
    """The level of a row's test at Holm's first step: alpha / m (m at least 1)."""
    return alpha / max(1, family_size)


def exact_floor(alpha: float, family_size: int, comparisons: int = 1) -> int:
    """The fewest seeds whose exact sign-flip test can reach Holm's first level at all.

    The test's smallest p over n seeds is 2 / 2^n; a row that takes the smallest of ``comparisons`` p values (a
    best-other row's "contradicted", Bonferroni over its comparators) multiplies it by their count. Above
    :data:`~cass_bench.report.stats.intervals.MAX_EXACT_SEEDS` seeds the t test takes over and has no floor.

    Args:
        alpha: family-wise error rate.
        family_size: rows in the Holm family.
        comparisons: the p values the row's smallest is taken from (1 for a row against one method).
    """
    level = holm_first_level(alpha, family_size)
    n = 2
    while n <= MAX_EXACT_SEEDS and max(1, comparisons) * 2.0 / 2 ** n >= level:
        n += 1
    return n


def detectable_effect(n: int, sd: float, alpha: float, family_size: int, power: float) -> float:
    """The smallest true mean difference that n paired seeds with spread ``sd`` detect with ``power`` at the
    Holm-adjusted level (NaN with fewer than 2 seeds or no finite spread).

    Args:
        n: seeds (paired differences).
        sd: standard deviation of the per-seed differences.
        alpha: family-wise error rate.
        family_size: rows in the Holm family.
        power: the wanted probability of a significant result.
    """
    if n < 2 or not math.isfinite(sd):
        return math.nan
    return critical_noncentrality(n - 1, holm_first_level(alpha, family_size), power) * sd / math.sqrt(n)


def seeds_needed(sd: float, target: float, alpha: float, family_size: int, power: float,
                 cap: int = MAX_SEEDS) -> int | None:
    """The fewest seeds (at least 2) whose two-sided paired t test detects a true difference ``target`` with
    ``power`` at Holm's first level alpha / ``family_size``, for per-seed differences of spread ``sd``.

    ``sd`` and ``target`` must be on one scale (both macro-F1 points, or both ``f1_seed_code`` points).

    Returns:
        The seed count, 2 for zero spread, or None when not computable (no finite spread or target, a zero
        target) or above ``cap``.
    """
    if not (math.isfinite(sd) and math.isfinite(target)) or target == 0:
        return None
    if sd == 0:
        return 2

    def enough(n: int) -> bool:
        return detectable_effect(n, sd, alpha, family_size, power) <= abs(target)

    if not enough(cap):
        return None
    low, high = 1, 2
    while not enough(high):
        low, high = high, min(2 * high, cap)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if enough(middle) else (middle, high)
    return max(high, 2)


def spread_range(sd: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """The ``level`` confidence interval of a normal spread from its sample sd over n values (chi-square, n - 1
    df): sd x [sqrt(df / chi2_hi), sqrt(df / chi2_lo)]; NaNs with fewer than 2 values."""
    if n < 2 or not math.isfinite(sd):
        return math.nan, math.nan
    df = n - 1
    high_q, low_q = sps.chi2.ppf([(1 + level) / 2, (1 - level) / 2], df)
    return sd * math.sqrt(df / high_q), sd * math.sqrt(df / low_q)


@dataclass(frozen=True)
class Power:
    """What a row's seeds detect and what a target needs, each with its range over the spread's interval.

    Attributes:
        mde: the detectable difference at the observed spread; ``mde_range`` at the spread's bounds.
        need: the seeds the target needs at the observed spread (None: beyond the cap); ``need_range`` likewise.
    """

    mde: float
    mde_range: tuple[float, float]
    need: int | None
    need_range: tuple[int | None, int | None]


def exact_need(sd: float, target: float, alpha: float, family_size: int, power: float, cap: int = MAX_SEEDS,
               comparisons: int = 1) -> int | None:
    """:func:`seeds_needed` at alpha / (``family_size`` x ``comparisons``), never below :func:`exact_floor` (None
    when that exceeds ``cap``)."""
    floor = exact_floor(alpha, family_size, comparisons)
    found = seeds_needed(sd, target, alpha, family_size * max(1, comparisons), power, cap)
    return None if found is None or max(found, floor) > cap else max(found, floor)


def power_of(n: int, sd: float, target: float, alpha: float, family_size: int, power: float,
             cap: int = MAX_SEEDS, comparisons: int = 1) -> Power:
    """:func:`detectable_effect` and :func:`seeds_needed` at the observed spread and at its 95% chi-square bounds
    (:func:`spread_range`), for a row whose p is exact up to
    :data:`~cass_bench.report.stats.intervals.MAX_EXACT_SEEDS` seeds; ``sd`` and ``target`` on one scale.

    The level is alpha / (``family_size`` x ``comparisons``): a best-other row's "contradicted" multiplies its
    smallest p by its comparators. Below :func:`exact_floor` no difference is detectable (an infinite ``mde``) and
    no need is smaller than the floor.
    """
    size = family_size * max(1, comparisons)
    floor = exact_floor(alpha, family_size, comparisons)
    low, high = spread_range(sd, n)

    def mde(spread: float) -> float:
        found = detectable_effect(n, spread, alpha, size, power)
        return math.inf if 2 <= n < floor and math.isfinite(found) else found

    needs = [exact_need(spread, target, alpha, family_size, power, cap, comparisons) for spread in (sd, low, high)]
    return Power(mde(sd), (mde(low), mde(high)), needs[0], (needs[1], needs[2]))
