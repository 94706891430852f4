"""The records store (JSON lines), saved predictions and the environment every record carries.

The record's fields are defined in :mod:`cass_bench.records.schema` (``RECORD_FIELDS`` is re-exported here).

Appends are whole lines written in one ``write`` under an exclusive file lock and flushed to disk, so several
sweep shards may share one folder and a killed process leaves at most an unterminated tail, which the next
open removes. A record id is written at most once. A complete line that is not a JSON record is never skipped
silently: reading the store raises UserError naming its line.

A folder that holds ``records.d/`` (created by :meth:`RecordStore.use_record_files`, as the job launchers do) gets
one file per record instead (:mod:`cass_bench.records.files`: no lock, safe on NFS); readers merge both forms.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import subprocess
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from cass_bench.records import files as recordfiles
from cass_bench.errors import UserError
from cass_bench.records.schema import RECORD_FIELDS

__all__ = ["RECORD_FIELDS", "RecordStore", "device_name", "git_commit", "versions"]

RECORDS = "records.jsonl"
PREDICTIONS = "predictions"


class RecordStore:
    """``<out>/records.jsonl`` and ``<out>/predictions/``.

    Args:
        out: the results folder (created on first write).
    """

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.path = self.out / RECORDS
        self.records_dir = self.out / recordfiles.RECORDS_DIR

    @contextmanager
    def _locked(self) -> Iterator[int]:
        self.out.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._drop_partial_tail(fd)
            yield fd
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @staticmethod
    def _drop_partial_tail(fd: int) -> None:
        size = os.fstat(fd).st_size
        if size == 0:
            return
        data = os.pread(fd, size, 0)
        if data.endswith(b"\n"):
            return
        os.ftruncate(fd, data.rfind(b"\n") + 1)

    def load(self) -> list[dict[str, Any]]:
        """All complete records: ``records.jsonl`` in file order (an unterminated last line is ignored), then
        the records of ``records.d/`` whose ids the file does not hold."""
        lines = self._load_lines()
        seen = {r["record_id"] for r in lines}
        return lines + [r for r in recordfiles.load(self.records_dir) if r["record_id"] not in seen]

    def _load_lines(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [record for _, record in self._parse(self.path.read_bytes())]

    def _parse(self, data: bytes) -> list[tuple[bytes, dict[str, Any]]]:
        """Each complete, non-blank line of ``data`` with its record.

        Raises:
            UserError: naming the first line that is not JSON, or not a record (an object with a ``record_id``).
        """
        parsed = []
        for number, line in enumerate(data.split(b"\n")[:-1], start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise UserError(f"{self.path} line {number} is not JSON; move it aside or fix it") from None
            if not isinstance(record, dict) or "record_id" not in record:
                raise UserError(f"{self.path} line {number} is not a record (no record_id); move it aside or fix it")
            parsed.append((line, record))
        return parsed

    def use_record_files(self) -> None:
        """From now on, appends to this folder (from any process) write one file per record under ``records.d/``."""
        self.records_dir.mkdir(parents=True, exist_ok=True)

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
        """Drops the records with these ids (to run them again); the file is replaced whole under the lock.

        Do not remove while another process writes to the same folder: its next append would go to the old file.

        Returns:
            The number of records removed.
        """
        if not ids:
            return 0
        from_files = recordfiles.remove(self.records_dir, ids)
        if not self.path.exists():
            return from_files
        with self._locked() as fd:
            lines = self._parse(os.pread(fd, os.fstat(fd).st_size, 0))
            kept = [line for line, record in lines if record["record_id"] not in ids]
            tmp = self.path.with_suffix(".tmp")
            tmp.write_bytes(b"".join(line + b"\n" for line in kept))
            os.replace(tmp, self.path)
        return len(lines) - len(kept) + from_files

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


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, (tuple, set)):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} in a record")


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the harness checkout, or None outside git."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    """Versions of the libraries whose behaviour the numbers depend on."""
    import lightly
    import pytorch_lightning
    import timm
    import torchmetrics

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "lightly": lightly.__version__,
        "pytorch_lightning": pytorch_lightning.__version__,
        "torchmetrics": torchmetrics.__version__,
    }


def device_name(accelerator: str = "auto") -> str:
    """The compute device in words: the GPU's name, or the CPU with its core count."""
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    cpu = platform.processor() or platform.machine()
    return f"CPU ({cpu}, {os.cpu_count()} cores)"
