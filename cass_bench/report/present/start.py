"""What each method made of its start: the start stated, and every pretrained encoder's change from it.

The no-pretraining reference (``supervised``) fine-tunes and probes the initial encoder itself, so its records are
the start's own quality; a method's change from its start is its metric minus the reference's, paired by seed
(the same labelled subset and split), with a t interval over seeds (:func:`cass_bench.report.stats.intervals.paired_interval`);
a change is called improved or worsened only when its p survives Holm's correction over every change of the section.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from cass_bench.config.registry import method_order, reference_methods
from cass_bench.records.schema import OK
from cass_bench.report.format import fraction_text
from cass_bench.report.present.render import Table
from cass_bench.report.paired import SEED, change_text, paired_changes
from cass_bench.report.stats.intervals import Interval
from cass_bench.report.stats.multiple import holm

START_EVALS = ("knn", "linear", "finetune")
"""The evaluations the change is shown for, frozen features first."""
START_FRACTION = 0.1
ALPHA = 0.05
"""The family-wise level of the section's calls."""
INIT_WORDS = {
    "random": "random weights (timm's initialisation)",
    "fractal": "the formula-driven supervised start (FractalDB-style images; both encoders with their classifiers)",
    "imagenet": "supervised ImageNet weights",
}


def _accuracy_text(df: pd.DataFrame) -> str:
    if "start_source_accuracy" not in df:
        return ""
    accuracy = df.dropna(subset=["start_source_accuracy"]).groupby("arch")["start_source_accuracy"].mean()
    if accuracy.empty:
        return ""
    return "; held-out source accuracy " + ", ".join(f"{arch} {value:.3f}" for arch, value in accuracy.items())


def start_lines(df: pd.DataFrame) -> list[str]:
    """The start every method shares, in words: its kind, its key and (for a trained start) its source accuracy."""
    lines = []
    for init, group in df.groupby("init", dropna=True):
        keys = sorted(str(k) for k in group.get("start_key", pd.Series(dtype=object)).dropna().unique())
        key = f" (start {', '.join(keys)})" if len(keys) == 1 else ""
        if len(keys) > 1:
            seeds = group.dropna(subset=["start_key"])["seed"].nunique()
            key = f" ({len(keys)} distinct starts behind {seeds} seeds: {', '.join(keys)})"
        elif keys and group["seed"].nunique() > 1:
            key += f"; one start behind all {group['seed'].nunique()} seeds, so intervals are conditional on it"
        lines.append(f"Start: {INIT_WORDS.get(str(init), str(init))}{key}{_accuracy_text(group)}.")
    return lines + retraining_lines(df)


def retraining_lines(df: pd.DataFrame) -> list[str]:
    """Starts trained more than once: what each training served, and a warning where one dataset's seed mixes two.

    A start is cached by its recipe; where the cache did not carry over (a new machine), the start is trained again,
    and its weights equal the first only on the same CPU type and thread count. A record names its start's training
    by the training's time (``start_train_s``).
    """
    if "start_train_s" not in df:
        return []
    lines = []
    for key, group in df.dropna(subset=["start_key", "start_train_s"]).groupby("start_key"):
        first = group.groupby("start_train_s")["created_at"].min().sort_values()
        if len(first) < 2:
            continue
        served = []
        for i, seconds in enumerate(first.index, start=1):
            here = group[group["start_train_s"] == seconds]
            accuracy = here.dropna(subset=["start_source_accuracy"]).groupby("arch")["start_source_accuracy"].first()
            scores = ", ".join(f"{arch} {value:.3f}" for arch, value in accuracy.items())
            served.append(f"training {i}{f' ({scores})' if scores else ''}: "
                          + ", ".join(sorted(map(str, here["dataset"].unique()))))
        seeds = ", ".join(str(s) for s in sorted(group["seed"].unique()))
        lines.append(f"Start {key} (seed {seeds}) was trained {len(first)} times, its cache not carried over (its "
                     f"weights repeat only on the same CPU type and thread count): {'; '.join(served)}.")
        mixed = group.groupby(["dataset", "seed"])["start_train_s"].nunique()
        mixed = mixed[mixed > 1]
        if not mixed.empty:
            lines.append("Warning: " + ", ".join(f"{dataset} seed {seed}" for dataset, seed in mixed.index)
                         + f" mixes trainings of start {key}, so its methods did not all begin from the same weights; "
                         "run its cells of one training again (`run --rebuild`).")
    return lines


