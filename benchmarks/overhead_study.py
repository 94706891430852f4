"""``python -m benchmarks.overhead_study``: does the harness distort the cost figures? Measured, written to a folder.

Two measurements (the benchmark runs and the ``run`` each in processes of their own, so that nothing inherits
another's allocator state):

1. **Step time, every method.** ``benchmarks/test_overhead.py`` run ``--repeats`` times (default 3); per run key the
   median over the runs of its harness/plain-loop ratio, with the smallest and largest beside it.
   **Its resolution:** two identical plain loops of each method timed the same way (epoch by epoch in turn on the
   same fixed batches, the median step after the warm-up epoch), ``--null-repeats`` times (default 3). Their ratio
   would be 1 with a perfect clock and an unchanging machine; how far it strays is how far a harness/plain ratio can
   stray with no overhead at all.
2. **Epoch time from a ``run``.** ``python -m cass_bench run`` pretrains CASS and DINO at the chosen config (frozen
   kNN only, so the run is mostly pretraining), and the plain loops of CASS, DINO-cnn and DINO-vit train the same
   number of epochs on the same data loader (the method's own transform, the same workers, batch size and drop-last;
   an epoch capped at ``pretrain_batches`` steps when the config sets it) once before the run and once after it, so a
   drift of the machine's speed over the minutes the comparison takes falls on both sides alike (the plain figure is
   the mean of the two passes; both are kept). Each side's time per epoch is the median of the epochs after the
   first, as ``EpochClock`` records it; the figure compared is the CASS/(DINO-cnn + DINO-vit) ratio of each side.

Every process involved keeps freed host memory for reuse, as a run's cells do (``cass_bench.engine.allocator``).
Writes ``overhead.json`` (every number) and ``README.md`` (the tables) into ``--out``. Nothing is asserted: these are
measurements, and they mean something only on a machine nothing else is running on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import torch
from tabulate import tabulate

from benchmarks.harness import (
    METHOD_KEYS, OVERHEAD_BATCH, OVERHEAD_EPOCHS, OVERHEAD_STEPS, ROOT, build_method, device, fixed_batches,
    smoke_config, to_device, train_images,
)
from benchmarks.plain_loops import build_plain, time_epoch
from benchmarks.timing import StepTimes
from cass_bench.engine.allocator import keep_freed_memory
from cass_bench.bench.ratios import OVERHEAD_BUDGET, OVERHEAD_KEYS, key_label, overhead_ratio
from cass_bench.config.schema import BenchConfig
from cass_bench.config.load import load_config
from cass_bench.config.files import resolve_config
from cass_bench.data.loaders import loader_workers, make_loader
from cass_bench.engine.timing import synchronize
from cass_bench.config.registry import run_key
from cass_bench.records.environment import device_name, git_commit, versions
from cass_bench.records.store import RecordStore

RUN_AGREEMENT = 0.10
"""Issue 16: the run's CASS/DINO time ratio within 10% of the plain loop's."""


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (the platform's processor string elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def overhead_runs(repeats: int, scratch: Path) -> list[dict[str, Any]]:
    """Runs ``benchmarks/test_overhead.py`` ``repeats`` times, each in a fresh pytest process.

    Returns:
        The ``extra_info`` of the overhead benchmark of each run.
    """
    infos = []
    for index in range(repeats):
        path = scratch / f"overhead-{index}.json"
        subprocess.run([sys.executable, "-m", "pytest", "benchmarks/test_overhead.py", "--benchmark-only", "-q",
                        "-p", "no:cacheprovider", f"--benchmark-json={path}"], cwd=ROOT, check=True)
        (entry,) = json.loads(path.read_text())["benchmarks"]
        infos.append(entry["extra_info"])
    return infos


def summarise_overhead(infos: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per run key: the harness/plain ratio of every run, their median, smallest and largest."""
    keys = list(infos[0]["harness_plain_ratio"])
    per_key = {}
    for key in keys:
        ratios = [info["harness_plain_ratio"][key] for info in infos]
        per_key[key] = {
            "ratios": ratios,
            "median": statistics.median(ratios),
            "min": min(ratios),
            "max": max(ratios),
            "harness_median_step_s": statistics.median(info["harness_median_step_s"][key] for info in infos),
            "plain_median_step_s": statistics.median(info["plain_median_step_s"][key] for info in infos),
        }
    first = infos[0]
    return {
        "repeats": len(infos),
        "epochs": first["epochs"],
        "steps_per_epoch": first["steps_per_epoch"],
        "batch_size": first["batch_size"],
        "image_size": first["image_size"],
        "torch_threads": first["torch_threads"],
        "per_key": per_key,
        "cass_dino_relative_difference": [info["median_relative_difference"] for info in infos],
    }


