"""Paired by seed: one set of runs' macro-F1 minus another's, over the seeds both ran, with a t interval.

Two runs of one seed share the split, the labelled subset and the initial weights, so their difference removes the
seed's share of the spread (:func:`cass_bench.report.stats.paired_interval`); differences equal in every seed give
no interval and no test (:func:`seed_interval`).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from cass_bench.report.stats import Interval, paired_interval

SEED = "seed"
ZERO_SPREAD = "zero spread"
"""The method of an interval over seeds whose differences are all equal: no interval and no test, since a t test
of zero variance would claim p = 0 from as few as two identical numbers (copied records, a deterministic run)."""
SPREAD_TOLERANCE = 1e-9
"""Differences closer than this (relative to their size, at least 1) are equal: float rounding is no spread."""


def seed_interval(differences: Sequence[float] | np.ndarray, level: float = 0.95) -> Interval:
    """The t interval of per-seed paired differences (:func:`cass_bench.report.stats.paired_interval`), except that
    two or more differences all equal give no interval and no p-value (method :data:`ZERO_SPREAD`)."""
    values = np.asarray(differences, dtype=float).ravel()
    values = values[np.isfinite(values)]
    if values.size > 1 and np.ptp(values) <= SPREAD_TOLERANCE * max(1.0, float(np.abs(values).max())):
        return Interval(float(values.mean()), math.nan, math.nan, int(values.size), ZERO_SPREAD, math.nan, level)
    return paired_interval(values, level)


def spread_note(interval: Interval) -> str:
    """Why an interval over seeds has no bounds: ``no interval``, or that every seed gave the same difference."""
    if interval.method == ZERO_SPREAD:
        return "the same difference in every seed: zero variance, no interval or test"
    return "no interval"


def paired_changes(values: pd.Series, base: pd.Series, by: list[str]) -> list[dict]:
    """Per group of ``by``: the means of ``base`` and ``values`` over their shared seeds and the paired interval.

    Args:
        values: macro-F1 indexed by ``[*by, "seed"]`` (one value per index).
        base: the same for the runs compared against.
        by: the index levels that name a comparison (e.g. dataset, arch, eval).

    Returns:
        One dict per group with the ``by`` keys, ``base``, ``value`` and ``interval`` (of values - base); groups
        without a shared seed are left out.
    """
    paired = pd.concat({"value": values, "base": base}, axis=1, join="inner")
    rows = []
    for keys, group in paired.groupby(level=by):
        keys = keys if isinstance(keys, tuple) else (keys,)
        rows.append({**dict(zip(by, keys)), "base": group["base"].mean(), "value": group["value"].mean(),
                     "interval": seed_interval((group["value"] - group["base"]).to_numpy())})
    return rows


def change_text(interval: Interval, show_n: bool = False) -> str:
    """A paired change as ``+0.012 [-0.003, +0.027]``, with `` n=5`` when ``show_n``; "—" when nothing was measured.

    A single shared seed has no interval: the mean is shown with "no interval".
    """
    if not math.isfinite(interval.mean):
        return "—"
    n = f"n={interval.n}"
    if math.isfinite(interval.low) and math.isfinite(interval.high):
        return f"{interval.mean:+.3f} [{interval.low:+.3f}, {interval.high:+.3f}]" + (f" {n}" if show_n else "")
    return f"{interval.mean:+.3f} ({n + ', ' if show_n else ''}{spread_note(interval)})"