def start_changes(df: pd.DataFrame, fraction: float = START_FRACTION) -> pd.DataFrame:
    """Per dataset, encoder, method and evaluation at ``fraction`` labels: the start's mean and the paired change.

    Returns:
        One row per (dataset, arch, method, eval) with ``start`` (the reference's mean macro-F1), ``value`` (the
        method's mean) and the paired :class:`Interval` of method minus reference over the shared seeds
        (``interval``); empty without reference records.
    """
    reference = reference_methods()[0]
    ok = df[(df["status"] == OK) & df["eval"].isin(START_EVALS) & np.isclose(df["label_fraction"], fraction)]
    keys = ["dataset", "arch", "eval", SEED]
    start = ok[ok["method"] == reference].groupby(keys)["f1_macro"].mean()
    rows = []
    for method in method_order(set(ok["method"]) - set(reference_methods())):
        values = ok[ok["method"] == method].groupby(keys)["f1_macro"].mean()
        rows.extend({"method": method, **row} for row in paired_changes(values, start, keys[:-1]))
    frame = pd.DataFrame(rows, columns=["method", "dataset", "arch", "eval", "base", "value", "interval"])
    frame["p_holm"] = holm([iv.p for iv in frame["interval"]]) if len(frame) else []
    return frame.rename(columns={"base": "start"})[["dataset", "arch", "method", "eval", "start", "value", "interval",
                                                    "p_holm"]]


def _word(interval: Interval, p_holm: float, alpha: float = ALPHA) -> str:
    if not (interval.bounded and math.isfinite(p_holm)):
        return "not called"
    if p_holm >= alpha:
        return "no clear change"
    return "improved" if interval.mean > 0 else "worsened"


def start_change_table(changes: pd.DataFrame) -> Table:
    """The changes as a table: one row per dataset, encoder, method and evaluation (frozen features first)."""
    if changes.empty:
        return Table(pd.DataFrame({"": ["no method and no-pretraining reference share a seed at this fraction"]}))
    order = {evaluation: i for i, evaluation in enumerate(START_EVALS)}
    ordered = changes.sort_values(["dataset", "arch", "eval"], key=lambda c: c.map(order) if c.name == "eval" else c,
                                  kind="stable")
    rows = [{"dataset": r["dataset"], "arch": r["arch"], "method": r["method"], "eval": r["eval"],
             "start": f"{r['start']:.3f}", "change (95% interval)": change_text(r["interval"], show_n=True),
             "call": _word(r["interval"], r["p_holm"]) + (f" (Holm p {r['p_holm']:.2g})" if math.isfinite(r["p_holm"])
                                                          else "")}
            for _, r in ordered.iterrows()]
    return Table(pd.DataFrame(rows), data=changes.drop(columns="interval").assign(
        change=[iv.mean for iv in changes["interval"]], low=[iv.low for iv in changes["interval"]],
        high=[iv.high for iv in changes["interval"]], n=[iv.n for iv in changes["interval"]]))


def start_change_lines(changes: pd.DataFrame, fraction: float = START_FRACTION) -> list[str]:
    """The section's words: what the table holds and a one-line count of improved and worsened encoders."""
    reference = reference_methods()[0]
    lines = [f"Macro-F1 at {fraction_text(fraction)} labels of the start itself (`{reference}`: the initial encoder "
             "probed and fine-tuned without pretraining) and each pretrained encoder's change from it: the mean of "
             "the per-seed differences (method minus start, same split and labelled subset) with its 95% t interval "
             f"over seeds. Improved / worsened: its p (exact sign-flip up to 16 seeds, else t) survives Holm's "
             f"correction at {ALPHA:g} over the section's {len(changes)} changes; one seed gives no interval (not "
             "called)."]
    if changes.empty:
        return lines
    words = pd.Series([_word(iv, p) for iv, p in zip(changes["interval"], changes["p_holm"])], dtype=object)
    counted = {w: int((words == w).sum()) for w in ("improved", "worsened", "no clear change", "not called")}
    lines.append("Of " + f"{len(changes)} (encoder, method, evaluation) changes: "
                 + ", ".join(f"{n} {w}" for w, n in counted.items() if n) + ".")
    return lines
