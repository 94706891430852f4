"""The pretraining checkpoint cache: verified on load, healed when bad, one writer per cell.

``<out>/checkpoints/<key>.pt`` holds a cell's encoder states and measures together with the key, the payload the key
hashes and a content hash of the states and measures. A file that cannot be read, belongs to another key or fails
its content hash is moved aside to ``<key>.bad`` and the cell pretrains again. ``<key>.lock`` serialises the
processes that run the same cell: the one holding it pretrains and writes the records, the others find them written.
"""

from __future__ import annotations

import io
import os
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import torch

from cass_bench.records.locks import file_lock
from cass_bench.records.checkpoint_file import (FORMAT, CheckpointProblem, States, canonical, content_hash,
                                                   read_verified)

__all__ = ["FORMAT", "CheckpointCache", "CheckpointProblem", "States", "content_hash", "read_verified"]

M = TypeVar("M")
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")
"""Environment variables a distributed launcher sets; a process where any is non-zero is not global rank zero."""


def write_file(path: Path, data: bytes) -> None:
    """Writes ``data`` to a new file and flushes it to disk (OSError, e.g. ENOSPC, propagates)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def is_global_rank_zero() -> bool:
    """False inside the extra processes of a distributed run (which must neither lock nor write the cache)."""
    return all(os.environ.get(name, "0") == "0" for name in RANK_VARIABLES)


def _warn(message: str) -> None:
    print(f"[cache] warning: {message}", file=sys.stderr, flush=True)


class CheckpointCache:
    """The checkpoints of one results folder.

    Args:
        folder: ``<out>/checkpoints`` (created on first write).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def path(self, key: str) -> Path:
        """The checkpoint file of ``key``."""
        return self.folder / f"{key}.pt"

    @contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """Holds the exclusive lock of ``key`` (``<key>.lock``) for the block; waits while another process has it.

        Only global rank zero locks: the other ranks of a distributed run join its training instead.
        """
        if not is_global_rank_zero():
            yield
            return
        with file_lock(self.folder / f"{key}.lock"):
            yield

    def load(self, key: str, payload: dict[str, Any],
             read: Callable[[dict[str, Any]], M] | None = None) -> tuple[States, M | dict[str, Any]] | None:
        """The verified states and measures of ``key``, or None when there is no usable checkpoint.

        A checkpoint that cannot be read, was written for another key or payload, fails its content hash or holds
        measures ``read`` refuses is moved aside to ``<key>.bad`` with a warning, and None is returned so the cell
        pretrains again.

        Args:
            key: the cell's checkpoint key.
            payload: what the key hashes (the cell and every setting its pretraining depends on).
            read: turns the stored measures into their type (e.g. :meth:`RunFigures.from_dict`); ValueError when
                they are of another shape. None: the plain dict.
        """
        path = self.path(key)
        if not path.exists():
            return None
        problem = self._problem(path, key, payload)
        if not isinstance(problem, str) and read is not None:
            try:
                problem = problem[0], read(problem[1])
            except ValueError as exc:
                problem = f"holds measures of another version ({exc})"
        if isinstance(problem, str):
            bad = self._move_aside(path, key)
            _warn(f"checkpoint {path.name} {problem}; moved it aside to {bad.name} and pretraining again")
            return None
        return problem

    def _problem(self, path: Path, key: str, payload: dict[str, Any]) -> str | tuple[States, dict[str, Any]]:
        """What is wrong with the checkpoint at ``path``, or its states and measures when nothing is."""
        try:
            return read_verified(path, key, payload)
        except CheckpointProblem as exc:
            return str(exc)

    def _move_aside(self, path: Path, key: str) -> Path:
        bad = self.folder / f"{key}.bad"
        n = 0
        while bad.exists():
            n += 1
            bad = self.folder / f"{key}-{n}.bad"
        os.replace(path, bad)
        return bad

    def save(self, key: str, payload: dict[str, Any], states: States, measures: dict[str, Any]) -> Path:
        """Writes the checkpoint of ``key`` atomically, through a uniquely named temporary file.

        Raises:
            OSError: the file could not be written (the temporary file is removed); the message says how to rerun.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save({"format": FORMAT, "key": key, "payload": canonical(payload),
                    "content_hash": content_hash(states, measures), "states": states, "measures": measures}, buffer)
        final = self.path(key)
        tmp = self.folder / f".{key}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            write_file(tmp, buffer.getbuffer().tobytes())
            os.replace(tmp, final)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise OSError(exc.errno, f"{exc.strerror or exc} while saving checkpoint {final.name}; "
                                     "free disk space, then run again with --retry-failed") from None
        print(f"[cache] saved {self.folder.name}/{final.name}", flush=True)
        return final
