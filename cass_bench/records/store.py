"""The records store (JSON lines), saved predictions and the environment every record carries.

The record's fields are defined in :mod:`cass_bench.records.schema` (``RECORD_FIELDS`` is re-exported here).

Appends are whole lines written in one ``write`` under an exclusive lock of the results folder and flushed to disk;
removals rewrite the file under the same lock, so several sweep shards may share one folder (one retrying while
another appends) and a killed process leaves at most an unterminated tail that is not JSON, which
the next open removes. A line that parses is a record, with or without its newline (a last record missing only its
newline gets it back). A record id is written at most once, and one id is one record: a repeated identical copy is
kept once with a warning, two different records of one id are refused naming the id. A complete line that is not a
JSON record is never skipped silently: reading the store raises UserError naming its line.

A folder that holds ``records.d/`` (created by :meth:`RecordStore.use_record_files`, as the job launchers do) gets
one file per record instead (:mod:`cass_bench.records.files`: no lock, safe on NFS); readers merge both forms.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from cass_bench.records import files as recordfiles
from cass_bench.errors import UserError
from cass_bench.records.schema import RECORD_FIELDS

__all__ = ["RECORD_FIELDS", "RecordStore"]

RECORDS = "records.jsonl"
TUNING = "tuning.jsonl"
"""The tuning stage's trials (:mod:`cass_bench.run.tuning`), a store of their own beside the measured records."""
PREDICTIONS = "predictions"


