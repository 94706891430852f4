"""The sweep: run each pretraining cell of the grid (:mod:`cass_bench.run.grid`) in its own process, resume, shard.

A cell whose records all exist is skipped, so re-running the same command resumes.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from cass_bench.engine.allocator import keep_freed_memory
from cass_bench.engine.neighbours import process_age_s
from cass_bench.engine.quiet import silence_library_warnings
from cass_bench.config.schema import ARCHS, BenchConfig, stable_hash, to_dict
from cass_bench.config.load import config_from_dict
from cass_bench.models.encoders import check_backbones
from cass_bench.errors import UserError
from cass_bench.run.preflight import check_device, check_encoders, check_output, encoder_bytes
from cass_bench.run.cell import failure_record, run_cell
from cass_bench.records.identity import Cell, cell_key, expected_ids, pretrain_key, record_keys, start_key
from cass_bench.records.locks import cell_lock, file_lock
from cass_bench.run.console import cell_line
from cass_bench.run.exits import exit_outcome, oom_kills
from cass_bench.config.registry import get_method, plugin_modules, register
from cass_bench.records.reading import read_regular
from cass_bench.records.store import TUNING, RecordStore
from cass_bench.run.grid import check_grid, expand, shard_cells
from cass_bench.starts.cache import check_cache_root


def preflight(cfg: BenchConfig, write: bool = True) -> None:
    """Checks every name, file and size before anything is written; raises UserError on the first problem.

    The torch-free checks (:func:`cass_bench.run.grid.check_grid`), then the backbones, the encoders' memory and the
    device, then (when writing) the output folder and its free disk space.

    Args:
        cfg: the validated config.
        write: also create the output folder, open its records for append and check its free disk space
            (False for a dry run, which writes nothing).
    """
    check_grid(cfg)
    if cfg.init == "fractal":
        check_cache_root(create=write)
    joint = any(get_method(m).joint for m in cfg.methods)
    check_backbones(cfg.backbones, ARCHS if joint else cfg.archs, cfg.init)
    check_encoders(cfg, ARCHS if joint else cfg.archs)
    if cfg.launcher != "slurm":  # a login node need not hold the GPUs its jobs ask for
        check_device(cfg)
    if write:
        check_output(Path(cfg.out), checkpoint_bytes(cfg, RecordStore(cfg.out).ids()))


def checkpoint_bytes(cfg: BenchConfig, done: set[str]) -> int:
    """About what the checkpoints of the grid's unfinished, not yet cached pretraining cells will take on disk."""
    folder = Path(cfg.out) / "checkpoints"
    sizes: dict[str, int] = {}
    total = 0
    for cell in expand(cfg):
        if get_method(cell.method).is_reference or set(expected_ids(cell, cfg)) <= done:
            continue
        if (folder / f"{pretrain_key(cell, cfg)}.pt").exists():
            continue
        for arch in cell.archs:
            if arch not in sizes:
                sizes[arch] = encoder_bytes(cfg.backbones, arch)
            total += sizes[arch]
    return total


SPEC_LIMIT = 4 * 2**20
"""The largest cell spec read (a spec is a config and a cell: a few kB)."""


def cell_module_flags() -> list[str]:
    """``_cell`` arguments naming the plug-in modules this process registered, which the cell's process imports."""
    return [flag for module in plugin_modules() for flag in ("--method-module", module)]


def _spec_file(folder: Path, cell: Cell, cfg: BenchConfig) -> Path:
    payload = {"config": to_dict(cfg), "cell": dataclasses.asdict(cell), "method_modules": plugin_modules()}
    path = folder / f"{stable_hash(payload)}.json"
    path.write_text(json.dumps(payload, indent=1))
    return path


def run_cell_file(path: str | Path, modules: tuple[str, ...] | list[str] = ()) -> None:
    """Entry point of a cell's process: runs the cell described by a spec file written by the sweep.

    A spec is data (job specs live in a results folder): it chooses no code. The plug-in method modules to import
    come from the caller (``_cell SPEC --method-module M``, passed by the sweep that registered them); a spec naming
    any other module, or a method that is not registered, is refused before anything is imported.

    The process keeps freed host memory for reuse (:func:`cass_bench.engine.allocator.keep_freed_memory`), so its step times
    do not depend on when glibc hands memory back to the kernel. Its start-up (interpreter and imports) is recorded
    with the cell's records (``cell_startup_s``).

    Raises:
        UserError: the spec cannot be read, is not a cell spec, or names a module or method not allowed.
    """
    startup_s = process_age_s()
    keep_freed_memory()
    silence_library_warnings()
    payload = _read_spec(Path(path), tuple(modules))
    for module in modules:
        register(module)
    cfg = config_from_dict(payload["config"])
    c = payload["cell"]
    try:
        cell = Cell(str(c["dataset"]), str(c["method"]), tuple(map(str, c["archs"])), c["batch_size"],
                    int(c["pretrain_epochs"]), int(c["seed"]))
    except (KeyError, TypeError, ValueError):
        raise UserError(f"cell spec {path} holds no cell of this version; run the sweep again rather than a cell "
                        "alone") from None
    if cell.method not in cfg.methods:
        raise UserError(f"cell spec {path} names method '{cell.method}', which its config does not run; run the "
                        "sweep again rather than a cell alone")
    get_method(cell.method)
    run_cell(cell, cfg, RecordStore(cfg.out), startup_s)


