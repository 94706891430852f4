"""Claim (a) against one comparator: CASS's F1 gain per dataset, encoder and label fraction, paired by seed, and the
paper's gain read against the reference code's F1 (``f1_seed_code``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from cass_bench.config.claim_row import BEST, ClaimRow
from cass_bench.config.registry import PROPOSED
from cass_bench.config.vocabulary import MAIN_EVAL
from cass_bench.evaluation.chance import score_macro_f1 as macro_f1
from cass_bench.report.claims.cells import Pair
from cass_bench.report.claims.rows import (LEVEL, NAME, N_BOOT, Bootstrap, Context, Row, chance_note, collapse_text,
                                           interval_text, row_base, seed_interval, unmeasurable)
from cass_bench.report.format import fraction_text
from cass_bench.report.stats.bootstrap import bootstrap_interval
from cass_bench.report.stats.intervals import Interval

PAPER_GAINS = {0.01: 3.8, 0.1: 5.9, 1.0: 10.13}
"""The paper's F1 gains (points, its metric) over the best other method at 1 / 10 / 100% labels."""


def paper_gain(fraction: float) -> float:
    """The paper's gain at a label fraction (NaN where the paper states none)."""
    return next((gain for f, gain in PAPER_GAINS.items() if math.isclose(f, fraction)), math.nan)


def paper_reading(iv: Interval, gain: float) -> str:
    """Whether the paper's gain lies inside the interval on its metric: ``inside``, ``outside``, or ``—`` without an
    interval or a paper figure."""
    if not iv.bounded or not math.isfinite(gain):
        return "—"
    return "inside" if iv.low <= gain <= iv.high else "outside"


def against_paper(iv: Interval, gain: float) -> str:
    """The interval on ``f1_seed_code`` read against 0 and the paper's gain (no equivalence claim is made)."""
    head = f"; paper's metric (f1_seed_code): {interval_text(iv)}"
    if not iv.bounded or not math.isfinite(gain):
        return head
    has_zero, has_paper = iv.low <= 0 <= iv.high, iv.low <= gain <= iv.high
    if has_paper:
        return head + (": the interval contains 0 and the paper's value" if has_zero else
                       ": the interval contains the paper's value and excludes 0")
    return head + (": the interval contains 0 and excludes the paper's value" if has_zero else
                   ": the interval excludes 0 and the paper's value")


def _paper(gain: float) -> str:
    return f"+{gain:g} F1 points" if math.isfinite(gain) else "—"


def _base(spec: ClaimRow) -> dict:
    what = "the best other method" if spec.comparator == BEST else spec.comparator.upper()
    return row_base(spec, f"F1 gain over {what} at {fraction_text(spec.fraction)} labels ({spec.arch})",
                    _paper(paper_gain(spec.fraction)))


def gain_row(spec: ClaimRow, ctx: Context) -> Row:
    """Claim (a) against one comparator for one dataset and encoder: CASS minus the comparator per seed (the
    one-seed bootstrap over test images when one seed is shared), with the paper's metric beside it."""
    gain = paper_gain(spec.fraction)
    base = _base(spec)
    pair = Pair(*(ctx.table.get(spec.dataset, spec.fraction, spec.arch, ctx.batch_size, ctx.epochs, method)
                  for method in (PROPOSED, spec.comparator)))
    flag = collapse_text([(f"{PROPOSED}-{spec.arch}", pair.ours), (f"{spec.comparator}-{spec.arch}", pair.theirs)])
    if (blocked := unmeasurable(pair, spec, ctx, (NAME, spec.comparator), base, flag)) is not None:
        return blocked
    diff = pair.difference()
    note = chance_note(pair, PROPOSED, spec.comparator)
    if pair.unpaired:
        note += f"; {pair.unpaired} seed(s) without a pair left out"
    iv, sd = seed_interval(diff)
    if iv.n == 1 and ctx.bootstrap is not None:
        boot = ctx.bootstrap(spec, diff.index[0])
        if isinstance(boot, Interval):
            iv = boot
        else:
            note += f"; no bootstrap: {boot}"
    code_diff = pair.difference("code")
    code = seed_interval(code_diff)[0]
    measured = interval_text(iv) + against_paper(code, gain) + note
    return Row(base, measured, iv, sd=sd, effect=gain, collapse=flag, per_seed=diff, code=code,
               per_seed_code=code_diff)


def paper_text(fraction: float) -> Callable[[Interval], str]:
    """The paper's metric read against the paper's gain at ``fraction`` (for a pooled row)."""
    return lambda code: against_paper(code, paper_gain(fraction))


def prediction_bootstrap(records: pd.DataFrame, batch_size: float | None, epochs: float | None,
                         predictions: Path | None) -> Bootstrap:
    """The paired bootstrap over test images of one seed's cell, from the saved predictions.

    Args:
        records: the prepared records (:func:`cass_bench.report.claims.cells.prepare`).
        batch_size, epochs: the main setting.
        predictions: folder of ``<record_id>.npz`` (``y_true``, ``y_score``), or None.
    """
    def run(spec: ClaimRow, seed: object) -> Interval | str:
        if predictions is None:
            return "no predictions folder"
        at = records[(records["eval"] == MAIN_EVAL) & (records["dataset"] == spec.dataset)
                     & np.isclose(records["label_fraction"], spec.fraction) & (records["arch"] == spec.arch)
                     & (records["seed"] == seed) & (records["batch_size"] == batch_size)
                     & (records["pretrain_epochs"] == epochs)]
        ids = at.groupby("method")["record_id"].first()
        files = [Path(predictions) / f"{ids.get(m)}.npz" for m in (PROPOSED, spec.comparator)]
        if missing := [f.name for f in files if not f.exists()]:
            return f"missing {missing[0]}"
        a, b = (np.load(f) for f in files)
        if not np.array_equal(a["y_true"], b["y_true"]):
            return "the two methods' test labels differ"
        iv = bootstrap_interval(a["y_true"], a["y_score"], b["y_score"], macro_f1, N_BOOT, 0, LEVEL)
        return Interval(100 * iv.mean, 100 * iv.low, 100 * iv.high, 1, iv.method, iv.p, iv.level, iv.test)
    return run
