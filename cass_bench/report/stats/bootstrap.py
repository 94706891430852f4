"""The paired bootstrap over test images of one seed: ``scipy.stats.bootstrap`` resampling image indices, both
methods scored on the same resampled images."""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import stats as sps

from cass_bench.report.stats.intervals import BOOTSTRAP, Interval

Metric = Callable[[np.ndarray, np.ndarray], float]


def bootstrap_pvalue(draws: np.ndarray) -> float:
    """Two-sided bootstrap p of "the difference is 0": 2 x the smaller tail share at 0, with the +1 correction
    ((1 + #draws <= 0) / (B + 1)), capped at 1."""
    draws = np.asarray(draws, dtype=float)
    tail = min(int((draws <= 0).sum()), int((draws >= 0).sum()))
    return float(min(1.0, 2 * (tail + 1) / (draws.size + 1)))


def bootstrap_interval(y_true: np.ndarray, score_a: np.ndarray, score_b: np.ndarray, metric: Metric,
                       n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> Interval:
    """Paired percentile bootstrap over test items of metric(a) - metric(b), for one seed.

    The point estimate is the difference on the full test set; ``n`` is 1; ``method`` is ``bootstrap``. It covers
    test-set sampling only, not seed-to-seed variation. Seeded: the same call gives the same interval.
    """
    y_true, score_a, score_b = np.asarray(y_true), np.asarray(score_a), np.asarray(score_b)

    def difference(at: np.ndarray) -> float:
        return metric(y_true[at], score_a[at]) - metric(y_true[at], score_b[at])

    result = sps.bootstrap((np.arange(len(y_true)),), difference, paired=True, vectorized=False,
                           n_resamples=n_boot, confidence_level=level, method="percentile",
                           rng=np.random.default_rng(seed))
    low, high = result.confidence_interval
    return Interval(float(difference(np.arange(len(y_true)))), float(low), float(high), 1, "bootstrap",
                    bootstrap_pvalue(result.bootstrap_distribution), level, BOOTSTRAP)
