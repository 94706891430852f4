"""What a design of n seeds can detect: the minimum detectable effect of a two-sided paired t test and the seeds an
effect would need, from the noncentral t distribution.

A row of the claim checks is one paired t test over seeds. Its verdict needs Holm's correction over the family of m
rows, whose first step tests at alpha / m; the power statements here use that level (the strictest step), so they
hold whatever the other rows show.
"""

from __future__ import annotations

import math
from functools import lru_cache

from scipy import optimize
from scipy import stats as sps

MAX_SEEDS = 100_000
"""The most seeds :func:`seeds_needed` looks for."""


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


def detectable_effect(n: int, sd: float, alpha: float, family_size: int, power: float) -> float:
    """The smallest true mean difference that n paired seeds with spread ``sd`` detect with ``power`` at the
    Holm-adjusted level (NaN with fewer than 2 seeds or no finite spread).

    Args:
        n: seeds (paired differences).
        sd: sample standard deviation of the per-seed differences.
        alpha: family-wise error rate.
        family_size: rows in the Holm family.
        power: the wanted probability of a significant result.
    """
    if n < 2 or not math.isfinite(sd):
        return math.nan
    return critical_noncentrality(n - 1, holm_first_level(alpha, family_size), power) * sd / math.sqrt(n)


def seeds_needed(effect: float, sd: float, alpha: float, family_size: int, power: float) -> int | None:
    """The fewest seeds (at least 2) whose paired t test detects ``effect`` with ``power`` at the Holm-adjusted
    level, for per-seed differences of spread ``sd``; None when not computable or above :data:`MAX_SEEDS`."""
    if not (math.isfinite(sd) and math.isfinite(effect)) or effect == 0:
        return None
    if sd == 0:
        return 2

    def enough(n: int) -> bool:
        return detectable_effect(n, sd, alpha, family_size, power) <= abs(effect)

    if not enough(MAX_SEEDS):
        return None
    low, high = 1, 2
    while not enough(high):
        low, high = high, 2 * high
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if enough(middle) else (middle, high)
    return max(high, 2)
