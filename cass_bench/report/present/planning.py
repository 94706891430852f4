"""The report's seed-plan section: the plan, its inputs and its result, and what its seeds cost beside a fixed 12."""

from __future__ import annotations

from pathlib import Path

import yaml

from cass_bench.config.load import load_config
from cass_bench.records.breakdown import TOTAL, seed_minutes
from cass_bench.report.load import load_records
from cass_bench.report.present.render import Section
from cass_bench.report.seedplan import plan_from_folder, plan_lines

FIXED_SEEDS = 12
"""The seed count a listed design used before plans (the untuned default's)."""


def plan_section(out: Path) -> Section | None:
    """The seed plan of a results folder whose ``config.yaml`` plans its seeds (None otherwise)."""
    path = Path(out) / "config.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (yaml.YAMLError, UnicodeDecodeError):
        return None
    plan = data.get("plan") if isinstance(data, dict) else None
    if not isinstance(plan, dict) or not plan.get("pilot"):
        return None
    cfg = load_config(path)
    lines = plan_lines(plan_from_folder(Path(out), cfg), cfg.plan.planned)
    per_seed = seed_minutes(load_records(Path(out)))
    if not per_seed.empty:
        mean = float(per_seed[TOTAL].mean())
        lines.append(f"Spent: {per_seed[TOTAL].sum():.0f} thread-minutes over {len(per_seed)} seeds ({mean:.1f} a seed); "
                     f"a fixed {FIXED_SEEDS} seeds would cost about {FIXED_SEEDS * mean:.0f}.")
    return Section("seed_plan", "Seed plan", lines)