def run_cell_process(path: str | Path, modules: tuple[str, ...] | list[str] = ()) -> None:
    """The ``_cell`` command: :func:`run_cell_file` in a process a SIGTERM ends with status 143 wherever it is
    (inside Lightning too, whose own handler would end it with status 0), so the sweep records the cell's missing
    records as ``interrupted`` and a rerun runs them again. (Jobs keep submitit's handlers, which requeue them.)"""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    run_cell_file(path, modules)


def run_cell_child(spec: Path) -> int:
    """Runs a cell spec in its own process (``_cell SPEC`` with this process's plug-ins); returns its exit code."""
    return subprocess.run([sys.executable, "-m", "cass_bench", "_cell", str(spec), *cell_module_flags()]).returncode


def _read_spec(path: Path, allowed: tuple[str, ...]) -> dict[str, Any]:
    """A cell spec's content, checked to name no method module beyond ``allowed`` (nothing is imported here)."""
    again = "cell specs are written by `run`: run the sweep again rather than a cell alone"
    try:
        payload = json.loads(read_regular(path, SPEC_LIMIT, "cell spec", again))
    except (ValueError, RecursionError) as exc:
        raise UserError(f"cell spec {path} cannot be read ({type(exc).__name__}); {again}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("config"), dict) or \
            not isinstance(payload.get("cell"), dict):
        raise UserError(f"cell spec {path} is not a cell spec (a mapping with config and cell); {again}")
    named = payload.get("method_modules", [])
    if not isinstance(named, list) or not all(isinstance(m, str) for m in named):
        raise UserError(f"cell spec {path} has a method_modules that is not a list of module names; {again}")
    foreign = [m for m in named if m not in allowed]
    if foreign:
        raise UserError(f"cell spec {path} names method module '{foreign[0]}', which was not given on the command "
                        "line (a spec is data and chooses no code to import); run the sweep again, or pass "
                        f"--method-module {foreign[0]} if you trust that module")
    return payload


def _print_cell_line(cell: Cell, cfg: BenchConfig, store: RecordStore) -> None:
    ids = set(expected_ids(cell, cfg))
    records = [r for r in store.load() if r.get("record_id") in ids]
    print(cell_line(cell.describe(), records, len(ids), cfg.eval.evals), flush=True)


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}"


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def prepare_starts(cfg: BenchConfig, seeds: list[int], shard: tuple[int, int] = (0, 1)) -> None:
    """Trains (or verifies) this shard's share of the ``fractal`` starts behind ``seeds`` before its first cell, so no
    cell's time includes them; a start of another shard's share is found (or waited for, or trained) by the first
    cell that needs it, so no shard idles while another trains a start it could do without yet."""
    from cass_bench.starts.cache import ensure_start

    if cfg.init != "fractal":
        return
    keys: dict[str, int] = {}
    for seed in seeds:
        keys.setdefault(start_key(cfg, seed), seed)
    for seed in list(keys.values())[shard[0]::shard[1]]:
        try:
            ensure_start(cfg, seed)
        except Exception as exc:  # noqa: BLE001 - the cells try again and record the failure
            print(f"[sweep] the fractal start of seed {seed} could not be prepared ({type(exc).__name__}: {exc}); "
                  "each of its cells tries again and records the failure", flush=True)


def tuning_stage(cfg: BenchConfig, shard: tuple[int, int] = (0, 1)) -> BenchConfig:
    """Runs the tuning trials not yet recorded (this shard's first, then any no other shard holds), waits for the
    rest, and registers the chosen values in ``<out>/config.yaml`` before any measured cell (:mod:`cass_bench.run.tune`).

    Returns:
        ``cfg`` with the chosen values (unchanged when nothing is tuned or the folder already holds its choice).
    """
    from cass_bench.config.registered import register_stage
    from cass_bench.run.tune import run_trials
    from cass_bench.run.tuning import choose, chosen_text, needs_tuning, pending, trials, with_chosen

    if not needs_tuning(cfg):
        return cfg
    store = RecordStore(cfg.out, TUNING)
    every = trials(cfg)
    mine = every[shard[0]::shard[1]]
    todo = pending(cfg, store.load())
    print(f"[tune] {len(every)} tuning trials ({cfg.tune.trials} per method, encoder group, dataset and tuning seed), "
          f"{len(every) - len(todo)} already done", flush=True)
    prepare_starts(cfg, list(cfg.tune.seeds), shard)
    say = lambda line: print(line, flush=True)  # noqa: E731
    run_trials(cfg, [t for t in mine if t in todo] + [t for t in todo if t not in mine], say)
    waited = False
    while todo := pending(cfg, store.load()):
        if not waited:
            say(f"[tune] waiting for {len(todo)} trial(s) another shard is running")
            waited = True
        time.sleep(TUNING_POLL_S)
        run_trials(cfg, todo, say)  # takes over the trials of a shard that stopped
    chosen = choose(cfg, store.load())
    registered = register_stage(cfg.out, tune=dataclasses.replace(cfg.tune, chosen=chosen))
    print(f"[tune] chosen and registered in {Path(cfg.out) / 'config.yaml'}: {chosen_text(chosen)}", flush=True)
    return with_chosen(cfg, registered.tune.chosen)


