"""The records the claims read, prepared once, and their cells: one method's encoder at one label fraction and
setting, per seed; two cells paired by seed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cass_bench.config.registry import reference_methods
from cass_bench.config.vocabulary import MAIN_EVAL
from cass_bench.records.schema import OK
from cass_bench.report.cells import CHANCE_SHARE
from cass_bench.report.load import PRETRAINED, RUN_KEYS

CELL_KEYS = ["dataset", "label_fraction", "arch", "batch_size", "pretrain_epochs", "method"]
"""A cell of the claims: one method's encoder at one label fraction and setting, over seeds."""
START_KEYS = ["dataset", "label_fraction", "arch", "method"]
"""A cell of the no-pretraining reference (the start): it has no pretraining setting."""
USED = ["seed", "eval", "record_id", "f1_macro", "f1_seed_code", "above_chance", "collapsed", PRETRAINED,
        "pretrain_epoch_time_s", "flops_per_image", "git_commit"]
"""The record fields the claims read besides the keys."""
VALUES = ("f1", "code", "chance_ok", "collapse_measured", "collapse_true")
"""What a cell holds per seed: macro-F1 and reference-code F1 (points), the share above chance, and the shares of
its runs whose collapse was measured and found."""


def prepare(records: pd.DataFrame) -> pd.DataFrame:
    """Finished records with the columns the rows read: ``f1`` and ``code`` (macro-F1 and ``f1_seed_code`` in
    points), ``chance_ok`` (1 above chance, 0 otherwise: unknown counts as not above) and the fraction rounded."""
    df = records.loc[records["status"] == OK, list(dict.fromkeys([*CELL_KEYS, *RUN_KEYS, *USED]))]
    return df.assign(f1=100 * df["f1_macro"], code=100 * df["f1_seed_code"],
                     chance_ok=df["above_chance"].eq(True).astype(float),
                     label_fraction=df["label_fraction"].round(10))


@dataclass(frozen=True)
class Cell:
    """One method's encoder at one label fraction and setting: per seed (sorted), the :data:`VALUES` (records of one
    seed on several devices are averaged).

    Attributes:
        seeds: the seeds, ascending.
        values: one array per name of :data:`VALUES`, aligned with ``seeds``.
    """

    seeds: np.ndarray
    values: dict[str, np.ndarray]

    @property
    def empty(self) -> bool:
        """True when the records hold no seed of the cell."""
        return self.seeds.size == 0

    @property
    def at_chance(self) -> bool:
        """Fewer than :data:`CHANCE_SHARE` of its seeds' records are above chance."""
        return bool(self.values["chance_ok"].mean() < CHANCE_SHARE)


EMPTY = Cell(np.empty(0), {name: np.empty(0) for name in VALUES})


class CellTable:
    """Every cell of the fine-tuned records, found by key without scanning the records again."""

    def __init__(self, df: pd.DataFrame) -> None:
        rows = df[df["eval"] == MAIN_EVAL]
        columns = {"f1": rows["f1"], "code": rows["code"], "chance_ok": rows["chance_ok"],
                   "collapse_measured": rows["collapsed"].notna(), "collapse_true": rows["collapsed"].eq(True)}
        self._seeds = rows["seed"].to_numpy(dtype=float)
        self._values = {name: column.to_numpy(dtype=float) for name, column in columns.items()}
        self._groups = rows.groupby(CELL_KEYS, dropna=False, sort=False).indices if len(rows) else {}
        starts = rows["method"].isin(reference_methods())
        self._starts = rows[starts].groupby(START_KEYS, sort=False).indices if starts.any() else {}
        positions = np.flatnonzero(starts.to_numpy())
        self._starts = {key: positions[at] for key, at in self._starts.items()}
        self._cells: dict[tuple, Cell] = {}

    def _cell(self, key: tuple, at: np.ndarray | None) -> Cell:
        if key not in self._cells:
            if at is None:
                return EMPTY
            seeds, inverse = np.unique(self._seeds[at], return_inverse=True)
            counts = np.bincount(inverse)
            self._cells[key] = Cell(seeds, {name: np.bincount(inverse, values[at]) / counts
                                            for name, values in self._values.items()})
        return self._cells[key]

    def get(self, dataset: str, fraction: float, arch: str, batch_size: float | None, epochs: float | None,
            method: str) -> Cell:
        """The cell of these keys (:data:`EMPTY` when the records hold none)."""
        key = (dataset, fraction, arch, batch_size, epochs, method)
        return self._cell(key, self._groups.get(key))

    def start(self, dataset: str, fraction: float, arch: str) -> Cell:
        """The no-pretraining reference's cell (the start fine-tuned directly; :data:`EMPTY` without one)."""
        method = reference_methods()[0]
        key = ("start", dataset, fraction, arch, method)
        return self._cell(key, self._starts.get((dataset, fraction, arch, method)))


def paired(a: Cell, b: Cell, value: str = "f1") -> pd.Series:
    """``a - b`` per seed both cells hold (a finite value each)."""
    common, ia, ib = np.intersect1d(a.seeds, b.seeds, assume_unique=True, return_indices=True)
    diff = a.values[value][ia] - b.values[value][ib]
    keep = np.isfinite(diff)
    return pd.Series(diff[keep], index=common[keep])


@dataclass(frozen=True)
class Pair:
    """The tested method's cell and the cell it is compared with.

    Attributes:
        ours, theirs: the two cells (:data:`EMPTY` when missing).
    """

    ours: Cell
    theirs: Cell

    @property
    def measured(self) -> bool:
        """Whether both cells hold records."""
        return not (self.ours.empty or self.theirs.empty)

    def at_chance(self) -> tuple[bool, bool]:
        """Whether each cell is at chance."""
        return self.ours.at_chance, self.theirs.at_chance

    def difference(self, value: str = "f1") -> pd.Series:
        """Ours minus theirs per seed both hold."""
        return paired(self.ours, self.theirs, value)

    @property
    def unpaired(self) -> int:
        """Seeds only one of the two cells holds."""
        return int(np.setxor1d(self.ours.seeds, self.theirs.seeds).size)
