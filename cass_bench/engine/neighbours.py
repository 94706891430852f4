"""Who else trains on this machine: a marker file per running training process, and the lock that runs
pretraining alone.

Each training stage of the harness (a cell's pretraining, its evaluations, the ``fractal`` start's training) holds
a marker, ``<marker folder>/<pid>-<start ticks>.<stage>``, for as long as it runs (:func:`training_marker`). The
folder is machine-local (``$CASS_BENCH_MARKERS``, default ``<tmp>/cass-bench-training``), so every sweep on the
machine sees every other, whatever its results folder. :func:`other_training` counts the markers of *other* live
processes: a marker whose process is gone (killed, crashed) is not counted, and the process's start time in the
name keeps a reused pid from reviving a dead marker. Counting lists one small folder, so the clock can sample it
every few steps. Load that is not this harness (a compiler, another program) is not counted; on the CPU it shows in
the training thread's CPU share instead (:class:`cass_bench.engine.timing.EpochClock`), when it takes the core.

With ``pretrain_alone`` (``run --pretrain-alone``) a pretraining run holds an exclusive ``fcntl.flock`` on
``<out>/pretrain.lock`` around its measured part and every evaluation a shared one (:func:`stage_lock`), so the
shards of a sweep fine-tune and probe side by side while each pretraining run has the machine to itself. A stage
takes the lock before it marks itself, so a process waiting for its turn is not counted as training.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from cass_bench.records.locks import file_lock

MARKERS_ENV = "CASS_BENCH_MARKERS"
"""Environment variable naming the marker folder (default ``<tmp>/cass-bench-training``)."""
PRETRAIN, EVALUATE, START = "pretrain", "evaluate", "start"
LOCK_FILE = "pretrain.lock"


def marker_folder() -> Path:
    """The machine's marker folder: ``$CASS_BENCH_MARKERS``, else ``<tmp>/cass-bench-training``."""
    return Path(os.environ.get(MARKERS_ENV) or Path(tempfile.gettempdir()) / "cass-bench-training")


def start_ticks(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (``/proc/<pid>/stat``), or None when the
    process is gone or the system has no ``/proc``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]


def _alive(pid: int, ticks: str) -> bool:
    if Path("/proc/self").exists():
        return start_ticks(pid) == ticks
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def other_training(folder: Path | None = None) -> int:
    """Live training processes other than this one that hold a marker in ``folder`` (default
    :func:`marker_folder`); the markers of processes that are gone are removed."""
    folder = marker_folder() if folder is None else folder
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    others = set()
    for name in names:
        pid_text, _, rest = name.partition("-")
        ticks = rest.partition(".")[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid():
            continue
        if _alive(int(pid_text), ticks):
            others.add(int(pid_text))
        else:  # a killed process's marker: tidied away by whoever finds it
            with contextlib.suppress(OSError):
                (folder / name).unlink()
    return len(others)


@contextmanager
def training_marker(stage: str, folder: Path | None = None) -> Iterator[None]:
    """Marks this process as training (``stage``) for the block; the marker is removed when the block ends.

    A folder that cannot be written (read-only, full) leaves the process unmarked rather than failing the run.
    """
    folder = marker_folder() if folder is None else folder
    path = folder / f"{os.getpid()}-{start_ticks(os.getpid()) or 0}.{stage}"
    marked = True
    try:
        if not folder.is_dir():
            folder.mkdir(parents=True, exist_ok=True)
            os.chmod(folder, 0o1777)  # every user's runs mark themselves in the one folder (sticky, as /tmp)
        path.touch()
    except OSError:
        marked = False
    try:
        yield
    finally:
        if marked:
            path.unlink(missing_ok=True)


@contextmanager
def stage_lock(out: Path | None, exclusive: bool) -> Iterator[float]:
    """Holds ``<out>/pretrain.lock`` for the block, exclusively (a pretraining run) or shared (an evaluation);
    yields the seconds spent waiting for it. ``out`` None: no lock, no wait."""
    if out is None:
        yield 0.0
        return
    with file_lock(Path(out) / LOCK_FILE, shared=not exclusive) as waited:
        yield waited or 0.0


def process_age_s() -> float | None:
    """Seconds since this process started (``/proc``), or None where that is not known."""
    ticks = start_ticks(os.getpid())
    try:
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if ticks is None:
        return None
    return max(0.0, uptime - int(ticks) / os.sysconf("SC_CLK_TCK"))
