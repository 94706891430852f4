"""Paired by seed: one set of runs' macro-F1 minus another's, over the seeds both ran, with a t interval.

Two runs of one seed share the split, the labelled subset and the initial weights, so their difference removes the
seed's share of the spread (:func:`cass_bench.report.stats.intervals.paired_interval`).
"""

from __future__ import annotations

import math

import pandas as pd

from cass_bench.report.stats.intervals import Interval, paired_interval

SEED = "seed"


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
                     "interval": paired_interval((group["value"] - group["base"]).to_numpy())})
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
    return f"{interval.mean:+.3f} ({n + ', ' if show_n else ''}no interval)"
