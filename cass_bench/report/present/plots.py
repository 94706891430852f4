"""PNG line plots of the report, drawn on matplotlib's Agg canvas (no pyplot, no global backend state)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from cass_bench.config.registry import method_color
from cass_bench.report.cells import CellStats
from cass_bench.report.costs import CostStats, Quantity
from cass_bench.report.format import fraction_text, key_text
from cass_bench.report.load import RANK_HISTORY, THREADS
from cass_bench.report.present.render import write_whole


@dataclass(frozen=True)
class Plot:
    """A plot file, the labels of its legend, or why it was skipped.

    Attributes:
        name: PNG file name beside the report.
        caption: what it shows.
        labels: legend labels (one per line drawn).
        note: why it was not drawn (None when drawn).
    """

    name: str
    caption: str
    labels: tuple[str, ...] = ()
    note: str | None = None


ENCODER_STYLES = {"cnn": "-", "vit": "--", "cnn+vit": "-."}


def _series_style(label: str) -> dict[str, str]:
    method, _, rest = label.partition(" ")
    style = {"color": method_color(method), "linestyle": "-"}
    if rest:
        style["linestyle"] = ENCODER_STYLES.get(rest.strip("()"), ":")
    return style


def _draw_panel(ax: Axes, data: pd.DataFrame, series: str, x: str, log_base: float, err: str) -> None:
    for label, line in data.groupby(series, sort=False):
        line = line.sort_values(x)
        ax.errorbar(line[x], line["mean"], yerr=line[err].fillna(0), label=str(label), marker="o",
                    markersize=4, capsize=3, **_series_style(str(label)))
    ticks = np.sort(data[x].unique())
    ax.set_xscale("log", base=log_base)
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(ticks, [_tick_text(t, x) for t in ticks])
    ax.grid(alpha=0.3)


def _tick_text(value: float, x: str) -> str:
    return fraction_text(value) if x == "label_fraction" else f"{value:g}"


def plot_lines(data: pd.DataFrame, path: Path, *, panels: Sequence[str], series: str, x: str, xlabel: str,
               ylabel: str, log_base: float = 10, err: str = "std", y_from_zero: bool = False) -> list[str]:
    """One panel per value of ``panels``, one line (mean with error bars) per value of ``series``.

    Args:
        data: long frame with the ``panels`` columns, ``series``, ``x``, ``mean`` and ``std``.
        path: PNG to write.
        panels: columns whose value pairs pick the panel; the first picks the row, the second (if any) the column.
        series: column naming each line (its first word is the method, which picks the colour).
        x: column on the (log) x axis.
        xlabel: x axis label.
        ylabel: y axis label.
        log_base: base of the logarithmic x axis.
        err: column holding the error bars' half-width (``std`` by default).
        y_from_zero: start the y axis at zero (for costs).

    Returns:
        The legend's labels, one per line drawn, in legend order.
    """
    rows = list(dict.fromkeys(data[panels[0]]))
    cols = list(dict.fromkeys(data[panels[1]])) if len(panels) > 1 else [None]
    fig = Figure(figsize=(4.2 * len(cols) + 1.8, 3.2 * len(rows)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(rows), len(cols), squeeze=False)
    for i, row in enumerate(rows):
        for j, col in enumerate(cols):
            ax = axes[i, j]
            mask = data[panels[0]] == row
            if col is not None:
                mask &= data[panels[1]] == col
            ax.set_title(" / ".join(str(v) for v in (row, col) if v is not None), fontsize=10)
            if mask.any():
                _draw_panel(ax, data[mask], series, x, log_base, err)
            if y_from_zero:
                ax.set_ylim(bottom=0)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
    handles: dict[str, object] = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    legend = fig.legend(list(handles.values()), list(handles), loc="outside right upper")
    save_png(fig, path)
    return [text.get_text() for text in legend.get_texts()]


def save_png(fig: Figure, path: Path) -> None:
    """Saves ``fig`` as ``path`` whole (:func:`cass_bench.report.present.render.write_whole`: no 0-byte PNG on a full disk)."""
    write_whole(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))


def skip_plot(out: Path, name: str, caption: str, note: str) -> Plot:
    """A plot not drawn, with why; an old file of its name is removed so the folder holds only linked plots."""
    (out / name).unlink(missing_ok=True)
    return Plot(name, caption, note=note)


def f1_plot(stats: CellStats, out: Path) -> Plot:
    """Macro-F1 against label fraction, one panel per dataset and arch, one line per method.

    Args:
        stats: macro-F1 per (dataset, method, arch, label_fraction).
        out: folder of the report.
    """
    name, caption = "f1_vs_label_fraction.png", "Macro-F1 against label fraction (main setting)"
    if stats.empty:
        return skip_plot(out, name, caption, "F1 plot skipped: no finished records.")
    data = pd.DataFrame({"mean": stats.mean, "std": stats.std}).reset_index()
    labels = plot_lines(data, out / name, panels=["dataset", "arch"], series="method",
                        x="label_fraction", xlabel="labelled fraction", ylabel="macro-F1")
    return Plot(name, caption, tuple(labels))


def cost_plot(costs: CostStats, quantity: Quantity, ylabel: str, name: str, epochs: float | None,
              out: Path) -> Plot:
    """One efficiency figure against batch size (y from zero), one panel per dataset and device, one line per method
    and encoders.

    Args:
        costs: the efficiency figures per (dataset, batch_size, pretrain_epochs, method, encoders).
        quantity: the figure plotted.
        ylabel: the field in words.
        name: PNG file name.
        epochs: the pretraining epoch count plotted.
        out: folder of the report.
    """
    caption = f"{ylabel} against batch size ({epochs or 0:g} pretraining epochs)"
    data = pd.DataFrame({"mean": costs.mean(quantity), "std": costs.std(quantity)}).reset_index()
    data = data[data["pretrain_epochs"] == epochs].dropna(subset=["mean"])
    if data.empty:
        return skip_plot(out, name, caption, f"Plot of {ylabel} skipped: no pretraining run measured it.")
    data = data.assign(series=data["method"] + " (" + data["encoders"] + ")")
    if data[THREADS].nunique() > 1:  # a thread count is a cost setting of its own: its own line
        data = data.assign(series=data["series"] + ", " + data[THREADS].map(key_text) + " threads")
    labels = plot_lines(data, out / name, panels=["dataset", "device"], series="series", x="batch_size",
                        xlabel="batch size", ylabel=ylabel, log_base=2, y_from_zero=True)
    return Plot(name, caption, tuple(labels))


def collapse_plot(runs: pd.DataFrame, out: Path) -> Plot:
    """Feature spread and effective rank of each pretrained encoder per epoch (epoch 0: before pretraining).

    Args:
        runs: one row per pretrained encoder with ``method``, ``arch``, ``seed``, ``feature_std_history`` and
            the rank history (:data:`cass_bench.report.load.RANK_HISTORY`; lists), as
            :func:`cass_bench.report.present.validity.collapse_runs` gives them.
        out: folder of the report.
    """
    name, caption = "collapse_curves.png", "Collapse curves: spread and effective rank of the pooled features per epoch"
    if runs.empty:
        return skip_plot(out, name, caption, "Collapse plot skipped: no run recorded its feature histories.")
    fig = Figure(figsize=(11, 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    labels: dict[str, object] = {}
    for _, run in runs.iterrows():
        label = f"{run['method']} ({run['arch']})"
        style = {"color": method_color(run["method"]),
                 "linestyle": ENCODER_STYLES.get(run["arch"], ":")}
        for ax, column in zip(axes, ("feature_std_history", RANK_HISTORY)):
            values = run[column]
            (line,) = ax.plot(range(len(values)), values, marker="o", markersize=3, alpha=0.8, **style)
        labels.setdefault(label, line)
    for ax, ylabel in zip(axes, ("spread of L2-normalised features", "effective rank (RankMe)")):
        ax.set_xlabel("pretraining epoch (0 = before)")
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    fig.legend(list(labels.values()), list(labels), loc="outside right upper")
    save_png(fig, out / name)
    return Plot(name, caption, tuple(labels))
