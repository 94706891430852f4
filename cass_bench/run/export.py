"""Exporting a pretrained encoder: ``<arch>.safetensors`` plus ``<arch>.json`` holding the timm arguments that rebuild
it, so it loads with timm alone (``timm.create_model(**args, pretrained_cfg_overlay=dict(file=...))``).

The export folder is also a valid ``--init`` folder (``cnn.safetensors`` / ``vit.safetensors``), so exporting both
encoders of a run into one folder is the usual use; files already there are overwritten only with ``--force``.
Checkpoints are read as tensors only (nothing in a results folder runs). A record whose checkpoint is gone is
recovered with ``run --rebuild RECORD_ID`` (:func:`rebuild_target`, :func:`rebuild`).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import timm
import torch
from safetensors.torch import load_file, save
from torch import nn

from cass_bench.config.files import RESOLVED
from cass_bench.config.schema import ARCHS, BenchConfig
from cass_bench.data.loaders import IMAGENET_NORMALIZE
from cass_bench.engine.checkpoints import CheckpointProblem, read_verified
from cass_bench.models.encoders import swap_small_stem, vit_arguments
from cass_bench.errors import UserError
from cass_bench.config.registry import get_method
from cass_bench.records.store import RecordStore
from cass_bench.records.identity import Cell, expected_ids, pretrain_key
from cass_bench.run.grid import shard_cells
from cass_bench.starts.export import check_destination

CHECKPOINTS = "checkpoints"
EXPORT_FIELDS = ("method", "arch", "backbone", "image_size", "small_input_stem", "checkpoint_key", "encoders",
                 "dataset", "batch_size", "pretrain_epochs", "seed", "init")
"""The record fields an export reads."""
KEY_PATTERN = re.compile(r"[0-9a-f]{6,64}")
"""What a checkpoint key is (a hash): never a path."""


def _record(out: Path, record_id: str) -> dict[str, Any]:
    records = {r["record_id"]: r for r in RecordStore(out).load()}
    if record_id not in records:
        raise UserError(f"no record '{record_id}' in {out / 'records.jsonl'}; pick a record_id from that file")
    record = records[record_id]
    missing = [key for key in EXPORT_FIELDS if key not in record]
    if missing:
        raise UserError(f"record '{record_id}' has no field '{missing[0]}' (written by an older cass-bench, or "
                        "edited); run its cell again with this version to export it")
    if record["arch"] not in ARCHS or not isinstance(record["backbone"], str) or not timm.is_model(record["backbone"]):
        raise UserError(f"record '{record_id}' names arch {record['arch']!r} and backbone {record['backbone']!r}, "
                        "which are not a timm encoder this version builds (an edited record?); restore the record "
                        "as the run wrote it")
    if not isinstance(record["checkpoint_key"], str) or not KEY_PATTERN.fullmatch(record["checkpoint_key"]):
        raise UserError(f"record '{record_id}' has checkpoint_key {record['checkpoint_key']!r}, which is not a key "
                        "the harness writes (hexadecimal); restore the record as the run wrote it")
    if get_method(record["method"]).is_reference:
        raise UserError(f"record '{record_id}' is of '{record['method']}', which has no pretrained encoder; "
                        "pick a record of a pretraining method")
    return record


def _check_fits(spec: dict[str, Any], state: dict[str, torch.Tensor], record_id: str) -> None:
    """Refuses, before anything is written, weights the record's timm arguments cannot hold (an edited record)."""
    try:
        with torch.device("meta"):
            model = timm.create_model(**spec["timm"])
            if spec["small_input_stem"]:
                swap_small_stem(model, seed=0)
    except Exception as exc:  # noqa: BLE001 - any model timm cannot build is the same user problem
        raise UserError(f"record '{record_id}' describes an encoder timm cannot build ({type(exc).__name__}); "
                        "restore the record as the run wrote it") from None
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if own != {k: tuple(v.shape) for k, v in state.items()}:
        raise UserError(f"record '{record_id}' names backbone '{spec['timm']['model_name']}', whose weights are not "
                        "the ones its checkpoint holds (an edited record?); restore the record as the run wrote it")


