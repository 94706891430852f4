"""What every claim row shares: the constants of the rules, the records prepared once, the row's fields, the
interval in words, the chance rule and the collapse flag."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cass_bench.config.registry import PROPOSED
from cass_bench.records.schema import OK
from cass_bench.report.cells import CHANCE_SHARE
from cass_bench.config.vocabulary import MAIN_EVAL
from cass_bench.report.family import RowSpec
from cass_bench.report.load import PRETRAINED, RUN_KEYS
from cass_bench.report.paired import ZERO_SPREAD, seed_interval as paired_seed_interval, spread_note
from cass_bench.report.stats import Interval

LEVEL = 0.95
MIN_SEEDS = 3
N_BOOT = 1000
REFERENCE_EFFECT = 5.0
"""The F1 difference (points) whose seeds are stated for rows without a paper figure ((d), (e))."""
NOT_MEASURED = "not measured"
BOTH_AT_CHANCE = "not testable: both methods at chance"
NAME = PROPOSED.upper()
CELL_KEYS = ["dataset", "label_fraction", "arch", "batch_size", "pretrain_epochs", "method"]
"""A cell of the claims: one method's encoder at one label fraction and setting, over seeds."""
USED = ["seed", "eval", "record_id", "f1_macro", "f1_seed_code", "above_chance", "collapsed", PRETRAINED,
        "pretrain_epoch_time_s", "flops_per_image"]
"""The record fields the claims read besides the keys."""


def points(value: float) -> str:
    """A signed number of F1 points."""
    return f"{value:+.2f}"


def interval_text(iv: Interval, unit: str = " F1 points") -> str:
    """``+1.23 F1 points [-0.50, +2.96] (95% t, 5 seeds)``, or the point alone without an interval."""
    if not math.isfinite(iv.mean):
        return "no paired value"
    seeds = f"{iv.n} seed{'s' * (iv.n != 1)}"
    if not iv.bounded:
        return f"{points(iv.mean)}{unit} ({seeds}: {spread_note(iv)})"
    how = "t" if iv.method == "t" else "paired bootstrap over test images, ignores seed noise"
    return f"{points(iv.mean)}{unit} [{points(iv.low)}, {points(iv.high)}] ({iv.level:.0%} {how}, {seeds})"


@dataclass
class Row:
    """One claim row before the family's verdict.

    Attributes:
        base: the identifying fields (key, kind: the claim's letter, claim, comparator, dataset, arch, fraction,
            level, eval, paper).
        measured: the measurement in words.
        interval: the interval of the row's contrast (F1 rows: over seeds).
        status: a fixed status (not measured, not testable, no pooled verdict; a cost verdict), or None for a
            tested row whose verdict the family decides.
        direction: +1 when the claim holds for a contrast above 0, -1 below 0 (tested rows only).
        sd: the sample standard deviation of the per-seed contrasts (NaN without two seeds).
        effect: the effect whose seeds the power line states (the paper's gain, or :data:`REFERENCE_EFFECT`).
        collapse: the collapse flag of the encoders behind the row.
        tested: whether the row is an F1 or robustness test (Holm, power) rather than a cost claim.
        per_seed: the contrast per seed behind the interval (F1 rows).
    """

    base: dict[str, Any]
    measured: str
    interval: Interval = field(default_factory=lambda: Interval(math.nan, math.nan, math.nan, 0, "none"))
    status: str | None = None
    direction: int = 1
    sd: float = math.nan
    effect: float = math.nan
    collapse: str = ""
    tested: bool = True
    per_seed: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))


def spec_base(spec: RowSpec, claim: str, paper: str) -> dict[str, Any]:
    """The identifying fields of a row from its spec."""
    return dict(key=spec.key, kind=spec.claim, claim=claim, comparator=spec.comparator, dataset=spec.dataset,
                arch=spec.arch, fraction=spec.fraction, level=spec.level, eval=MAIN_EVAL, paper=paper)


def prepare(records: pd.DataFrame) -> pd.DataFrame:
    """Finished records with the columns the rows read: ``f1`` and ``code`` (macro-F1 and ``f1_seed_code`` in
    points), ``chance_ok`` (1 above chance, 0 otherwise: unknown counts as not above) and the fraction rounded."""
    df = records.loc[records["status"] == OK, list(dict.fromkeys([*CELL_KEYS, *RUN_KEYS, *USED]))]
    return df.assign(f1=100 * df["f1_macro"], code=100 * df["f1_seed_code"],
                     chance_ok=df["above_chance"].eq(True).astype(float),
                     label_fraction=df["label_fraction"].round(10))


