"""The checkpoint file: encoder states and measures with the key, the payload the key hashes and a content hash, and
the one way to read one verified. The cache (:mod:`cass_bench.engine.checkpoints`), ``export`` and ``--init PATH``
(:mod:`cass_bench.models.encoders`) all read checkpoints through :func:`read_verified`, so a file one of them refuses
none of them uses. Checkpoints are read as tensors only: nothing in the file runs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

FORMAT = 2
"""Version of the file's contents; a checkpoint of another version is moved aside and its cell pretrained again
(2: the feature-rank history is the centred rank, :func:`cass_bench.engine.collapse.centred_rank`)."""
States = dict[str, dict[str, torch.Tensor]]


def content_hash(states: States, measures: dict[str, Any]) -> str:
    """SHA-256 of every tensor's name, dtype, shape and bytes, and of the measures as sorted JSON."""
    digest = hashlib.sha256()
    for arch in sorted(states):
        for name in sorted(states[arch]):
            tensor = states[arch][name].detach().cpu().contiguous()
            digest.update(f"{arch}/{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    digest.update(json.dumps(measures, sort_keys=True, default=str).encode())
    return digest.hexdigest()


class CheckpointProblem(ValueError):
    """A checkpoint file that is not a whole, current checkpoint of what it should hold; the message says what."""


def read_verified(path: Path, key: str | None = None, payload: dict[str, Any] | None = None) -> tuple[States,
                                                                                                    dict[str, Any]]:
    """The states and measures of the checkpoint at ``path``, verified as the cache verifies them: read as tensors
    only, of the current :data:`FORMAT`, written for ``key`` and ``payload`` (each checked when given) and matching
    its content hash. Every reader of a checkpoint (the cache, ``export``, ``--init PATH``) goes through here.

    Raises:
        CheckpointProblem: what is wrong, in words that follow the file's name (``is unreadable (...)``).
    """
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same fault
        raise CheckpointProblem(f"is unreadable ({type(exc).__name__})") from None
    if not isinstance(saved, dict) or "format" not in saved:
        raise CheckpointProblem("has no key and content hash (written by an older cass-bench, or not a checkpoint)")
    if saved["format"] != FORMAT:
        raise CheckpointProblem(f"is of format {saved['format']}, written by another cass-bench version (this one "
                                f"reads {FORMAT})")
    if (key is not None and saved.get("key") != key) or (payload is not None and
                                                          saved.get("payload") != canonical(payload)):
        raise CheckpointProblem(f"holds the pretraining of another cell or setting (key {saved.get('key')})")
    states, measures = saved.get("states"), saved.get("measures")
    if not isinstance(states, dict) or not isinstance(measures, dict) or not all(
            isinstance(state, dict) and all(isinstance(t, torch.Tensor) for t in state.values())
            for state in states.values()):
        raise CheckpointProblem("lacks its states or measures")
    if content_hash(states, measures) != saved.get("content_hash"):
        raise CheckpointProblem("fails its content hash (corrupted)")
    return states, measures


def canonical(payload: dict[str, Any]) -> str:
    """The payload as sorted JSON text, the form :func:`cass_bench.config.schema.stable_hash` hashes."""
    return json.dumps(payload, sort_keys=True, default=str)
