"""``python -m cass_bench bench-ratios BENCHMARK_JSON``: the proposed method's per-step cost relative to the others.

CASS trains the CNN and the ViT in one step while DINO and BYOL train one encoder per run, so CASS is compared with
the sum of the CNN and ViT steps of each comparator (the registry's), and with each one alone. Times are medians of the
``pretrain-step`` benchmarks; FLOPs are the ``flops_per_step`` their ``extra_info`` carries. The harness-vs-plain
loop comparison of ``benchmarks/test_overhead.py`` is printed below the table when the file holds it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from tabulate import tabulate

from cass_bench.bench.compare import REGENERATE, flops_of, load_benchmarks
from cass_bench.config.schema import ARCHS
from cass_bench.errors import UserError
from cass_bench.config.registry import COST_BASELINE, PROPOSED, comparators, parse_run_key, run_key, run_keys_of

PROPOSED_KEY = run_key(PROPOSED, ARCHS)
BASELINE_KEYS = tuple(run_key(COST_BASELINE, (arch,)) for arch in ARCHS)
OVERHEAD_KEYS = (PROPOSED_KEY, *BASELINE_KEYS)
"""The runs of the CASS/DINO time-ratio check of the harness-vs-plain-loop comparison."""
OVERHEAD_BUDGET = 0.05
"""How much slower than the plain loop the harness's step may be (issue 16: 5%)."""


def key_label(key: str) -> str:
    """How a run key is written in the tables: the method in capitals, then the arch (``DINO-cnn``)."""
    return parse_run_key(key, ARCHS).label


def _sum_label(keys: Sequence[str]) -> str:
    return key_label(keys[0]) if len(keys) == 1 else f"({' + '.join(key_label(k) for k in keys)})"


def comparisons() -> list[tuple[str, tuple[str, ...]]]:
    """(row name, baseline keys) of each comparison: per comparator, its runs summed, then each run alone."""
    rows = []
    for method in comparators():
        keys = tuple(k.name for k in run_keys_of(ARCHS) if k.method == method)
        groups = [keys, *((k,) for k in keys)] if len(keys) > 1 else [keys]
        rows.extend((f"{key_label(PROPOSED_KEY)} / {_sum_label(g)}", g) for g in groups)
    return rows


def overhead_ratio(per_step: dict[str, float]) -> float:
    """The proposed method's time per step over the sum of the cost baseline's runs."""
    return per_step[PROPOSED_KEY] / sum(per_step[k] for k in BASELINE_KEYS)


def pretrain_steps(benchmarks: dict[str, dict[str, Any]]) -> dict[str, tuple[float, float | None]]:
    """(median seconds, FLOPs) of each ``pretrain_step`` benchmark, keyed by run key."""
    steps = {}
    for entry in benchmarks.values():
        info = entry.get("extra_info") or {}
        if info.get("kind") == "pretrain_step" and isinstance(info.get("key"), str):
            steps[info["key"]] = (float(entry["stats"]["median"]), flops_of(entry))
    return steps


def _sum(values: Sequence[float | None]) -> float | None:
    return None if any(v is None for v in values) else float(sum(v for v in values if v is not None))


def ratio_rows(steps: dict[str, tuple[float, float | None]]) -> list[list[str]]:
    """One row per comparison: name, proposed and baseline seconds per step, time ratio, FLOPs ratio."""
    rows: list[list[str]] = []
    if PROPOSED_KEY not in steps:
        return rows
    proposed_s, proposed_flops = steps[PROPOSED_KEY]
    for name, keys in comparisons():
        if not all(k in steps for k in keys):
            continue
        base_s = sum(steps[k][0] for k in keys)
        base_flops = _sum([steps[k][1] for k in keys])
        flops = f"{proposed_flops / base_flops:.3f}" if proposed_flops is not None and base_flops else "-"
        rows.append([name, f"{proposed_s:.4f}", f"{base_s:.4f}", f"{proposed_s / base_s:.3f}", flops])
    return rows


def overhead_lines(info: dict[str, Any]) -> list[str]:
    """Human-readable lines of the harness-vs-plain-loop result stored by ``test_overhead.py``.

    One line per run timed: median loop iteration of each side, their ratio against the overhead budget, and the
    epoch statistic beside it; then the CASS/DINO time ratio of both sides.
    """
    budget = info.get("overhead_budget", OVERHEAD_BUDGET)
    lines = [f"harness vs plain loop, s/step, median iteration after the first epoch ({info['epochs']} epochs x "
             f"{info['steps_per_epoch']} steps, batch {info.get('batch_size', '?')}, {info['torch_threads']} torch "
             f"threads, {info['device']}; budget {100 * budget:.0f}%):"]
    for key, harness in info["harness_median_step_s"].items():
        plain = info["plain_median_step_s"][key]
        ratio = harness / plain
        verdict = "within" if ratio <= 1 + budget else "OVER"
        lines.append(f"  {key:<9} harness {harness:.4f}  plain {plain:.4f}  ratio {ratio:.3f} ({verdict} budget)"
                     f"  (epoch statistic: harness {info['harness_step_s'][key]:.4f},"
                     f" plain {info['plain_step_s'][key]:.4f})")
    diff = info["relative_difference"]
    verdict = "within" if abs(diff) <= info["agreement_threshold"] else "outside"
    lines.append(f"  {key_label(PROPOSED_KEY)}/{_sum_label(BASELINE_KEYS)} time ratio: harness {info['harness_cass_dino_time_ratio']:.3f}, "
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

