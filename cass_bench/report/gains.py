"""Claim (a): CASS's F1 gain over each comparator per dataset, encoder and label fraction, paired by seed; the
paper's gain read against the reference code's F1 (``f1_seed_code``); and the encoders' labelled average with its
heterogeneity check."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from cass_bench.evaluation.chance import score_macro_f1 as macro_f1
from cass_bench.config.schema import ARCHS
from cass_bench.config.registry import PROPOSED
from cass_bench.report.claim_rows import (BOTH_AT_CHANCE, LEVEL, N_BOOT, NAME, NOT_MEASURED, CellTable, Pair,
                                          Row, chance_note, collapse_text, interval_text, kept_encoders,
                                          pooled_row, seed_interval, spec_base)
from cass_bench.config.vocabulary import MAIN_EVAL
from cass_bench.report.family import POOLED, RowSpec
from cass_bench.report.render import fraction_text
from cass_bench.report.stats.bootstrap import bootstrap_interval
from cass_bench.report.stats.intervals import Interval

PAPER_GAINS = {0.01: 3.8, 0.1: 5.9, 1.0: 10.13}
"""The paper's F1 gains (points, its metric) over the best other method at 1 / 10 / 100% labels."""
Bootstrap = Callable[[RowSpec, object], "Interval | str"]


def paper_gain(fraction: float) -> float:
    """The paper's gain at a label fraction (NaN where the paper states none)."""
    return next((gain for f, gain in PAPER_GAINS.items() if math.isclose(f, fraction)), math.nan)


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


def _encoder_row(spec: RowSpec, pair: Pair, setting: str, bootstrap: Bootstrap | None) -> Row:
    gain = paper_gain(spec.fraction)
    base = spec_base(spec, f"F1 gain over {spec.comparator.upper()} at {fraction_text(spec.fraction)} labels "
                           f"({spec.arch})", _paper(gain))
    flag = collapse_text([(f"{PROPOSED}-{spec.arch}", pair.ours), (f"{spec.comparator}-{spec.arch}", pair.theirs)])
    if not pair.measured:
        return Row(base, f"no {NAME} and {spec.comparator} records of {spec.dataset}/{spec.arch} at "
                         f"{fraction_text(spec.fraction)} labels ({setting})", status=NOT_MEASURED, collapse=flag)
    if all(pair.at_chance()):
        return Row(base, "both cells at chance: nothing to compare", status=BOTH_AT_CHANCE, collapse=flag)
    diff = pair.difference()
    note = chance_note(pair, spec.comparator)
    if pair.unpaired:
        note += f"; {pair.unpaired} seed(s) without a pair left out"
    iv, sd = seed_interval(diff)
    if iv.n == 1 and bootstrap is not None:
        boot = bootstrap(spec, diff.index[0])
        if isinstance(boot, Interval):
            iv = boot
        else:
            note += f"; no bootstrap: {boot}"
    code = seed_interval(pair.difference("code"))[0]
    measured = interval_text(iv) + against_paper(code, gain) + note
    return Row(base, measured, iv, sd=sd, effect=gain, collapse=flag, per_seed=diff)


def _pooled_row(spec: RowSpec, pairs: dict[str, Pair], rows: dict[str, Row]) -> Row:
    gain = paper_gain(spec.fraction)
    base = spec_base(spec, f"F1 gain over {spec.comparator.upper()} at {fraction_text(spec.fraction)} labels "
                           f"(average of {' and '.join(ARCHS)})", _paper(gain))
    codes = [pairs[arch].difference("code") for arch in kept_encoders(rows)]
    code = pd.concat(codes, axis=1).dropna().mean(axis=1) if codes else pd.Series(dtype=float)
    return pooled_row(base, rows, against_paper(seed_interval(code)[0], gain), 1, gain)


def gain_rows(table: CellTable, specs: list[RowSpec], batch_size: float | None, epochs: float | None,
              bootstrap: Bootstrap | None) -> list[Row]:
    """The (a) rows of ``specs`` (per encoder, and the labelled average for ``cnn+vit``).

    Args:
        table: the cells of the records.
        specs: the (a) rows to measure.
        batch_size, epochs: the main setting.
        bootstrap: the one-seed paired bootstrap over test images (None: none).
    """
    setting = f"batch size {batch_size if batch_size is None else f'{batch_size:g}'}, " \
              f"{epochs if epochs is None else f'{epochs:g}'} epochs"
    out = []
    for spec in specs:
        pairs = {arch: Pair(*(table.get(spec.dataset, spec.fraction, arch, batch_size, epochs, method)
                              for method in (PROPOSED, spec.comparator)))
                 for arch in (ARCHS if spec.arch == POOLED else (spec.arch,))}
        rows = {arch: _encoder_row(replace(spec, arch=arch), pair, setting, bootstrap) for arch, pair in pairs.items()}
        out.append(_pooled_row(spec, pairs, rows) if spec.arch == POOLED else rows[spec.arch])
    return out


def prediction_bootstrap(records: pd.DataFrame, batch_size: float | None, epochs: float | None,
                         predictions: Path | None) -> Bootstrap:
    """The paired bootstrap over test images of one seed's cell, from the saved predictions.

    Args:
        records: the prepared records (:func:`cass_bench.report.claim_rows.prepare`).
        batch_size, epochs: the main setting.
        predictions: folder of ``<record_id>.npz`` (``y_true``, ``y_score``), or None.
    """
    def run(spec: RowSpec, seed: object) -> Interval | str:
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
        return Interval(100 * iv.mean, 100 * iv.low, 100 * iv.high, 1, iv.method, iv.p, iv.level)
    return run
