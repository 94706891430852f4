"""Reading a file a results folder holds (a record file, a job ticket, a cell spec, a job's log): only a regular file,
never through a link, never more than a bound, so a FIFO, a device, a link loop or a huge file is refused with one
line instead of hanging, exhausting memory or reading outside the folder. Torch-free.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cass_bench.errors import UserError

KIND_NAMES = {stat.S_IFLNK: "a symbolic link", stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a device",
              stat.S_IFBLK: "a device", stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a folder"}


def not_regular(path: Path) -> str | None:
    """What ``path`` is when it is not a regular file (``a symbolic link``, ``a FIFO``, ...), seen without following
    a link or opening it; None for a regular file. OSError (e.g. a missing file) propagates."""
    mode = os.lstat(path).st_mode
    return None if stat.S_ISREG(mode) else KIND_NAMES.get(stat.S_IFMT(mode), "not a regular file")


def read_regular(path: Path, limit: int, what: str, fix: str) -> bytes:
    """The bytes of ``path``, read only when it is a regular file (not followed through a link) of at most ``limit``
    bytes.

    Args:
        path: the file.
        limit: the most bytes read.
        what: what the file is, for the message (``record file``).
        fix: what the user should do, for the message.

    Raises:
        UserError: naming the file, what it is (a link, a FIFO, a device, too large, unreadable) and ``fix``.
    """
    try:
        kind = not_regular(path)
        if kind is not None:
            raise UserError(f"{what} {path} is {kind}, not a regular file, and is not read; {fix}")
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise UserError(f"{what} {path} cannot be read ({exc.strerror or type(exc).__name__}); {fix}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # replaced between the look and the open
            raise UserError(f"{what} {path} is not a regular file and is not read; {fix}")
        if info.st_size > limit:
            raise UserError(f"{what} {path} holds {info.st_size} bytes, more than the {limit} one may hold; {fix}")
        chunks, left = [], limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        raise UserError(f"{what} {path} cannot be read ({exc.strerror or type(exc).__name__}); {fix}") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:
        raise UserError(f"{what} {path} holds more than the {limit} bytes one may hold; {fix}")
    return data
