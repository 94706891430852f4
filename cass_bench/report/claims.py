"""Checks of the CASS paper's claims against the records, as paired intervals rather than point comparisons.

One row per claim and comparator (DINO and BYOL each, never the better of the two, which would be chosen after
looking at the means). The rule of every claim is written once in :data:`RULES`, which the report quotes; the
constants below are the ones the code uses. Statistics are in :mod:`cass_bench.report.stats`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cass_bench.evaluation.chance import score_macro_f1 as macro_f1
from cass_bench.methods.registry import PROPOSED, comparators
from cass_bench.report.cells import CHANCE_SHARE
from cass_bench.report.costs import COST_REFERENCE, JOINT
from cass_bench.report.load import PRETRAINED, RUN_COLLAPSED, RUN_KEYS, finished
from cass_bench.report.render import Table, fraction_text
from cass_bench.report.stats import (CONTRADICTED, INCONCLUSIVE, SUPPORTED, Interval, bootstrap_differences, holm,
                              outcome, paired_interval, percentile_interval, slope)

COMPARATORS = tuple(comparators())
PAPER_TIME = "69% less (DINO 26 h 21 m, CASS 7 h 11 m)"
PAPER_GAINS = {0.01: 3.8, 0.1: 5.9, 1.0: 10.13}
CLAIMED_REDUCTION = 0.69
REDUCTION_TOLERANCE = 0.05
TIME_BOUND = round(1 - CLAIMED_REDUCTION + REDUCTION_TOLERANCE, 4)
EFFICIENCY_BAR = 0.5
MAIN_EVAL = "finetune"
LEVEL = 0.95
ALPHA = 0.05
MIN_SEEDS = 3
N_BOOT = 1000
NOT_MEASURED = "not measured"
ALL_AT_CHANCE = "not testable: every cell at chance"
COLUMNS = ["key", "claim", "comparator", "eval", "paper", "measured", "estimate", "low", "high", "n", "p_holm",
           "status"]
SHOWN = {"key": "#", "claim": "claim", "eval": "eval", "paper": "paper", "measured": "measured here (95% interval)",
         "status": "status"}
"""The columns the report's claims table shows, with their headers."""
_P, _C = PROPOSED.upper(), [c.upper() for c in COMPARATORS]
_REF = COST_REFERENCE.upper()

RULES = (
    f"All claims: finished records only. F1 is macro-F1 in points (100 x F1) after {MAIN_EVAL} at the main "
    f"pretraining setting. {_P} is compared with {' and with '.join(_C)} separately, paired by seed (same label subset, "
    f"head init and test set). Interval: {LEVEL:.0%} t interval (n - 1 df) over seeds of the per-seed difference "
    "(averaged over the cells within a seed first); with one seed a paired bootstrap over test images "
    f"({N_BOOT} resamples, percentile), which ignores seed noise.",
    f"(a), (d), (e) need >= {MIN_SEEDS} seeds, else \"inconclusive — too few seeds (n)\" (interval still shown). "
    "Their two-sided p-values (paired t test; bootstrap with one seed) are Holm-adjusted over all (a), (d), (e) "
    f"rows; supported / contradicted also need p_holm < {ALPHA}, else inconclusive.",
    f"Gates, before any verdict: \"not testable\" if any {_P} pretraining run behind the row collapsed (either of "
    "its two encoders, whichever the row compares). A cell "
    "(dataset, method, arch, label fraction, eval, and sweep level for (d), (e)) is at chance when fewer than "
    f"{CHANCE_SHARE:.0%} of its seeds' records are significantly above chance; comparisons touching such a cell "
    f"are left out (count shown), and a row left with none is \"{ALL_AT_CHANCE}\".",
    f"(a) F1 gain at 1 / 10 / 100 % labels: supported iff the interval of {_P} - comparator lies above 0, "
    "contradicted iff below 0; the text says whether the paper's gain lies inside the interval.",
    f"(b) less pretraining time: per (dataset, device, batch size, epochs, seed), r = t({_P}) / (t(X-cnn) + t(X-vit)), "
    f"t = time per pretraining epoch; supported iff the interval of r lies at or below {TIME_BOUND:g} "
    f"(1 - {CLAIMED_REDUCTION:g} + a {REDUCTION_TOLERANCE:g} tolerance), contradicted iff its lower bound is "
    f"above; one run: its value against the bound. X = {_REF} is the paper's claim; "
    + "; ".join(f"X = {c} asks the same question" for c in _C if c != _REF) + ".",
    f"(c) twice as efficient: supported iff the FLOPs-per-image ratio (deterministic) and the time ratio's interval "
    f"are both <= {EFFICIENCY_BAR:g} x {_REF}-cnn + {_REF}-vit; contradicted iff either lies above; measured ones "
    "only.",
    "(d) robustness to batch size: per method, seed and (dataset, arch, label fraction), the F1 change from the "
    "largest to the smallest batch size (at the main epochs; negative = the method loses F1 when the batch shrinks) "
    f"and the least-squares slope per doubling; supported iff {_P}'s change minus the comparator's has an interval "
    f"above 0 ({_P} loses less), contradicted iff below; needs >= 2 batch sizes, else not measured.",
    "(e) robustness to pretraining epochs: as (d), from the most to the fewest epochs, at the main batch size.",
)


