"""Checks of the CASS paper's claims against the records: one row per dataset, encoder, label fraction (and sweep
level) and comparator, each a paired interval over seeds, with Holm's correction over a pre-registered family and
the power of the design stated beside every verdict.

The rule of every claim is written once in :data:`RULES`, which the report quotes and
:mod:`cass_bench.report.claims_doc` turns into the README's section. The rows are measured in
:mod:`~cass_bench.report.gains` (a), :mod:`~cass_bench.report.cost_claims` (b, c) and
:mod:`~cass_bench.report.robustness` (d, e); this module decides their verdicts.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from cass_bench.config.registry import comparators
from cass_bench.report.cells import CHANCE_SHARE
from cass_bench.report.claim_rows import (BOTH_AT_CHANCE, LEVEL, MIN_SEEDS, N_BOOT, NAME, NOT_MEASURED,
                                          REFERENCE_EFFECT, CellTable, Row, prepare)
from cass_bench.report.cost_claims import EFFICIENCY_BAR, PAPER_MINUTES, QUOTED_RATIO, TIME_BOUND, cost_rows
from cass_bench.report.costs import COST_REFERENCE
from cass_bench.report.load import CONTENTION_BAR
from cass_bench.report.family import RECORD_SOURCE, Family, ordered, record_rows
from cass_bench.report.gains import PAPER_GAINS, gain_rows, prediction_bootstrap
from cass_bench.report.power import MAX_SEEDS, detectable_effect, seeds_needed
from cass_bench.report.render import Table
from cass_bench.report.robustness import robustness_rows
from cass_bench.report.stats import CONTRADICTED, INCONCLUSIVE, SUPPORTED, TOO_FEW_SEEDS, holm

__all__ = ["COLUMNS", "PAPER_GAINS", "RULES", "TIME_BOUND", "check_claims", "claims_table", "family_lines",
           "rule_lines", "summary_lines"]

OUTSIDE = "no verdict: outside the family"
COLUMNS = ["key", "kind", "claim", "comparator", "dataset", "arch", "fraction", "level", "eval", "paper", "measured",
           "estimate", "low", "high", "n", "sd", "p", "p_holm", "in_family", "mde", "seeds_needed", "power",
           "collapse", "status"]
SHOWN = {"key": "#", "claim": "claim", "paper": "paper", "measured": "measured here (95% interval)",
         "power": "power (after Holm)", "collapse": "collapsed / measured runs", "status": "status"}
"""The columns the report's claims table shows, with their headers (all columns go to CSV)."""
_C = [c.upper() for c in comparators()]
_REF = COST_REFERENCE.upper()
_GAINS = " / ".join(f"+{g:g}" for g in PAPER_GAINS.values())

