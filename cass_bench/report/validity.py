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
from cass_bench.report.render import Table, fraction_text



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
        first = group.drop_duplicates("seed")
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
        return pd.DataFrame(columns=[*ENCODER_RUN_KEYS, RANK_HISTORY, "feature_std_history", "collapsed"])
    runs = ok.drop_duplicates(list(ENCODER_RUN_KEYS))
    runs = runs[runs[RANK_HISTORY].map(lambda h: isinstance(h, list) and len(h) > 0)]
    return runs[[*ENCODER_RUN_KEYS, "init", RANK_HISTORY, "feature_std_history", "embedding_std", "collapsed"]]


def collapse_table(df: pd.DataFrame) -> Table:
    """Every pretrained encoder: effective rank and spread of its pooled features before and after pretraining."""
    runs = collapse_runs(df)
    if runs.empty:
        return Table(pd.DataFrame({"": [f"no pretraining run recorded its feature rank (`{RANK_HISTORY}`): collapse "
                                        "not measured"]}))
    table = pd.DataFrame({
        "dataset": runs["dataset"], "method": runs["method"], "arch": runs["arch"],
        "batch size": runs["batch_size"].map(lambda v: f"{v:g}"), "epochs": runs["pretrain_epochs"].map(lambda v: f"{v:g}"),
        "seed": runs["seed"].map(lambda v: f"{v:g}"), "init": runs["init"],
        "rank before → after": [f"{h[0]:.1f} → {h[-1]:.1f}" for h in runs[RANK_HISTORY]],
        "spread before → after": [f"{h[0]:.2g} → {h[-1]:.2g}" for h in runs["feature_std_history"]],
        "head-output std": runs["embedding_std"].map(lambda v: "—" if pd.isna(v) else f"{v:.1e}"),
        "collapsed": runs["collapsed"].map(lambda v: "yes" if v is True else "no"),
    })
    return Table(table.reset_index(drop=True), data=runs.reset_index(drop=True))


_CENTRED = RANK_HISTORY.startswith("centred")
COLLAPSE_RULE = (f"A pretrained encoder is collapsed when the effective rank (RankMe: exp of the entropy of the "
                 f"normalised singular values) of its {'centred, ' if _CENTRED else ''}L2-normalised pooled features "
                 f"on 256 fixed training images ends below {COLLAPSE_RANK:g}, i.e. its features span fewer than about "
                 f"{COLLAPSE_RANK:g} directions; the rule reads the features fine-tuning starts from, not the "
                 "projection outputs, so it does not depend on any head's width. Every method's encoders are measured; "
                 "the claims flag a collapsed encoder beside their verdict and never veto one."
                 + ("" if _CENTRED else " These features are not centred: a large mean direction shared by every "
                    "image lowers the rank without collapse."))
