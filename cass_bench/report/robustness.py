"""Claims (d) and (e): per method the F1 lost at each other sweep level against the main level, and CASS's loss
minus the comparator's, paired by seed, per dataset, encoder and label fraction.

Direction, stated once: a method's loss at a level = its F1 at the main level - its F1 at that level (points;
positive: F1 lost away from the main level, negative: F1 gained); the contrast is CASS's loss - the comparator's,
so CASS is more robust where the contrast lies below 0.
"""

from __future__ import annotations

from dataclasses import replace

from cass_bench.config.schema import ARCHS
from cass_bench.config.registry import PROPOSED
from cass_bench.report.claim_rows import (BOTH_AT_CHANCE, NAME, NOT_MEASURED, REFERENCE_EFFECT, Cell, CellTable, Pair,
                                          Row, chance_note, collapse_text, interval_text, paired, pooled_row,
                                          seed_interval, spec_base)
from cass_bench.report.family import POOLED, RowSpec, sweep_axes
from cass_bench.report.render import fraction_text

WORDS = {"d": ("batch size", "batch"), "e": ("pretraining epochs", "epochs")}
DIRECTION = -1
"""CASS is more robust when its loss minus the comparator's lies below 0."""


def _level_text(claim: str, level: float | None) -> str:
    return f"{WORDS[claim][1]} {'—' if level is None else f'{level:g}'}"


def _claim(spec: RowSpec, main: float | None, arch: str) -> str:
    versus = f"{_level_text(spec.claim, spec.level)} vs {main if main is None else f'{main:g}'}"
    return f"more robust to {WORDS[spec.claim][0]} than {spec.comparator.upper()}: {versus}, " \
           f"{fraction_text(spec.fraction)} labels ({arch})"


def _cells(table: CellTable, spec: RowSpec, arch: str, level: float | None, held: float | None,
           method: str) -> Cell:
    batch, epochs = (level, held) if spec.claim == "d" else (held, level)
    return table.get(spec.dataset, spec.fraction, arch, batch, epochs, method)


def _encoder_row(table: CellTable, spec: RowSpec, batch_size: float | None, epochs: float | None) -> Row:
    _, fixed, held, main = sweep_axes(spec.claim, batch_size, epochs)
    arch = spec.arch
    base = spec_base(spec, _claim(spec, main, arch), f"smaller F1 loss than {spec.comparator.upper()}")
    if spec.level == main:
        return Row(base, f"{_level_text(spec.claim, spec.level)} is the main level: nothing to compare with",
                   status=NOT_MEASURED)
    pairs = {lvl: Pair(*(_cells(table, spec, arch, lvl, held, m) for m in (PROPOSED, spec.comparator)))
             for lvl in (main, spec.level)}
    flag = collapse_text([(f"{m}-{arch}", rows) for pair in pairs.values()
                          for m, rows in ((PROPOSED, pair.ours), (spec.comparator, pair.theirs))])
    if not all(pair.measured for pair in pairs.values()):
        return Row(base, f"needs {NAME} and {spec.comparator} records of {spec.dataset}/{arch} at "
                         f"{fraction_text(spec.fraction)} labels at {_level_text(spec.claim, main)} and "
                         f"{_level_text(spec.claim, spec.level)} ({fixed.replace('_', ' ')} "
                         f"{held if held is None else f'{held:g}'})", status=NOT_MEASURED, collapse=flag)
    both = [lvl for lvl, pair in pairs.items() if all(pair.at_chance())]
    if both:
        return Row(base, f"both methods at chance at {_level_text(spec.claim, both[0])}: nothing to compare",
                   status=f"{BOTH_AT_CHANCE} ({_level_text(spec.claim, both[0])})", collapse=flag)
    at_main, at_level = pairs[main], pairs[spec.level]
    losses = {PROPOSED: paired(at_main.ours, at_level.ours), spec.comparator: paired(at_main.theirs, at_level.theirs)}
    contrast = (losses[PROPOSED] - losses[spec.comparator]).dropna()
    iv, sd = seed_interval(contrast)
    each = ", ".join(f"{m} {interval_text(seed_interval(loss)[0], '')}" for m, loss in losses.items())
    notes = "".join(chance_note(pair, spec.comparator, f" at {_level_text(spec.claim, lvl)}")
                    for lvl, pair in pairs.items())
    measured = (f"{PROPOSED}'s loss - {spec.comparator}'s: {interval_text(iv)}; each method's loss at "
                f"{_level_text(spec.claim, spec.level)}: {each}{notes}")
    return Row(base, measured, iv, direction=DIRECTION, sd=sd, effect=REFERENCE_EFFECT, collapse=flag,
               per_seed=contrast)


def robustness_rows(table: CellTable, specs: list[RowSpec], batch_size: float | None,
                    epochs: float | None) -> list[Row]:
    """The (d) and (e) rows of ``specs`` (per encoder, and the labelled average for ``cnn+vit``).

    Args:
        table: the cells of the records.
        specs: the (d) and (e) rows to measure.
        batch_size, epochs: the main setting (the main level of each sweep and the value held).
    """
    out = []
    for spec in specs:
        if spec.arch != POOLED:
            out.append(_encoder_row(table, spec, batch_size, epochs))
            continue
        rows = {arch: _encoder_row(table, replace(spec, arch=arch), batch_size, epochs) for arch in ARCHS}
        main = sweep_axes(spec.claim, batch_size, epochs)[3]
        base = spec_base(spec, _claim(spec, main, f"average of {' and '.join(ARCHS)}"),
                         f"smaller F1 loss than {spec.comparator.upper()}")
        out.append(pooled_row(base, rows, direction=DIRECTION, effect=REFERENCE_EFFECT))
    return out
