"""Claims (d) and (e): per method the F1 lost at each other sweep level against the main level, and CASS's loss
minus the comparator's, paired by seed, per dataset, encoder and label fraction.

Direction, stated once: a method's loss at a level = its F1 at the main level - its F1 at that level (points;
positive: F1 lost away from the main level, negative: F1 gained); the contrast is CASS's loss - the comparator's,
so CASS is more robust where the contrast lies below 0.
"""

from __future__ import annotations

from cass_bench.config.claim_row import ClaimRow
from cass_bench.config.registry import PROPOSED
from cass_bench.report.claims.cells import Cell, CellTable, Pair, paired
from cass_bench.report.claims.rows import (BOTH_AT_CHANCE, NAME, NOT_MEASURED, Context, Row,
                                           chance_note, collapse_text, interval_text, row_base, seed_interval)
from cass_bench.report.format import fraction_text

WORDS = {"d": ("batch size", "batch"), "e": ("pretraining epochs", "epochs")}
DIRECTION = -1
"""CASS is more robust when its loss minus the comparator's lies below 0."""


def _level_text(claim: str, level: float | None) -> str:
    return f"{WORDS[claim][1]} {'—' if level is None else f'{level:g}'}"


def _claim(spec: ClaimRow, main: float | None, arch: str) -> str:
    versus = f"{_level_text(spec.claim, spec.level)} vs {main if main is None else f'{main:g}'}"
    return f"more robust to {WORDS[spec.claim][0]} than {spec.comparator.upper()}: {versus}, " \
           f"{fraction_text(spec.fraction)} labels ({arch})"


def _cells(table: CellTable, spec: ClaimRow, arch: str, level: float | None, held: float | None,
           method: str) -> Cell:
    batch, epochs = (level, held) if spec.claim == "d" else (held, level)
    return table.get(spec.dataset, spec.fraction, arch, batch, epochs, method)


def sweep_axes(claim: str, batch_size: float | None, epochs: float | None) -> tuple[str, str, float | None,
                                                                                float | None]:
    """(swept factor, held factor, its held value, the swept factor's main level) of robustness claim ``claim``."""
    if claim == "d":
        return "batch_size", "pretrain_epochs", epochs, batch_size
    return "pretrain_epochs", "batch_size", batch_size, epochs


def robustness_row(spec: ClaimRow, ctx: Context) -> Row:
    """Claim (d) or (e) for one dataset and encoder at one level: CASS's loss minus the comparator's, per seed."""
    table = ctx.table
    _, fixed, held, main = sweep_axes(spec.claim, ctx.batch_size, ctx.epochs)
    arch = spec.arch
    base = row_base(spec, _claim(spec, main, arch), f"smaller F1 loss than {spec.comparator.upper()}")
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
    notes = "".join(chance_note(pair, PROPOSED, spec.comparator, f" at {_level_text(spec.claim, lvl)}")
                    for lvl, pair in pairs.items())
    measured = (f"{PROPOSED}'s loss - {spec.comparator}'s: {interval_text(iv)}; each method's loss at "
                f"{_level_text(spec.claim, spec.level)}: {each}{notes}")
    return Row(base, measured, iv, direction=DIRECTION, sd=sd, collapse=flag,
               per_seed=contrast)
