"""The paper's claims measured again without the seeds in which a row's records ran on different commits, so a reader
sees whether a code change, rather than a method, could stand behind a verdict flagged "commits"."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cass_bench.report.claims.decide import check_claims, headline
from cass_bench.report.claims.family import Family

KEPT = ["estimate", "low", "high", "n", "status"]


def commit_check(records: pd.DataFrame, claims: pd.DataFrame, batch_size: float | None, epochs: float | None,
                 predictions: Path | None, family: Family) -> pd.DataFrame:
    """Each answer row flagged "commits", measured again over the seeds its records ran on one commit.

    The rows that leave out the same seeds share one measurement of every row over the other seeds, with the same
    families and rules as the report's.

    Args:
        records: the records frame ``claims`` came from.
        claims: :func:`cass_bench.report.claims.decide.check_claims` of ``records``.
        batch_size, epochs: the main setting.
        predictions: as for :func:`~cass_bench.report.claims.decide.check_claims`.
        family: the families ``claims`` was decided with.

    Returns:
        The flagged answer rows (empty when none is flagged), with ``kept_estimate``, ``kept_low``, ``kept_high``,
        ``kept_n`` and ``kept_status`` ("not measured" where the other seeds give the row no measurement).
    """
    rows = headline(claims)
    rows = rows[rows["mixed_seeds"].fillna("") != ""]
    parts = [pd.DataFrame(columns=[f"kept_{c}" for c in KEPT], dtype=object)]
    for dropped, group in rows.groupby("mixed_seeds"):
        seeds = [int(s) for s in str(dropped).split(", ")]
        again = check_claims(records[~records["seed"].isin(seeds)], batch_size, epochs, predictions, family)
        kept = again.set_index("key").reindex(group["key"])[KEPT].add_prefix("kept_")
        parts.append(kept.set_axis(group.index))
    out = rows.join(pd.concat(parts))
    out["kept_status"] = out["kept_status"].fillna("not measured")
    return out


def changed(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of :func:`commit_check` whose verdict differs without their mixed seeds."""
    return rows[rows["status"].astype(str) != rows["kept_status"].astype(str)]
