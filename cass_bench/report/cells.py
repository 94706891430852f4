"""A metric per cell over seeds (mean, sample std, count) with the cell's chance and collapse marks."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from cass_bench.report.format import sort_rows
from cass_bench.report.load import RUN_COLLAPSED

CELL = ["dataset", "method", "arch"]
CHANCE_SHARE = 0.5
"""A cell is at chance when fewer than this share of its seeds' records are above chance."""
_MEAN, _STD, _N, _AT_CHANCE, _COLLAPSED = "mean", "std", "n", "at_chance", "collapsed"


@dataclass(frozen=True)
class Indexed:
    """Statistics with one row per key (a cell, a run setting).

    Attributes:
        frame: the statistics, one row per key.
    """

    frame: pd.DataFrame

    @property
    def empty(self) -> bool:
        """True when there is no row."""
        return self.frame.empty

    @property
    def index(self) -> pd.Index:
        """The keys."""
        return self.frame.index


def _column(name: str, doc: str) -> property:
    def get(stats: CellStats) -> pd.Series:
        return stats.frame[name]
    return property(get, doc=doc)


@dataclass(frozen=True)
class CellStats(Indexed):
    """One metric per cell over seeds; every accessor is a Series indexed by the cell keys."""

    mean = _column(_MEAN, "Mean over seeds.")
    std = _column(_STD, "Sample standard deviation over seeds (NaN with one seed).")
    n = _column(_N, "Seeds behind the mean.")
    at_chance = _column(_AT_CHANCE, "True where fewer than half of the cell's seeds are above chance.")
    collapsed = _column(_COLLAPSED, "True where a pretraining run behind the cell collapsed.")

    def data(self) -> pd.DataFrame:
        """The statistics with the cell keys as columns."""
        return self.frame.reset_index()


def metric_stats(rows: pd.DataFrame, metric: str, keys: list[str] | None = None) -> CellStats:
    """Mean, sample std and count over seeds of one metric.

    Args:
        rows: finished records (:func:`cass_bench.report.load.normalise`).
        metric: record field, e.g. ``f1_macro``.
        keys: grouping fields (default dataset, method, arch, label_fraction).
    """
    keys = keys or [*CELL, "label_fraction"]
    rows = rows[rows[metric].notna()].assign(
        _above=rows["above_chance"].astype("boolean").astype(float),
        _collapsed=rows[RUN_COLLAPSED].eq(True).astype(float))
    grouped = rows.groupby(keys)
    stats = grouped[metric].agg(**{_MEAN: "mean", _STD: "std", _N: "count"})
    stats[_AT_CHANCE] = grouped["_above"].mean() < CHANCE_SHARE
    stats[_COLLAPSED] = grouped["_collapsed"].max() > 0
    return CellStats(sort_rows(stats))