RULES = (
    f"F1 and robustness claims: finished records only; F1 is macro-F1 in points (100 x F1) after fine-tuning at "
    "the main pretraining setting. One row per dataset, encoder (cnn, vit), label fraction and comparator: "
    f"{NAME} is compared with {' and with '.join(_C)} separately, paired by seed (same label subset, head "
    f"initialisation and test set). Interval: {LEVEL:.0%} t interval (n - 1 df) over seeds of the per-seed "
    f"difference; with one seed a paired bootstrap over test images ({N_BOOT} resamples, percentile), which ignores "
    "seed noise.",
    "The family: the rows named above the table, fixed before any result is read (claims.family in the results "
    "folder's config.yaml; by default every (a), (d) and (e) row per encoder of that config's grid, or of the "
    "settings the records hold when the folder has no config.yaml). Holm's correction runs over exactly that "
    "family; a family row that could not be measured, or has no t test, counts with p = 1. Supported / "
    f"contradicted: p_holm below the family's alpha (0.05 unless configured) and >= {MIN_SEEDS} seeds, the "
    "contrast on the claimed / the other side of 0; else inconclusive (\"inconclusive — too few seeds (n)\" below "
    f"{MIN_SEEDS} seeds). A row outside the family is measured but gets no verdict (\"{OUTSIDE}\").",
    "Power, for every F1 and robustness row: the smallest true difference its n seeds detect with 80% power "
    "(unless configured) in a two-sided paired t test at alpha / m (Holm's first step, m = the family's size), from "
    "the noncentral t with the row's observed paired standard deviation; and the seeds the paper's gain (a "
    f"{REFERENCE_EFFECT:g}-point difference for (d), (e), which quote no figure) would need at that spread. "
    "\"underpowered\" marks a row without a verdict whose detectable difference exceeds that gain.",
    "Gates. Collapse never vetoes a verdict: the collapse column shows, for every method and encoder behind the "
    "row, its runs collapsed / runs measured (\"COLLAPSED\" when any; \"not measured\" for records without the "
    "rank measure). A cell (dataset, method, encoder, label fraction, setting) is at chance when fewer than "
    f"{CHANCE_SHARE:.0%} of its seeds' records are significantly above chance; a comparison is left out only when "
    f"both methods' cells are at chance (\"{BOTH_AT_CHANCE}\"; for (d), (e) at the main or the compared level); a "
    "method at chance where its comparator is not "
    "enters with its F1 as measured (its loss). \"not measured\": the records lack a cell the row needs.",
    f"(a) F1 gain at 1 / 10 / 100% labels: the contrast is {NAME} - comparator, supported above 0. The paper's gain "
    f"({_GAINS} points, scored by its reference code) is read against the paired interval of {NAME} - comparator "
    "on f1_seed_code: \"the interval contains 0 and the paper's value\", \"contains the paper's value and "
    "excludes 0\", or \"excludes the paper's value\"; no equivalence is claimed. A cnn+vit row is a labelled "
    "average of the two encoders within each seed, outside the default family; when one encoder's interval lies "
    "entirely above 0 and the other's entirely below, it says \"no pooled verdict\".",
    "(d) batch size, (e) pretraining epochs. Direction: a method's loss at a level = its F1 at the main level "
    "(batch size 16 when run; the most epochs run at the main batch size) - its F1 at that level, in points "
    f"(positive: F1 lost); the contrast is {NAME}'s loss - the comparator's at each other level, the other factor "
    f"held at the main setting; supported ({NAME} more robust) below 0. Each method's own loss is shown with its "
    "interval.",
    f"(b) less pretraining time: one row per setting (dataset, device, batch size, epochs; never pooled), "
    f"r = t({NAME}) / (t(X-cnn) + t(X-vit)) per seed, t = time per pretraining epoch; {LEVEL:.0%} t interval of "
    f"log r over seeds, shown as a ratio; supported iff the interval lies at or below {TIME_BOUND:g} (69% less, "
    "the claim as stated, with no tolerance either way; the paper's quoted "
    f"{PAPER_MINUTES['cass']} / {PAPER_MINUTES['dino']} min give {QUOTED_RATIO:.3f}), contradicted iff it lies "
    f"above, inconclusive otherwise and with one run. X = {_REF} is the paper's claim; "
    + "; ".join(f"X = {c} asks the same question" for c in _C if c != _REF) + ". Cost rows are outside the family. "
    f"A seed whose CPU run's training thread ran less than {CONTENTION_BAR:.0%} of its measured epochs' wall time "
    "(another job or a pause held it up; `pretrain_cpu_share`) is left out and counted in the row.",
    f"(c) twice as efficient restates (b) with bound {EFFICIENCY_BAR:g}, plus the FLOPs-per-image ratio "
    f"(deterministic) against {_REF}-cnn + {_REF}-vit: supported iff both are at most {EFFICIENCY_BAR:g}, "
    "contradicted iff either lies above.",
)


def _power(row: Row, status: str, family: Family) -> tuple[str, float, int | None]:
    n, sd = row.interval.n, row.sd
    if not row.tested or n == 0:
        return "—", math.nan, None
    if n < 2 or not math.isfinite(sd):
        return f"{n} seed{'s' * (n != 1)}: no spread to judge power", math.nan, None
    effect = row.effect if math.isfinite(row.effect) else REFERENCE_EFFECT
    mde = detectable_effect(n, sd, family.alpha, family.size, family.power)
    need = seeds_needed(effect, sd, family.alpha, family.size, family.power)
    named = f"the paper's +{effect:g}" if math.isfinite(row.effect) and row.base["kind"] == "a" else \
        f"a {effect:g}-point difference"
    text = f"{n} seeds detect >= {mde:.1f} points; {named} needs " + (f"≈ {need} seeds" if need else
                                                                      f"more than {MAX_SEEDS:,} seeds")
    underpowered = status not in (SUPPORTED, CONTRADICTED) and mde > abs(effect)
    return ("underpowered: " if underpowered else "") + text, mde, need


def _status(row: Row, in_family: bool, p_holm: float, alpha: float) -> str:
    if row.status is not None:
        return row.status
    if not in_family:
        return OUTSIDE
    if row.interval.n < MIN_SEEDS:
        return f"{TOO_FEW_SEEDS} ({row.interval.n})"
    if p_holm < alpha:
        return SUPPORTED if row.direction * row.interval.mean > 0 else CONTRADICTED
    return INCONCLUSIVE


