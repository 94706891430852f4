"""What decides whether a measured number may enter a verdict: chance levels and collapse.

Every table here is built from the records alone: the chance levels and the above-chance test are stored in each
record (:mod:`cass_bench.evaluation.chance`), the feature spread and effective rank per epoch in each pretrained encoder's
record (:class:`cass_bench.engine.feature_collapse.FeatureCollapse`).
"""

from __future__ import annotations

import pandas as pd

from cass_bench.engine.collapse import COLLAPSE_RANK
from cass_bench.records.identity import ENCODER_RUN_KEYS
from cass_bench.records.schema import OK
from cass_bench.report.load import RANK_HISTORY, finished_pretraining
from cass_bench.report.format import fraction_text, sort_rows
from cass_bench.report.present.render import Table



def per_class_text(counts: object) -> str:
    """Labelled examples per class in words, e.g. ``1 per class`` or ``1–3 per class``."""
    if not isinstance(counts, (list, tuple)) or not counts:
        return "—"
    low, high = min(counts), max(counts)
    return f"{low} per class" if low == high else f"{low}–{high} per class"


def chance_table(df: pd.DataFrame) -> Table:
    """Per dataset and label fraction: labelled examples, and the macro-F1 of two chance predictors.

    Majority: always the most frequent class of the labelled subset. Random: classes drawn with the labelled
    subset's frequencies (expected value). Means over seeds (the subsets differ by seed).
    """
    ok = df[(df["status"] == OK) & df["chance_f1_majority"].notna()]
    if ok.empty:
        return Table(pd.DataFrame({"": ["no record holds chance levels"]}))
    rows = []
    for (dataset, fraction), group in ok.groupby(["dataset", "label_fraction"]):
        first = group.sort_values("seed", kind="stable").drop_duplicates("seed")
        rows.append({
            "dataset": dataset, "labels": fraction_text(fraction),
            "labelled (seed 0 or first)": f"{int(first['n_labelled'].iloc[0])} = "
                                          f"{per_class_text(first['labelled_per_class'].iloc[0])}",
            "majority macro-F1": f"{first['chance_f1_majority'].mean():.3f}",
            "random macro-F1": f"{first['chance_f1_random'].mean():.3f}",
            "records above chance": f"{int(group['above_chance'].eq(True).sum())}/{len(group)}",
        })
    return Table(pd.DataFrame(rows))


def collapse_runs(df: pd.DataFrame) -> pd.DataFrame:
    """One row per pretrained encoder (a CASS run gives two) with its collapse figures."""
    ok = finished_pretraining(df)
    if ok.empty:
        return pd.DataFrame(columns=[*ENCODER_RUN_KEYS, "init", RANK_HISTORY, "feature_std_history", "embedding_std",
                                     "collapsed", "embedding_collapsed"])
    runs = ok.drop_duplicates(list(ENCODER_RUN_KEYS))
    runs = runs[runs[RANK_HISTORY].map(lambda h: isinstance(h, list) and len(h) > 0)]
    return runs[[*ENCODER_RUN_KEYS, "init", RANK_HISTORY, "feature_std_history", "embedding_std", "collapsed",
                 "embedding_collapsed"]]


def collapse_per_seed(df: pd.DataFrame) -> pd.DataFrame:
    """Every pretrained encoder: effective rank and spread of its pooled features before and after pretraining (the
    CSV beside the report)."""
    runs = collapse_runs(df)
    return pd.DataFrame({
        "dataset": runs["dataset"], "method": runs["method"], "arch": runs["arch"], "batch_size": runs["batch_size"],
        "pretrain_epochs": runs["pretrain_epochs"], "seed": runs["seed"], "init": runs["init"],
        "rank_before": [h[0] for h in runs[RANK_HISTORY]], "rank_after": [h[-1] for h in runs[RANK_HISTORY]],
        "spread_before": [h[0] for h in runs["feature_std_history"]],
        "spread_after": [h[-1] for h in runs["feature_std_history"]], "head_output_std": runs["embedding_std"],
        "collapsed": runs["collapsed"].eq(True), "head_output_collapsed": runs["embedding_collapsed"],
    }).reset_index(drop=True)


def _share(flags: pd.Series) -> str:
    measured = flags.dropna()
    return "—" if measured.empty else f"{int(measured.astype(bool).sum())}/{len(measured)}"


def collapse_table(df: pd.DataFrame) -> Table:
    """Per dataset, method and encoder over its runs: the final effective rank (median, lowest), the rank kept as a
    share of the start's, the runs below the bar, the final feature spread and the method's own output collapse."""
    runs = collapse_per_seed(df)
    if runs.empty:
        return Table(pd.DataFrame({"": [f"no pretraining run recorded its feature rank (`{RANK_HISTORY}`): collapse "
                                        "not measured"]}))
    runs = runs.assign(kept=runs["rank_after"] / runs["rank_before"])
    rows = []
    for (dataset, method, arch), group in runs.groupby(["dataset", "method", "arch"], sort=False):
        rows.append({
            "dataset": dataset, "method": method, "arch": arch, "runs": str(len(group)),
            "rank before": f"{group['rank_before'].median():.1f}",
            "rank after (lowest)": f"{group['rank_after'].median():.1f} ({group['rank_after'].min():.1f})",
            "rank kept": f"{group['kept'].median():.0%}",
            f"below {COLLAPSE_RANK:g}": f"{int(group['collapsed'].sum())}/{len(group)}",
            "spread after": f"{group['spread_after'].median():.2g}",
            "output collapsed": _share(group["head_output_collapsed"]),
        })
    table = sort_rows(pd.DataFrame(rows).set_index(["dataset", "method", "arch"])).reset_index()
    return Table(table, data=runs)


_CENTRED = RANK_HISTORY.startswith("centred")
COLLAPSE_RULE = (f"A pretrained encoder is collapsed when the effective rank (RankMe: exp of the entropy of the "
                 f"normalised singular values) of its {'centred, ' if _CENTRED else ''}L2-normalised pooled features "
                 f"on 256 fixed training images ends below {COLLAPSE_RANK:g}, i.e. its features span fewer than about "
                 f"{COLLAPSE_RANK:g} directions; the rule reads the features fine-tuning starts from, not the "
                 "projection outputs, so it does not depend on any head's width. Every method's encoders are measured; "
                 "the claims flag a collapsed encoder beside their verdict and never veto one."
                 + ("" if _CENTRED else " These features are not centred: a large mean direction shared by every "
                    "image lowers the rank without collapse."))
