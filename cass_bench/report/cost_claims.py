"""Claims (b) and (c): CASS's pretraining time per epoch against both runs of a comparator, one row per setting
(dataset, device, batch size, epochs), with a t interval over seeds on the log of the ratio; settings are never
pooled as replicates."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from cass_bench.config.registry import PROPOSED, comparators
from cass_bench.report.claims.rows import LEVEL, NAME, NOT_MEASURED, Row
from cass_bench.report.costs import COST_REFERENCE, JOINT
from cass_bench.report.load import PRETRAINED, RUN_KEYS
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
SETTING = ["dataset", "device", "batch_size", "pretrain_epochs"]
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


Runs = dict[tuple[str, str], dict[tuple, tuple[float, float]]]


def _runs(df: pd.DataFrame) -> Runs:
    """Per (method, encoders): per (setting, seed), the run's (time per epoch, FLOPs per image)."""
    runs = df.loc[df[PRETRAINED], [*RUN_KEYS, TIME, FLOPS]].drop_duplicates(list(RUN_KEYS))
    out: Runs = {}
    columns = [runs[c].tolist() for c in ("method", "encoders", *SETTING, "seed", TIME, FLOPS)]
    for method, encoders, *key, time, flops in zip(*columns):
        out.setdefault((method, encoders), {})[tuple(key)] = (time, flops)
    return out


def _ratios(runs: Runs, column: int, comp: str) -> tuple[dict[tuple, list[float]], dict[tuple, int]]:
    """Per setting, over seeds: CASS's figure (0: time, 1: FLOPs) over the sum of the comparator's cnn and vit runs
    of the same setting and seed (settings in sorted order), and per setting the seeds left out because a figure is
    missing (a time taken under contention, :data:`cass_bench.report.load.CONTENTION_BAR`)."""
    cnn, vit = JOINT.split("+")
    ours, theirs = runs.get((PROPOSED, JOINT), {}), (runs.get((comp, cnn), {}), runs.get((comp, vit), {}))
    out: dict[tuple, list[float]] = {}
    left_out: dict[tuple, int] = {}
    common = ours.keys() & theirs[0].keys() & theirs[1].keys()
    for key in sorted(common, key=lambda k: tuple(v if isinstance(v, str) else float(v) for v in k)):
        ratio = ours[key][column] / (theirs[0][key][column] + theirs[1][key][column])
        if math.isfinite(ratio):
            out.setdefault(key[:-1], []).append(ratio)
        else:
            left_out[key[:-1]] = left_out.get(key[:-1], 0) + 1
    return out, left_out


def _left_out_text(count: int) -> str:
    return f"; {count} seed{'s' * (count != 1)} left out: a run timed under contention (section 2)" if count else ""


def _base(setting: tuple, comp: str, claim: str, devices: int, words: str, paper: str) -> dict[str, Any]:
    dataset, device, batch, epochs = setting
    key = f"{dataset}/{claim}:bs{batch:g}:ep{epochs:g}:{comp}" + (f"@{device}" if devices > 1 else "")
    return dict(key=key, kind=claim, claim=f"{words} ({device}, batch {batch:g}, {epochs:g} epochs)",
                comparator=comp, dataset=dataset, arch=JOINT, fraction=math.nan, level=math.nan, eval="pretraining",
                paper=paper)


def _missing(claim: str, comp: str, words: str, paper: str) -> Row:
    base = dict(key=f"{claim}:{comp}", kind=claim, claim=words, comparator=comp, eval="pretraining", paper=paper)
    return Row(base, f"no {NAME} run with both {comp}-cnn and {comp}-vit runs beside it on the same device",
               status=NOT_MEASURED, tested=False)


def _time_rows(runs: Runs, devices: int) -> list[Row]:
    rows = []
    for comp in comparators():
        words = f"less pretraining time than {comp.upper()}"
        paper = (f"69% less: ratio <= {TIME_BOUND:g} (the quoted {PAPER_MINUTES[PROPOSED]} / "
                 f"{PAPER_MINUTES['dino']} min give {QUOTED_RATIO:.3f})" if comp == COST_REFERENCE else
                 f"not a paper claim: the same bound {TIME_BOUND:g}")
        ratios, left_out = _ratios(runs, 0, comp)
        intervals = ratio_intervals(ratios)
        if not intervals:
            rows.append(_missing("b", comp, words, paper))
        for setting, iv in intervals.items():
            measured = (f"{_ratio_text(iv)}, i.e. {1 - iv.mean:.0%} less time per epoch; bound {TIME_BOUND:g}"
                        + _left_out_text(left_out.get(setting, 0)))
            rows.append(Row(_base(setting, comp, "b", devices, words, paper), measured, iv,
                            _verdict(iv, TIME_BOUND), tested=False))
    return rows


def _efficiency_rows(runs: Runs, devices: int) -> list[Row]:
    words = f"twice as efficient as {_REF}"
    paper = f"<= {EFFICIENCY_BAR:g} x {_REF}'s cost: (b) with bound {EFFICIENCY_BAR:g}, plus FLOPs"
    ratios, left_out = _ratios(runs, 0, COST_REFERENCE)
    intervals = ratio_intervals(ratios)
    if not intervals:
        return [_missing("c", COST_REFERENCE, words, paper)]
    flops = {setting: float(np.mean(values)) for setting, values in _ratios(runs, 1, COST_REFERENCE)[0].items()}
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
                    + _left_out_text(left_out.get(setting, 0)))
        rows.append(Row(_base(setting, COST_REFERENCE, "c", devices, words, paper), measured, iv, status,
                        tested=False))
    return rows


def cost_rows(df: pd.DataFrame) -> list[Row]:
    """The (b) rows (each comparator) and (c) rows (the reference comparator), one per setting where CASS's run and
    both of the comparator's runs were measured on the same device."""
    runs = _runs(df)
    devices = len({key[1] for by_key in runs.values() for key in by_key})
    return [*_time_rows(runs, devices), *_efficiency_rows(runs, devices)]
