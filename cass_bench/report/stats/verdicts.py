"""The verdict of an interval against a claim's bound."""

from __future__ import annotations

import math

from cass_bench.report.stats.intervals import ZERO_VARIANCE, Interval

SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive"
TOO_FEW_SEEDS = "inconclusive — too few seeds"


def zero_variance_status(interval: Interval) -> str | None:
    """The verdict of seeds that all gave the same value (no spread: no test, no interval), else None."""
    if interval.test != ZERO_VARIANCE:
        return None
    return f"{INCONCLUSIVE} — zero variance ({interval.n} equal seeds)"


def outcome(interval: Interval, bound: float = 0.0, higher_is_better: bool = True, min_seeds: int = 3,
            needs_seeds: bool = True) -> str:
    """The verdict of an interval against the claim's bound.

    - ``inconclusive — too few seeds (n)`` when ``needs_seeds`` and n < ``min_seeds``;
    - ``inconclusive — zero variance ...`` when every seed gave the same value (:func:`zero_variance_status`);
    - higher is better (e.g. an F1 gain > 0): ``supported`` iff low > bound, ``contradicted`` iff high < bound;
    - lower is better (e.g. a cost ratio that should be small): ``supported`` iff high <= bound, ``contradicted`` iff
      low > bound;
    - ``inconclusive`` otherwise. Without bounds (one run of a cost claim, ``needs_seeds`` false) the point value is
      compared with the bound; without bounds otherwise the result is ``inconclusive``.
    """
    if needs_seeds and interval.n < min_seeds:
        return f"{TOO_FEW_SEEDS} ({interval.n})"
    if (flat := zero_variance_status(interval)) is not None:
        return flat
    low, high = interval.low, interval.high
    if not interval.bounded:
        if needs_seeds or not math.isfinite(interval.mean):
            return INCONCLUSIVE
        low = high = interval.mean
    if higher_is_better:
        return SUPPORTED if low > bound else CONTRADICTED if high < bound else INCONCLUSIVE
    return SUPPORTED if high <= bound else CONTRADICTED if low > bound else INCONCLUSIVE
