"""The report's seed-plan section: the plan, its inputs and its result, and what its seeds cost beside a fixed 12."""

from __future__ import annotations

from pathlib import Path

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
    per_seed = seed_minutes(load_records(Path(out)))
    if not per_seed.empty:
        mean = float(per_seed[TOTAL].mean())
        lines.append(f"Spent: {per_seed[TOTAL].sum():.0f} thread-minutes over {len(per_seed)} seeds ({mean:.1f} a seed); "
                     f"a fixed {FIXED_SEEDS} seeds would cost about {FIXED_SEEDS * mean:.0f}.")
    return Section("seed_plan", "Seed plan", lines)
