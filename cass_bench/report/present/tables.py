"""The report's tables as text cells: per-cell metrics, efficiency, robustness sweeps, failures; and the scale of
the run in words."""

from __future__ import annotations

import pandas as pd

from cass_bench.records.schema import OK
from cass_bench.config.registry import method_order
from cass_bench.report.analysis import EVAL_ORDER, Setting, Sweep
from cass_bench.report.cells import CELL, CellStats
from cass_bench.report.costs import COST_KEYS, COST_REFERENCE, FLOPS, RSS, TIME, CostStats
from cass_bench.report.format import HEADERS, MISSING, key_text, number_text, sort_rows, stat_text, with_keys
from cass_bench.report.load import PRETRAINED
from cass_bench.report.format import fraction_text
from cass_bench.report.present.render import Table
from cass_bench.report.present.start import start_lines
from cass_bench.report.versions import version_lines

AT_CHANCE_MARK, COLLAPSED_MARK = " †", " ‡"
PAPER_SCALE = ("Paper scale: Brain MRI, ISIC-2019, Dermofit, Autoimmune; one RTX8000; 384 px; ResNet-50 + ViT-B/16; "
               "100 pretraining epochs at batch 16 (robustness: batch 8, 16, 32); fp32.")


def _stat_cells(stats: CellStats, fmt: str = ".3f") -> pd.Series:
    marks = (stats.at_chance.map({True: AT_CHANCE_MARK, False: ""})
             + stats.collapsed.map({True: COLLAPSED_MARK, False: ""}))
    texts = [stat_text(m, s, n, fmt) + mark for m, s, n, mark in zip(stats.mean, stats.std, stats.n, marks)]
    return pd.Series(texts, index=stats.index, dtype=object)


def metric_table(stats: CellStats) -> Table:
    """Rows dataset x method x arch, one column per label fraction; the best mean per dataset, arch and label
    fraction is bold."""
    if stats.empty:
        return Table(pd.DataFrame({"": ["no finished records"]}))
    best = stats.mean.eq(stats.mean.groupby(["dataset", "arch", "label_fraction"]).transform("max"))
    cells = sort_rows(_stat_cells(stats).unstack("label_fraction", fill_value=MISSING))
    marks = best.unstack("label_fraction", fill_value=False).reindex(index=cells.index)
    headers = [fraction_text(f) for f in cells.columns]
    cells.columns = marks.columns = headers
    table_cells = with_keys(cells)
    bold = pd.concat([pd.DataFrame(False, table_cells.index, table_cells.columns[:len(CELL)]),
                      marks.reset_index(drop=True).astype(bool)], axis=1)
    return Table(table_cells, bold, data=stats.data())


def ratio_header(short: str) -> str:
    """The header of a ratio-to-reference column."""
    return f"{short} ×{COST_REFERENCE.upper()}"


def shared_keys(table: pd.DataFrame, keys: list[str]) -> tuple[pd.DataFrame, str]:
    """The table without the key columns that hold one value, and those values in words (keeps it narrow)."""
    constant = [k for k in keys if table[k].nunique() == 1 and len(table) > 1]
    words = ", ".join(f"{k} {table[k].iloc[0]}" for k in constant)
    return table.drop(columns=constant), (f"Every row: {words}." if words else "")


SHORT_HEADERS = {RSS: "peak RSS (MB)"}
"""Narrower headers than the figures' own (the section's text says what they hold)."""


def _figure_text(mean: float, std: float, n: int, runs: int, fmt: str) -> str:
    if pd.isna(mean):
        return MISSING
    text = f"{mean:{fmt}}" + (f" ±{std:{fmt}}" if n > 1 and pd.notna(std) else "")
    return text + (f" (n={int(n)})" if n != runs else "")


def _cost_cells(costs: CostStats) -> pd.DataFrame:
    runs = costs.n(TIME)
    cells = pd.DataFrame({"runs": runs.map(lambda v: f"{int(v)}")}, index=costs.index)
    for q in costs.quantities:
        cells[SHORT_HEADERS.get(q.field, q.header)] = [_figure_text(m * q.scale, s * q.scale, k, r, q.fmt)
                           for m, s, k, r in zip(costs.mean(q), costs.std(q), costs.n(q), runs)]
    return cells


def cost_table(costs: CostStats, setting: Setting, ratios: bool = False) -> tuple[Table, str]:
    """The efficiency figures (mean ±std over runs; n where a figure has fewer runs), or with ``ratios`` each
    figure's ratio to the reference; key columns with one value move to the returned line. The terminal summary
    keeps the rows of ``setting``."""
    if ratios:
        cells = pd.DataFrame({ratio_header(q.short): costs.ratio(q).map(lambda v: number_text(v, ".2f"))
                              for q in costs.quantities if q.compared}, index=costs.index)
    else:
        cells = _cost_cells(costs)
    table = with_keys(cells)
    keys = list(table.columns[:len(COST_KEYS)])
    table, line = shared_keys(table, keys)
    shown = (TIME, costs.memory, FLOPS)
    terminal = [c for c in table.columns if c in keys or c in [
        *(SHORT_HEADERS.get(q.field, q.header) for q in shown), *(ratio_header(q.short) for q in shown)]]
    at = ((costs.index.get_level_values("batch_size") == setting.batch_size)
          & (costs.index.get_level_values("pretrain_epochs") == setting.pretrain_epochs))
    return Table(table, data=costs.data(), terminal=terminal, terminal_rows=list(at)), line


