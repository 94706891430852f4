"""Cells as jobs through submitit: ``launcher: submitit-local`` (jobs on this machine) or ``slurm`` (SLURM jobs).

Each pending cell becomes one job (one job array per ``run`` on SLURM) that runs the same cell code as the local
sweep, from a spec file under ``<out>/jobs/specs/``. Jobs write one file per record (``records.d/``), so jobs on
many nodes can share one results folder without file locks. ``<out>/jobs/cells/<key>.json`` names each cell's
latest job; submitit keeps its pickles and logs in ``<out>/jobs/logs/``. Job state is read from the scheduler, the
tickets and the logs' text: nothing here unpickles a file of a results folder. A job the scheduler kills writes no
half record, and the next ``run`` submits exactly the cells whose records are missing and whose job is gone. A job
preempted or reaching its time limit is requeued by submitit's checkpoint hook; the requeued job resumes the cell
from its cached pretraining checkpoint when pretraining had finished, and otherwise pretrains again.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import shutil
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import submitit

from cass_bench.config.registry import plugin_modules
from cass_bench.config.schema import BenchConfig, to_dict
from cass_bench.data.loaders import AUTO_WORKERS_MAX, loader_workers, usable_cores
from cass_bench.errors import UserError
from cass_bench.run.plan import plan_sweep
from cass_bench.records.identity import Cell, expected_ids
from cass_bench.records.store import RecordStore
from cass_bench.run.grid import shard_cells
from cass_bench.run.sweep import _clock, _spec_file, run_cell_file
from cass_bench.run.tickets import (CONFIG_FILE, Ticket, cell_key, jobs_dir, read_tickets, scheduler_state,
                                    write_ticket)

ROOT = Path(__file__).resolve().parent.parent


class CellJob(submitit.helpers.Checkpointable):
    """The callable a job runs: one cell from its spec file; requeued as is when preempted or timed out.

    Args:
        spec: the cell's spec file (written by the sweep's spec writer).
        cwd: the working directory of ``run`` (relative dataset paths are resolved from it).
        threads: torch threads of the job (None: torch's default), so jobs sharing one machine do not oversubscribe
            its cores.
        modules: the plug-in method modules the submitting process registered (the spec chooses none).
    """

    def __init__(self, spec: str, cwd: str, threads: int | None = None, modules: tuple[str, ...] = ()) -> None:
        self.spec = spec
        self.cwd = cwd
        self.threads = threads
        self.modules = tuple(modules)

    def __call__(self) -> str:
        """Runs the cell; its records go to the results folder named in the spec."""
        os.chdir(self.cwd)
        if self.threads is not None:
            import torch

            torch.set_num_threads(self.threads)
        run_cell_file(self.spec, getattr(self, "modules", ()))
        return self.spec

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        """Requeues the cell: it resumes from its cached pretraining checkpoint and writes only missing records."""
        print(f"[job] interrupted; requeueing {self.spec}", file=sys.stderr, flush=True)
        return super().checkpoint(*args, **kwargs)


def _sbatch_memory(mem_gb: float | None) -> str | None:
    if mem_gb is None:
        return None
    return f"{int(mem_gb)}GB" if float(mem_gb).is_integer() else f"{int(mem_gb * 1024)}MB"


def job_parameters(cfg: BenchConfig) -> dict[str, Any]:
    """The submitit parameters of each cell's job: ``sbatch`` options (one task per device, ``num_nodes`` nodes, so
    Lightning's DDP finds its ranks in the SLURM environment), or the local executor's settings (one task; Lightning
    starts its own processes for ``devices`` > 1)."""
    sl = cfg.slurm
    if cfg.launcher == "submitit-local":
        import torch

        gpus = cfg.devices if cfg.accelerator != "cpu" and torch.cuda.is_available() else 0
        return {"timeout_min": sl.timeout_min, "gpus_per_node": gpus, "tasks_per_node": 1}
    gpus = sl.gpus_per_node if sl.gpus_per_node is not None else (0 if cfg.accelerator == "cpu" else cfg.devices)
    params: dict[str, Any] = {
        "job_name": "cass-bench", "nodes": cfg.num_nodes, "ntasks_per_node": cfg.devices,
        "cpus_per_task": sl.cpus_per_task or loader_workers(cfg.num_workers, AUTO_WORKERS_MAX + 1) + 1,
        "time": sl.timeout_min,
        "gpus_per_node": gpus or None, "mem": _sbatch_memory(sl.mem_gb), "partition": sl.partition,
        "account": sl.account,
        "constraint": sl.constraint, "array_parallelism": sl.array_parallelism,
        "setup": [*sl.setup, f"export PYTHONPATH={shlex.quote(str(ROOT))}${{PYTHONPATH:+:$PYTHONPATH}}"],
        "additional_parameters": dict(sl.additional_parameters) or None,
    }
    return {k: v for k, v in params.items() if v is not None}


def make_executor(cfg: BenchConfig, folder: Path) -> submitit.Executor:
    """The submitit executor of ``cfg.launcher`` with :func:`job_parameters` applied.

    Raises:
        UserError: the parameters are invalid for submitit.
    """
    executor_class = submitit.SlurmExecutor if cfg.launcher == "slurm" else submitit.LocalExecutor
    executor = executor_class(folder=folder / "logs")
    try:
        executor.update_parameters(**job_parameters(cfg))
    except ValueError as exc:
        first = str(exc).splitlines()[0]
        raise UserError(f"bad job settings for launcher {cfg.launcher} ({first}); fix the slurm section") from None
    return executor


def check_launcher(cfg: BenchConfig) -> None:
    """Checks that ``cfg.launcher`` can submit from here; raises UserError (nothing is submitted) otherwise."""
    if cfg.launcher == "slurm":
        missing = [tool for tool in ("sbatch", "srun") if shutil.which(tool) is None]
        if missing:
            raise UserError(f"--launcher slurm needs {' and '.join(missing)} on the PATH, which has none; run on "
                            "the cluster's login node, or use --launcher local or submitit-local")
    if cfg.launcher != "local":
        import tempfile

        with tempfile.TemporaryDirectory() as scratch:
            make_executor(cfg, Path(scratch))


@contextmanager
def _importable_from_jobs() -> Iterator[None]:
    """Jobs inherit the submitting environment: put this checkout first on their PYTHONPATH while submitting."""
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), before) if p)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = before


def submit_sweep(cfg: BenchConfig, shard: tuple[int, int] = (0, 1)) -> list[tuple[Cell, submitit.Job]]:
    """Submits every pending cell of this shard as one job; prints the job ids.

    A cell is pending when some of its records are missing and its latest job is neither queued nor running.

    Args:
        cfg: the validated config; ``cfg.launcher`` is ``submitit-local`` or ``slurm``.
        shard: ``(i, n)``: only cells ``i, i+n, i+2n, ...``.

    Returns:
        The submitted cells and their jobs.
    """
    out = Path(cfg.out).resolve()
    cfg = dataclasses.replace(cfg, out=str(out))
    store = RecordStore(out)
    store.use_record_files()
    cells = shard_cells(cfg, shard)
    done = store.ids()
    tickets = read_tickets(out)
    missing = [c for c in cells if not set(expected_ids(c, cfg)) <= done]
    active = [c for c in missing if cell_key(c) in tickets and scheduler_state(tickets[cell_key(c)]) == "active"]
    pending = [c for c in missing if c not in active]
    print(f"[jobs] {len(cells)} cells, {len(cells) - len(missing)} already done, {len(active)} queued or running, "
          f"{len(pending)} to submit ({cfg.launcher})", flush=True)
    folder = jobs_dir(out)
    (folder / "specs").mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(json.dumps(to_dict(cfg), indent=1))
    if not pending:
        return []
    executor = make_executor(cfg, folder)
    threads = max(1, usable_cores() // len(pending)) if cfg.launcher == "submitit-local" else None
    modules = tuple(plugin_modules())
    calls = [CellJob(str(_spec_file(folder / "specs", cell, cfg)), os.getcwd(), threads, modules) for cell in pending]
    with _importable_from_jobs():
        with executor.batch():
            jobs = [executor.submit(call) for call in calls]
    for cell, job in zip(pending, jobs):
        write_ticket(out, Ticket(cell, str(job.job_id), cfg.launcher, str(folder / "logs"), time.time()))
        print(f"[jobs] submitted {job.job_id}: {cell.describe()}", flush=True)
    return list(zip(pending, jobs))


def wait_for(cfg: BenchConfig, jobs: list[tuple[Cell, submitit.Job]], shard: tuple[int, int] = (0, 1),
             poll_s: float = 5.0) -> int:
    """Follows submitted jobs with a progress line until none is queued or running.

    Args:
        cfg: the config the jobs were submitted with.
        jobs: what :func:`submit_sweep` returned (plus any earlier jobs still running are followed by their tickets).
        shard: the shard the jobs belong to.
        poll_s: seconds between checks.

    Returns:
        The number of cells of the shard still missing records when every job has ended.
    """
    out = Path(cfg.out).resolve()
    cfg = dataclasses.replace(cfg, out=str(out))
    store = RecordStore(out)
    start, last = time.perf_counter(), ""
    while True:
        mine = {cell_key(cell) for cell, job in jobs if not job.done()}
        others = {k for k, t in read_tickets(out).items() if k not in mine and scheduler_state(t) == "active"}
        plans = plan_sweep(cfg, store.load(), shard)
        complete = sum(not p.pending for p in plans)
        failed = sum(bool(p.failed) for p in plans)
        line = (f"[jobs] {complete}/{len(plans)} cells finished ({failed} with failed records), "
                f"jobs queued or running: {len(mine | others)}")
        if line != last:
            print(f"{line} | elapsed {_clock(time.perf_counter() - start)}", flush=True)
            last = line
        if not mine and not others:
            break
        time.sleep(poll_s)
    unfinished = len(plans) - complete
    if unfinished:
        print(f"[jobs] {unfinished} cell(s) ended without all their records; `python -m cass_bench status {out}` "
              "shows why, and `run` again resubmits them", flush=True)
    return unfinished
