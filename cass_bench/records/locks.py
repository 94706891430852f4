"""Advisory file locks (``fcntl.flock``) that the processes sharing a results folder or cache coordinate with: a
checkpoint's key while it is trained, a tuning trial while it runs, the pretraining stage when runs are timed alone.
"""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def file_lock(path: Path, *, shared: bool = False, wait: bool = True) -> Iterator[float | None]:
    """Holds a lock on ``path`` (created with its folder) for the block.

    Args:
        path: the lock file.
        shared: take a shared lock (many holders) instead of an exclusive one.
        wait: wait while another process holds a conflicting lock; False: do not wait.

    Yields:
        The seconds spent waiting for the lock, or None when ``wait`` is False and another process holds it (the
        block then runs without the lock and should leave the locked work alone).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        began = time.perf_counter()
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield None
            return
        try:
            yield time.perf_counter() - began
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


CELL_LOCKS = "cells.locks"
"""The folder under a results folder of the locks a local sweep holds on each cell while it runs it."""


def cell_lock(out: str | Path, key: str) -> Path:
    """The lock file a local sweep holds while it runs the cell of ``key``
    (:func:`cass_bench.records.identity.cell_key`)."""
    return Path(out) / CELL_LOCKS / f"{key}.lock"


def held(path: Path) -> bool:
    """Whether a process holds a lock on ``path`` now; creates nothing (a missing file is a lock no one holds)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