def _row(base: dict[str, Any], status: str, measured: str, iv: Interval | None = None) -> dict[str, Any]:
    iv = iv or Interval(math.nan, math.nan, math.nan, 0, "none")
    return {**base, "measured": measured, "estimate": iv.mean, "low": iv.low, "high": iv.high, "n": iv.n, "p": iv.p,
            "status": status}


def _prepare(records: pd.DataFrame) -> pd.DataFrame:
    df = finished(records)
    return df.assign(chance_ok=df["above_chance"].eq(True).astype(float),  # unknown (None) counts as not above
                     f1=100 * df["f1_macro"])


def _interval_text(iv: Interval, unit: str = "") -> str:
    how = "t" if iv.method == "t" else "paired bootstrap over test images"
    return f"{iv.mean:+.2f}{unit} " + (f"[{iv.low:+.2f}, {iv.high:+.2f}] ({iv.level:.0%}, {how}, {iv.n} seed"
                                      f"{'s' * (iv.n != 1)})" if iv.bounded else f"({iv.n} seed: no interval)")


def _collapse_gate(cass: pd.DataFrame) -> str | None:
    """A run counts as collapsed when any of its encoders did, whichever encoder the claim row compares."""
    runs = cass.groupby(RUN_KEYS, dropna=False)[RUN_COLLAPSED].agg(lambda s: bool(s.eq(True).any()))
    if not runs.any():
        return None
    init = ", ".join(sorted({str(v) for v in cass["init"].dropna()})) or "unknown"
    return (f"not testable: {_P} collapsed in {int(runs.sum())}/{len(runs)} runs; init {init}; "
            "the reference starts from ImageNet weights")


def _gated(row: dict[str, Any], gate: str | None) -> dict[str, Any]:
    """The row with its verdict replaced by the collapse gate (the measurement is kept, out of the Holm family)."""
    if gate is None or row["status"] == NOT_MEASURED:
        return row
    return {**row, "status": gate, "p": math.nan, "measured": "measured, but no verdict: " + row["measured"]}


def _cell_name(index: tuple[Any, ...]) -> str:
    return "/".join(fraction_text(p) if isinstance(p, float) else str(p) for p in index)


def _paired(base: dict[str, Any], diff: pd.Series, left_out: list[str], extra: Any = "",
            bootstrap: Any = None) -> dict[str, Any]:
    """The row of a paired comparison: ``diff`` holds CASS - comparator per cell and seed (last index level)."""
    note = f"; {len(left_out)} cell(s) left out at chance ({', '.join(left_out)})" if left_out else ""
    if diff.empty:
        return _row(base, ALL_AT_CHANCE, f"nothing left to compare{note}")
    wide = diff.unstack("seed")
    kept = wide[wide.notna().mean(axis=1) >= 0.5]
    complete = kept.loc[:, kept.notna().all()]
    dropped = len(wide) - len(kept), wide.shape[1] - complete.shape[1]
    if any(dropped):
        note += f"; incomplete: {dropped[0]} cell(s), {dropped[1]} seed(s) dropped"
    if complete.empty:
        return _row(base, NOT_MEASURED, f"no seed has every compared cell{note}")
    iv = paired_interval(complete.mean().to_numpy(), LEVEL)
    if iv.n == 1 and bootstrap is not None:
        iv = bootstrap(complete.index, complete.columns[0])
        if isinstance(iv, str):
            note += f"; no bootstrap: {iv}"
            iv = paired_interval(complete.mean().to_numpy(), LEVEL)
    cells = ", ".join(f"{_cell_name(i)} {v:+.2f}" for i, v in complete.mean(axis=1).items())
    measured = f"{_interval_text(iv, ' F1 points')}{extra(iv) if callable(extra) else extra}; per cell: {cells}{note}"
    return _row(base, outcome(iv, 0.0, True, MIN_SEEDS), measured, iv)