def plain_vs_plain(cfg: BenchConfig, epochs: int, steps: int, batch_size: int) -> dict[str, float]:
    """The benchmark's comparison with no difference to find: two identical plain loops of every run key.

    Built, batched and timed as ``benchmarks/test_overhead.py`` times harness and plain loop: the same fixed
    batches, the two loops epoch by epoch in turn, each side's median step after the first epoch.

    Args:
        cfg: the smoke config (what the overhead benchmark trains).
        epochs: epochs per side (the first is warm-up).
        steps: steps per epoch.
        batch_size: images per batch.

    Returns:
        Per run key, the first loop's median step time over the second's.
    """
    dev, images = device(), train_images(cfg)
    ratios = {}
    for index, key in enumerate(METHOD_KEYS):
        transform = build_method(key, cfg, batch_size).transform
        batches = [to_device(views, dev) for views, _ in fixed_batches(transform, images, batch_size, steps, index)]
        loops = [build_plain(key, cfg, batch_size=batch_size, total_steps=epochs * steps,
                             total_epochs=epochs).to(dev) for _ in range(2)]
        times = (StepTimes(), StepTimes())
        for epoch in range(epochs):
            for loop, side in zip(loops, times):
                side.epochs.append(time_epoch(loop, batches, epoch))
        ratios[key] = times[0].median_step_s / times[1].median_step_s
        del loops
    return ratios


def summarise_null(runs: Sequence[dict[str, float]]) -> dict[str, Any]:
    """Per run key, the plain/plain ratios of every repeat with their smallest and largest; and the largest distance
    of any of them from 1 (the resolution of a harness/plain ratio)."""
    per_key = {key: {"ratios": [run[key] for run in runs], "min": min(run[key] for run in runs),
                     "max": max(run[key] for run in runs)} for key in runs[0]}
    return {"repeats": len(runs), "per_key": per_key,
            "largest_deviation": max(abs(r - 1) for run in runs for r in run.values())}


def run_epoch_times(config: str, epochs: int, out: Path) -> dict[str, float]:
    """Pretrains CASS and DINO through ``python -m cass_bench run``; returns each run key's time per epoch."""
    subprocess.run([sys.executable, "-m", "cass_bench", "run", "--config", config, "--methods", "cass,dino",
                    "--evals", "knn", "--label-fractions", "1", "--seeds", "0", "--pretrain-epochs", str(epochs),
                    "--out", str(out)], cwd=ROOT, check=True)
    times: dict[str, float] = {}
    for record in RecordStore(out).load():
        times[run_key(record["method"], (record["arch"],))] = float(record["pretrain_epoch_time_s"])
    return {key: times[key] for key in OVERHEAD_KEYS}