def robustness_table(sweep: Sweep) -> Table:
    """One column per value of the sweep's factor and the spread (max - min of the means) across them."""
    factor = sweep.factor
    cells = sort_rows(_stat_cells(sweep.stats).unstack(factor, fill_value=MISSING))
    means = sweep.stats.mean.unstack(factor).reindex(cells.index)
    spread = (means.max(axis=1) - means.min(axis=1)).where(means.count(axis=1) >= 2)
    prefix = "batch " if factor == "batch_size" else "epochs "
    cells.columns = [f"{prefix}{key_text(v)}" for v in cells.columns]
    cells["spread (max − min)"] = spread.map(lambda v: number_text(v, ".3f"))
    data = means.add_prefix(f"{factor}=").assign(spread=spread).reset_index()
    return Table(with_keys(cells), data=data)


def failure_table(df: pd.DataFrame) -> Table:
    """Every record whose status is not ``ok``, with its message."""
    failed = df[df["status"] != OK]
    keys = ["dataset", "method", "arch", "batch_size", "pretrain_epochs", "seed", "label_fraction"]
    failed = sort_rows(failed.set_index(keys))[["status", "error", "record_id"]]
    cells = failed.map(lambda v: MISSING if v is None or pd.isna(v) else " ".join(str(v).split()))
    cells.columns = [HEADERS.get(c, c) for c in cells.columns]
    return Table(with_keys(cells), data=failed.reset_index())


def _values_text(series: pd.Series) -> str:
    values = series.dropna().unique()
    return ", ".join(key_text(v) for v in sorted(values, key=lambda v: (isinstance(v, str), v))) or MISSING


def _finetune_text(df: pd.DataFrame) -> str:
    steps = _values_text(df["finetune_steps"])
    if steps != MISSING:
        return f"{steps} optimiser steps at every label fraction, final model"
    return f"{_values_text(df['finetune_epochs'])} epochs"


def scale_lines(df: pd.DataFrame) -> list[str]:
    """The scale of the run in words, from the records."""
    pretrained = df[df[PRETRAINED]]
    timed = df if pretrained.empty else pretrained
    backbones = df[["arch", "backbone"]].dropna().drop_duplicates().sort_values("arch")
    items = [
        ("device", _values_text(timed["device"])),
        ("torch threads per process", _values_text(df["torch_threads"])),
        ("image size (px)", _values_text(df["image_size"])),
        ("backbones", ", ".join(f"{a}={b}" for a, b in backbones.itertuples(index=False)) or MISSING),
        ("pretraining epochs", _values_text(pretrained["pretrain_epochs"])),
        ("batch sizes", _values_text(pretrained["batch_size"])),
        ("initialisation", _values_text(df["init"])),
        ("small-image CNN stem", _values_text(df.loc[df["arch"] == "cnn", "small_input_stem"])),
        ("fine-tuning", _finetune_text(df)),
        ("evaluations", ", ".join(e for e in EVAL_ORDER if (df["eval"] == e).any())),
        ("precision", _values_text(df["precision"])),
        ("seeds", _values_text(df["seed"])),
        ("datasets", _values_text(df["dataset"])),
        ("methods", ", ".join(method_order(set(df["method"].dropna())))),
    ]
    n_ok = int((df["status"] == OK).sum())
    lines = ["Scale of this run: " + "; ".join(f"{k} {v}" for k, v in items) + ".", *start_lines(df),
             f"{len(df)} records: {n_ok} finished, {len(df) - n_ok} failed.", *version_lines(df)]
    devices = timed["device"].dropna().unique()
    if len(devices) > 1:
        lines.append(f"The records come from {len(devices)} devices: efficiency figures, their ratios and the cost "
                     "claims are per device (never compared across devices); F1 pools the seeds of every device.")
    return lines + config_lines(df)


def config_lines(df: pd.DataFrame) -> list[str]:
    """Which methods' records come from several configs: a warning where one dataset holds several, else a note.

    Settings tuned per dataset give one config per method and dataset, which is the protocol, not a mix; several
    configs behind one method on one dataset mean the folder mixes settings, so every table cell may not be one.
    """
    per_method = df.groupby("method")["config_hash"].nunique()
    several = per_method[per_method > 1].index
    if several.empty:
        return []
    per_dataset = df[df["method"].isin(several)].groupby(["method", "dataset"])["config_hash"].nunique()
    mixed = sorted({method for (method, _), n in per_dataset.items() if n > 1})
    if mixed:
        return ["Warning: records of " + ", ".join(mixed) + " come from several configs on one dataset "
                "(config_hash differs) at different settings; each table cell holds one config."]
    return ["Records of " + ", ".join(several) + " hold one config per dataset (config_hash differs only between "
            "datasets, as settings tuned per dataset give); each table cell holds one config."]