def _compatible(iv: Interval, gain: float) -> str:
    if not iv.bounded:
        return f"; paper's +{gain} not assessable (no interval)"
    inside = iv.low <= gain <= iv.high
    return f"; paper's +{gain} " + ("inside the interval (compatible)" if inside else
                                    "outside the interval (not compatible)")


def _bootstrapper(pair: pd.DataFrame, comp: str, predictions: Path | None) -> Any:
    def run(cells: pd.Index, seed: Any) -> Interval | str:
        if predictions is None:
            return "no predictions folder"
        ids = pair[pair["seed"] == seed].pivot_table(index=["dataset", "arch"], columns="method", values="record_id",
                                                     aggfunc="first")
        datasets = sorted(ids.index.get_level_values("dataset").unique())
        points, draws = [], []
        for cell in cells:
            files = [Path(predictions) / f"{ids.at[cell, m]}.npz" for m in (PROPOSED, comp)]
            if missing := [f.name for f in files if not f.exists()]:
                return f"missing {missing[0]}"
            a, b = (np.load(f) for f in files)
            if not np.array_equal(a["y_true"], b["y_true"]):
                return f"{_cell_name(cell)}: the two methods' test labels differ"
            y, sa, sb = a["y_true"], a["y_score"], b["y_score"]
            points.append(100 * (macro_f1(y, sa) - macro_f1(y, sb)))
            # one seed per dataset: the archs of a dataset share their resampled test images
            draws.append(100 * bootstrap_differences(y, sa, sb, macro_f1, N_BOOT, datasets.index(cell[0])))
        return percentile_interval(float(np.mean(points)), np.mean(draws, axis=0), LEVEL)
    return run


def _gain_rows(df: pd.DataFrame, batch_size: int | None, epochs: int | None,
               predictions: Path | None) -> list[dict[str, Any]]:
    main = df[(df["eval"] == MAIN_EVAL) & (df["batch_size"] == batch_size) & (df["pretrain_epochs"] == epochs)]
    rows = []
    for fraction, paper_gain in PAPER_GAINS.items():
        at = main[np.isclose(main["label_fraction"], fraction)]
        label = fraction_text(fraction)
        for comp in COMPARATORS:
            base = dict(key=f"a@{label} vs {comp}", claim=f"F1 gain over {comp.upper()} at {label} labels",
                        comparator=comp, eval=MAIN_EVAL, paper=f"+{paper_gain} F1 points")
            pair = at[at["method"].isin([PROPOSED, comp])]
            wide = pair.pivot_table(index=["dataset", "arch", "seed"], columns="method", values="f1").dropna()
            if wide.empty or PROPOSED not in wide or comp not in wide:
                rows.append(_row(base, NOT_MEASURED, f"no paired {_P} and {comp} records at {label} labels"))
                continue
            paired = pair[pd.MultiIndex.from_frame(pair[["dataset", "arch", "seed"]]).isin(wide.index)]
            chance = paired.groupby(["dataset", "arch", "method"])["chance_ok"].mean() < CHANCE_SHARE
            bad = chance[chance].index
            left_out = [f"{_cell_name(i[:2])} {i[2]}" for i in bad]
            diff = (wide[PROPOSED] - wide[comp])[~wide.index.droplevel("seed").isin(bad.droplevel("method"))]
            rows.append(_gated(_paired(base, diff, left_out, lambda iv, g=paper_gain: _compatible(iv, g),
                                       _bootstrapper(paired, comp, predictions)),
                               _collapse_gate(paired[paired["method"] == PROPOSED])))
    return rows


