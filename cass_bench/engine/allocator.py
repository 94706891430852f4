"""Steady host memory for timing: glibc's malloc keeps freed blocks instead of handing them back to the kernel.

PyTorch's CPU tensors come from ``malloc``. By default glibc serves large blocks with ``mmap`` and trims the heap
when enough of its top is free, so a training step can give tens of megabytes back and fault them in again on the
next step (measured here: thousands of page faults per CASS step, varying from epoch to epoch), which makes step
times depend on the process's allocation history rather than on the method. Fixing the two thresholds turns that
off: blocks up to glibc's largest mmap threshold (32 MiB) come from the heap and freed memory is kept for reuse.
Peak memory is unchanged (what is kept was allocated at the peak anyway); memory is returned when the process ends.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024
"""glibc's largest mmap threshold on 64-bit systems (``DEFAULT_MMAP_THRESHOLD_MAX``)."""
TRIM_THRESHOLD = 2**31 - 1
"""Free heap top kept before trimming: the largest value ``mallopt`` takes, i.e. never trim in practice."""


def keep_freed_memory() -> bool:
    """Sets glibc's mmap and trim thresholds for this process (see the module docstring).

    Returns:
        True when both were set; False where the C library is not glibc (macOS, musl, Windows): nothing changes.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
