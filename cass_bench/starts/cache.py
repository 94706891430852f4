"""The formula-driven start of ``init: fractal``: keyed by its recipe, trained once, cached and verified.

The start of a config is identified by :func:`cass_bench.records.identity.start_key` (the key that also enters its
records' identity), the hash of the ``source`` section, the backbones as the cells build them (timm names, ViT patch
size, small-image stem) and the image size. It lives in
``<cache root>/starts/<key>/start.pt`` (cache root: ``$CASS_BENCH_CACHE``, default ``~/.cache/cass_bench``), written
and read through :class:`cass_bench.engine.checkpoints.CheckpointCache`: verified on every load (a file that is
unreadable, of another recipe or fails its content hash is moved aside and the start trained again) and locked, so
runs started together train it once. The file holds both encoders' state dicts *with* their source classifiers
(``states``) and the figures of the training (``measures``: held-out ``source_accuracy`` per encoder, times).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cass_bench.config.schema import BenchConfig
from cass_bench.errors import UserError
from cass_bench.engine.checkpoints import CheckpointCache, States
from cass_bench.engine.neighbours import START, training_marker
from cass_bench.records.identity import start_key, start_payload
from cass_bench.starts.source import LOG, train_start

CACHE_ENV = "CASS_BENCH_CACHE"
"""Environment variable naming the cache root (default ``~/.cache/cass_bench``)."""
DEFAULT_ROOT = "~/.cache/cass_bench"
STARTS = "starts"
STEM = "start"


def cache_root() -> Path:
    """The user cache folder: ``$CASS_BENCH_CACHE`` when set, else ``~/.cache/cass_bench``."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_ROOT).expanduser()


def check_cache_root(create: bool = True) -> Path:
    """Checks that the start cache can be written, before any work: the root (created when ``create``, probed with a
    file) or, without ``create``, its nearest existing folder.

    Raises:
        UserError: naming the root and the fix (``CASS_BENCH_CACHE`` at a writable folder).
    """
    root = cache_root()
    fix = f"set {CACHE_ENV} to a writable folder (it holds the formula-driven start)"
    existing = next((p for p in (root, *root.parents) if os.path.lexists(p)), None)
    if existing is not None and not existing.is_dir():
        raise UserError(f"the start cache '{root}' is under '{existing}', which is not a folder; {fix}")
    try:
        if create:
            root.mkdir(parents=True, exist_ok=True)
            probe = root / f".probe.{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        elif existing is None or not os.access(existing, os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as exc:
        raise UserError(f"cannot write the start cache '{root}' ({exc.strerror or type(exc).__name__}); "
                        f"{fix}") from None
    return root


def start_folder(key: str) -> Path:
    """``<cache root>/starts/<key>/``."""
    return cache_root() / STARTS / key


@dataclass(frozen=True)
class Start:
    """A trained, verified start.

    Attributes:
        key: its recipe hash.
        path: the checkpoint file (a valid ``init`` path: ``{"states": {arch: state dict with classifier}}``).
        states: each encoder's state dict with its source classifier.
        measures: what its training measured (``source_accuracy`` per arch, times, image counts).
    """

    key: str
    path: Path
    states: States
    measures: dict[str, Any]

    def source_accuracy(self, arch: str) -> float | None:
        """Held-out source accuracy of one encoder."""
        return (self.measures.get("source_accuracy") or {}).get(arch)


def _log_to_stderr() -> None:
    """Shows the start's INFO lines on stderr when nothing else handles them (a run's cell process)."""
    if not LOG.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        LOG.addHandler(handler)
    if LOG.getEffectiveLevel() > logging.INFO:
        LOG.setLevel(logging.INFO)


def ensure_start(cfg: BenchConfig, seed: int | None = None) -> Start:
    """The start behind measured seed ``seed`` (None: the start of ``source.seed``), loaded from the cache when a
    verified copy is there, trained and saved otherwise (``source.starts`` says which source seed a seed uses).

    The start's lock is held while it is looked up and trained, so concurrent runs train it once and the others
    load what it wrote.
    """
    _log_to_stderr()
    key, payload = start_key(cfg, seed), start_payload(cfg, seed)
    source = cfg.source if seed is None else dataclasses.replace(cfg.source, seed=cfg.source.seed_for(seed))
    cache = CheckpointCache(start_folder(key))
    with cache.lock(STEM):
        saved = cache.load(STEM, payload)
        if saved is None:
            LOG.info("[start] training the formula-driven start %s (%d classes x %d images, source seed %d) into %s",
                     key, source.classes, source.instances, source.seed, cache.folder)
            with training_marker(START):
                states, measures = train_start(source, cfg.backbones, cfg.image_size)
            cache.save(STEM, payload, states, measures)
            saved = states, measures
        else:
            LOG.info("[start] using the cached formula-driven start %s (%s)", key, cache.path(STEM))
    return Start(key, cache.path(STEM), saved[0], saved[1])


def start_weights(start: Start | None) -> str | None:
    """The file encoders are built from for a resolved start (``init``'s weights), or None without one."""
    return None if start is None else str(start.path)