def _robust_rows(df: pd.DataFrame, factor: str, fixed: str, value: int | None, letter: str,
                 words: str) -> list[dict[str, Any]]:
    cells = ["dataset", "arch", "label_fraction"]
    sweep = df[(df["eval"] == MAIN_EVAL) & (df[fixed] == value) & df[PRETRAINED]]
    fewer = "smallest batch size" if factor == "batch_size" else "fewest epochs"
    at = f"{fixed.replace('_', ' ')} {value if value is None else f'{value:g}'}"
    rows = []
    for comp in COMPARATORS:
        base = dict(key=f"{letter} vs {comp}", claim=f"more robust to {words} than {comp.upper()}", comparator=comp,
                    eval=MAIN_EVAL, paper=f"smaller F1 loss at the {fewer}")
        pair = sweep[sweep["method"].isin([PROPOSED, comp])]
        f1 = pair.pivot_table(index=[*cells, "seed", factor], columns="method", values="f1").dropna()
        levels = sorted(f1.index.get_level_values(factor).unique()) if {PROPOSED, comp} <= set(f1.columns) else []
        if len(levels) < 2:
            found = ", ".join(f"{v:g}" for v in levels) or "none"
            rows.append(_row(base, NOT_MEASURED, f"needs >= 2 {words} finished by {_P} and {comp} at {at} "
                             f"(found: {found})"))
            continue
        gate = _collapse_gate(pair[pair["method"] == PROPOSED])
        chance = (pair.groupby([*cells, "method", factor])["chance_ok"].mean() < CHANCE_SHARE).groupby(cells).any()
        bad = chance[chance].index
        left_out = [_cell_name(i) for i in bad]
        f1 = f1[~f1.index.droplevel(["seed", factor]).isin(bad)]
        if f1.empty:
            rows.append(_gated(_paired(base, pd.Series(dtype=float), left_out), gate))
            continue
        changes, slopes = {}, {}
        for method in (PROPOSED, comp):
            wide = f1[method].unstack(factor).sort_index(axis=1)
            wide = wide[wide.notna().sum(axis=1) >= 2]
            changes[method] = wide.bfill(axis=1).iloc[:, 0] - wide.ffill(axis=1).iloc[:, -1]
            x = np.log2(wide.columns.to_numpy(dtype=float))
            slopes[method] = pd.Series([slope(x, r) for r in wide.to_numpy()], index=wide.index, dtype=float)
        extra = "; change " + ", ".join(f"{m} {c.mean():+.2f}" for m, c in changes.items()) + \
            "; slope per doubling " + ", ".join(f"{m} {s.mean():+.2f}" for m, s in slopes.items()) + \
            f" ({words} {', '.join(f'{v:g}' for v in levels)} at {at})"
        rows.append(_gated(_paired(base, (changes[PROPOSED] - changes[comp]).dropna(), left_out, extra), gate))
    return rows


