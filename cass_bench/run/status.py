"""``python -m cass_bench status OUT``: every cell done, running, failed or pending, from the records and the jobs.

Below the cells, where each seed's time went so far (:func:`spending_text`). The grid is the config of the last
job submission into ``OUT`` (``<out>/jobs/config.json``), else the one its last local run registered
(``<out>/config.yaml``), or one given with ``--config`` (read through the folder's registration, as ``run`` reads it);
before a seed plan is written, its pilot's seeds.
A cell is ``done`` when all its records are ok, ``failed`` when a record failed or its latest job
ended without writing all its records (killed, timed out, crashed: the last lines of the job's stderr follow),
``running`` while its job is queued or running or a local sweep runs it (its lock in ``cells.locks/``), and
``pending`` otherwise.

Reading a folder never unpickles anything it holds (submitit's result pickles would run code when loaded): a job's
outcome comes from the scheduler, whether its result file exists, and the text of its stderr log.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tabulate import tabulate

from cass_bench.config.schema import BenchConfig
from cass_bench.config.files import RESOLVED
from cass_bench.config.load import config_from_dict, load_config
from cass_bench.config.registered import registered_config
from cass_bench.errors import UserError
from cass_bench.run.tickets import Ticket, cell_key, load_sweep_config, read_tickets, scheduler_state
from cass_bench.run.plan import CellPlan, plan_sweep
from cass_bench.records.breakdown import seed_minutes, summary_lines
from cass_bench.records.locks import cell_lock, held
from cass_bench.records.reading import not_regular
from cass_bench.records.schema import OK
from cass_bench.records.store import RecordStore

STATES = ("done", "running", "failed", "pending")
LOG_TAIL = 64 * 2**10
"""The most bytes of a job's stderr read (its end)."""


@dataclass(frozen=True)
class CellStatus:
    """One cell's state and, for a failure, why.

    Attributes:
        plan: the cell's records (done, failed, pending ids).
        state: ``done``, ``running``, ``failed`` or ``pending``.
        job_id: its latest job, or None if it never ran as a job.
        detail: failed records' errors and the last lines of the failed job's stderr.
    """

    plan: CellPlan
    state: str
    job_id: str | None
    detail: tuple[str, ...]


def _log_text(path: Path) -> str | None:
    """The last :data:`LOG_TAIL` bytes of a job's log, read only from a regular file (never a FIFO, a device or through
    a link); None when there is no such file."""
    try:
        kind = not_regular(path)
    except OSError:
        return None
    if kind is not None:
        return f"(not read: {path} is {kind})"
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, os.fstat(handle.fileno()).st_size - LOG_TAIL))
            return handle.read(LOG_TAIL).decode(errors="replace")
    except OSError as exc:
        return f"(not read: {path}: {exc.strerror or type(exc).__name__})"


def _tail(path: Path, lines: int) -> list[str]:
    text = _log_text(path)
    if text is None:
        return [f"(no stderr file {path})"]
    return text.rstrip().splitlines()[-lines:] or ["(stderr is empty)"]


SUBMITIT_RAISED = "Submitted job triggered an exception"
"""The line submitit's job wrapper logs to stderr when the job's function raised."""


def _job_failure(ticket: Ticket, lines: int) -> list[str]:
    paths = ticket.paths()
    tail = _tail(paths.stderr, lines)
    if not paths.result_pickle.exists():
        return [f"job {ticket.job_id} ended without a result (killed, timed out or preempted); its stderr ends:",
                *tail]
    if SUBMITIT_RAISED in (_log_text(paths.stderr) or ""):
        return [f"job {ticket.job_id} raised; its stderr ends:", *tail]
    return [f"job {ticket.job_id} finished without writing all its records; its stderr ends:", *tail]


def cell_statuses(cfg: BenchConfig, lines: int = 5) -> list[CellStatus]:
    """The state of every cell of ``cfg``'s grid in ``cfg.out``."""
    out = Path(cfg.out)
    records = RecordStore(out).load()
    errors = {r["record_id"]: f"{r.get('status')}: {r.get('error')}" for r in records if r.get("status") != OK}
    tickets = read_tickets(out)
    statuses = []
    for plan in plan_sweep(cfg, records):
        ticket = tickets.get(cell_key(plan.cell))
        job_state = scheduler_state(ticket) if ticket else None
        detail: list[str] = sorted({errors[i] for i in plan.failed})
        if plan.state == "done":
            state = "done"
        elif job_state == "active" or held(cell_lock(out, cell_key(plan.cell))):
            state = "running"
        elif plan.failed:
            state = "failed"
        elif ticket is not None:
            state = "failed"
            detail += _job_failure(ticket, lines)
        else:
            state = "pending"
        statuses.append(CellStatus(plan, state, ticket.job_id if ticket else None, tuple(detail)))
    return statuses


def render_status(statuses: list[CellStatus]) -> str:
    """A table of the cells, a summary line, then each failure's details."""
    rows = [[s.plan.cell.describe(), s.state, s.job_id or "—", len(s.plan.done), len(s.plan.failed),
             len(s.plan.pending)] for s in statuses]
    table = tabulate(rows, headers=["cell", "state", "job", "ok", "failed", "missing"], tablefmt="github")
    counts = Counter(s.state for s in statuses)
    summary = f"{len(statuses)} cells: " + ", ".join(f"{counts[state]} {state}" for state in STATES)
    failures = [f"\n{s.plan.cell.describe()}:\n" + "\n".join(f"    {line}" for line in s.detail)
                for s in statuses if s.state == "failed"]
    return "\n".join([table, "", summary, *failures])


def status_config(out: Path, config: str | None) -> BenchConfig:
    """The grid of ``out``: ``config`` if given (read through the folder's ``config.yaml`` as a run reads it: its
    tuned values and planned seeds), else the config its last job submission saved, else the one its last local run
    registered (``<out>/config.yaml``); with a seed plan not yet written, the pilot's seeds.

    Raises:
        UserError: no config given and none saved, or ``config`` differs from the folder's registration.
    """
    cfg = _saved_config(Path(out), config)
    return dataclasses.replace(cfg, out=str(out), seeds=cfg.plan.current_seeds(cfg.seeds))


def _saved_config(out: Path, config: str | None) -> BenchConfig:
    if config is not None:
        given = dataclasses.replace(load_config(config), out=str(out))
        return registered_config(given, write=False) if (out / RESOLVED).is_file() else given
    if (saved := load_sweep_config(out)) is not None:
        return config_from_dict(saved)
    if (out / RESOLVED).is_file():
        return load_config(str(out / RESOLVED))
    raise UserError(f"{out} holds neither jobs/config.json nor {RESOLVED} (no run has written to it); pass the "
                    "config it was run with: status OUT --config FILE")


def spending_text(out: Path) -> str:
    """Where each seed's time went so far (:mod:`cass_bench.records.breakdown`): thread-minutes per seed and
    category, then what one cell of each kind costs."""
    records = RecordStore(out).load()
    minutes = seed_minutes(records)
    if minutes.empty:
        return "No record carries a time figure yet."
    table = minutes.reset_index()
    table["seed"] = [str(int(seed)) for seed in table["seed"]]
    return "\n".join(["Where each seed's time went (thread-minutes):",
                      tabulate(table, headers="keys", tablefmt="github", showindex=False, floatfmt=".2f"),
                      *summary_lines(records)])
