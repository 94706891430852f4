"""Paired intervals and tests over seeds: the t interval (scipy's Student t), the t test, and the exact sign-flip
permutation test (scipy's ``permutation_test`` enumerating all 2^n flips) that gives a row's p with few seeds.

A paired difference whose seeds all agree has no spread: it gets neither a p value nor an interval
(:func:`zero_variance_interval`), never a p of 0 and a zero-width interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats as sps

T_TEST, SIGN_FLIP, BOOTSTRAP, ZERO_VARIANCE, NO_TEST = ("t test", "exact sign-flip", "paired bootstrap",
                                                       "zero variance", "none")
"""The test behind an interval's p value (:attr:`Interval.test`)."""
SEED_TESTS = (T_TEST, SIGN_FLIP)
"""The tests over seeds (a one-seed bootstrap's p covers test images only and enters no family)."""
MAX_EXACT_SEEDS = 16
"""Up to this many paired seeds a row's p is the exact sign-flip p (all 2^n flips); above, the t test's."""


@dataclass(frozen=True)
class Interval:
    """A point estimate with its two-sided interval and the p value of "the true mean is 0".

    Attributes:
        mean: the point estimate (mean of the paired differences, or the metric difference on the full test set).
        low: lower bound (NaN when there is no interval).
        high: upper bound (NaN when there is no interval).
        n: number of paired observations behind it (seeds; 1 for a one-seed bootstrap).
        method: how the interval was made: ``t`` (t interval, n - 1 df), ``bootstrap`` (paired percentile
            bootstrap over test items) or ``none``.
        p: two-sided p value (NaN without a test).
        level: the interval's coverage.
        test: the test that gave ``p`` (:data:`T_TEST`, :data:`SIGN_FLIP`, :data:`BOOTSTRAP`, :data:`ZERO_VARIANCE`
            or :data:`NO_TEST`).
    """

    mean: float
    low: float
    high: float
    n: int
    method: str
    p: float = math.nan
    level: float = 0.95
    test: str = NO_TEST

    @property
    def bounded(self) -> bool:
        """Whether both bounds are finite numbers."""
        return math.isfinite(self.low) and math.isfinite(self.high)

    @property
    def tested(self) -> bool:
        """Whether a test gave a p value."""
        return math.isfinite(self.p)


def finite(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """The finite values of ``values`` as a flat float array."""
    array = np.asarray(values, dtype=float).ravel()
    return array[np.isfinite(array)]


SPREAD_TOLERANCE = 1e-9
"""Paired differences closer than this (relative to their size, at least 1) are equal: a copied record or a
deterministic run, not a spread a test could use."""


def zero_variance_interval(mean: float, n: int, level: float = 0.95) -> Interval:
    """The interval of n >= 2 paired differences that are all equal: no bounds and no p (test ``zero variance``)."""
    return Interval(mean, math.nan, math.nan, int(n), "none", math.nan, level, ZERO_VARIANCE)


def paired_t_pvalue(differences: Sequence[float] | np.ndarray, null: float = 0.0) -> float:
    """Two-sided p of the paired t test (``scipy.stats.ttest_1samp`` of the per-pair differences against ``null``);
    NaN with fewer than 2 finite differences or zero spread."""
    d = finite(differences)
    if d.size < 2 or float(d.std(ddof=1)) == 0:
        return math.nan
    return float(sps.ttest_1samp(d, null).pvalue)


def sign_flip_pvalue(differences: Sequence[float] | np.ndarray) -> float:
    """Two-sided exact sign-flip permutation p of "the paired differences are symmetric about 0".

    Every one of the 2^n sign patterns is enumerated (``scipy.stats.permutation_test`` with one sample and
    ``n_resamples=inf``); the statistic is the mean, so p = share of flips whose |mean| reaches the observed |mean|.
    NaN without a difference; refused above :data:`MAX_EXACT_SEEDS` (2^n grows too fast).
    """
    d = finite(differences)
    if d.size == 0:
        return math.nan
    if d.size > MAX_EXACT_SEEDS:
        raise ValueError(f"an exact sign-flip test of {d.size} pairs enumerates 2^{d.size} flips; use the t test")
    result = sps.permutation_test((d,), lambda x, axis: np.mean(x, axis=axis), permutation_type="samples",
                                  vectorized=True, n_resamples=np.inf, alternative="two-sided")
    return float(result.pvalue)


def t_interval(mean: float, sd: float, n: int, level: float = 0.95) -> Interval:
    """The t interval (n - 1 df, ``scipy.stats.t.interval``) of a mean from its sample standard deviation and count,
    with the t test's p (n < 2 gives no interval; zero spread gives :func:`zero_variance_interval`)."""
    if n < 2 or not math.isfinite(sd):
        return Interval(mean if n else math.nan, math.nan, math.nan, max(int(n), 0), "none", level=level)
    if sd == 0:
        return zero_variance_interval(mean, n, level)
    se = sd / math.sqrt(n)
    low, high = sps.t.interval(level, n - 1, loc=mean, scale=se)
    p = float(2 * sps.t.sf(abs(mean) / se, n - 1))
    return Interval(mean, float(low), float(high), int(n), "t", p, level, T_TEST)


def paired_interval(differences: Sequence[float] | np.ndarray, level: float = 0.95,
                    exact: bool = True) -> Interval:
    """Mean and t interval (n - 1 df) of per-seed paired differences, with the row's p value.

    The p is the exact sign-flip p (:func:`sign_flip_pvalue`) for 2 to :data:`MAX_EXACT_SEEDS` differences when
    ``exact``, else the t test's; :attr:`Interval.test` names which. NaN values are dropped. One difference gives no
    interval (the caller may fall back on the bootstrap); none gives a NaN mean; equal differences give
    :func:`zero_variance_interval`.
    """
    d = finite(differences)
    if d.size > 1 and np.ptp(d) <= SPREAD_TOLERANCE * max(1.0, float(np.abs(d).max())):
        return zero_variance_interval(float(d.mean()), d.size, level)  # float rounding is no spread
    iv = t_interval(float(d.mean()) if d.size else math.nan, float(d.std(ddof=1)) if d.size > 1 else math.nan,
                    d.size, level)
    if iv.test != T_TEST or not exact or d.size > MAX_EXACT_SEEDS:
        return iv
    return Interval(iv.mean, iv.low, iv.high, iv.n, iv.method, sign_flip_pvalue(d), level, SIGN_FLIP)
