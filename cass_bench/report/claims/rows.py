"""What every claim row shares: its fields before the family's verdict, what measuring it needs, the interval in
words, the chance and collapse notes, and pooling rows (encoders, datasets) into a labelled average."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from cass_bench.config.claim_row import ClaimRow, fraction_text
from cass_bench.config.registry import PROPOSED
from cass_bench.config.vocabulary import MAIN_EVAL
from cass_bench.report.claims.cells import Cell, CellTable, Pair
from cass_bench.report.stats.intervals import Interval, paired_interval

LEVEL = 0.95
MIN_SEEDS = 3
N_BOOT = 1000
REFERENCE_EFFECT = 5.0
"""The declared target effect (macro-F1 points) whose seeds every F1 row states."""
NOT_MEASURED = "not measured"
PARTIAL = "the paper's average needs every dataset"
"""How an across-datasets row with a dataset not yet measured begins its words."""
BOTH_AT_CHANCE = "not testable: both methods at chance"
NAME = PROPOSED.upper()
NO_INTERVAL = Interval(math.nan, math.nan, math.nan, 0, "none")
Bootstrap = Callable[[ClaimRow, object], "Interval | str"]


@dataclass(frozen=True)
class Context:
    """What measuring a row needs.

    Attributes:
        table: the cells of the records.
        batch_size, epochs: the main setting.
        datasets: the datasets the records hold (an ``across`` row averages them).
        bootstrap: the one-seed paired bootstrap over test images (None: none).
    """

    table: CellTable
    batch_size: float | None
    epochs: float | None
    datasets: tuple[str, ...]
    bootstrap: Bootstrap | None = None

    @property
    def setting(self) -> str:
        """The main setting in words."""
        batch = "—" if self.batch_size is None else f"{self.batch_size:g}"
        epochs = "—" if self.epochs is None else f"{self.epochs:g}"
        return f"batch size {batch}, {epochs} epochs"


@dataclass
class Row:
    """One claim row before its family's verdict.

    Attributes:
        base: the identifying fields (key, kind, claim, comparator, dataset, arch, fraction, level, eval, paper).
        measured: the measurement in words.
        interval: the interval of the row's contrast (F1 rows: over seeds); its p enters the family's Holm.
        status: a fixed status (not measured, not testable, no pooled verdict; a cost verdict), or None for a
            tested row whose verdict the family decides.
        direction: +1 when the claim holds for a contrast above 0, -1 below 0 (tested rows only).
        sd: the sample standard deviation of the per-seed contrasts (NaN without two seeds).
        effect: the paper's figure on the paper's metric (NaN: none), whose seeds the power line states.
        collapse: the collapse flag of the encoders behind the row.
        tested: whether the row is an F1 or robustness test (Holm, power) rather than a cost claim.
        per_seed: the contrast per seed behind the interval (F1 rows).
        code: the interval of the contrast on the paper's metric (``f1_seed_code``; (a) rows).
        per_seed_code: the contrast per seed on the paper's metric.
        notes: flags in words, shown under the table (e.g. a comparator below its start).
        partial: an across-datasets row measured on some of its datasets only (not measured as a whole; its
            words give what the measured ones show so far).
        comparisons: the comparisons whose smallest p the row's test may take, times their count (a best-other
            row's comparators); its power and the seeds it needs are stated at alpha / (family size x this).
    """

    base: dict[str, Any]
    measured: str
    interval: Interval = NO_INTERVAL
    status: str | None = None
    direction: int = 1
    sd: float = math.nan
    effect: float = math.nan
    collapse: str = ""
    tested: bool = True
    per_seed: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    code: Interval = NO_INTERVAL
    per_seed_code: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    notes: list[str] = field(default_factory=list)
    partial: bool = False
    comparisons: int = 1


def row_base(spec: ClaimRow, claim: str, paper: str) -> dict[str, Any]:
    """The identifying fields of a row from its spec."""
    return dict(key=spec.key, kind=spec.claim, claim=claim, comparator=spec.comparator, dataset=spec.dataset,
                arch=spec.arch, fraction=spec.fraction, level=spec.level, eval=MAIN_EVAL, paper=paper)


def unmeasurable(pair: Pair, spec: ClaimRow, ctx: Context, names: tuple[str, str], base: dict[str, Any],
                 flag: str) -> Row | None:
    """The row of a pair that cannot be compared (a side without records, or both at chance); None when it can.

    Args:
        pair: the two cells behind the row.
        spec: the row's spec (its dataset, encoder and label fraction name the missing records).
        ctx: the main setting.
        names: the two sides' names, as the missing-records text states them.
        base: the row's identifying fields.
        flag: the collapse text of the row's encoders.
    """
    if not pair.measured:
        return Row(base, f"no {names[0]} and {names[1]} records of {spec.dataset}/{spec.arch} at "
                         f"{fraction_text(spec.fraction)} labels ({ctx.setting})", status=NOT_MEASURED,
                   collapse=flag)
    if all(pair.at_chance()):
        return Row(base, "both cells at chance: nothing to compare", status=BOTH_AT_CHANCE, collapse=flag)
    return None


def points(value: float) -> str:
    """A signed number of F1 points."""
    return f"{value:+.2f}"


def interval_text(iv: Interval, unit: str = " F1 points") -> str:
    """``+1.23 F1 points [-0.50, +2.96] (95% t, 5 seeds)``, or the point alone without an interval."""
    if not math.isfinite(iv.mean):
        return "no paired value"
    seeds = f"{iv.n} seed{'s' * (iv.n != 1)}"
    if not iv.bounded:
        return f"{points(iv.mean)}{unit} ({seeds}: no interval)"
    how = "t" if iv.method == "t" else "paired bootstrap over test images, ignores seed noise"
    return f"{points(iv.mean)}{unit} [{points(iv.low)}, {points(iv.high)}] ({iv.level:.0%} {how}, {seeds})"


def chance_note(pair: Pair, ours: str, theirs: str, where: str = "") -> str:
    """The chance rule's note for a measured pair: which method is at chance (its F1 counts as measured)."""
    flags = pair.at_chance()
    named = [name for name, flag in zip((ours, theirs), flags) if flag]
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
    """The paired interval of per-seed differences (its p: :func:`paired_interval`) and their sample sd."""
    values = differences.to_numpy(dtype=float)
    return paired_interval(values, LEVEL), float(np.std(values, ddof=1)) if values.size > 1 else math.nan


