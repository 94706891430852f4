"""``python -m cass_bench bench-ratios BENCHMARK_JSON``: CASS's per-step cost relative to DINO and BYOL.

CASS trains the CNN and the ViT in one step while DINO and BYOL train one encoder per run, so CASS is compared with
the sum of the CNN and ViT steps of each baseline, and with each one alone. Times are medians of the
``pretrain-step`` benchmarks; FLOPs are the ``flops_per_step`` their ``extra_info`` carries. The harness-vs-plain
loop comparison of ``benchmarks/test_overhead.py`` is printed below the table when the file holds it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from tabulate import tabulate

from cass_bench.bench_compare import REGENERATE, flops_of, load_benchmarks
from cass_bench.errors import UserError

OVERHEAD_KEYS = ("cass", "dino-cnn", "dino-vit")
COMPARISONS = (
    ("CASS / (DINO-cnn + DINO-vit)", ("dino-cnn", "dino-vit")),
    ("CASS / DINO-cnn", ("dino-cnn",)),
    ("CASS / DINO-vit", ("dino-vit",)),
    ("CASS / (BYOL-cnn + BYOL-vit)", ("byol-cnn", "byol-vit")),
    ("CASS / BYOL-cnn", ("byol-cnn",)),
    ("CASS / BYOL-vit", ("byol-vit",)),
)


def pretrain_steps(benchmarks: dict[str, dict[str, Any]]) -> dict[str, tuple[float, float | None]]:
    """(median seconds, FLOPs) of each ``pretrain_step`` benchmark, keyed by method key (``cass``, ``dino-vit``)."""
    steps = {}
    for entry in benchmarks.values():
        info = entry.get("extra_info") or {}
        if info.get("kind") == "pretrain_step" and isinstance(info.get("key"), str):
            steps[info["key"]] = (float(entry["stats"]["median"]), flops_of(entry))
    return steps


def _sum(values: Sequence[float | None]) -> float | None:
    return None if any(v is None for v in values) else float(sum(v for v in values if v is not None))


def ratio_rows(steps: dict[str, tuple[float, float | None]]) -> list[list[str]]:
    """One row per comparison: name, CASS and baseline seconds per step, time ratio, FLOPs ratio."""
    rows = []
    if "cass" not in steps:
        return rows
    cass_s, cass_flops = steps["cass"]
    for name, keys in COMPARISONS:
        if not all(k in steps for k in keys):
            continue
        base_s = sum(steps[k][0] for k in keys)
        base_flops = _sum([steps[k][1] for k in keys])
        flops = f"{cass_flops / base_flops:.3f}" if cass_flops is not None and base_flops else "-"
        rows.append([name, f"{cass_s:.4f}", f"{base_s:.4f}", f"{cass_s / base_s:.3f}", flops])
    return rows


def overhead_lines(info: dict[str, Any]) -> list[str]:
    """Human-readable lines of the harness-vs-plain-loop result stored by ``test_overhead.py``."""
    lines = [f"harness vs plain loop, s/step ({info['epochs']} epochs x {info['steps_per_epoch']} steps, "
             f"first epoch excluded, {info['torch_threads']} torch threads, {info['device']}):"]
    for key in OVERHEAD_KEYS:
        lines.append(f"  {key:<9} harness {info['harness_step_s'][key]:.4f}  plain {info['plain_step_s'][key]:.4f}"
                     f"  harness overhead {100 * info['harness_overhead'][key]:+.1f}%"
                     f"  (median iteration: harness {info['harness_median_step_s'][key]:.4f},"
                     f" plain {info['plain_median_step_s'][key]:.4f})")
    diff = info["relative_difference"]
    verdict = "within" if abs(diff) <= info["agreement_threshold"] else "outside"
    lines.append(f"  CASS/(DINO-cnn + DINO-vit) time ratio: harness {info['harness_cass_dino_time_ratio']:.3f}, "
                 f"plain loop {info['plain_cass_dino_time_ratio']:.3f}, relative difference {100 * diff:+.1f}% "
                 f"({verdict} the {100 * info['agreement_threshold']:.0f}% agreement band); "
                 f"on median iterations {100 * info['median_relative_difference']:+.1f}%")
    return lines


def ratio_report(path: str | Path) -> str:
    """The CASS-vs-baselines ratio table (and the overhead lines) of a benchmark JSON file."""
    benchmarks = load_benchmarks(path)
    parts = []
    rows = ratio_rows(pretrain_steps(benchmarks))
    if rows:
        parts.append(tabulate(rows, headers=["per pretraining step", "CASS s", "baseline s", "time ratio",
                                             "FLOPs ratio"], tablefmt="github", disable_numparse=True))
    for entry in benchmarks.values():
        info = entry.get("extra_info") or {}
        if info.get("kind") == "overhead":
            parts.append("\n".join(overhead_lines(info)))
    if not parts:
        raise UserError(f"benchmark file '{path}' holds neither the CASS pretrain-step nor the overhead benchmark; "
                        f"write it with `{REGENERATE.format(path=path)}`")
    return "\n\n".join(parts)

