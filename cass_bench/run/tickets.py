"""What a results folder's job files say: each cell's latest job (its ticket), the job's state, the saved config.

Read by ``status`` and by the submitter (:mod:`cass_bench.run.jobs`); torch-free, and nothing here unpickles a file
of a results folder (tickets and the sweep config are JSON; the state comes from the scheduler, submitit's result
file's existence and the local controller's process).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import submitit
from submitit.core.utils import JobPaths

from cass_bench.errors import UserError
from cass_bench.records.identity import Cell, cell_key
from cass_bench.records.reading import read_regular

JOBS_DIR = "jobs"
CONFIG_FILE = "config.json"
JOB_FILE_LIMIT = 4 * 2**20
"""The largest ticket or sweep config read (each is a few kB)."""
LAUNCHERS = ("submitit-local", "slurm")
"""The launchers whose jobs have tickets."""
JOB_ID = re.compile(r"[0-9]+(_[0-9]+)?")
"""A scheduler's job id: a process id (``submitit-local``) or a SLURM job id, perhaps of an array task."""
ACTIVE_SLURM_STATES = ("PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "SUSPENDED", "RESIZING")


@dataclass(frozen=True)
class Ticket:
    """A cell's latest job.

    Attributes:
        cell: the cell.
        job_id: the scheduler's id (the controller's process id for ``submitit-local``).
        launcher: ``submitit-local`` or ``slurm``.
        folder: submitit's folder (``<out>/jobs/logs``).
        submitted_at: submission time (seconds since the epoch).
    """

    cell: Cell
    job_id: str
    launcher: str
    folder: str
    submitted_at: float

    def paths(self) -> JobPaths:
        """submitit's files of task 0 of the job (submission pickle, result pickle, logs)."""
        return JobPaths(self.folder, job_id=self.job_id, task_id=0)


def jobs_dir(out: str | Path) -> Path:
    """``<out>/jobs``: submitit's folders, the cells' spec files and tickets, and the sweep's config."""
    return Path(out) / JOBS_DIR


def _cell_from_dict(data: dict[str, Any]) -> Cell:
    cell = Cell(data["dataset"], data["method"], tuple(data["archs"]), data["batch_size"], data["pretrain_epochs"],
                data["seed"])
    texts = (cell.dataset, cell.method, *cell.archs)
    numbers = (cell.pretrain_epochs, cell.seed, *(() if cell.batch_size is None else (cell.batch_size,)))
    if not all(isinstance(t, str) for t in texts) or not all(isinstance(n, int) for n in numbers):
        raise TypeError("a cell field of another type")
    return cell


def write_ticket(out: Path, ticket: Ticket) -> None:
    """Records ``ticket`` as its cell's latest job (atomic replace)."""
    folder = jobs_dir(out) / "cells"
    folder.mkdir(parents=True, exist_ok=True)
    data = {**dataclasses.asdict(ticket), "cell": dataclasses.asdict(ticket.cell)}
    tmp = folder / f".{cell_key(ticket.cell)}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, folder / f"{cell_key(ticket.cell)}.json")


def _read_json(path: Path, what: str) -> Any:
    """The JSON a job file holds (a bounded regular file); UserError naming the file when it is not readable JSON."""
    fix = "move it aside (the cell then counts as never submitted) or run the sweep again"
    try:
        return json.loads(read_regular(path, JOB_FILE_LIMIT, what, fix))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise UserError(f"{what} {path} cannot be read as JSON ({type(exc).__name__}); {fix}") from None


def _ticket(data: Any, path: Path) -> Ticket:
    """The ticket a job ticket file's JSON holds, every field of its type; UserError naming the file otherwise."""
    try:
        ticket = Ticket(**{**data, "cell": _cell_from_dict(data["cell"])})
    except (KeyError, TypeError):
        ticket = None
    local = ticket is not None and ticket.launcher == "submitit-local"
    if ticket is None or not isinstance(ticket.job_id, str) or not isinstance(ticket.folder, str) or \
            ticket.launcher not in LAUNCHERS or not isinstance(ticket.submitted_at, (int, float)) or \
            not JOB_ID.fullmatch(ticket.job_id) or (local and not ticket.job_id.isdigit()):
        raise UserError(f"job ticket {path} is not a ticket this version wrote (a job id, launcher, folder and time of "
                        "their types); move it aside (the cell then counts as never submitted)")
    return ticket


def read_tickets(out: str | Path) -> dict[str, Ticket]:
    """Every cell's latest job, keyed by :func:`cell_key`, read from the JSON tickets (never from submitit's pickles).

    Raises:
        UserError: naming a ticket that is not a JSON ticket of this version's fields and types.
    """
    folder = jobs_dir(out) / "cells"
    tickets = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        ticket = _ticket(_read_json(path, "job ticket"), path)
        tickets[cell_key(ticket.cell)] = ticket
    return tickets


def _controller_alive(pid: int) -> bool:
    """Whether ``pid`` is a running (not zombie) submitit local controller; a reused pid does not count."""
    proc = Path(f"/proc/{pid}")
    if not Path("/proc/self").exists():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        command = (proc / "cmdline").read_bytes()
    except OSError:
        return False
    return state not in ("Z", "X") and b"submitit" in command


def scheduler_state(ticket: Ticket) -> str:
    """The job's state: ``finished`` (a result was written), ``active`` (queued or running) or ``gone``."""
    if ticket.paths().result_pickle.exists():
        return "finished"
    if ticket.launcher == "slurm":
        state = submitit.SlurmJob(ticket.folder, ticket.job_id).state.split()[0].upper()
        return "active" if state in ACTIVE_SLURM_STATES else "gone"
    return "active" if _controller_alive(int(ticket.job_id)) else "gone"


def load_sweep_config(out: str | Path) -> dict[str, Any] | None:
    """The config dict the last job submission into ``out`` saved, or None."""
    path = jobs_dir(out) / CONFIG_FILE
    if not os.path.lexists(path):
        return None
    data = _read_json(path, "sweep config")
    if not isinstance(data, dict):
        raise UserError(f"sweep config {path} is not a mapping of settings; pass the config it was run with: "
                        "status OUT --config FILE")
    return data