def pooled(base: dict[str, Any], parts: dict[str, Row], what: str, extra: Callable[[Interval], str] | None = None
           ) -> Row:
    """A labelled average of rows within each seed (encoders, or datasets with equal weight), with the
    heterogeneity check: no pooled verdict when one part's interval lies entirely above 0 and another's below.

    Args:
        base: the row's identifying fields.
        parts: the rows averaged, by name (arch or dataset).
        what: ``encoder`` or ``dataset``, in the row's words.
        extra: the text of the paper's metric after the average's interval (None: none).
    """
    flag = "; ".join(dict.fromkeys(row.collapse for row in parts.values() if row.collapse))
    kept = [name for name, row in parts.items() if row.status is None]
    if not kept:
        return Row(base, f"no {what} measured: " + "; ".join(f"{n} {r.status}" for n, r in parts.items()),
                   status=NOT_MEASURED, collapse=flag)
    first = parts[kept[0]]
    average = pd.concat([parts[n].per_seed for n in kept], axis=1).dropna().mean(axis=1)
    iv, sd = seed_interval(average)
    code = pd.concat([parts[n].per_seed_code for n in kept], axis=1).dropna().mean(axis=1)
    code_iv = seed_interval(code)[0] if len(code) else NO_INTERVAL
    measured = (f"average of {len(kept)} {what}{'s' * (len(kept) != 1)} {interval_text(iv)}{extra(code_iv) if extra else ''}; "
                + "; ".join(f"{n} {interval_text(r.interval)}" if n in kept else f"{n} left out ({r.status})"
                            for n, r in parts.items()))
    above = [n for n in kept if parts[n].interval.bounded and parts[n].interval.low > 0]
    below = [n for n in kept if parts[n].interval.bounded and parts[n].interval.high < 0]
    status = (f"no pooled verdict: {above[0]} above 0 and {below[0]} below 0 beyond their intervals"
              if above and below else None)
    notes = list(dict.fromkeys(note for n in kept for note in parts[n].notes))
    return Row(base, measured, iv, status, first.direction, sd, first.effect, flag, per_seed=average, code=code_iv,
               per_seed_code=code, notes=notes)
