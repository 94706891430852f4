"""``python -m benchmarks.seed_cost_study``: what removing waste saved a seed, measured before and after.

Two wastes were removed from a seed's cells without changing any measured number: the evaluator of an encoder was
built again for every record (``evaluators.setdefault(arch, EncoderEvaluator(...))`` constructs its argument each
time) and every fine-tune counted the FLOPs of a training step whose shape an earlier fine-tune of the process had
already counted. ``benchmarks/seed_cost_before.patch`` puts both back into the current code, so the two sides differ
in exactly these lines.

The study runs one seed of a config twice, one run right after the other: first the code with the patch applied (a
temporary git worktree of ``HEAD``), then the checkout as it is; each as the documented way to run a multi-seed
sweep (two single-threaded shards side by side, ``OMP_NUM_THREADS=1 ... --shard i/2``), each into a results folder
of its own (``<out>/before``, ``<out>/after``). It then compares

- the seed's thread-minutes as the records itemise them (:func:`cass_bench.records.breakdown.seed_minutes`),
- the CPU time the whole run took (user + system of every process, from ``getrusage``) and its wall time,
- every measured number of the two sides' records, matched by record id (macro-F1, FLOPs per image).

Writes ``study.json`` (every number) and ``README.md`` (the tables) into ``--out``. Run it on a machine nothing else is
running on; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
from tabulate import tabulate

from benchmarks.harness import ROOT
from cass_bench.records.breakdown import CATEGORIES, TOTAL, seed_minutes
from cass_bench.records.environment import device_name, git_commit
from cass_bench.records.store import RecordStore

PATCH = Path(__file__).with_name("seed_cost_before.patch")
SIDES = ("before", "after")
COMPARED = ("f1_macro", "flops_per_image", "finetune_flops_per_image")
"""Measured numbers that must not move when only waste is removed."""
LINKS = {"cass_bench/configs": "../configs", "cass_bench/methods/baselines": "../../baselines"}
"""Where an installed checkout finds its configs and baselines (pyproject's package-dir), as links in a bare tree."""


class StudyError(RuntimeError):
    """The study cannot run as asked (the patch no longer applies, a side's run failed)."""


CODE = ("cass_bench", "baselines", "configs")
"""What a run imports: both sides must hold the same committed version of it, but for the patch."""


def uncommitted_code() -> list[str]:
    """Tracked files of :data:`CODE` that differ from ``HEAD`` (the after side would run them, the before not)."""
    changed = subprocess.run(["git", "diff", "--name-only", "HEAD", "--", *CODE], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout
    return changed.split()


def before_tree(scratch: Path) -> Path:
    """A worktree of ``HEAD`` with :data:`PATCH` applied and the package's mapped folders linked in."""
    tree = scratch / "before"
    subprocess.run(["git", "worktree", "add", "--detach", str(tree), "HEAD"], cwd=ROOT, check=True,
                   capture_output=True)
    applied = subprocess.run(["git", "apply", str(PATCH)], cwd=tree, capture_output=True, text=True)
    if applied.returncode:
        raise StudyError(f"{PATCH.name} no longer applies to HEAD ({applied.stderr.strip()}); regenerate it from the "
                         "lines the study's docstring names")
    for link, target in LINKS.items():
        (tree / link).symlink_to(target)
    return tree


def run_side(tree: Path, config: str, seed: int, out: Path, shards: int) -> dict[str, float]:
    """One seed of ``config`` from the code in ``tree`` as ``shards`` single-threaded shards side by side.

    Every process runs in the checkout (so the folder registers its path as the other results folders do) and
    imports the package from ``tree`` alone (``PYTHONSAFEPATH``: the working directory is not put on the path).

    Returns:
        ``wall_s`` and ``cpu_s`` (user + system of the shards and every process they started).
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(tree), "PYTHONSAFEPATH": "1"}
    where = os.path.relpath(out, ROOT) if out.is_relative_to(ROOT) else str(out)
    command = [sys.executable, "-m", "cass_bench", "run", "--config", config, "--seeds", str(seed), "--out", where]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    processes = [subprocess.Popen([*command, "--shard", f"{i}/{shards}"], cwd=ROOT, env=env) for i in range(shards)]
    codes = [p.wait() for p in processes]
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if any(codes):
        raise StudyError(f"the {out.name} run exited with {codes}; its log is above")
    return {"wall_s": wall, "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)}


def compare_numbers(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> dict[str, Any]:
    """The two sides' records matched by id: how many match, and the largest difference of each of :data:`COMPARED`."""
    frames = [pd.DataFrame(records).set_index("record_id") for records in (before, after)]
    shared = frames[0].index.intersection(frames[1].index)
    largest = {}
    for column in COMPARED:
        if column in frames[0] and column in frames[1]:
            diff = (pd.to_numeric(frames[1].loc[shared, column], errors="coerce")
                    - pd.to_numeric(frames[0].loc[shared, column], errors="coerce")).abs()
            largest[column] = None if diff.dropna().empty else float(diff.max())
    return {"records": [len(f) for f in frames], "matched": len(shared), "largest_difference": largest}


def write_report(result: dict[str, Any], out: Path) -> None:
    """``study.json`` and ``README.md`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "study.json").write_text(json.dumps(result, indent=2) + "\n")
    env, sides = result["environment"], result["sides"]
    def number(value: float, sign: str = "") -> str:
        return "—" if math.isnan(value) else f"{value:{sign}.2f}"

    rows = [[category, *(number(sides[s]["thread_min"][category]) for s in SIDES),
             number(sides["after"]["thread_min"][category] - sides["before"]["thread_min"][category], "+")]
            for category in [*CATEGORIES, TOTAL]]
    rows.append(["CPU time of the whole run (min)", *(f"{sides[s]['cpu_s'] / 60:.2f}" for s in SIDES),
                 f"{(sides['after']['cpu_s'] - sides['before']['cpu_s']) / 60:+.2f}"])
    rows.append(["wall time (min)", *(f"{sides[s]['wall_s'] / 60:.2f}" for s in SIDES),
                 f"{(sides['after']['wall_s'] - sides['before']['wall_s']) / 60:+.2f}"])
    numbers = result["numbers"]
    largest = "; ".join(f"{k} {v:.3g}" if v is not None else f"{k} not recorded"
                        for k, v in numbers["largest_difference"].items())
    saved = sides["before"]["thread_min"][TOTAL] - sides["after"]["thread_min"][TOTAL]
    lines = [
        f"# What removing waste saved a seed ({result['created_at'][:10]})", "",
        f"Machine: {env['device']}; commit `{env['git_commit']}`; load average at the start "
        f"{', '.join(f'{x:.2f}' for x in env['load_average_at_start'])}. Regenerate with "
        f"`python -m benchmarks.seed_cost_study` on a machine nothing else is running on.", "",
        f"Seed {result['seed']} of `--config {result['config']}`, run twice, one run right after the other, each as "
        f"{result['shards']} single-threaded shards side by side: first **before** (the current code with "
        "`benchmarks/seed_cost_before.patch`, which builds an encoder's evaluator again for every record and counts "
        "every fine-tune's step FLOPs anew), then **after** (the code as it is). Thread-minutes per category as the "
        "records itemise them (report section 2b), the CPU time of every process of the run (getrusage) and the "
        "wall time:", "",
        tabulate(rows, headers=["thread-minutes", *SIDES, "after - before"], tablefmt="github",
                 disable_numparse=True), "",
        f"Saved: {saved:.2f} thread-minutes of {sides['before']['thread_min'][TOTAL]:.2f} "
        f"({saved / sides['before']['thread_min'][TOTAL]:.1%}).", "",
        f"Measured numbers: {numbers['matched']} of {numbers['records'][0]} / {numbers['records'][1]} records match "
        f"by id; the largest difference between the sides: {largest}.",
    ]
    (out / "README.md").write_text("\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Runs both sides and writes the comparison."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.seed_cost_study", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "seed-cost")
    parser.add_argument("--config", default="default", help="the config whose seed is measured")
    parser.add_argument("--seed", type=int, default=0, help="the seed (its start cached keeps the start out of it)")
    parser.add_argument("--shards", type=int, default=2)
    args = parser.parse_args(argv)
    out = args.out.resolve()
    taken = [side for side in SIDES if (out / side).exists()]
    if taken:
        print(f"error: {out}/{taken[0]} exists; move it away or pass another --out", file=sys.stderr)
        return 2
    result: dict[str, Any] = {
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "config": args.config,
        "seed": args.seed, "shards": args.shards,
        "environment": {"device": device_name(), "git_commit": git_commit(),
                        "load_average_at_start": list(os.getloadavg())}, "sides": {},
    }
    changed = uncommitted_code()
    if changed:
        print(f"error: {changed[0]} differs from HEAD; commit it first (both sides run HEAD's code, one of them "
              "patched)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="cass-bench-seed-cost-") as scratch:
        try:
            trees = {"before": before_tree(Path(scratch)), "after": ROOT}
            for side in SIDES:
                timing = run_side(trees[side], args.config, args.seed, out / side, args.shards)
                minutes = seed_minutes(RecordStore(out / side).load())
                result["sides"][side] = {**timing, "thread_min": {k: float(minutes.loc[args.seed, k])
                                                                  for k in [*CATEGORIES, TOTAL]}}
        except StudyError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(Path(scratch) / "before")], cwd=ROOT,
                           capture_output=True)
    result["numbers"] = compare_numbers(RecordStore(out / "before").load(), RecordStore(out / "after").load())
    write_report(result, out)
    print((out / "README.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
