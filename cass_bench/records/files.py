"""One file per record under ``<out>/records.d/``: appends that stay whole and unique with many writers on NFS.

A record is written to a private temporary file, flushed to disk, then published under its id with ``os.link``,
which fails when that name already exists: two writers of the same id cannot both succeed, a reader never sees a
half-written record, and a writer killed at any moment leaves at most a hidden temporary file, which readers skip.
No file lock is taken, so it works where ``flock`` is advisory or missing (NFS). Readers merge these files with
``records.jsonl`` (see :class:`cass_bench.records.store.RecordStore`).
"""

from __future__ import annotations

import errno
import json
import os
import uuid
from pathlib import Path
from typing import Any

from cass_bench.errors import UserError
from cass_bench.records.reading import read_regular

RECORDS_DIR = "records.d"
SUFFIX = ".json"
RECORD_LIMIT = 4 * 2**20
"""The largest record file read (a record is a few kB)."""


def record_path(folder: Path, record_id: str) -> Path:
    """The file that holds the record ``record_id``."""
    return folder / f"{record_id}{SUFFIX}"


def publish(folder: Path, record_id: str, data: bytes) -> bool:
    """Writes ``data`` as the record ``record_id`` unless a record of that id exists.

    Args:
        folder: the ``records.d`` folder (created if missing).
        record_id: the record's id (its file name).
        data: the serialised record.

    Returns:
        True if this call published the record, False if the id was already taken.
    """
    folder.mkdir(parents=True, exist_ok=True)
    final = record_path(folder, record_id)
    if final.exists():
        return False
    tmp = folder / f".{record_id}.{uuid.uuid4().hex}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        return _link_once(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def _link_once(tmp: Path, final: Path) -> bool:
    try:
        os.link(tmp, final)
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        if final.exists():
            return False
        os.replace(tmp, final)
    return True


def load(folder: Path) -> list[dict[str, Any]]:
    """Every published record of ``folder``, oldest first (by modification time, then name).

    Only regular files are read (a link, a FIFO or a device is refused unopened), each of at most
    :data:`RECORD_LIMIT` bytes; ``records.d`` itself must be a folder, not a link to one.

    Raises:
        UserError: naming the first file that is not a regular file, not JSON, or not the record its name says.
    """
    if folder.is_symlink():
        raise UserError(f"{folder} is a symbolic link; records are read only from a real folder inside the results "
                        f"folder: move the link aside and copy the record files into {folder.name}/")
    if not folder.is_dir():
        return []
    entries = [e for e in os.scandir(folder) if e.name.endswith(SUFFIX) and not e.name.startswith(".")]
    entries.sort(key=lambda e: (e.stat(follow_symlinks=False).st_mtime_ns, e.name))
    return [_read(Path(e.path)) for e in entries]


def _read(path: Path) -> dict[str, Any]:
    """The record a published file holds; UserError naming the file when it is not that record."""
    fix = "move it aside or fix it (a moved record is run again)"
    try:
        record = json.loads(read_regular(path, RECORD_LIMIT, "record file", fix))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise UserError(f"record file {path} cannot be read as JSON ({type(exc).__name__}); {fix}") from None
    record_id = path.name[: -len(SUFFIX)]
    if not isinstance(record, dict) or record.get("record_id") != record_id:
        raise UserError(f"record file {path} is not a record whose record_id is '{record_id}' (its name); {fix}")
    return record


def remove(folder: Path, ids: set[str]) -> int:
    """Deletes the records with these ids; returns how many existed."""
    removed = 0
    for record_id in ids:
        try:
            record_path(folder, record_id).unlink()
            removed += 1
        except FileNotFoundError:
            pass
    return removed
