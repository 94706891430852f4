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