class RecordStore:
    """``<out>/records.jsonl`` and ``<out>/predictions/`` (or another JSON-lines file of the folder, e.g. the tuning
    stage's ``tuning.jsonl``, keyed by ``record_id`` the same way).

    Args:
        out: the results folder (created on first write).
        name: the JSON-lines file (``records.jsonl``: the measured records, with ``records.d/`` beside it).
    """

    def __init__(self, out: str | Path, name: str = RECORDS) -> None:
        self.out = Path(out)
        self.path = self.out / name
        self.records_dir = self.out / (recordfiles.RECORDS_DIR if name == RECORDS else f"{Path(name).stem}.d")

    def _check_file(self) -> None:
        """Raises UserError when ``records.jsonl`` exists but is not a regular file."""
        if self.path.exists() and not self.path.is_file():
            raise UserError(f"{self.path} is not a file (a folder?); move it aside so the records file can be "
                            "written, or pass the results folder that holds the records")

    @contextmanager
    def _folder_locked(self) -> Iterator[None]:
        """Holds the results folder's exclusive lock (``flock`` on the folder itself) for the block."""
        self.out.mkdir(parents=True, exist_ok=True)
        folder = os.open(self.out, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(folder, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(folder, fcntl.LOCK_UN)
            os.close(folder)

    @contextmanager
    def _locked(self) -> Iterator[int]:
        """Holds the folder's lock and yields ``records.jsonl`` opened for append after the lock is taken, so a
        writer never writes into a file another process has replaced meanwhile."""
        with self._folder_locked():
            with self._opened() as fd:
                yield fd

    @contextmanager
    def _opened(self) -> Iterator[int]:
        """``records.jsonl`` opened for append (created when missing), its torn tail mended; the caller holds the
        folder's lock."""
        self._check_file()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            self._complete_tail(fd)
            yield fd
        finally:
            os.close(fd)

    @staticmethod
    def _complete_tail(fd: int) -> None:
        """Ends a last line that parses with its missing newline; removes one that does not (a torn write)."""
        size = os.fstat(fd).st_size
        if size == 0:
            return
        data = os.pread(fd, size, 0)
        if data.endswith(b"\n"):
            return
        start = data.rfind(b"\n") + 1
        if _is_json(data[start:]):
            os.write(fd, b"\n")
        else:
            os.ftruncate(fd, start)

    def load(self) -> list[dict[str, Any]]:
        """All complete records: ``records.jsonl`` in file order (an unterminated last line that is not JSON is
        ignored), then the records of ``records.d/`` whose ids the file does not hold.

        Raises:
            UserError: a line or file that is not a record, or two different records of one id (in the file, or in
                the file and ``records.d/``).
        """
        lines = self._load_lines()
        held = {r["record_id"]: r for r in lines}
        extra = []
        for record in recordfiles.load(self.records_dir):
            rid = record["record_id"]
            if rid not in held:
                extra.append(record)
            elif held[rid] != record:
                raise UserError(f"{recordfiles.record_path(self.records_dir, rid)} and {self.path} hold two different "
                                f"records of one id '{rid}'; one id is one record: move aside the one that should not "
                                "count, then run or report again")
        return lines + extra

    def _load_lines(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        self._check_file()
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise UserError(f"cannot read {self.path} ({exc.strerror or type(exc).__name__}); make it "
                            "readable") from None
        return [record for _, record in self._parse(data)]

    def _parse(self, data: bytes) -> list[tuple[bytes, dict[str, Any]]]:
        """Each record line of ``data`` (a last line without its newline included when it parses) with its record.

        Raises:
            UserError: naming the first line that is not JSON, not a record (an object with a text ``record_id``),
                or a second, different record of an id.
        """
        *complete, tail = data.split(b"\n")
        if tail.strip() and _is_json(tail):
            complete.append(tail)
        parsed: list[tuple[bytes, dict[str, Any]]] = []
        first: dict[str, tuple[int, dict[str, Any]]] = {}
        for number, line in enumerate(complete, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
                raise UserError(f"{self.path} line {number} is not JSON; move it aside or fix it") from None
            if not isinstance(record, dict) or "record_id" not in record:
                raise UserError(f"{self.path} line {number} is not a record (no record_id); move it aside or fix it")
            rid = record["record_id"]
            if not isinstance(rid, str) or not rid:
                raise UserError(f"{self.path} line {number} is not a record (its record_id {rid!r} is not a "
                                "non-empty text); move it aside or fix it")
            if rid in first:
                self._repeated(rid, first[rid], number, record)
                continue
            first[rid] = (number, record)
            parsed.append((line, record))
        return parsed

    def _repeated(self, rid: str, first: tuple[int, dict[str, Any]], number: int, record: dict[str, Any]) -> None:
        """A second line of record ``rid``: an identical copy is kept once (warned once); another record is refused."""
        if record != first[1]:
            raise UserError(f"{self.path} lines {first[0]} and {number} hold two different records of one id "
                            f"'{rid}' (shards joined twice?); one id is one record: delete the line that should not "
                            "count, then run or report again")
        if (self.path, rid) not in _WARNED:
            _WARNED.add((self.path, rid))
            print(f"[records] warning: {self.path} line {number} repeats record '{rid}' of line {first[0]}; "
                  "counted once (delete the copy to silence this)", file=sys.stderr, flush=True)

    def use_record_files(self) -> None:
        """From now on, appends to this folder (from any process) write one file per record under ``records.d/``."""
        self.records_dir.mkdir(parents=True, exist_ok=True)

    def holds_records(self) -> bool:
        """Whether a record was written here: a non-empty ``records.jsonl``, or a published file in ``records.d/``
        (looked at by name and size, not read)."""
        if self.path.is_file() and self.path.stat().st_size:
            return True
        return self.records_dir.is_dir() and not self.records_dir.is_symlink() and any(
            e.name.endswith(recordfiles.SUFFIX) and not e.name.startswith(".") for e in os.scandir(self.records_dir))

    def ids(self) -> set[str]:
        """Ids of the records already written."""
        return {r["record_id"] for r in self.load()}

    def append(self, record: dict[str, Any]) -> bool:
        """Appends one record unless its id is already there.

        Returns:
            True if written, False if a record with that id existed.
        """
        line = (json.dumps(record, sort_keys=False, default=_json_default) + "\n").encode()
        if self.records_dir.is_dir():
            if any(r["record_id"] == record["record_id"] for r in self._load_lines()):
                return False
            return recordfiles.publish(self.records_dir, record["record_id"], line)
        with self._locked() as fd:
            existing = self._parse(os.pread(fd, os.fstat(fd).st_size, 0))
            if any(r["record_id"] == record["record_id"] for _, r in existing):
                return False
            os.write(fd, line)
            os.fsync(fd)
        return True

    def remove(self, ids: set[str]) -> int:
        """Drops the records with these ids (to run them again); the file is replaced whole under the folder's lock,
        which every append takes too, so records other processes append meanwhile are kept.

        Returns:
            The number of records removed.
        """
        if not ids or not self.out.is_dir():
            return 0
        with self._folder_locked():
            removed = recordfiles.remove(self.records_dir, ids)
            if self.path.exists():
                with self._opened() as fd:
                    lines = self._parse(os.pread(fd, os.fstat(fd).st_size, 0))
                    kept = [line for line, record in lines if record["record_id"] not in ids]
                    if len(kept) < len(lines):
                        tmp = self.path.with_name(f".{RECORDS}.{os.getpid()}.tmp")
                        tmp.write_bytes(b"".join(line + b"\n" for line in kept))
                        os.replace(tmp, self.path)
                removed += len(lines) - len(kept)
        return removed

    def save_predictions(self, record_id: str, y_true: np.ndarray, y_score: np.ndarray) -> Path:
        """Writes ``predictions/<record_id>.npz`` atomically (``y_true``, ``y_score``); on OSError no file is left."""
        folder = self.out / PREDICTIONS
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"{record_id}.npz"
        tmp = folder / f".{record_id}.{os.getpid()}.tmp.npz"
        try:
            np.savez(tmp, y_true=y_true, y_score=y_score)
            os.replace(tmp, final)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        return final


_WARNED: set[tuple[Path, str]] = set()
"""Repeated identical records already warned about in this process."""


def _is_json(line: bytes) -> bool:
    """Whether ``line`` is one complete JSON value (a record written whole, perhaps without its newline)."""
    try:
        json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        return False
    return True


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, (tuple, set)):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} in a record")

