"""The built-in recipes' provenance as a table: every value, where it comes from and how it was scaled, and each
method's tuning search space (``docs/methods.md`` holds it, refilled by :mod:`cass_bench.report.index`)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from cass_bench.config.recipe import provenance
from cass_bench.config.registry import BUILTIN_METHODS
from cass_bench.report.present.render import STYLES, Table


def _value_text(value: Any) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(_value_text(v) for v in value) + ")"
    return f"{value:g}" if isinstance(value, float) else str(value).lower() if isinstance(value, bool) else str(value)


def recipe_sources() -> pd.DataFrame:
    """One row per built-in method and recipe field: its default, source, the value there, how it was scaled."""
    rows = []
    for name, spec in BUILTIN_METHODS.items():
        if spec.recipe is None:
            continue
        for field, value, source in provenance(spec.recipe):
            rows.append({"method": name, "field": field, "value": _value_text(value),
                         "source": source.where if source else "this harness",
                         "there": (source.there if source and source.there else "same"),
                         "scaled": source.scaled if source and source.scaled else "-"})
    return pd.DataFrame(rows)


def search_space_lines() -> list[str]:
    """One line per built-in method: the settings its tuning tries (around its reference value)."""
    lines = []
    for name, spec in BUILTIN_METHODS.items():
        if spec.recipe is None:
            continue
        recipe = spec.recipe()
        axes = "; ".join(f"{axis.name} in ({', '.join(_value_text(v) for v in axis.grid(getattr(recipe, axis.name)))})"
                         for axis in recipe.SEARCH) or "nothing (not tuned)"
        lines.append(f"- `{name}`: {axes}")
    return lines


def recipe_table_text() -> str:
    """The provenance table and the search spaces as Markdown."""
    table = Table(recipe_sources())
    return table.render(STYLES["markdown"]) + "\n\nTuning search spaces (the first `tune.trials` points of each, " \
        "nearest the reference's own values first: 3 points are its value and the two beside it):\n\n" + \
        "\n".join(search_space_lines())
