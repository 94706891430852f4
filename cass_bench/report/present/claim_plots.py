"""The plots that answer the paper's claims, drawn from the report's analysis (never recomputed here):
(a) the F1 gains with their intervals and the paper's gains, (b/c) CASS's epoch time against the two runs of each
comparator stacked, (d/e) F1 against batch size and pretraining epochs, and cost beside F1."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy import stats

from cass_bench.config.registry import PROPOSED, comparators, method_color, method_order
from cass_bench.report.analysis import Analysis, Sweep
from cass_bench.config.schema import ARCHS
from cass_bench.report.claims.gains import PAPER_GAINS
from cass_bench.report.costs import JOINT, TIME
from cass_bench.report.present.plots import Plot, plot_lines, save_png, skip_plot
from cass_bench.report.format import fraction_text

COST_FRACTION = 0.1
"""The label fraction of the cost-against-F1 plot (the paper's middle fraction)."""
LEVEL = 0.95


def _figure(panels: int, width: float = 4.2, height: float = 3.4) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(width * panels + 1.6, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(1, panels, squeeze=False)[0]


def gain_plot(analysis: Analysis, out: Path) -> Plot:
    """Claim (a): CASS − comparator macro-F1 per label fraction with its 95% interval, one panel per dataset and
    encoder, the paper's gains marked.

    Args:
        analysis: the report's analysis (its per-encoder (a) claim rows).
        out: folder of the report.
    """
    name, caption = "f1_gain_vs_label_fraction.png", ("(a) CASS − DINO and CASS − BYOL macro-F1 (points) per label "
                                                       "fraction and encoder with 95% intervals over seeds; × the "
                                                       "paper's gain (scored by its own code: f1_seed_code)")
    claims = analysis.claims
    drawn = claims[(claims["kind"] == "a") & claims["arch"].isin(ARCHS) & claims["estimate"].notna()]
    if drawn.empty:
        return skip_plot(out, name, caption, "Gain plot skipped: no paired CASS and comparator records.")
    panels = list(dict.fromkeys(zip(drawn["dataset"], drawn["arch"])))
    fig, axes = _figure(len(panels), width=4.6)
    fractions = sorted(PAPER_GAINS)
    labels: dict[str, object] = {}
    for ax, (dataset, arch) in zip(axes, panels):
        here = drawn[(drawn["dataset"] == dataset) & (drawn["arch"] == arch)]
        for offset, comp in zip(np.linspace(-0.06, 0.06, len(comparators())), comparators()):
            rows = here[here["comparator"] == comp].sort_values("fraction")
            if rows.empty:
                continue
            low, high = rows["estimate"] - rows["low"], rows["high"] - rows["estimate"]
            labels[f"{PROPOSED} − {comp}"] = ax.errorbar(
                rows["fraction"].to_numpy(dtype=float) * 10 ** offset, rows["estimate"],
                yerr=np.vstack([low.fillna(0), high.fillna(0)]), marker="o", capsize=4, color=method_color(comp))
        labels["paper's gain"] = ax.scatter(fractions, [PAPER_GAINS[f] for f in fractions], marker="x", s=60,
                                            color="black", zorder=3)
        ax.axhline(0, color="gray", linewidth=1)
        ax.set_xscale("log")
        ax.set_xticks(fractions, [fraction_text(f) for f in fractions])
        ax.minorticks_off()
        ax.set_xlabel("labelled fraction")
        ax.set_ylabel(f"{PROPOSED} − comparator (macro-F1 points)")
        ax.set_title(f"{dataset} / {arch}", fontsize=9)
        ax.grid(alpha=0.3)
    fig.legend(list(labels.values()), list(labels), loc="outside right upper")
    save_png(fig, out / name)
    return Plot(name, caption, tuple(labels))


def stacked_time_plot(analysis: Analysis, out: Path) -> Plot:
    """Claims (b/c): CASS's time per epoch beside each comparator's cnn and vit runs stacked, per dataset and device.

    Args:
        analysis: the report's analysis (its efficiency figures at the main setting).
        out: folder of the report.
    """
    setting = analysis.setting
    name = "pretraining_time_stacked.png"
    caption = (f"(b/c) time per pretraining epoch at {setting.describe()}: {PROPOSED} (cnn+vit, one run) against "
               "each comparator's cnn run + vit run, stacked; ratio above each stack")
    means = analysis.costs.mean(TIME).dropna() if not analysis.costs.empty else pd.Series(dtype=float)
    index = means.index
    if not means.empty:
        at_setting = ((index.get_level_values("batch_size") == setting.batch_size)
                      & (index.get_level_values("pretrain_epochs") == setting.pretrain_epochs))
        means = means[at_setting].droplevel(["batch_size", "pretrain_epochs"])
    if means.empty or PROPOSED not in means.index.get_level_values("method"):
        return skip_plot(out, name, caption, f"Stacked time plot skipped: no {PROPOSED} run at the main setting.")
    at = means
    panels = list(dict.fromkeys(at.index.droplevel(["method", "encoders"])))
    fig, axes = _figure(len(panels))
    labels: dict[str, object] = {}
    for ax, panel in zip(axes, panels):
        times = at.xs(panel, level=[name for name in at.index.names if name not in ("method", "encoders")])
        ours = times.get((PROPOSED, JOINT), np.nan)
        bars = [PROPOSED, *comparators()]
        for i, method in enumerate(bars):
            parts = [JOINT] if method == PROPOSED else JOINT.split("+")
            bottom = 0.0
            for part, hatch in zip(parts, ("", "//")):
                value = times.get((method, part), np.nan)
                if np.isnan(value):
                    continue
                label = f"{method} ({part})"
                labels[label] = ax.bar(i, value, bottom=bottom, color=method_color(method), hatch=hatch,
                                       edgecolor="white", label=label)
                bottom += value
            if method != PROPOSED and bottom > 0 and len(parts) == 2 and not np.isnan(ours):
                ax.annotate(f"{ours / bottom:.2f}×", (i, bottom), ha="center", va="bottom", fontsize=9)
        ax.set_xticks(range(len(bars)), bars)
        ax.set_ylim(bottom=0)
        ax.set_ylabel("time per epoch (s)")
        ax.set_title(" / ".join(str(v) for v in panel), fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    fig.legend(list(labels.values()), list(labels), loc="outside right upper")
    save_png(fig, out / name)
    return Plot(name, caption, tuple(labels))


def _interval(frame: pd.DataFrame) -> pd.Series:
    """Half-width of the 95% t interval of each mean (0 with one seed)."""
    n = frame["n"].clip(lower=2)
    return (stats.t.ppf(0.5 + LEVEL / 2, n - 1) * frame["std"] / np.sqrt(frame["n"])).where(frame["n"] > 1, 0.0)


def sweep_plot(sweep: Sweep, out: Path) -> Plot:
    """Claims (d/e): fine-tuned macro-F1 against the swept factor, one line per method and encoder, with 95% t
    intervals over seeds; one panel per dataset and label fraction. Drawn only when the records hold more than one
    value of the factor.

    Args:
        sweep: the batch-size or epoch sweep of the analysis.
        out: folder of the report.
    """
    factor = sweep.factor
    words = "batch size" if factor == "batch_size" else "pretraining epochs"
    fixed = "pretraining epochs" if factor == "batch_size" else "batch size"
    name = f"f1_vs_{factor}.png"
    caption = f"({'d' if factor == 'batch_size' else 'e'}) fine-tuned macro-F1 against {words} ({fixed} " \
              f"{sweep.anchor if sweep.anchor is None else f'{sweep.anchor:g}'}), 95% intervals over seeds"
    data = sweep.stats.frame.reset_index() if not sweep.stats.empty else pd.DataFrame()
    if data.empty or data[factor].nunique() < 2:
        return skip_plot(out, name, caption, f"Plot of F1 against {words} skipped: the records hold one value.")
    data = data.assign(series=data["method"] + " (" + data["arch"] + ")", interval=_interval(data),
                       labels=data["label_fraction"].map(lambda f: f"{fraction_text(f)} labels"))
    order = {m: i for i, m in enumerate(method_order(set(data["method"])))}
    data = data.sort_values(["method", "arch"], key=lambda c: c.map(order) if c.name == "method" else c)
    labels = plot_lines(data, out / name, panels=["dataset", "labels"], series="series", x=factor,
                        xlabel=words, ylabel="macro-F1", log_base=2, err="interval")
    return Plot(name, caption, tuple(labels))


def cost_f1_plot(analysis: Analysis, out: Path) -> Plot:
    """Cost beside F1: time per pretraining epoch against fine-tuned macro-F1 at 10% labels, per method and encoder
    (the no-pretraining reference at zero cost); one panel per dataset and device.

    Args:
        analysis: the report's analysis (F1 and efficiency at the main setting).
        out: folder of the report.
    """
    name = "cost_vs_f1.png"
    caption = (f"time per pretraining epoch against fine-tuned macro-F1 at {fraction_text(COST_FRACTION)} labels "
               f"({analysis.setting.describe()}); error bars: std over seeds")
    f1 = analysis.f1.frame.reset_index() if not analysis.f1.empty else pd.DataFrame()
    f1 = f1[np.isclose(f1["label_fraction"], COST_FRACTION)] if not f1.empty else f1
    if f1.empty or analysis.costs.empty:
        return skip_plot(out, name, caption, f"Cost plot skipped: no fine-tuned record at "
                                             f"{fraction_text(COST_FRACTION)} labels or no pretraining run.")
    setting = analysis.setting
    costs = pd.DataFrame({"time": analysis.costs.mean(TIME), "time_std": analysis.costs.std(TIME)}).reset_index()
    costs = costs[(costs["batch_size"] == setting.batch_size) & (costs["pretrain_epochs"] == setting.pretrain_epochs)]
    panels = list(dict.fromkeys(zip(costs["dataset"], costs["device"])))
    fig, axes = _figure(len(panels), height=3.6)
    labels: dict[str, object] = {}
    for ax, (dataset, device) in zip(axes, panels):
        here = costs[(costs["dataset"] == dataset) & (costs["device"] == device)]
        for row in f1[f1["dataset"] == dataset].itertuples(index=False):
            encoders = JOINT if row.method == PROPOSED else row.arch
            run = here[(here["method"] == row.method) & (here["encoders"] == encoders)]
            time, spread = (run["time"].iloc[0], run["time_std"].iloc[0]) if len(run) else (0.0, np.nan)
            if not len(run) and row.method in (PROPOSED, *comparators()):
                continue
            label = f"{row.method} ({row.arch})"
            labels[label] = ax.errorbar(time, row.mean, xerr=np.nan_to_num(spread), yerr=np.nan_to_num(row.std),
                                        marker="o" if row.arch == "cnn" else "s", color=method_color(row.method),
                                        capsize=3, linestyle="none", label=label)
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.set_xlabel("time per pretraining epoch (s)")
        ax.set_ylabel(f"macro-F1 at {fraction_text(COST_FRACTION)} labels")
        ax.set_title(f"{dataset} / {device}", fontsize=9)
        ax.grid(alpha=0.3)
    fig.legend(list(labels.values()), list(labels), loc="outside right upper")
    save_png(fig, out / name)
    return Plot(name, caption, tuple(labels))