def plain_epoch_time(key: str, cfg: BenchConfig, batch_size: int, epochs: int, seed: int = 0) -> float:
    """Time per epoch of a run key's plain loop on the run's data loader: median of the epochs after the first.

    Args:
        key: run key (``cass``, ``dino-cnn``, ...).
        cfg: the run's config (image size, backbones, workers).
        batch_size: pretraining batch size.
        epochs: epochs to train (the first is warm-up).
        seed: initialisation and shuffling seed.
    """
    dev = device()
    images = train_images(cfg)
    transform = build_method(key, cfg, batch_size, seed).transform
    torch.manual_seed(seed)
    steps = min(len(images) // batch_size, cfg.pretrain_batches or len(images))
    plain = build_plain(key, cfg, seed, batch_size, total_steps=epochs * steps, total_epochs=epochs).to(dev)
    loader = make_loader(images, transform, batch_size, True, loader_workers(cfg.num_workers), drop_last=True)
    plain.train()
    times = []
    for epoch in range(epochs):
        plain.epoch = epoch
        synchronize()
        start = time.perf_counter()
        for _, (views, _labels) in zip(range(steps), loader):
            plain.train_step(to_device(views, dev))
        synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:] or times)


def _overhead_table(summary: dict[str, Any], null: dict[str, Any] | None) -> str:
    rows = []
    for key, s in summary["per_key"].items():
        verdict = "within" if s["median"] <= 1 + OVERHEAD_BUDGET else "over"
        row = [key_label(key), f"{1000 * s['harness_median_step_s']:.1f}", f"{1000 * s['plain_median_step_s']:.1f}",
               f"{s['median']:.3f}", f"{s['min']:.3f}-{s['max']:.3f}", verdict]
        if null is not None:
            n = null["per_key"][key]
            row.append(f"{n['min']:.3f}-{n['max']:.3f}")
        rows.append(row)
    headers = ["run", "harness ms/step", "plain ms/step", "ratio (median)", "range", "<= 1.05"]
    if null is not None:
        headers.append("plain / plain (resolution)")
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def write_report(result: dict[str, Any], out: Path) -> None:
    """Every process involved keeps freed host memory for reuse, as a run's cells do (``cass_bench.engine.allocator``).
Writes ``overhead.json`` and ``README.md`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "overhead.json").write_text(json.dumps(result, indent=2) + "\n")
    env, lines = result["environment"], [f"# Harness overhead, measured ({result['created_at'][:10]})", ""]
    lines += [f"Machine: {env['device']}, {env['cpu_model']}; torch {env['versions']['torch']}, "
              f"{env['torch_threads']} torch threads; commit `{env['git_commit']}`. Regenerate with "
              f"`python -m benchmarks.overhead_study` on a machine nothing else is running on.", ""]
    if "overhead" in result:
        s = result["overhead"]
        lines += ["## Step time: harness / plain loop, every method", "",
                  f"`benchmarks/test_overhead.py` run {s['repeats']} times, each in a fresh process: {s['epochs']} "
                  f"epochs x {s['steps_per_epoch']} steps of batch {s['batch_size']} at {s['image_size']} px, the "
                  f"first epoch warm-up; per run, the median loop iteration of each side after it (at least "
                  f"{(s['epochs'] - 1) * (s['steps_per_epoch'] - 1)} steps). The ratio column is the median of the "
                  f"{s['repeats']} runs' ratios, the range their smallest and largest. Timer: `time.perf_counter`, "
                  f"resolution {env['timer_resolution_s']:.0e} s, against steps of tens of milliseconds.", ""]
        null = result.get("null")
        if null is not None:
            lines += [f"Resolution of a ratio: two identical plain loops of each method, timed the same way "
                      f"({null['repeats']} repeats in one process), last column. With no overhead at all a ratio "
                      f"strayed up to {100 * null['largest_deviation']:.1f}% from 1.", ""]
        lines += [_overhead_table(s, null), ""]
    if "run_vs_plain" in result:
        r = result["run_vs_plain"]
        passes = r.get("plain_passes_epoch_time_s", [])
        rows = [[key_label(k), f"{r['run_epoch_time_s'][k]:.2f}", f"{r['plain_epoch_time_s'][k]:.2f}",
                 f"{r['run_epoch_time_s'][k] / r['plain_epoch_time_s'][k]:.3f}", *(f"{p[k]:.2f}" for p in passes)]
                for k in OVERHEAD_KEYS]
        rows.append(["CASS / (DINO-cnn + DINO-vit)", f"{r['run_ratio']:.3f}", f"{r['plain_ratio']:.3f}",
                     f"{r['run_ratio'] / r['plain_ratio']:.3f}", *(f"{overhead_ratio(p):.3f}" for p in passes)])
        pass_names = ["plain before the run", "plain after the run"] if len(passes) == 2 else []
        verdict = "within" if abs(r["relative_difference"]) <= RUN_AGREEMENT else "outside"
        lines += ["## Epoch time: a `run` against the plain loops, back to back", "",
                  f"`python -m cass_bench run --config {r['config']} --methods cass,dino --evals knn "
                  f"--label-fractions 1 --pretrain-epochs {r['epochs']}`, and each plain loop for {r['epochs']} "
                  f"epochs on the same loader (batch {r['batch_size']}, {r['num_workers']} workers, the method's own "
                  f"transform), once before the run and once after it; the plain column is the mean of the two "
                  f"passes. Seconds per epoch: median of the epochs after the first.", "",
                  tabulate(rows, headers=["", "run s/epoch", "plain s/epoch", "run / plain", *pass_names],
                           tablefmt="github", disable_numparse=True), "",
                  f"The CASS/DINO time ratio from the run differs from the plain loops' by "
                  f"{100 * r['relative_difference']:+.1f}% ({verdict} the {100 * RUN_AGREEMENT:.0f}% band).", ""]
    (out / "README.md").write_text("\n".join(lines))


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the measurements chosen and writes the report."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.overhead_study", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "overhead")
    parser.add_argument("--repeats", type=int, default=3, help="runs of benchmarks/test_overhead.py (0: skip)")
    parser.add_argument("--null-repeats", type=int, default=3,
                        help="repeats of the plain-vs-plain comparison that gives the resolution (0: skip)")
    parser.add_argument("--config", default="default", help="config of the run-vs-plain comparison")
    parser.add_argument("--epochs", type=int, default=4, help="epochs of each side (the first is warm-up; 0: skip)")
    args = parser.parse_args(argv)
    keep_freed_memory()
    result: dict[str, Any] = {
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "environment": {"device": device_name(), "cpu_model": cpu_model(), "torch_threads": torch.get_num_threads(),
                        "timer_resolution_s": time.get_clock_info("perf_counter").resolution,
                        "git_commit": git_commit(), "versions": versions(),
                        "load_average_at_start": list(os.getloadavg())},
    }
    with tempfile.TemporaryDirectory(prefix="cass-bench-overhead-") as scratch:
        if args.repeats > 0:
            result["overhead"] = summarise_overhead(overhead_runs(args.repeats, Path(scratch)))
        if args.null_repeats > 0:
            result["null"] = summarise_null([plain_vs_plain(smoke_config(), OVERHEAD_EPOCHS, OVERHEAD_STEPS,
                                                            OVERHEAD_BATCH) for _ in range(args.null_repeats)])
        if args.epochs > 0:
            cfg = load_config(resolve_config(args.config))
            batch_size = cfg.batch_sizes[0]
            passes = [{key: plain_epoch_time(key, cfg, batch_size, args.epochs) for key in OVERHEAD_KEYS}]
            run_times = run_epoch_times(args.config, args.epochs, Path(scratch) / "run")
            passes.append({key: plain_epoch_time(key, cfg, batch_size, args.epochs) for key in OVERHEAD_KEYS})
            plain_times = {key: statistics.mean(p[key] for p in passes) for key in OVERHEAD_KEYS}
            run_ratio, plain_ratio = overhead_ratio(run_times), overhead_ratio(plain_times)
            result["run_vs_plain"] = {
                "config": args.config, "epochs": args.epochs, "batch_size": batch_size,
                "num_workers": loader_workers(cfg.num_workers), "run_epoch_time_s": run_times,
                "plain_epoch_time_s": plain_times, "plain_passes_epoch_time_s": passes, "run_ratio": run_ratio,
                "plain_ratio": plain_ratio,
                "relative_difference": run_ratio / plain_ratio - 1, "agreement_threshold": RUN_AGREEMENT,
            }
    write_report(result, args.out)
    print((args.out / "README.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