def timm_arguments(record: dict[str, Any], state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The ``timm.create_model`` arguments of a record's encoder (pooled features: ``num_classes=0``).

    A ViT is built for the record's image size with the patch size its weights were trained with.
    """
    kwargs: dict[str, Any] = {"model_name": record["backbone"], "num_classes": 0}
    if record["arch"] == "vit":
        kwargs.update(vit_arguments(record["image_size"], int(state["patch_embed.proj.weight"].shape[-1])))
    return kwargs


def build_exported(spec: dict[str, Any], weights: str | Path) -> nn.Module:
    """The encoder an export describes, its weights loaded with timm (``pretrained_cfg_overlay``).

    A CNN exported with the small-image stem is built first, its stem swapped, then its weights loaded (timm has no
    argument for that stem).

    Args:
        spec: the export's JSON.
        weights: its ``.safetensors`` file.
    """
    if not spec["small_input_stem"]:
        overlay = {"file": str(weights), "custom_load": False}
        return timm.create_model(**spec["timm"], pretrained=True, pretrained_cfg_overlay=overlay)
    model = timm.create_model(**spec["timm"])
    swap_small_stem(model, seed=0)
    model.load_state_dict(load_file(str(weights)), strict=True)
    return model


def load_exported(json_path: str | Path) -> nn.Module:
    """An exported encoder, from its JSON (the weights file is found beside it), in eval mode."""
    path = Path(json_path)
    spec = json.loads(path.read_text())
    return build_exported(spec, path.parent / spec["weights"]).eval()


def _rebuild_hint(out: Path, record_id: str) -> str:
    return (f"rebuild it with `run --config {out / RESOLVED} --rebuild {record_id}` (the options the folder was "
            "run with)")


def _load_state(checkpoint: Path, record: dict[str, Any], out: Path) -> dict[str, torch.Tensor]:
    """The record's encoder state in its checkpoint, verified as the cache verifies it
    (:func:`cass_bench.engine.checkpoints.read_verified`: tensors only, its key, its content hash)."""
    record_id = record["record_id"]
    if not checkpoint.is_file():
        raise UserError(f"checkpoint {checkpoint} of record '{record_id}' is missing; {_rebuild_hint(out, record_id)}")
    try:
        states, _ = read_verified(checkpoint, record["checkpoint_key"])
    except CheckpointProblem as exc:
        problem = str(exc).replace("is unreadable", "cannot be read", 1)
        raise UserError(f"checkpoint {checkpoint} of record '{record_id}' {problem}; nothing was exported: "
                        f"{_rebuild_hint(out, record_id)}") from None
    state = states.get(record["arch"])
    if not state:
        raise UserError(f"checkpoint {checkpoint} of record '{record_id}' holds no {record['arch']} encoder "
                        f"weights; {_rebuild_hint(out, record_id)}")
    return state


def _write(dest: Path, files: dict[str, bytes]) -> list[Path]:
    """Writes each file whole (temporary file, then rename); on OSError none of the temporary files is left."""
    written, temporary = [], []
    try:
        dest.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            tmp = dest / f".{name}.{os.getpid()}.tmp"
            temporary.append(tmp)
            tmp.write_bytes(data)
        for tmp, name in zip(temporary, files):
            os.replace(tmp, dest / name)
            written.append(dest / name)
    except OSError as exc:
        for tmp in temporary:
            tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write the export to '{dest}' ({exc.strerror or type(exc).__name__}); pass a "
                        "writable folder with free space") from None
    return written


def export_encoder(out: str | Path, record_id: str, dest: str | Path, force: bool = False) -> list[Path]:
    """Writes the pretrained encoder behind a record to ``dest/<arch>.safetensors`` and ``dest/<arch>.json``.

    Args:
        out: the results folder holding the record and ``checkpoints/``.
        record_id: the record whose encoder (its ``arch`` of its pretraining run) is exported.
        dest: the folder to write (created).
        force: overwrite those two files when ``dest`` holds them already (otherwise refused).

    Returns:
        The two files written.

    Raises:
        UserError: the record is unknown or has no pretraining; its checkpoint is missing or unreadable (the message
            says how to rebuild it); ``dest`` is a file, holds the files already, or cannot be written.
    """
    out, dest = Path(out), Path(dest)
    record = _record(out, record_id)
    arch = record["arch"]
    names = [f"{arch}.safetensors", f"{arch}.json"]
    check_destination(dest, names, force)
    state = _load_state(out / CHECKPOINTS / f"{record['checkpoint_key']}.pt", record, out)
    spec = {
        "timm": timm_arguments(record, state),
        "weights": names[0],
        "small_input_stem": bool(record["small_input_stem"]) and arch == "cnn",
        "input": {"image_size": record["image_size"], **IMAGENET_NORMALIZE},
        "source": {key: record[key] for key in ("record_id", "method", "arch", "encoders", "dataset", "batch_size",
                                                "pretrain_epochs", "seed", "init", "checkpoint_key")},
    }
    _check_fits(spec, state, record_id)
    weights = save({k: v.contiguous() for k, v in state.items()})
    described = (json.dumps(spec, indent=2) + "\n").encode()
    written = _write(dest, {names[0]: weights, names[1]: described})
    rebuilt = load_exported(written[1]).state_dict()
    if rebuilt.keys() != state.keys() or not all(torch.equal(rebuilt[k], state[k]) for k in state):
        raise UserError(f"the exported {arch} encoder does not rebuild from {written[1]} with the weights it was "
                        "trained with; report this with the record")
    return written


def rebuild_target(cfg: BenchConfig, target: str, shard: tuple[int, int] = (0, 1)) -> Cell:
    """The cell of ``cfg``'s grid that ``run --rebuild TARGET`` reruns: the one with that checkpoint key or record id.

    Raises:
        UserError: no cell of this shard has that key or id.
    """
    for cell in shard_cells(cfg, shard):
        keyed = not get_method(cell.method).is_reference and pretrain_key(cell, cfg) == target
        if keyed or target in expected_ids(cell, cfg):
            return cell
    raise UserError(f"no cell of this run{' shard' if shard[1] > 1 else ''} has checkpoint key or record id "
                    f"'{target}'; pass the options the folder was run with (--config OUT/{RESOLVED}) and a record_id "
                    "or checkpoint_key from its records.jsonl")


def rebuild(cell: Cell, cfg: BenchConfig) -> str:
    """Removes a cell's records so the run writes them again; its checkpoint is pretrained again when missing.

    Returns:
        What was done, in one line.
    """
    removed = RecordStore(cfg.out).remove(set(expected_ids(cell, cfg)))
    pretraining = "" if get_method(cell.method).is_reference else (
        "; its checkpoint is reused" if (Path(cfg.out) / CHECKPOINTS / f"{pretrain_key(cell, cfg)}.pt").is_file()
        else "; it pretrains again and saves its checkpoint")
    return f"[sweep] rebuilding {cell.describe()}: {removed} record(s) removed{pretraining}"
