"""How a cell's process ended, as the status of the records it did not write: a signal that ends it from outside
(SIGTERM, SIGINT, SIGHUP, or a SIGKILL that is not the OOM killer's) is ``interrupted``, which a plain rerun runs
again; a SIGKILL while the kernel's OOM-kill count rose is ``oom``; any other non-zero exit is ``error``. Torch-free.
"""

from __future__ import annotations

import signal
from pathlib import Path

from cass_bench.config.vocabulary import Status

STOPPING = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
"""Signals that ask a process to stop (a scheduler, a user, a closed terminal)."""


def _cgroup_events() -> Path | None:
    """The ``memory.events`` file of this process's cgroup (cgroup v2), or None."""
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                return Path("/sys/fs/cgroup") / line[3:].lstrip("/") / "memory.events"
    except OSError:
        return None
    return None


def oom_kills() -> int | None:
    """How many processes the kernel's OOM killer has killed, in this cgroup and system-wide (their sum, so a kill
    counted by either raises it), or None where neither count can be read."""
    total, found = 0, False
    for path, key in ((_cgroup_events(), "oom_kill"), (Path("/proc/vmstat"), "oom_kill")):
        try:
            lines = path.read_text().splitlines() if path is not None else []
        except OSError:
            continue
        for line in lines:
            name, _, value = line.partition(" ")
            if name == key and value.strip().isdigit():
                total += int(value)
                found = True
    return total if found else None


def exit_outcome(code: int, kills_before: int | None, kills_after: int | None) -> tuple[Status, str]:
    """The status and one-line error of a cell whose process exited with ``code`` (non-zero).

    Args:
        code: the return code (negative: killed by that signal; 128 + n: ended itself on signal n).
        kills_before, kills_after: :func:`oom_kills` before and after the process ran.
    """
    signum = -code if code < 0 else code - 128 if code > 128 else None
    if signum == signal.SIGKILL and kills_before is not None and kills_after is not None and \
            kills_after > kills_before:
        return Status.OOM, "cell process killed by the kernel's OOM killer (out of host memory)"
    if signum in (*STOPPING, signal.SIGKILL):
        name = signal.Signals(signum).name
        return Status.INTERRUPTED, (f"cell process ended by {name}; run the same command again to run it again")
    return Status.ERROR, f"cell process exited with status {code}"
