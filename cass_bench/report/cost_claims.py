"""Claims (b) and (c): CASS's pretraining time per epoch against both runs of a comparator, one row per setting
(dataset, device, torch threads, batch size, epochs), with a t interval over seeds on the log of the ratio; settings
are never pooled as replicates. Only runs timed alone enter (:data:`cass_bench.report.load.ALONE`); a seed with a run
timed beside other work is left out and counted in the row, a seed with an unchecked run is kept and counted."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cass_bench.config.registry import PROPOSED, comparators
from cass_bench.records.schema import OK
from cass_bench.report.claims.rows import LEVEL, NAME, NOT_MEASURED, Row
from cass_bench.report.costs import COST_REFERENCE, JOINT
from cass_bench.report.load import ALONE, PRETRAINED, RUN_KEYS, THREADS
from cass_bench.report.stats.intervals import Interval, t_interval
from cass_bench.report.stats.verdicts import CONTRADICTED, INCONCLUSIVE, SUPPORTED, outcome, zero_variance_status

CLAIMED_REDUCTION = 0.69
TIME_BOUND = round(1 - CLAIMED_REDUCTION, 4)
"""The claim as stated, 69% less time: a ratio at most 0.31, with no tolerance either way."""
PAPER_MINUTES = {"dino": 26 * 60 + 21, PROPOSED: 7 * 60 + 11}
"""The paper's quoted pretraining times (Brain MRI, RTX8000, 100 epochs), in minutes."""
QUOTED_RATIO = PAPER_MINUTES[PROPOSED] / PAPER_MINUTES["dino"]
EFFICIENCY_BAR = 0.5
"""Claim (c), "twice as computationally efficient": time and FLOPs ratios at most 0.5."""
ONE_RUN = "inconclusive — one run: no interval"
SETTING = ["dataset", "device", THREADS, "batch_size", "pretrain_epochs"]
TIME, FLOPS = "pretrain_epoch_time_s", "flops_per_image"
_REF = COST_REFERENCE.upper()


def ratio_intervals(ratios: dict[tuple, list[float]]) -> dict[tuple, Interval]:
    """Per setting, the geometric mean ratio and its interval: a t interval over seeds of log(ratio), transformed
    back."""
    out = {}
    for setting, values in ratios.items():
        logs = np.log(np.asarray(values, dtype=float))
        iv = t_interval(float(logs.mean()), float(logs.std(ddof=1)) if logs.size > 1 else math.nan, logs.size, LEVEL)
        out[setting] = Interval(math.exp(iv.mean), math.exp(iv.low) if iv.bounded else math.nan,
                                math.exp(iv.high) if iv.bounded else math.nan, iv.n, iv.method, iv.p, iv.level,
                                iv.test)
    return out


def _ratio_text(iv: Interval) -> str:
    runs = f"{iv.n} run{'s' * (iv.n != 1)}"
    if not iv.bounded:
        return f"time ratio {iv.mean:.3f} ({runs}: no interval)"
    return f"time ratio {iv.mean:.3f} [{iv.low:.3f}, {iv.high:.3f}] ({iv.level:.0%} t on log ratio, {runs})"


def _verdict(iv: Interval, bound: float) -> str:
    flat = zero_variance_status(iv)
    return flat if flat else outcome(iv, bound, higher_is_better=False, needs_seeds=False) if iv.bounded else ONE_RUN


Runs = dict[tuple[str, str], dict[tuple, tuple[float, float, bool | None]]]


def _runs(df: pd.DataFrame) -> Runs:
    """Per (method, encoders): per (setting, seed), the run's (time per epoch, FLOPs per image, timed alone)."""
    ok = df[PRETRAINED] & (df["status"] == OK)
    runs = df.loc[ok, [*RUN_KEYS, THREADS, TIME, FLOPS, ALONE]].drop_duplicates(list(RUN_KEYS))
    out: Runs = {}
    columns = [runs[c].tolist() for c in ("method", "encoders", *SETTING, "seed", TIME, FLOPS, ALONE)]
    for method, encoders, *key, time, flops, alone in zip(*columns):
        out.setdefault((method, encoders), {})[tuple(key)] = (time, flops, None if pd.isna(alone) else bool(alone))
    return out


@dataclass(frozen=True)
class Ratios:
    """Per setting, over seeds: the ratios of the seeds that entered, and the seeds left out or unchecked.

    Attributes:
        values: per setting, CASS's figure over the comparator's cnn + vit runs, one per seed that entered.
        left_out: per setting, seeds left out because a run of the three was timed beside other work.
        unchecked: per setting, seeds that entered with a run whose company was not checked (older records).
    """

    values: dict[tuple, list[float]]
    left_out: dict[tuple, int]
    unchecked: dict[tuple, int]


def _ratios(runs: Runs, column: int, comp: str) -> Ratios:
    """CASS's figure (0: time, 1: FLOPs) over the sum of the comparator's cnn and vit runs of the same setting and
    seed (settings in sorted order); a seed any of whose three runs was not timed alone is left out of the times
    (FLOPs do not depend on the machine's load)."""
    cnn, vit = JOINT.split("+")
    ours, theirs = runs.get((PROPOSED, JOINT), {}), (runs.get((comp, cnn), {}), runs.get((comp, vit), {}))
    out = Ratios({}, {}, {})
    common = ours.keys() & theirs[0].keys() & theirs[1].keys()
    for key in sorted(common, key=lambda k: tuple(v if isinstance(v, str) else float(v) for v in k)):
        three = (ours[key], theirs[0][key], theirs[1][key])
        alone = {run[2] for run in three}
        ratio = ours[key][column] / (theirs[0][key][column] + theirs[1][key][column])
        if (column == 0 and False in alone) or not math.isfinite(ratio):
            out.left_out[key[:-1]] = out.left_out.get(key[:-1], 0) + 1
            continue
        out.values.setdefault(key[:-1], []).append(ratio)
        if column == 0 and None in alone:
            out.unchecked[key[:-1]] = out.unchecked.get(key[:-1], 0) + 1
    return out


