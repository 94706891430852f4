"""The report of a results folder, regenerated from ``<out>/records.jsonl`` alone.

``report.md`` (plus ``report.tex`` or ``report_<table>.csv`` on request) holds: the scale of the run (device,
initialisation, fine-tuning budget, evaluations), the claim checks (:mod:`cass_bench.claims`: paired intervals and
supported / contradicted / inconclusive / not testable), (1) downstream macro-F1 at the main pretraining setting
for each evaluation (fine-tuned, linear probe, kNN) with chance levels and companion metrics, cells at chance (†)
and from collapsed runs (‡) marked, (2) pretraining efficiency with ratios to DINO, (3) batch-size and (4)
pretraining-epoch robustness, (5) failures, (6) collapse and (7) PNG plots beside it. Cells are the mean ± sample
std over seeds, with n shown when n > 1.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from cass_bench.chance import is_above_chance
from cass_bench.claims import RULES, check_claims
from cass_bench.errors import UserError
from cass_bench.plots import Plot, collapse_plot, cost_plot, f1_plot
from cass_bench.render import STYLES, Section, Table, fraction_text, render_latex, render_markdown, write_csv
from cass_bench.results import RECORD_FIELDS, RecordStore
from cass_bench.validity import COLLAPSE_RULE, chance_table, collapse_runs, collapse_table, ssl_helped_lines

EXTRA_FIELDS = ("encoders", "backbone", "precision", "finetune_epochs", "pretrain_params", "encoder_params", "embedding_std",
                "embedding_collapsed", "eval", "init", "above_chance", "collapsed", "finetune_budget", "finetune_steps",
                "feature_rank", "feature_std", "chance_f1_majority", "chance_f1_random", "labelled_per_class",
                "above_chance_p")
NUMERIC_FIELDS = ("label_fraction", "batch_size", "pretrain_epochs", "image_size", "seed", "finetune_epochs",
                  "f1_macro", "f1_micro", "f1_seed_code", "balanced_accuracy", "auroc", "accuracy",
                  "pretrain_epoch_time_s", "pretrain_time_s", "images_per_s", "peak_gpu_mem_mb", "peak_rss_mb",
                  "flops_per_image", "pretrain_params", "encoder_params", "embedding_std", "finetune_steps",
                  "feature_rank", "feature_std", "chance_f1_majority", "chance_f1_random", "above_chance_p")
METHOD_ORDER = ("cass", "dino", "byol", "supervised")
EVAL_ORDER = ("finetune", "linear", "knn")
EVAL_TITLES = {"finetune": "fine-tuned end to end", "linear": "linear probe on frozen features",
               "knn": "kNN on frozen features"}
ENCODER_ORDER = ("cnn", "vit", "cnn+vit")
CELL = ["dataset", "method", "arch"]
RUN_KEYS = ["dataset", "method", "encoders", "batch_size", "pretrain_epochs", "seed"]
COST_KEYS = ["dataset", "batch_size", "pretrain_epochs", "method", "encoders"]
COMPANIONS = {"f1_micro": "micro-F1", "balanced_accuracy": "balanced accuracy",
              "f1_seed_code": "F1 as the reference code scores it (f1_seed_code, comparable with the paper)",
              "auroc": "AUROC"}
HEADERS = {"batch_size": "batch size", "pretrain_epochs": "epochs", "label_fraction": "labels",
           "record_id": "record", "embedding_std": "embedding std"}
MISSING = "—"
TERMINAL_SECTIONS = ("scale", "claims", "f1_macro", "efficiency")
PAPER_SCALE = ("Paper scale: Brain MRI, ISIC-2019, Dermofit, Autoimmune; one RTX8000; 384 px; ResNet-50 + ViT-B/16; "
               "100 pretraining epochs at batch 16 (robustness: batch 8, 16, 32); fp32.")


@dataclass(frozen=True)
class Setting:
    """The pretraining setting of the main F1 table (None when no pretraining record finished)."""

    batch_size: float | None
    pretrain_epochs: float | None

    def describe(self) -> str:
        """The setting in words."""
        if self.batch_size is None:
            return "no pretraining run finished"
        epochs = _key_text(self.pretrain_epochs)
        return f"batch size {_key_text(self.batch_size)}, {epochs} pretraining epoch{'' if epochs == '1' else 's'}"


@dataclass(frozen=True)
class Quantity:
    """An efficiency figure: its record field, how it is shown, and how DINO-cnn + DINO-vit combine."""

    column: str
    header: str
    short: str
    fmt: str
    scale: float
    combine: str


def _quantities(memory: str) -> list[Quantity]:
    memory_header = "peak GPU mem (MB)" if memory == "peak_gpu_mem_mb" else "peak RSS (MB, CPU: no GPU memory)"
    return [
        Quantity("pretrain_epoch_time_s", "time/epoch (s)", "time", ".2f", 1.0, "sum"),
        Quantity("images_per_s", "images/s", "img/s", ".1f", 1.0, "rate"),
        Quantity(memory, memory_header, "mem", ".0f", 1.0, "max"),
        Quantity("flops_per_image", "GFLOPs/image", "FLOPs", ".3g", 1e-9, "sum"),
        Quantity("pretrain_params", "params (M)", "params", ".2f", 1e-6, "sum"),
    ]


_COMBINE: dict[str, Callable[[pd.Series], float]] = {
    "sum": lambda s: s.sum(skipna=False),
    "max": lambda s: s.max(skipna=False),
    "rate": lambda s: 1 / (1 / s).sum(skipna=False),
}


def load_records(out: Path) -> pd.DataFrame:
    """Every record of a results folder, one row each, with every known field as a column.

    Raises:
        UserError: the records file is missing, empty or not JSON lines.
    """
    store = RecordStore(out)
    try:
        records = store.load()
    except json.JSONDecodeError as exc:
        raise UserError(f"{store.path} has a line that is not JSON ({exc.msg}); fix or remove that line") from None
    if not records:
        state = "is empty" if store.path.exists() else "does not exist"
        raise UserError(f"{store.path} {state}: run `python -m cass_bench run --out {out}` first, "
                        f"or pass the folder that holds records.jsonl")
    df = pd.DataFrame(records)
    df = df.reindex(columns=list(dict.fromkeys([*RECORD_FIELDS, *EXTRA_FIELDS, *df.columns])))
    for column in NUMERIC_FIELDS:
        df[column] = pd.to_numeric(df[column], errors="coerce")
    known = df[["f1_macro", "above_chance_p", "chance_f1_majority", "chance_f1_random"]].notna().all(axis=1)
    if known.any():
        df["above_chance"] = df["above_chance"].astype(object)
        df.loc[known, "above_chance"] = [is_above_chance(*row) for row in df.loc[known, [
            "f1_macro", "above_chance_p", "chance_f1_majority", "chance_f1_random"]].itertuples(index=False)]
    df["eval"] = df["eval"].fillna("finetune")
    df["init"] = df["init"].fillna("random")
    df["encoders"] = df["encoders"].fillna(df["arch"])
    flagged = df["collapsed"].eq(True)
    df["run_collapsed"] = flagged.groupby([df[k].fillna(-1) for k in RUN_KEYS]).transform("any")
    return df


def _key_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return MISSING
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if float(value).is_integer() else f"{value:g}"
    return str(value)


def stat_text(mean: float, std: float, n: int, fmt: str = ".3f") -> str:
    """``mean ± std (n=k)`` with n and std shown only when n > 1; a dash when there is no mean."""
    if pd.isna(mean):
        return MISSING
    if n > 1:
        return f"{mean:{fmt}} ± {std:{fmt}} (n={int(n)})"
    return f"{mean:{fmt}}"


def _number_text(value: float, fmt: str) -> str:
    return MISSING if pd.isna(value) else f"{value:{fmt}}"


def _rank(index: pd.Index) -> pd.Index:
    order = {"method": METHOD_ORDER, "arch": ENCODER_ORDER, "encoders": ENCODER_ORDER}.get(index.name)
    if order is None:
        return index
    return index.map(lambda v: f"{order.index(v) if v in order else len(order)}:{v}")


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_index(key=_rank) if len(frame) else frame


def _with_keys(cells: pd.DataFrame) -> pd.DataFrame:
    keys = cells.index.to_frame(index=False)
    keys = keys.apply(lambda c: c.map(fraction_text if c.name == "label_fraction" else _key_text))
    keys.columns = [HEADERS.get(c, c) for c in keys.columns]
    return pd.concat([keys, cells.reset_index(drop=True)], axis=1)


def _is_pretrained(df: pd.DataFrame) -> pd.Series:
    return df["batch_size"].notna()


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["status"] == "ok"]


def _finished_pretraining(df: pd.DataFrame) -> pd.DataFrame:
    ok = _ok(df)
    return ok[_is_pretrained(ok)]


PAPER_BATCH_SIZE = 16


def main_setting(df: pd.DataFrame, batch_size: float | None = None, epochs: float | None = None) -> Setting:
    """The pretraining setting of the main tables and the F1 claims, chosen, not tie-broken.

    The given ``batch_size`` / ``epochs`` when set; otherwise the paper's batch size 16 when any run finished at
    it (else the most common batch size) and the largest epoch count finished at that batch size.
    """
    ok = _finished_pretraining(df)
    if ok.empty:
        return Setting(None, None)
    sizes = ok["batch_size"]
    if batch_size is None:
        batch_size = PAPER_BATCH_SIZE if (sizes == PAPER_BATCH_SIZE).any() else float(sizes.mode().max())
    if epochs is None:
        at = ok.loc[sizes == batch_size, "pretrain_epochs"]
        epochs = float(at.max()) if not at.empty else float(ok["pretrain_epochs"].max())
    return Setting(float(batch_size), float(epochs))


def select_setting(df: pd.DataFrame, setting: Setting) -> pd.DataFrame:
    """Finished records of ``setting`` plus every finished record without pretraining (supervised)."""
    ok = _ok(df)
    at = (ok["batch_size"] == setting.batch_size) & (ok["pretrain_epochs"] == setting.pretrain_epochs)
    return ok[~_is_pretrained(ok) | at]


def metric_stats(rows: pd.DataFrame, metric: str, keys: list[str] | None = None) -> pd.DataFrame:
    """Mean, sample std and count over seeds of one metric.

    Args:
        rows: finished records.
        metric: record field, e.g. ``f1_macro``.
        keys: grouping fields (default dataset, method, arch, label_fraction).

    Returns:
        Columns ``mean``, ``std``, ``n`` indexed by ``keys``.
    """
    keys = keys or [*CELL, "label_fraction"]
    rows = rows[rows[metric].notna()].assign(
        _above=rows["above_chance"].astype("boolean").astype(float) if "above_chance" in rows else np.nan,
        _collapsed=rows["run_collapsed"].eq(True).astype(float) if "run_collapsed" in rows else 0.0)
    grouped = rows.groupby(keys)
    stats = grouped[metric].agg(mean="mean", std="std", n="count")
    stats["at_chance"] = grouped["_above"].mean() < 0.5
    stats["collapsed"] = grouped["_collapsed"].max() > 0
    return _sorted(stats)


AT_CHANCE_MARK, COLLAPSED_MARK = " †", " ‡"
MARKS_NOTE = ("† at chance: fewer than half of the cell's seeds are significantly above chance (permutation test, "
              "see the chance table); ‡ a pretraining run behind it collapsed (either encoder of a CASS run; section "
              "6). Cells at chance are left out of the claims; a claim resting on a collapsed CASS run is not "
              "testable.")


def _stat_cells(stats: pd.DataFrame, fmt: str = ".3f") -> pd.Series:
    def text(row: pd.Series) -> str:
        marks = (AT_CHANCE_MARK if bool(row.get("at_chance", False)) else "") + \
            (COLLAPSED_MARK if bool(row.get("collapsed", False)) else "")
        return stat_text(row["mean"], row["std"], row["n"], fmt) + marks
    return pd.Series([text(row) for _, row in stats.iterrows()], index=stats.index, dtype=object)


def metric_table(stats: pd.DataFrame) -> Table:
    """Rows dataset x method x arch, one column per label fraction; the best mean per dataset, arch and label
    fraction is bold."""
    if stats.empty:
        return Table(pd.DataFrame({"": ["no finished records"]}))
    best = stats["mean"].eq(stats.groupby(["dataset", "arch", "label_fraction"])["mean"].transform("max"))
    cells = _sorted(_stat_cells(stats).unstack("label_fraction", fill_value=MISSING))
    marks = best.unstack("label_fraction", fill_value=False).reindex(index=cells.index)
    headers = [fraction_text(f) for f in cells.columns]
    cells.columns = marks.columns = headers
    table_cells = _with_keys(cells)
    bold = pd.concat([pd.DataFrame(False, table_cells.index, table_cells.columns[:len(CELL)]),
                      marks.reset_index(drop=True).astype(bool)], axis=1)
    return Table(table_cells, bold, data=stats.reset_index())


def pretrain_runs(df: pd.DataFrame) -> pd.DataFrame:
    """One row per finished pretraining run, with ``encoders`` (``cnn+vit`` for CASS's joint run)."""
    runs = _finished_pretraining(df).copy()
    runs["encoders"] = runs["encoders"].fillna(runs["arch"])
    return runs.drop_duplicates(RUN_KEYS)


def memory_column(runs: pd.DataFrame) -> str:
    """``peak_gpu_mem_mb`` when any run measured GPU memory, else ``peak_rss_mb`` (CPU runs)."""
    return "peak_gpu_mem_mb" if runs["peak_gpu_mem_mb"].notna().any() else "peak_rss_mb"


def _dino_reference(means: pd.DataFrame, quantities: list[Quantity]) -> pd.DataFrame:
    lookup = means.index.droplevel("method")
    if "dino" not in means.index.get_level_values("method"):
        return pd.DataFrame(np.nan, index=lookup, columns=means.columns)
    dino = means.xs("dino", level="method")
    pair = dino[dino.index.get_level_values("encoders").isin(["cnn", "vit"])]
    groups = pair.groupby(level=["dataset", "batch_size", "pretrain_epochs"])
    combined = groups.agg({q.column: _COMBINE[q.combine] for q in quantities})[groups.size() == 2]
    combined = combined.assign(encoders="cnn+vit").set_index("encoders", append=True)
    return pd.concat([dino, combined]).reindex(lookup)


def cost_stats(runs: pd.DataFrame, memory: str) -> pd.DataFrame:
    """Efficiency per (dataset, batch size, epochs, method, encoders): mean, std, n over seeds and ratio to DINO.

    The ratio compares with DINO on the same encoders; CASS's joint run compares with DINO-cnn + DINO-vit: time,
    FLOPs and parameters summed, images/s combined as 1 / (1/a + 1/b), memory the larger of the two peaks.

    Args:
        runs: :func:`pretrain_runs`.
        memory: :func:`memory_column`.

    Returns:
        Columns ``<field>_mean``, ``<field>_std``, ``<field>_n``, ``<field>_ratio`` indexed by ``COST_KEYS``.
    """
    quantities = _quantities(memory)
    columns = [q.column for q in quantities]
    grouped = runs.groupby(COST_KEYS)[columns]
    means = grouped.mean()
    parts = {"mean": means, "std": grouped.std(), "n": grouped.count(),
             "ratio": means / _dino_reference(means, quantities).to_numpy()}
    flat = pd.concat(parts, axis=1)
    flat.columns = [f"{column}_{part}" for part, column in flat.columns]
    return _sorted(flat)


def cost_table(costs: pd.DataFrame, memory: str, setting: Setting) -> Table:
    """The efficiency table: figures with their spread over seeds, then each figure's ratio to DINO (the terminal
    summary keeps the rows of ``setting``)."""
    quantities = _quantities(memory)
    cells = pd.DataFrame(index=costs.index)
    for q in quantities:
        cells[q.header] = [stat_text(m * q.scale, s * q.scale, n, q.fmt) for m, s, n in
                           costs[[f"{q.column}_mean", f"{q.column}_std", f"{q.column}_n"]].itertuples(index=False)]
    for q in quantities:
        cells[f"{q.short} ×DINO"] = costs[f"{q.column}_ratio"].map(lambda v: _number_text(v, ".2f"))
    table = _with_keys(cells)
    keys = list(table.columns[:len(COST_KEYS)])
    terminal = [*keys, quantities[0].header, quantities[2].header, quantities[3].header,
                "time ×DINO", "mem ×DINO", "FLOPs ×DINO"]
    at = ((costs.index.get_level_values("batch_size") == setting.batch_size)
          & (costs.index.get_level_values("pretrain_epochs") == setting.pretrain_epochs))
    return Table(table, data=costs.reset_index(), terminal=terminal, terminal_rows=list(at))


def robustness_stats(df: pd.DataFrame, factor: str, other: str, value: float | None) -> pd.DataFrame:
    """Macro-F1 statistics per (dataset, method, arch, label fraction, ``factor``) at ``other == value``."""
    ok = _finished_pretraining(df)
    rows = ok[ok[other] == value]
    return metric_stats(rows, "f1_macro", [*CELL, "label_fraction", factor])


def robustness_table(stats: pd.DataFrame, factor: str) -> Table:
    """One column per value of ``factor`` and the spread (max - min of the means) across them."""
    cells = _sorted(_stat_cells(stats).unstack(factor, fill_value=MISSING))
    means = stats["mean"].unstack(factor).reindex(cells.index)
    spread = (means.max(axis=1) - means.min(axis=1)).where(means.count(axis=1) >= 2)
    prefix = "batch " if factor == "batch_size" else "epochs "
    cells.columns = [f"{prefix}{_key_text(v)}" for v in cells.columns]
    cells["spread (max − min)"] = spread.map(lambda v: _number_text(v, ".3f"))
    data = means.add_prefix(f"{factor}=").assign(spread=spread).reset_index()
    return Table(_with_keys(cells), data=data)


def failure_table(df: pd.DataFrame) -> Table:
    """Every record whose status is not ``ok``, with its message."""
    failed = df[df["status"] != "ok"]
    keys = ["dataset", "method", "arch", "batch_size", "pretrain_epochs", "seed", "label_fraction"]
    failed = _sorted(failed.set_index(keys))[["status", "error", "record_id"]]
    cells = failed.map(lambda v: MISSING if v is None or pd.isna(v) else " ".join(str(v).split()))
    cells.columns = [HEADERS.get(c, c) for c in cells.columns]
    return Table(_with_keys(cells), data=failed.reset_index())


def _values_text(series: pd.Series) -> str:
    values = series.dropna().unique()
    return ", ".join(_key_text(v) for v in sorted(values, key=lambda v: (isinstance(v, str), v))) or MISSING


def scale_lines(df: pd.DataFrame) -> list[str]:
    """The scale of the run in words, from the records."""
    pretrained = df[_is_pretrained(df)]
    backbones = df[["arch", "backbone"]].dropna().drop_duplicates().sort_values("arch")
    items = [
        ("device", _values_text(df["device"])),
        ("torch threads per process", _values_text(df["torch_threads"]) if "torch_threads" in df else MISSING),
        ("image size (px)", _values_text(df["image_size"])),
        ("backbones", ", ".join(f"{a}={b}" for a, b in backbones.itertuples(index=False)) or MISSING),
        ("pretraining epochs", _values_text(pretrained["pretrain_epochs"])),
        ("batch sizes", _values_text(pretrained["batch_size"])),
        ("initialisation", _values_text(df["init"])),
        ("small-image CNN stem", _values_text(df.loc[df["arch"] == "cnn", "small_input_stem"])
         if "small_input_stem" in df else MISSING),
        ("fine-tuning", _finetune_text(df)),
        ("evaluations", ", ".join(e for e in EVAL_ORDER if (df["eval"] == e).any())),
        ("precision", _values_text(df["precision"])),
        ("seeds", _values_text(df["seed"])),
        ("datasets", _values_text(df["dataset"])),
        ("methods", ", ".join(_method_order(df))),
    ]
    n_ok = int((df["status"] == "ok").sum())
    lines = ["Scale of this run: " + "; ".join(f"{k} {v}" for k, v in items) + ".",
             f"{len(df)} records: {n_ok} finished, {len(df) - n_ok} failed.", PAPER_SCALE]
    hashes = df.groupby("method")["config_hash"].nunique()
    if (hashes > 1).any():
        lines.append("Warning: records of " + ", ".join(hashes[hashes > 1].index) + " come from several configs "
                     "(config_hash differs); their seeds are pooled in the tables.")
    return lines


def _finetune_text(df: pd.DataFrame) -> str:
    steps = _values_text(df["finetune_steps"])
    if steps != MISSING:
        return f"{steps} optimiser steps at every label fraction, final model"
    return f"{_values_text(df['finetune_epochs'])} epochs"


def _method_order(df: pd.DataFrame) -> list[str]:
    methods = list(df["method"].dropna().unique())
    return sorted(methods, key=lambda m: (METHOD_ORDER.index(m) if m in METHOD_ORDER else len(METHOD_ORDER), m))


@dataclass
class Analysis:
    """Everything the report shows, computed once from the records."""

    records: pd.DataFrame
    setting: Setting
    main_rows: pd.DataFrame
    f1: pd.DataFrame
    eval_stats: dict[str, pd.DataFrame]
    runs: pd.DataFrame
    memory: str
    costs: pd.DataFrame
    batch_epochs: float | None
    batch_stats: pd.DataFrame
    epoch_batch: float | None
    epoch_stats: pd.DataFrame
    claims: pd.DataFrame


def _finetuned(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["eval"] == "finetune"]


def analyse(df: pd.DataFrame, out: Path | None = None, batch_size: float | None = None,
            epochs: float | None = None) -> Analysis:
    """Computes the statistics, efficiency figures and claim checks of a records frame.

    Args:
        df: :func:`load_records`.
        out: the results folder (its ``predictions/`` serve the one-seed bootstrap), or None.
        batch_size, epochs: the main setting; None chooses it (:func:`main_setting`).
    """
    setting = main_setting(df, batch_size, epochs)
    main_rows = select_setting(df, setting)
    eval_stats = {name: metric_stats(main_rows[main_rows["eval"] == name], "f1_macro") for name in EVAL_ORDER
                  if (main_rows["eval"] == name).any()}
    f1 = eval_stats.get("finetune", metric_stats(main_rows.iloc[:0], "f1_macro"))
    runs = pretrain_runs(df)
    memory = memory_column(runs)
    costs = cost_stats(runs, memory)
    tuned = _finetuned(df)
    batch_epochs = setting.pretrain_epochs
    epoch_batch = setting.batch_size
    batch_stats = robustness_stats(tuned, "batch_size", "pretrain_epochs", batch_epochs)
    epoch_stats = robustness_stats(tuned, "pretrain_epochs", "batch_size", epoch_batch)
    predictions = out / "predictions" if out is not None else None
    claims = check_claims(df, setting.batch_size, setting.pretrain_epochs, predictions)
    return Analysis(df, setting, main_rows, f1, eval_stats, runs, memory, costs, batch_epochs, batch_stats,
                    epoch_batch, epoch_stats, claims)


def write_plots(analysis: Analysis, out: Path) -> list[Plot]:
    """Writes the PNG plots beside the report (a skipped plot's old file is removed)."""
    memory_label = "peak GPU memory (MB)" if analysis.memory == "peak_gpu_mem_mb" else "peak RSS (MB, CPU)"
    return [
        f1_plot(analysis.f1, out),
        cost_plot(analysis.costs, "pretrain_epoch_time_s", "time per epoch (s)", "time_per_epoch_vs_batch_size.png",
                  analysis.batch_epochs, out),
        cost_plot(analysis.costs, analysis.memory, memory_label, "memory_vs_batch_size.png", analysis.batch_epochs,
                  out),
        collapse_plot(collapse_runs(analysis.records), out),
    ]


def _claims_section(analysis: Analysis) -> Section:
    shown = ["key", "claim", "eval", "paper", "measured", "status"]
    cells = analysis.claims[[c for c in shown if c in analysis.claims]].rename(
        columns={"key": "#", "measured": "measured here (95% interval)"})
    rules = ["What the status means (each claim's rule):", *(f"- {rule}" for rule in RULES)]
    return Section("claims", "Claim checks", table=Table(cells.astype(str), data=analysis.claims), notes=rules)


def _f1_sections(analysis: Analysis) -> list[Section]:
    setting = analysis.setting
    f1_lines = [
        f"Setting: {setting.describe()} (the paper's batch size 16 when present, and the most pretraining epochs "
        "finished at it; `report --batch-size N --epochs E` chooses another); supervised rows have no pretraining. "
        "Other settings: sections 3 and 4.",
        "Cells: mean ± sample std over seeds, with n when n > 1. Bold: the best mean per dataset, encoder and "
        "label fraction. " + MARKS_NOTE,
    ]
    sections = [Section("f1_macro", "1. Downstream macro-F1, fine-tuned end to end", f1_lines,
                        metric_table(analysis.f1))]
    letters = iter("abcdefghij")
    for name, stats in analysis.eval_stats.items():
        if name == "finetune":
            continue
        sections.append(Section(f"f1_macro_{name}", f"1{next(letters)}. Macro-F1, {EVAL_TITLES[name]}",
                                table=metric_table(stats), level=3))
    sections.append(Section("chance", f"1{next(letters)}. Chance levels and labelled examples", [
        "Macro-F1 of always predicting the labelled subset's majority class, and of guessing with its class "
        "frequencies. A record is above chance when a one-sided permutation test of its test macro-F1 (the "
        "predictions shuffled against the labels, 1,000 times by default) gives p < 0.05 and its macro-F1 beats "
        "both chance levels."], chance_table(analysis.records),
        level=3))
    rows = _finetuned(analysis.main_rows)
    for metric, words in COMPANIONS.items():
        sections.append(Section(metric, f"1{next(letters)}. {words[0].upper()}{words[1:]} (fine-tuned)",
                                table=metric_table(metric_stats(rows, metric)), level=3))
    sections.append(Section("ssl_helped", f"1{next(letters)}. Did self-supervision help?",
                            ssl_helped_lines(analysis.records), level=3))
    return sections


def _efficiency_section(analysis: Analysis) -> Section:
    if analysis.costs.empty:
        return Section("efficiency", "2. Pretraining efficiency", ["No pretraining run finished."])
    lines = [
        "One row per pretraining run setting (figures repeat across the label fractions of a run and are taken once). "
        "Time/epoch is the median epoch after the first; "
        + ("memory is peak GPU memory allocated." if analysis.memory == "peak_gpu_mem_mb" else
           "no GPU memory was measured (CPU run), so memory is the process's peak RSS."),
        "×DINO: ratio to DINO on the same encoders. CASS trains cnn and vit in one run, so its row compares with "
        "DINO-cnn + DINO-vit together: time, FLOPs and parameters summed, images/s combined as 1 / (1/a + 1/b), "
        "memory the larger of the two peaks (the runs are separate; one device must hold the larger).",
        f"The printed summary keeps the rows of the main setting ({analysis.setting.describe()}).",
    ]
    table = cost_table(analysis.costs, analysis.memory, analysis.setting)
    return Section("efficiency", "2. Pretraining efficiency", lines, table)


def _robustness_section(stats: pd.DataFrame, factor: str, anchor: float | None, number: int) -> Section:
    what, fixed = (("batch size", "pretraining epochs") if factor == "batch_size" else
                   ("pretraining epochs", "batch size"))
    key, title = f"{factor}_robustness", f"{number}. Robustness to {what}"
    levels = stats.index.get_level_values(factor).unique() if not stats.empty else []
    if len(levels) < 2:
        found = ", ".join(_key_text(v) for v in levels) or "none"
        return Section(key, title, [f"Skipped: the records hold one {what} value ({found}) at {fixed} "
                                    f"{_key_text(anchor)}."])
    lines = [f"Macro-F1 per {what} at {fixed} {_key_text(anchor)} (mean ± std over seeds); spread = max - min "
             "of the means across the values finished."]
    return Section(key, title, lines, robustness_table(stats, factor))


def _failure_sections(analysis: Analysis) -> list[Section]:
    df = analysis.records
    n_failed = int((df["status"] != "ok").sum())
    failures = Section("failures", "5. Failures", ["Every record whose status is not ok."] if n_failed else
                       ["None: every record finished."], failure_table(df) if n_failed else None)
    runs = collapse_runs(df)
    n_collapsed = int(runs["collapsed"].eq(True).sum())
    collapse = Section("collapsed", "6. Collapse", [
        COLLAPSE_RULE, f"{n_collapsed} of {len(runs)} pretrained encoders collapsed. Rank and spread per epoch: "
        "`collapse_curves.png`; the per-epoch values are in each record (`feature_rank_history`, "
        "`feature_std_history`, `embedding_std_history`)."], collapse_table(df))
    return [failures, collapse]


def _plot_section(plots: list[Plot]) -> Section:
    lines = [p.note for p in plots if p.note]
    images = [(p.name, p.caption) for p in plots if not p.note]
    return Section("plots", "7. Plots", lines, images=images)


def build_sections(analysis: Analysis, plots: list[Plot]) -> list[Section]:
    """The report's sections in order."""
    return [
        Section("scale", "Scale", scale_lines(analysis.records)),
        _claims_section(analysis),
        *_f1_sections(analysis),
        _efficiency_section(analysis),
        _robustness_section(analysis.batch_stats, "batch_size", analysis.batch_epochs, 3),
        _robustness_section(analysis.epoch_stats, "pretrain_epochs", analysis.epoch_batch, 4),
        *_failure_sections(analysis),
        _plot_section(plots),
    ]


def write_report(out: Path, fmt: str = "markdown", batch_size: float | None = None,
                 epochs: float | None = None) -> str:
    """Regenerates ``<out>/report.md``, its plots and (by ``fmt``) ``report.tex`` or ``report_<table>.csv``.

    Args:
        out: results folder holding ``records.jsonl``.
        fmt: ``markdown`` or ``github`` (the Markdown table style), ``latex`` or ``csv`` (written besides).
        batch_size, epochs: the main setting of the F1 tables and claims (None: chosen by :func:`main_setting`).

    Returns:
        The main tables (scale, claims, macro-F1, efficiency) as Markdown for the terminal, and the files written.

    Raises:
        UserError: no records, or an unknown format.
    """
    if fmt not in (*STYLES, "csv"):
        raise UserError(f"unknown report format '{fmt}'; use markdown, github, latex or csv")
    out = Path(out)
    analysis = analyse(load_records(out), out, batch_size, epochs)
    plots = write_plots(analysis, out)
    sections = build_sections(analysis, plots)
    style = STYLES["github" if fmt == "github" else "markdown"]
    written = [out / "report.md"]
    written[0].write_text(render_markdown(sections, style))
    if fmt == "latex":
        written.append(out / "report.tex")
        written[-1].write_text(render_latex(sections))
    elif fmt == "csv":
        written.extend(write_csv(sections, out))
    written.extend(out / p.name for p in plots if not p.note)
    n_failed = int((analysis.records["status"] != "ok").sum())
    footer = [f"{n_failed} failed record(s): see section 5 of the report." if n_failed else "No failed records.",
              "Written: " + ", ".join(str(p) for p in written)]
    return render_markdown(sections, style, terminal=TERMINAL_SECTIONS) + "\n" + "\n".join(footer) + "\n"
