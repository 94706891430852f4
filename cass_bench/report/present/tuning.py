"""The tuning stage in the report: each method's search space, every trial's validation score, the values chosen, the
spread between the best and the worst trial, and the choices at an edge of their grid, so a reader sees whether a
verdict hinges on a recipe.

Read from ``<out>/tuning.jsonl`` (one record per trial, written by :mod:`cass_bench.run.tune`) and the chosen values
registered in ``<out>/config.yaml`` (``tune.chosen``); torch-free.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
from cass_bench.config.load import folder_settings
from cass_bench.config.registry import method_order
from cass_bench.config.tuning import AT, TuneConfig
from cass_bench.records.store import TUNING, RecordStore
from cass_bench.report.present.render import Section, Table


def load_trials(out: Path) -> pd.DataFrame:
    """One row per (trial, encoder): dataset, method, encoder, point, values, seed, status and validation macro-F1
    (empty when the folder ran no tuning).

    Raises:
        UserError: a line of ``tuning.jsonl`` is not a JSON record (naming the line).
    """
    rows: list[dict[str, Any]] = []
    for record in RecordStore(out, TUNING).load():
        scores = record.get("scores") or {a: None for a in str(record.get("encoders", "")).split("+")}
        for arch, score in scores.items():
            valid = (record.get("status") == "ok" and isinstance(score, (int, float)) and math.isfinite(score)
                     and 0 <= score <= 1)
            rows.append({"dataset": record.get("dataset"), "method": record.get("method"), "arch": arch,
                         "point": record.get("point"), "values": _values_text(record.get("values") or {}),
                         "raw": record.get("values") or {},
                         "seed": record.get("seed"), "status": record.get("status"),
                         "f1": float(score) if valid else math.nan})
    return pd.DataFrame(rows)


def _values_text(values: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:g}" if isinstance(v, (int, float)) else f"{k} {v}" for k, v in values.items())


def tuning_table(trials: pd.DataFrame, chosen: dict[str, dict[str, Any]], per_dataset: bool = False) -> Table:
    """Per method, encoder and point (and dataset, when tuning chose per dataset): the mean validation macro-F1 over
    datasets and tuning seeds, the chosen point marked."""
    keys = ["dataset"] * per_dataset + ["method", "arch", "point", "values"]
    means = trials.groupby(keys, dropna=False)["f1"].agg(["mean", "count"]).reset_index()
    means["order"] = means["method"].map({m: k for k, m in enumerate(method_order(set(means["method"])))})
    means = means.sort_values(["dataset"] * per_dataset + ["order", "arch", "point"])
    picked = means.apply(lambda r: r["values"] == _values_text(chosen.get(
        TuneConfig.key(r["method"], r["dataset"] if per_dataset else None), {})), axis=1)
    cells = pd.DataFrame({
        **({"dataset": means["dataset"]} if per_dataset else {}),
        "method": means["method"].str.upper(), "encoder": means["arch"], "trial": (means["point"] + 1).astype(str),
        "values": means["values"],
        "validation macro-F1": [("-" if math.isnan(m) else f"{m:.3f}") + (f" (n={n})" if n > 1 else "")
                                for m, n in zip(means["mean"], means["count"])],
        "chosen": ["yes" if p else "" for p in picked]})
    bold = pd.DataFrame(False, cells.index, cells.columns)
    bold["validation macro-F1"] = picked.to_numpy()
    return Table(cells.reset_index(drop=True), bold.reset_index(drop=True))


def spread_lines(trials: pd.DataFrame) -> list[str]:
    """Per method and encoder, the best and worst trial's mean validation macro-F1 and their gap in points."""
    lines = []
    means = trials.groupby(["method", "arch", "point"])["f1"].mean().reset_index()
    for (method, arch), group in means.groupby(["method", "arch"], sort=False):
        scores = group["f1"].dropna()
        if scores.empty:
            lines.append(f"- {method.upper()}-{arch}: every trial failed")
            continue
        failed = int(group["f1"].isna().sum())
        lines.append(f"- {method.upper()}-{arch}: best {scores.max():.3f}, worst {scores.min():.3f}, spread "
                     f"{100 * (scores.max() - scores.min()):.1f} points" + (f"; {failed} trial(s) failed" if failed
                                                                             else ""))
    return lines


def edge_line(trials: pd.DataFrame, chosen: dict[str, dict[str, Any]], per_dataset: bool = False) -> str:
    """The chosen numeric values that are the lowest or highest of their grid (of three values or more): there the
    best may lie beyond what was tried, and a wider grid could choose otherwise."""
    edges = []
    keyed = [(*key.partition(AT)[::2], values) for key, values in chosen.items()]
    rank = {m: k for k, m in enumerate(method_order({method for method, _, _ in keyed}))}
    for method, dataset, values in sorted(keyed, key=lambda item: (rank[item[0]], item[1])):
        rows = trials[trials["method"] == method]
        if per_dataset and dataset:
            rows = rows[rows["dataset"] == dataset]
        for name, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            grid = sorted({v[name] for v in rows["raw"] if isinstance(v.get(name), (int, float))})
            if len(grid) >= 3 and value in (grid[0], grid[-1]):
                side = "lowest" if value == grid[0] else "highest"
                edges.append(f"{method.upper()}{f' on {dataset}' if dataset else ''} {name} {value:g} ({side} of "
                             f"{len(grid)})")
    if not edges:
        return "Every chosen value lies inside its grid."
    return ("Chosen at an edge of its grid, where the best may lie beyond what was tried (a wider grid could choose "
            "otherwise): " + "; ".join(edges) + ".")


def tuning_section(out: Path) -> Section | None:
    """The report's tuning section (None when the folder ran no tuning)."""
    trials = load_trials(out)
    if trials.empty:
        return None
    registered = folder_settings(out, ("tune",))
    tune = registered.tune if registered else None
    trials_per_method, chosen = (tune.trials, tune.chosen) if tune else (None, {})
    per_dataset = bool(tune and tune.per_dataset)
    lines = [
        f"Every pretraining method got the same budget ({trials_per_method} trials), scored on validation images carved "
        "from the training split (never a test image) by frozen-feature macro-F1; per method"
        + (" and dataset the point with the best mean score over its encoders and tuning seeds on that dataset"
           if per_dataset else " the point with the best mean score over its encoders, datasets and tuning seeds")
        + " was registered before any measured seed ran: "
        + "; ".join(f"{m.upper()} {_values_text(v)}" for m, v in chosen.items()) + ".",
        "Spread between each method's best and worst trial (a large spread means the verdict leans on the recipe):",
        *spread_lines(trials),
        edge_line(trials, chosen, per_dataset),
    ]
    return Section("tuning", "Tuning", lines, tuning_table(trials, chosen, per_dataset))
