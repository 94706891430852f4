"""``python -m cass_bench bench-compare OLD NEW``: the change of every benchmark between two pytest-benchmark JSONs.

Each row is one benchmark (matched by name) with NEW/OLD ratios of its median and mean time and of the FLOPs per
step its ``extra_info`` carries. A ratio above 1 means NEW is slower (or does more work).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from tabulate import tabulate

from cass_bench.errors import UserError

REGENERATE = "python -m pytest benchmarks --benchmark-only --benchmark-json {path}"


def _malformed(path: Path, why: str) -> UserError:
    return UserError(f"benchmark file '{path}' is not pytest-benchmark JSON ({why}); "
                     f"regenerate it with `{REGENERATE.format(path=path)}`")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def load_benchmarks(path: str | Path) -> dict[str, dict[str, Any]]:
    """Reads a ``--benchmark-json`` file and returns its benchmarks keyed by name, in file order.

    Args:
        path: the JSON file written by pytest-benchmark.

    Raises:
        UserError: the file is missing, is not JSON, or lacks the ``benchmarks`` list with ``name`` and
            numeric ``stats.median``/``stats.mean`` per entry.
    """
    p = Path(path)
    if not p.is_file():
        raise UserError(f"benchmark file '{p}' not found; pass an existing pytest-benchmark JSON, "
                        f"e.g. one written by `{REGENERATE.format(path=p)}`")
    try:
        data = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _malformed(p, f"invalid JSON: {str(exc).splitlines()[0]}") from None
    entries = data.get("benchmarks") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise _malformed(p, "no 'benchmarks' list")
    found: dict[str, dict[str, Any]] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise _malformed(p, f"benchmark #{index} has no name")
        stats = entry.get("stats")
        if not isinstance(stats, dict) or not all(_number(stats.get(k)) for k in ("median", "mean")):
            raise _malformed(p, f"benchmark '{entry['name']}' has no numeric stats.median and stats.mean")
        if entry.get("extra_info") is not None and not isinstance(entry["extra_info"], dict):
            raise _malformed(p, f"benchmark '{entry['name']}' has a non-mapping extra_info")
        found[entry["name"]] = entry
    return found


def flops_of(entry: dict[str, Any]) -> float | None:
    """FLOPs per step stored in a benchmark's ``extra_info``, or None."""
    value = (entry.get("extra_info") or {}).get("flops_per_step")
    return float(value) if _number(value) else None


def _ratio(new: float | None, old: float | None) -> str:
    if new is None or old is None or old == 0:
        return "-"
    return f"{new / old:.3f}"


def _ms(entry: dict[str, Any] | None) -> str:
    return "-" if entry is None else f"{1000 * entry['stats']['median']:.1f}"


def compare_benchmarks(old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]], fmt: str = "github") -> str:
    """The per-benchmark NEW/OLD table of two loaded benchmark sets.

    Args:
        old, new: benchmarks keyed by name, as :func:`load_benchmarks` returns.
        fmt: tabulate table format.
    """
    rows = []
    for name in [*new, *(n for n in old if n not in new)]:
        o, n = old.get(name), new.get(name)
        both = o is not None and n is not None
        rows.append([
            (n or o).get("group") or "",
            name if both else f"{name} (only in {'NEW' if o is None else 'OLD'})",
            _ms(o), _ms(n),
            _ratio(n["stats"]["median"], o["stats"]["median"]) if both else "-",
            _ratio(n["stats"]["mean"], o["stats"]["mean"]) if both else "-",
            _ratio(flops_of(n), flops_of(o)) if both else "-",
        ])
    headers = ["group", "benchmark", "OLD median ms", "NEW median ms", "median NEW/OLD", "mean NEW/OLD",
               "FLOPs NEW/OLD"]
    return tabulate(rows, headers=headers, tablefmt=fmt, disable_numparse=True)


def settings_of(benchmarks: dict[str, dict[str, Any]]) -> set[tuple[str, str]]:
    """The (device, torch threads) pairs the benchmarks' ``extra_info`` records."""
    found = set()
    for entry in benchmarks.values():
        info = entry.get("extra_info") or {}
        if "device" in info or "torch_threads" in info:
            found.add((str(info.get("device")), str(info.get("torch_threads"))))
    return found


def _show(settings: set[tuple[str, str]]) -> str:
    return ", ".join(f"{device} with {threads} torch threads" for device, threads in sorted(settings))


def compare_files(old_path: str | Path, new_path: str | Path, fmt: str = "github") -> str:
    """Loads two pytest-benchmark JSON files and returns their NEW/OLD table (see :func:`compare_benchmarks`).

    A note follows the table when the two runs used different devices or torch thread counts.
    """
    old, new = load_benchmarks(old_path), load_benchmarks(new_path)
    text = compare_benchmarks(old, new, fmt)
    old_settings, new_settings = settings_of(old), settings_of(new)
    if old_settings and new_settings and old_settings != new_settings:
        text += (f"\nnote: OLD ran on {_show(old_settings)}, NEW on {_show(new_settings)}; "
                 "times are not comparable")
    return text
