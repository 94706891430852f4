"""Two results folders that differ in one method's settings: that method's change between them, paired by seed.

A results folder holds one configuration per setting, so two variants of a method (CASS comparing its start's
classifiers or fresh random heads; zeroed or accumulated gradients) are two folders; records of the other methods
may be shared (the same ids). For every method whose ``config_hash`` differs between the folders, each (dataset,
encoder, evaluation, label fraction) gets the second folder's macro-F1 minus the first's over their shared seeds.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cass_bench.config.registry import method_order
from cass_bench.records.schema import OK
from cass_bench.report.load import load_records
from cass_bench.report.paired import SEED, change_text, paired_changes
from cass_bench.report.format import fraction_text
from cass_bench.report.present.render import STYLES, Table

KEYS = ["dataset", "arch", "eval", "label_fraction"]


def differing_methods(first: pd.DataFrame, second: pd.DataFrame) -> list[str]:
    """Methods with finished records in both folders whose settings (``config_hash``) differ between them."""
    hashes = [df[df["status"] == OK].groupby("method")["config_hash"].agg(frozenset) for df in (first, second)]
    shared = set(hashes[0].index) & set(hashes[1].index)
    return method_order({m for m in shared if hashes[0][m] != hashes[1][m]})


def variant_changes(first: pd.DataFrame, second: pd.DataFrame, method: str) -> pd.DataFrame:
    """``method``'s macro-F1 in each folder and the paired change (second minus first) per :data:`KEYS`."""
    means = [df[(df["status"] == OK) & (df["method"] == method)].groupby([*KEYS, SEED])["f1_macro"].mean()
             for df in (first, second)]
    rows = paired_changes(means[1], means[0], KEYS)
    return pd.DataFrame(rows, columns=[*KEYS, "base", "value", "interval"])


def variant_table(changes: pd.DataFrame, names: tuple[str, str]) -> Table:
    """One row per (dataset, encoder, evaluation, label fraction): each folder's mean, the change and its seeds."""
    rows = [{"dataset": r["dataset"], "arch": r["arch"], "eval": r["eval"],
             "labels": fraction_text(r["label_fraction"]), names[0]: f"{r['base']:.3f}", names[1]: f"{r['value']:.3f}",
             f"{names[1]} − {names[0]} (95% interval)": change_text(r["interval"]), "seeds": str(r["interval"].n)}
            for _, r in changes.iterrows()]
    return Table(pd.DataFrame(rows))


def variant_lines(first_folder: Path, second_folder: Path) -> list[str]:
    """The comparison of two sibling results folders as Markdown blocks (nothing when no method differs).

    Args:
        first_folder, second_folder: the folders; the change is the second's value minus the first's.
    """
    first, second = load_records(first_folder), load_records(second_folder)
    names = (first_folder.name, second_folder.name)
    blocks = []
    for method in differing_methods(first, second):
        changes = variant_changes(first, second, method)
        if changes.empty:
            continue
        blocks.extend([
            f"{method} in `{names[1]}/` against `{names[0]}/` (macro-F1, mean over the seeds both ran; the change is "
            "the mean of the per-seed differences with its 95% t interval):",
            variant_table(changes, names).render(STYLES["markdown"]),
        ])
    return blocks