TUNING_POLL_S = 15.0
"""Seconds between two looks at the tuning records while another shard finishes its trials."""


Planner = Callable[[Path, BenchConfig], int]
"""Plans the seeds from a results folder's pilot records (:func:`cass_bench.report.seedplan.plan_from_folder`,
handed down by the command line: the report's layer sits above this one)."""


def run_sweep(cfg: BenchConfig, shard: tuple[int, int] = (0, 1), planner: Planner | None = None) -> int:
    """Runs the sweep's stages for this shard: tuning (:func:`tuning_stage`), the seed plan's pilot
    (:func:`pilot_stage`), then every pending cell, one process each; failures become records; one line per cell.

    A SIGTERM to the sweep ends it and kills the running cell's process with it (``subprocess.run`` kills its
    child on any exception), so no cell goes on alone; its pending records stay missing and a re-run resumes.

    Args:
        cfg: the validated config (``cfg.out`` is the results folder).
        shard: ``(i, n)``: this process runs cells ``i, i+n, i+2n, ...``.
        planner: what plans the seeds after a pilot (needed when ``cfg.plan.pilot`` is set).

    Returns:
        The number of cells run.
    """
    cfg = tuning_stage(cfg, shard)
    cfg = pilot_stage(cfg, shard, planner)
    return run_cells(cfg, shard)


def pilot_stage(cfg: BenchConfig, shard: tuple[int, int], planner: Planner | None) -> BenchConfig:
    """Runs the pilot's seeds (this shard's cells, then any left, waiting on those another shard holds), plans the
    seeds from their records alone and registers them in ``<out>/config.yaml`` before any post-pilot cell.

    Returns:
        ``cfg`` with the planned seeds (unchanged without a plan, or when the folder already holds one).

    Raises:
        UserError: a plan is configured but no planner was given.
    """
    from cass_bench.config.registered import register_stage

    plan = cfg.plan
    if not plan.pilot or plan.planned is not None:
        return cfg
    if planner is None:
        raise UserError("this config plans its seeds from a pilot (plan.pilot), which needs the report's planner; "
                        "run it with `python -m cass_bench run`")
    pilot = dataclasses.replace(cfg, seeds=plan.pilot_seeds(cfg.seeds))
    print(f"[plan] pilot: seeds {', '.join(map(str, pilot.seeds))}", flush=True)
    run_cells(pilot, shard)
    run_cells(pilot, (0, 1))  # the cells another shard runs wait on its lock: the pilot's barrier
    planned = planner(Path(cfg.out), cfg)
    registered = register_stage(cfg.out, seeds=plan.seeds(cfg.seeds, planned),
                                plan=dataclasses.replace(plan, planned=planned))
    print(f"[plan] {planned} seeds planned (cap {plan.cap}) and registered in {Path(cfg.out) / 'config.yaml'}: "
          f"{', '.join(map(str, registered.seeds))}", flush=True)
    return dataclasses.replace(cfg, seeds=registered.seeds, plan=registered.plan)


def run_cells(cfg: BenchConfig, shard: tuple[int, int] = (0, 1)) -> int:
    """Runs every pending cell of this shard's part of ``cfg``'s grid, one process each (see :func:`run_sweep`)."""
    store = RecordStore(Path(cfg.out))
    cells = shard_cells(cfg, shard)
    done = store.ids()
    pending = [c for c in cells if not set(expected_ids(c, cfg)) <= done]
    print(f"[sweep] {len(cells)} cells in this shard, {len(cells) - len(pending)} already done, {len(pending)} to run",
          flush=True)
    if pending:
        prepare_starts(cfg, sorted({c.seed for c in pending}), shard)
    start = time.perf_counter()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    with tempfile.TemporaryDirectory(prefix="cass-bench-cells-") as specs:
        for k, cell in enumerate(pending):
            elapsed = time.perf_counter() - start
            eta = "?" if k == 0 else _clock(elapsed / k * (len(pending) - k))
            print(f"[sweep] cell {k + 1}/{len(pending)}: {cell.describe()} | elapsed {_clock(elapsed)} | ETA {eta}",
                  flush=True)
            spec = _spec_file(Path(specs), cell, cfg)
            kills = oom_kills()
            with file_lock(cell_lock(cfg.out, cell_key(cell))):
                code = run_cell_child(spec)
            if code != 0:
                status, error = exit_outcome(code, kills, oom_kills())
                written = store.ids()
                for key in record_keys(cell, cfg):
                    record = failure_record(cell, *key, cfg, status, error)
                    if record["record_id"] not in written:
                        store.append(record)
            _print_cell_line(cell, cfg, store)
    print(f"[sweep] finished {len(pending)} cells in {_clock(time.perf_counter() - start)}", flush=True)
    return len(pending)
