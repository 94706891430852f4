"""Small statistics behind the claim checks: paired intervals, paired bootstrap, Holm and verdicts.

Everything here is a pure function of its arguments (the bootstrap is seeded). Intervals are two-sided; the t
interval and the t test use scipy's Student t distribution (``scipy.special.stdtr`` / ``stdtrit``, what
``scipy.stats.t`` computes with).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from scipy import special

SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive"
TOO_FEW_SEEDS = "inconclusive — too few seeds"

Metric = Callable[[np.ndarray, np.ndarray], float]


@dataclass(frozen=True)
class Interval:
    """A point estimate with its two-sided interval.

    Attributes:
        mean: the point estimate (mean of the paired differences, or the metric difference on the full test set).
        low: lower bound (NaN when there is no interval).
        high: upper bound (NaN when there is no interval).
        n: number of paired observations behind it (seeds; 1 for a one-seed bootstrap).
        method: ``t`` (t interval, n - 1 df), ``bootstrap`` (paired percentile bootstrap over test items) or
            ``none`` (no interval could be made).
        p: two-sided p-value of "the true mean is 0" (t test or bootstrap; NaN without an interval).
        level: the interval's coverage.
    """

    mean: float
    low: float
    high: float
    n: int
    method: str
    p: float = math.nan
    level: float = 0.95

    @property
    def bounded(self) -> bool:
        """Whether both bounds are finite numbers."""
        return math.isfinite(self.low) and math.isfinite(self.high)


def _finite(values: Sequence[float] | np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=float).ravel()
    return array[np.isfinite(array)]


def paired_t_pvalue(differences: Sequence[float] | np.ndarray, null: float = 0.0) -> float:
    """Two-sided p-value of the paired t test, run as the one-sample t test of the per-pair differences.

    t = (mean(d) - null) / (sd(d) / sqrt(n)) with the sample sd (ddof 1) and n - 1 degrees of freedom;
    p = 2 * P(T_{n-1} > |t|). This is the same test as ``scipy.stats.ttest_rel(a, b)`` on the pairs. NaN values are
    dropped. n < 2 gives NaN (no test); zero spread gives 1.0 when the mean equals ``null`` and 0.0 otherwise.
    """
    d = _finite(differences)
    n = d.size
    if n < 2:
        return math.nan
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    if sd == 0:
        return 1.0 if mean == null else 0.0
    t = (mean - null) / (sd / math.sqrt(n))
    return float(min(1.0, 2 * special.stdtr(n - 1, -abs(t))))


def t_interval(mean: float, sd: float, n: int, level: float = 0.95) -> Interval:
    """The t interval (n - 1 df) and t test p-value of a mean from its sample standard deviation and count
    (:func:`paired_interval` from summary figures; n < 2 gives no interval)."""
    if n < 2:
        return Interval(mean if n else math.nan, math.nan, math.nan, max(int(n), 0), "none", level=level)
    se = sd / math.sqrt(n)
    half = float(special.stdtrit(n - 1, 0.5 + level / 2)) * se
    p = (1.0 if mean == 0 else 0.0) if se == 0 else float(min(1.0, 2 * special.stdtr(n - 1, -abs(mean) / se)))
    return Interval(mean, mean - half, mean + half, int(n), "t", p, level)


def paired_interval(differences: Sequence[float] | np.ndarray, level: float = 0.95) -> Interval:
    """Mean and t interval (n - 1 df) of per-seed paired differences, with the paired t test's p-value.

    NaN values are dropped. With one difference there is no t interval: the bounds are NaN and ``method`` is
    ``none`` (the caller may fall back on :func:`bootstrap_interval`); with none the mean is NaN too.
    """
    d = _finite(differences)
    return t_interval(float(d.mean()) if d.size else math.nan, float(d.std(ddof=1)) if d.size > 1 else math.nan,
                      d.size, level)


def bootstrap_differences(y_true: np.ndarray, score_a: np.ndarray, score_b: np.ndarray, metric: Metric,
                          n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """``n_boot`` paired bootstrap replicates of metric(a) - metric(b).

    Each replicate resamples the test items with replacement and scores both methods on the same items. The
    resampled indices depend only on ``seed``, ``n_boot`` and the number of items, so two calls with the same seed
    on the same test set resample identically (use this to bootstrap several comparisons on one test set jointly).
    """
    y_true, score_a, score_b = np.asarray(y_true), np.asarray(score_a), np.asarray(score_b)
    rng = np.random.default_rng(seed)
    n = len(y_true)
    draws = np.empty(n_boot)
    for i in range(n_boot):
        idx = rng.integers(0, n, n)
        draws[i] = metric(y_true[idx], score_a[idx]) - metric(y_true[idx], score_b[idx])
    return draws


def bootstrap_pvalue(draws: np.ndarray) -> float:
    """Two-sided bootstrap p-value of "the difference is 0": 2 x the smaller tail share at 0, with the +1
    correction ((1 + #draws <= 0) / (B + 1)), capped at 1."""
    draws = np.asarray(draws, dtype=float)
    tail = min(int((draws <= 0).sum()), int((draws >= 0).sum()))
    return float(min(1.0, 2 * (tail + 1) / (draws.size + 1)))


def percentile_interval(point: float, draws: np.ndarray, level: float = 0.95, n: int = 1) -> Interval:
    """The percentile interval of bootstrap replicates around ``point`` (method ``bootstrap``)."""
    low, high = np.quantile(np.asarray(draws, dtype=float), [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(point), float(low), float(high), n, "bootstrap", bootstrap_pvalue(draws), level)


def bootstrap_interval(y_true: np.ndarray, score_a: np.ndarray, score_b: np.ndarray, metric: Metric,
                       n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> Interval:
    """Paired bootstrap over test items of metric(a) - metric(b): the percentile interval, for one seed.

    The point estimate is the difference on the full test set; ``n`` is 1 (one seed); ``method`` is
    ``bootstrap``. It covers test-set sampling only, not seed-to-seed variation.
    """
    point = metric(np.asarray(y_true), np.asarray(score_a)) - metric(np.asarray(y_true), np.asarray(score_b))
    return percentile_interval(point, bootstrap_differences(y_true, score_a, score_b, metric, n_boot, seed), level)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order.

    With the m finite p-values sorted ascending, p_(i) -> max_{j <= i} min(1, (m - j + 1) p_(j)): monotone in p
    and capped at 1. NaN entries stay NaN and do not count in m.
    """
    p = np.asarray(pvalues, dtype=float)
    adjusted = np.full(p.shape, math.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m, running = finite.size, 0.0
    for rank, i in enumerate(finite[np.argsort(p[finite], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def outcome(interval: Interval, bound: float = 0.0, higher_is_better: bool = True, min_seeds: int = 3,
            needs_seeds: bool = True) -> str:
    """The verdict of an interval against the claim's bound.

    - ``inconclusive — too few seeds (n)`` when ``needs_seeds`` and n < ``min_seeds``;
    - higher is better (e.g. an F1 gain > 0): ``supported`` iff low > bound, ``contradicted`` iff high < bound;
    - lower is better (e.g. a cost ratio that should be small): ``supported`` iff high <= bound, ``contradicted`` iff
      low > bound;
    - ``inconclusive`` otherwise. Without bounds (one run of a cost claim, ``needs_seeds`` false) the point value is
      compared with the bound; without bounds otherwise the result is ``inconclusive``.
    """
    if needs_seeds and interval.n < min_seeds:
        return f"{TOO_FEW_SEEDS} ({interval.n})"
    low, high = interval.low, interval.high
    if not interval.bounded:
        if needs_seeds or not math.isfinite(interval.mean):
            return INCONCLUSIVE
        low = high = interval.mean
    if higher_is_better:
        return SUPPORTED if low > bound else CONTRADICTED if high < bound else INCONCLUSIVE
    return SUPPORTED if high <= bound else CONTRADICTED if low > bound else INCONCLUSIVE
