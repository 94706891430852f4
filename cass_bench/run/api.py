"""What ``run`` does, as the calls the CLI makes: :func:`dry_run` (what would run, writing nothing) and
:func:`execute` (check, then run or launch the sweep). Torch is imported only where a step needs it, so a dry run
works where torch is not installed.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import Callable

from cass_bench.config.schema import BenchConfig
from cass_bench.errors import UserError
from cass_bench.records.identity import Cell
from cass_bench.records.store import TUNING, RecordStore
from cass_bench.run.plan import plan_sweep, render_plan, seed_plan_text

Say = Callable[[str], None]


@dataclass(frozen=True)
class RunRequest:
    """One ``run`` of a configuration.

    Attributes:
        cfg: the configuration, checked against its results folder's registration.
        shard: ``(i, n)``: this process runs cells ``i, i+n, ...``.
        retry_failed: run failed records again in place.
        rebuild: a checkpoint key or record id whose cell runs again.
        wait: with a job launcher, follow the jobs until they end.
    """

    cfg: BenchConfig
    shard: tuple[int, int] = (0, 1)
    retry_failed: bool = False
    rebuild: str | None = None
    wait: bool = False


def _torch_importable() -> bool:
    try:
        importlib.import_module("torch")
    except ImportError:
        return False
    return True


def _check(cfg: BenchConfig, write: bool, say: Say) -> None:
    """Everything that can refuse the run before any work: the launcher, the grid, the backbones and the device (the
    last two only where torch is importable, else only in a dry run, which says so)."""
    if cfg.launcher != "local":
        from cass_bench.run.jobs import check_launcher

        check_launcher(cfg)
    if not write and not _torch_importable():
        from cass_bench.run.grid import check_grid

        check_grid(cfg)
        say("[dry-run] torch is not importable here: the backbones, the encoders' memory and the device are not "
            "checked")
        return
    from cass_bench.run.sweep import preflight

    preflight(cfg, write=write)


def dry_run(request: RunRequest, say: Say = print) -> str:
    """The checks of a real run, then the grid (the pilot's seeds, before a seed plan), the seed plan and the tuning
    stage, with what is done and the time left; nothing is written.

    Raises:
        UserError: anything a real run would refuse.
    """
    from cass_bench.run.tuning import plan_text

    cfg = request.cfg
    if request.rebuild:
        raise UserError("--rebuild removes a cell's records and --dry-run writes nothing; leave out one of them")
    _check(cfg, write=False, say=say)
    records = RecordStore(cfg.out).load()
    shown = dataclasses.replace(cfg, seeds=cfg.plan.current_seeds(cfg.seeds))
    plans = plan_sweep(shown, records, request.shard)
    lines = [render_plan(plans, records), seed_plan_text(cfg, plans, records),
             plan_text(cfg, RecordStore(cfg.out, TUNING).load(), records)]
    return "\n".join(line for line in lines if line)


def execute(request: RunRequest, planner: Callable[..., int], say: Say = print) -> bool:
    """Checks the run, makes its folder ready (interrupted, retried and rebuilt records removed; the registration
    written), then runs the sweep here or submits its jobs.

    Args:
        request: the run.
        planner: plans the seeds after a pilot (:func:`cass_bench.run.sweep.pilot_stage`).
        say: where progress lines go.

    Returns:
        Whether the sweep's cells have ended here (run locally, or jobs followed with ``wait``), so a report can
        follow; False when jobs were only submitted.
    """
    from cass_bench.config.registered import registered_config

    cfg, shard = request.cfg, request.shard
    rebuilt: Cell | None = None
    if request.rebuild:
        from cass_bench.run.export import rebuild_target

        rebuilt = rebuild_target(cfg, request.rebuild, shard)
    _check(cfg, write=True, say=say)
    store = RecordStore(cfg.out)
    plans = plan_sweep(cfg, store.load(), shard)
    interrupted = {i for plan in plans for i in plan.interrupted}
    if interrupted:
        say(f"[sweep] running {store.remove(interrupted)} interrupted record(s) again")
    if request.retry_failed:
        say(f"[sweep] retrying {store.remove({i for plan in plans for i in plan.failed})} failed record(s)")
    if rebuilt is not None:
        from cass_bench.run.export import rebuild

        say(rebuild(rebuilt, cfg))
    cfg = registered_config(cfg)
    if cfg.launcher != "local":
        from cass_bench.run.jobs import submit_sweep, wait_for

        jobs = submit_sweep(cfg, shard)
        if not request.wait:
            return False
        wait_for(cfg, jobs, shard)
        return True
    from cass_bench.run.sweep import run_sweep

    run_sweep(cfg, shard, planner=planner)
    return True