def _cost_rows(df: pd.DataFrame) -> list[dict[str, Any]]:
    runs = df[df[PRETRAINED]].groupby(RUN_KEYS, dropna=False)[["pretrain_epoch_time_s", "flops_per_image"]].first()
    wide = runs.unstack(["method", "encoders"]) if len(runs) else runs

    def ratio(column: str, comp: str) -> pd.Series:
        need = [(column, PROPOSED, JOINT), *((column, comp, arch) for arch in JOINT.split("+"))]
        if not all(c in wide.columns for c in need):
            return pd.Series(dtype=float)
        return (wide[need[0]] / (wide[need[1]] + wide[need[2]])).dropna()

    def describe(iv: Interval, what: str) -> str:
        plain = f"{iv.n} run{'s' * (iv.n != 1)}" + (", deterministic" if what == "FLOPs" else ": no interval")
        return f"{what} ratio {iv.mean:.2f} " + (f"[{iv.low:.2f}, {iv.high:.2f}] ({iv.level:.0%} t, {iv.n} runs)"
                                                 if iv.bounded else f"({plain})")

    rows = []
    for comp in COMPARATORS:
        paper = PAPER_TIME if comp == COST_REFERENCE else "not a paper claim: same question"
        base = dict(key=f"b vs {comp}", claim=f"less pretraining time than {comp.upper()}", comparator=comp,
                    eval="pretraining", paper=paper)
        r = ratio("pretrain_epoch_time_s", comp)
        if r.empty:
            rows.append(_row(base, NOT_MEASURED, f"no {_P} run with both {comp}-cnn and {comp}-vit runs beside it "
                             "on the same device"))
            continue
        iv = paired_interval(r.to_numpy(), LEVEL)
        measured = f"{describe(iv, 'time')}, i.e. {1 - iv.mean:.0%} less time per epoch; bound {TIME_BOUND:g}"
        rows.append(_row(base, outcome(iv, TIME_BOUND, False, needs_seeds=False), measured, iv))
    base = dict(key=f"c vs {COST_REFERENCE}", claim=f"twice as computationally efficient as {_REF}",
                comparator=COST_REFERENCE, eval="pretraining", paper=f"<= {EFFICIENCY_BAR:g} x {_REF}'s cost")
    flops, time = ratio("flops_per_image", COST_REFERENCE), ratio("pretrain_epoch_time_s", COST_REFERENCE)
    if flops.empty and time.empty:
        return [*rows, _row(base, NOT_MEASURED, f"no {_P} run with both {_REF}-cnn and {_REF}-vit runs beside it "
                                               "on the same device")]
    measured = [(what, paired_interval(r.to_numpy(), LEVEL) if what == "time" else
                 Interval(float(r.mean()), math.nan, math.nan, len(r), "none"))
                for what, r in (("FLOPs", flops), ("time", time)) if not r.empty]
    verdicts = {outcome(iv, EFFICIENCY_BAR, False, needs_seeds=False) for _, iv in measured}
    status = CONTRADICTED if CONTRADICTED in verdicts else SUPPORTED if verdicts == {SUPPORTED} else INCONCLUSIVE
    text = "; ".join(describe(iv, what) for what, iv in measured) + f"; bound {EFFICIENCY_BAR:g}"
    return [*rows, _row(base, status, text, measured[-1][1])]


def check_claims(records: pd.DataFrame, batch_size: int | None, epochs: int | None,
                 predictions: Path | None) -> pd.DataFrame:
    """Every claim of the paper against every comparator, measured (rules: :data:`RULES`).

    Args:
        records: the records frame (:func:`cass_bench.report.load.normalise`); only ``status == "ok"`` rows count,
            and an ``above_chance`` of None counts as not above chance.
        batch_size: the main batch size (F1 claims; the anchor of the epoch sweep).
        epochs: the main pretraining epoch count (F1 claims; the anchor of the batch-size sweep).
        predictions: folder with ``<record_id>.npz`` (``y_true``, ``y_score``) for the one-seed bootstrap, or None.

    Returns:
        One row per claim and comparator with columns ``COLUMNS``.
    """
    df = _prepare(records)
    rows = [*_gain_rows(df, batch_size, epochs, predictions), *_cost_rows(df),
            *_robust_rows(df, "batch_size", "pretrain_epochs", epochs, "d", "batch sizes"),
            *_robust_rows(df, "pretrain_epochs", "batch_size", batch_size, "e", "pretraining epochs")]
    out = pd.DataFrame(rows)
    family = out["key"].str[0].isin(["a", "d", "e"]) & out["p"].notna()
    out["p_holm"] = math.nan
    out.loc[family, "p_holm"] = holm(out.loc[family, "p"].tolist())
    decided = family & out["status"].isin([SUPPORTED, CONTRADICTED]) & ~(out["p_holm"] < ALPHA)
    out.loc[decided, "measured"] = out.loc[decided, "measured"] + f"; not significant after Holm (p_holm >= {ALPHA})"
    out.loc[decided, "status"] = INCONCLUSIVE
    return out[COLUMNS]


def rule_lines() -> tuple[str, ...]:
    """The rule of every claim, as the report quotes it."""
    return RULES


def claims_table(claims: pd.DataFrame) -> Table:
    """The claim rows as the report shows them (all columns go to CSV)."""
    cells = claims[list(SHOWN)].rename(columns=SHOWN)
    return Table(cells.astype(str), data=claims)
