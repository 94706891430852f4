"""The report's seed-plan section: the plan, its inputs and its result, and what its seeds cost beside a fixed 12."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cass_bench.config.files import RESOLVED
from cass_bench.config.load import folder_settings, load_config
from cass_bench.records.breakdown import TOTAL, seed_minutes
from cass_bench.report.load import load_records
from cass_bench.report.present.render import Section
from cass_bench.report.seedplan import plan_from_folder, plan_lines

FIXED_SEEDS = 12
"""The seed count a listed design used before plans (the untuned default's)."""


def plan_section(out: Path) -> Section | None:
    """The seed plan of a results folder whose ``config.yaml`` plans its seeds (None otherwise)."""
    registered = folder_settings(out, ("plan",))
    if registered is None or not registered.plan.pilot:
        return None
    cfg = load_config(Path(out) / RESOLVED)
    lines = plan_lines(plan_from_folder(Path(out), cfg), cfg.plan.planned)
    spent = spent_line(load_records(Path(out)))
    return Section("seed_plan", "Seed plan", lines if spent is None else [*lines, spent])


def spent_line(records: pd.DataFrame) -> str | None:
    """The thread-minutes the records' seeds spent, beside what a fixed :data:`FIXED_SEEDS` would cost at the mean
    of the whole seeds (None when the records show no spending).

    A seed with fewer records than the fullest seed is still running (or short of some cells): its minutes count in
    the total, but not in the cost of a seed.
    """
    per_seed = seed_minutes(records)
    if per_seed.empty:
        return None
    counts = records.groupby("seed").size().reindex(per_seed.index, fill_value=0)
    whole = per_seed.loc[counts == counts.max(), TOTAL]
    short = len(per_seed) - len(whole)
    seeds = f"{len(per_seed)} seeds" + (f", {short} of them short of the fullest seed's {counts.max()} records" if short
                                        else "")
    return (f"Spent: {per_seed[TOTAL].sum():.0f} thread-minutes over {seeds} ({whole.mean():.1f} a seed); a fixed "
            f"{FIXED_SEEDS} seeds would cost about {FIXED_SEEDS * whole.mean():.0f}.")