VALUES = ("f1", "code", "chance_ok", "collapse_measured", "collapse_true")
"""What a cell holds per seed: macro-F1 and reference-code F1 (points), the share above chance, and the shares of
its runs whose collapse was measured and found."""


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
        self._cells: dict[tuple, Cell] = {}

    def get(self, dataset: str, fraction: float, arch: str, batch_size: float | None, epochs: float | None,
            method: str) -> Cell:
        """The cell of these keys (:data:`EMPTY` when the records hold none)."""
        key = (dataset, fraction, arch, batch_size, epochs, method)
        if key not in self._cells:
            at = self._groups.get(key)
            if at is None:
                return EMPTY
            seeds, inverse = np.unique(self._seeds[at], return_inverse=True)
            counts = np.bincount(inverse)
            self._cells[key] = Cell(seeds, {name: np.bincount(inverse, values[at]) / counts
                                            for name, values in self._values.items()})
        return self._cells[key]


def paired(a: Cell, b: Cell, value: str = "f1") -> pd.Series:
    """``a - b`` per seed both cells hold (a finite value each)."""
    common, ia, ib = np.intersect1d(a.seeds, b.seeds, assume_unique=True, return_indices=True)
    diff = a.values[value][ia] - b.values[value][ib]
    keep = np.isfinite(diff)
    return pd.Series(diff[keep], index=common[keep])


@dataclass(frozen=True)
class Pair:
    """CASS's cell and a comparator's cell.

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
        """CASS minus the comparator per seed both hold."""
        return paired(self.ours, self.theirs, value)

    @property
    def unpaired(self) -> int:
        """Seeds only one of the two cells holds."""
        return int(np.setxor1d(self.ours.seeds, self.theirs.seeds).size)


def chance_note(pair: Pair, comparator: str, where: str = "") -> str:
    """The chance rule's note for a measured pair: which method is at chance (its F1 counts as measured)."""
    ours, theirs = pair.at_chance()
    named = [name for name, flag in ((PROPOSED, ours), (comparator, theirs)) if flag]
    if not named or len(named) == 2:
        return ""
    return f"; {named[0]} at chance{where} (its F1 enters as measured: a loss of that method)"


def collapse_text(cells: list[tuple[str, Cell]]) -> str:
    """The collapse flag of the encoders behind a row: per method-encoder, runs collapsed / runs measured.

    Args:
        cells: (``method-arch`` name, one of its cells) for each cell behind the row; a name's cells add up.
    """
    counts: dict[str, list[int]] = {}
    for name, one in cells:
        total = counts.setdefault(name, [0, 0])
        total[0] += int(one.values["collapse_true"].sum())
        total[1] += int(np.count_nonzero(one.values["collapse_measured"]))
    parts = [f"{name} {c}/{m}" if m else f"{name} not measured" for name, (c, m) in counts.items()]
    text = ", ".join(parts)
    return f"COLLAPSED: {text}" if any(c for c, _ in counts.values()) else text


def seed_interval(differences: pd.Series) -> tuple[Interval, float]:
    """The t interval of per-seed differences and their sample standard deviation (NaN for fewer than two, or for
    differences equal in every seed: no interval, no test, no power)."""
    values = differences.to_numpy(dtype=float)
    interval = paired_seed_interval(values, LEVEL)
    spread = interval.method != ZERO_SPREAD and values.size > 1
    return interval, float(np.std(values, ddof=1)) if spread else math.nan


def kept_encoders(rows: dict[str, Row]) -> list[str]:
    """The encoders whose rows were measured (no fixed status), which a labelled average pools."""
    return [arch for arch, row in rows.items() if row.status is None]


def pooled_row(base: dict[str, Any], rows: dict[str, Row], extra: str = "", direction: int = 1,
               effect: float = math.nan) -> Row:
    """The encoders' labelled average: the per-seed mean of their contrasts, with the heterogeneity check.

    No pooled verdict when one encoder's interval lies entirely above 0 and another's entirely below.

    Args:
        base: the row's identifying fields.
        rows: the per-encoder rows, keyed by arch.
        extra: text after the average's interval (e.g. the paper's metric).
        direction, effect: as :class:`Row`.
    """
    flag = "; ".join(row.collapse for row in rows.values())
    kept = kept_encoders(rows)
    if not kept:
        return Row(base, "no encoder measured: " + "; ".join(f"{a} {r.status}" for a, r in rows.items()),
                   status=NOT_MEASURED, collapse=flag)
    average = pd.concat([rows[arch].per_seed for arch in kept], axis=1).dropna().mean(axis=1)
    iv, sd = seed_interval(average)
    measured = f"average {interval_text(iv)}{extra}; " + "; ".join(
        f"{arch} {interval_text(row.interval)}" if arch in kept else f"{arch} left out ({row.status})"
        for arch, row in rows.items())
    above = [a for a in kept if rows[a].interval.bounded and rows[a].interval.low > 0]
    below = [a for a in kept if rows[a].interval.bounded and rows[a].interval.high < 0]
    status = None
    if above and below:
        status = f"no pooled verdict: {above[0]} above 0 and {below[0]} below 0 beyond their intervals"
    return Row(base, measured, iv, status, direction, sd, effect, flag, per_seed=average)