def _left_out_text(ratios: Ratios, setting: tuple) -> str:
    left, unchecked = ratios.left_out.get(setting, 0), ratios.unchecked.get(setting, 0)
    text = f"; {left} seed{'s' * (left != 1)} left out: a run timed under contention (section 2)" if left else ""
    return text + (f"; {unchecked} seed{'s' * (unchecked != 1)} unchecked for other processes (older records, "
                   "section 2)" if unchecked else "")


def _base(setting: tuple, comp: str, claim: str, devices: int, words: str, paper: str,
          threads: int = 1) -> dict[str, Any]:
    dataset, device, thread_count, batch, epochs = setting
    where = f"{device}, {thread_count:g} thread{'s' * (thread_count != 1)}" if threads > 1 else device
    key = (f"{dataset}/{claim}:bs{batch:g}:ep{epochs:g}:{comp}" + (f"@{device}" if devices > 1 else "")
           + (f":t{thread_count:g}" if threads > 1 else ""))
    return dict(key=key, kind=claim, claim=f"{words} ({where}, batch {batch:g}, {epochs:g} epochs)",
                comparator=comp, dataset=dataset, arch=JOINT, fraction=math.nan, level=math.nan, eval="pretraining",
                paper=paper)


def _missing(claim: str, comp: str, words: str, paper: str) -> Row:
    base = dict(key=f"{claim}:{comp}", kind=claim, claim=words, comparator=comp, eval="pretraining", paper=paper)
    return Row(base, f"no {NAME} run with both {comp}-cnn and {comp}-vit runs beside it on the same device",
               status=NOT_MEASURED, tested=False)


def _time_rows(runs: Runs, devices: int, threads: int) -> list[Row]:
    rows = []
    for comp in comparators():
        words = f"less pretraining time than {comp.upper()}"
        paper = (f"69% less: ratio <= {TIME_BOUND:g} (the quoted {PAPER_MINUTES[PROPOSED]} / "
                 f"{PAPER_MINUTES['dino']} min give {QUOTED_RATIO:.3f})" if comp == COST_REFERENCE else
                 f"not a paper claim: the same bound {TIME_BOUND:g}")
        ratios = _ratios(runs, 0, comp)
        intervals = ratio_intervals(ratios.values)
        if not intervals:
            rows.append(_missing("b", comp, words, paper))
        for setting, iv in intervals.items():
            measured = (f"{_ratio_text(iv)}, i.e. {1 - iv.mean:.0%} less time per epoch; bound {TIME_BOUND:g}"
                        + _left_out_text(ratios, setting))
            rows.append(Row(_base(setting, comp, "b", devices, words, paper, threads), measured, iv,
                            _verdict(iv, TIME_BOUND), tested=False))
    return rows


def _efficiency_rows(runs: Runs, devices: int, threads: int) -> list[Row]:
    words = f"twice as efficient as {_REF}"
    paper = f"<= {EFFICIENCY_BAR:g} x {_REF}'s cost: (b) with bound {EFFICIENCY_BAR:g}, plus FLOPs"
    ratios = _ratios(runs, 0, COST_REFERENCE)
    intervals = ratio_intervals(ratios.values)
    if not intervals:
        return [_missing("c", COST_REFERENCE, words, paper)]
    flops = {setting: float(np.mean(values)) for setting, values in _ratios(runs, 1, COST_REFERENCE).values.items()}
    rows = []
    for setting, iv in intervals.items():
        value = float(flops.get(setting, math.nan))
        verdicts = {_verdict(iv, EFFICIENCY_BAR)}
        flop_text = "FLOPs not measured"
        if math.isfinite(value):
            flop_text = f"FLOPs ratio {value:.3f} (deterministic)"
            verdicts.add(SUPPORTED if value <= EFFICIENCY_BAR else CONTRADICTED)
        status = (CONTRADICTED if CONTRADICTED in verdicts else SUPPORTED if verdicts == {SUPPORTED} else
                  ONE_RUN if ONE_RUN in verdicts else INCONCLUSIVE)
        measured = (f"restates (b) with bound {EFFICIENCY_BAR:g}: {_ratio_text(iv)}; {flop_text}"
                    + _left_out_text(ratios, setting))
        rows.append(Row(_base(setting, COST_REFERENCE, "c", devices, words, paper, threads), measured, iv, status,
                        tested=False))
    return rows


def cost_rows(df: pd.DataFrame) -> list[Row]:
    """The (b) rows (each comparator) and (c) rows (the reference comparator), one per setting where CASS's run and
    both of the comparator's runs were measured on the same device with the same threads.

    Args:
        df: the records frame (:func:`cass_bench.report.load.normalise`); finished records of pretrained encoders
            count.
    """
    runs = _runs(df)
    devices = len({key[1] for by_key in runs.values() for key in by_key})
    threads = len({key[2] for by_key in runs.values() for key in by_key})
    return [*_time_rows(runs, devices, threads), *_efficiency_rows(runs, devices, threads)]