def _decide(rows: list[Row], family: Family) -> pd.DataFrame:
    keys = set(family.keys)
    members = [i for i, row in enumerate(rows) if row.tested and row.base["key"] in keys]
    p_values = [rows[i].interval.p if rows[i].status is None and rows[i].interval.method == "t"
                and math.isfinite(rows[i].interval.p) else 1.0 for i in members]
    adjusted = dict(zip(members, holm(p_values)))
    out = []
    for i, row in enumerate(rows):
        p_holm = adjusted.get(i, math.nan)
        status = _status(row, i in adjusted, p_holm, family.alpha)
        power, mde, need = _power(row, status, family)
        measured = row.measured
        if row.tested and row.status is None and math.isfinite(row.interval.p):
            measured += f"; p {row.interval.p:.3g}" + (f", Holm {p_holm:.3g} (family of {family.size})"
                                                       if i in adjusted else "")
        iv = row.interval
        out.append({**row.base, "measured": measured, "estimate": iv.mean, "low": iv.low, "high": iv.high,
                    "n": iv.n, "sd": row.sd, "p": iv.p, "p_holm": p_holm, "in_family": i in adjusted, "mde": mde,
                    "seeds_needed": need, "power": power, "collapse": row.collapse or "—", "status": status})
    return pd.DataFrame(out).reindex(columns=COLUMNS)


def check_claims(records: pd.DataFrame, batch_size: float | None, epochs: float | None, predictions: Path | None,
                 family: Family | None = None) -> pd.DataFrame:
    """Every claim of the paper against every comparator, measured (rules: :data:`RULES`).

    Args:
        records: the records frame (:func:`cass_bench.report.load.normalise`); only ``status == "ok"`` rows count,
            and an ``above_chance`` of None counts as not above chance.
        batch_size: the main batch size (F1 claims; the main level of (d); held in (e)).
        epochs: the main pretraining epoch count (F1 claims; the main level of (e); held in (d)).
        predictions: folder with ``<record_id>.npz`` (``y_true``, ``y_score``) for the one-seed bootstrap, or None.
        family: the pre-registered family (:func:`cass_bench.report.family.claim_family`); None: the default
            family over the settings the records hold.

    Returns:
        One row per claim row with columns :data:`COLUMNS`: every family row, and every row the records allow.
    """
    shown = record_rows(records, batch_size, epochs)
    family = family if family is not None else Family(shown, RECORD_SOURCE)
    specs = ordered([*family.rows, *shown])
    df = prepare(records)
    table = CellTable(df)
    gains = gain_rows(table, [s for s in specs if s.claim == "a"], batch_size, epochs,
                      prediction_bootstrap(df, batch_size, epochs, predictions))
    sweeps = robustness_rows(table, [s for s in specs if s.claim != "a"], batch_size, epochs)
    return _decide([*gains, *cost_rows(records), *sweeps], family)


def rule_lines() -> tuple[str, ...]:
    """The rule of every claim, as the report quotes it."""
    return RULES


def family_lines(family: Family) -> list[str]:
    """The family in words: its size, levels, source and rows."""
    return [f"Family: Holm's correction over {family.size} rows at alpha {family.alpha:g}, power stated at "
            f"{family.power:.0%}; from {family.source}: " + (", ".join(family.keys) or "none") + "."]


def summary_lines(claims: pd.DataFrame, family: Family) -> list[str]:
    """The family's verdicts counted, and what the (a) rows of each encoder can detect at their seeds."""
    member = claims[claims["in_family"].astype(bool)]
    kinds = member["status"].map(lambda s: s if s in (SUPPORTED, CONTRADICTED) else "not testable"
                                 if s.startswith("not testable") else NOT_MEASURED if s == NOT_MEASURED else
                                 INCONCLUSIVE)
    counts = ", ".join(f"{int((kinds == k).sum())} {k}" for k in (SUPPORTED, CONTRADICTED, INCONCLUSIVE,
                                                                 "not testable", NOT_MEASURED))
    weak = int(member["power"].str.startswith("underpowered").sum())
    lines = [f"Verdicts in the family of {family.size}: {counts}; {weak} of them underpowered."]
    gains = claims[(claims["kind"] == "a") & claims["mde"].notna()]
    parts = []
    for arch, rows in gains.groupby("arch", sort=False):
        seeds = "/".join(str(n) for n in sorted(rows["n"].unique()))
        able = int((rows["mde"] <= REFERENCE_EFFECT).sum())
        parts.append(f"{arch} rows detect >= {rows['mde'].min():.1f}–{rows['mde'].max():.1f} points at {seeds} "
                     f"seeds ({able} of {len(rows)} detect a {REFERENCE_EFFECT:g}-point gain)")
    if parts:
        lines.append(f"Power of the (a) rows ({family.power:.0%} after Holm, observed paired spread): "
                     + "; ".join(parts) + ".")
    return lines


def claims_table(claims: pd.DataFrame) -> Table:
    """The claim rows as the report shows them (all columns go to CSV)."""
    cells = claims[list(SHOWN)].rename(columns=SHOWN)
    return Table(cells.astype(str), data=claims)

