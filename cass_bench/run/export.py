"""Exporting a pretrained encoder: ``<arch>.safetensors`` plus ``<arch>.json`` holding the timm arguments that rebuild
it, so it loads with timm alone (``timm.create_model(**args, pretrained_cfg_overlay=dict(file=...))``).

The export folder is also a valid ``--init`` folder (``cnn.safetensors`` / ``vit.safetensors``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import timm
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from cass_bench.data.loaders import IMAGENET_NORMALIZE
from cass_bench.models.encoders import swap_small_stem
from cass_bench.errors import UserError
from cass_bench.methods.registry import get_method
from cass_bench.records.store import RecordStore

CHECKPOINTS = "checkpoints"


def _record(out: Path, record_id: str) -> dict[str, Any]:
    records = {r["record_id"]: r for r in RecordStore(out).load()}
    if record_id not in records:
        raise UserError(f"no record '{record_id}' in {out / 'records.jsonl'}; pick a record_id from that file")
    record = records[record_id]
    if get_method(record["method"]).is_reference:
        raise UserError(f"record '{record_id}' is of '{record['method']}', which has no pretrained encoder; "
                        "pick a record of a pretraining method")
    if not record.get("checkpoint_key"):
        raise UserError(f"record '{record_id}' names no checkpoint_key (written before records named it); "
                        "run its cell again with this version to export it")
    return record


def timm_arguments(record: dict[str, Any], state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The ``timm.create_model`` arguments of a record's encoder (pooled features: ``num_classes=0``).

    A ViT is built for the record's image size with the patch size its weights were trained with.
    """
    kwargs: dict[str, Any] = {"model_name": record["backbone"], "num_classes": 0}
    if record["arch"] == "vit":
        kwargs.update(img_size=record["image_size"], dynamic_img_size=True,
                      patch_size=int(state["patch_embed.proj.weight"].shape[-1]))
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


def export_encoder(out: str | Path, record_id: str, dest: str | Path) -> list[Path]:
    """Writes the pretrained encoder behind a record to ``dest/<arch>.safetensors`` and ``dest/<arch>.json``.

    Args:
        out: the results folder holding the record and ``checkpoints/``.
        record_id: the record whose encoder (its ``arch`` of its pretraining run) is exported.
        dest: the folder to write (created).

    Returns:
        The two files written.

    Raises:
        UserError: the record is unknown, has no pretraining, or its checkpoint is missing.
    """
    out, dest = Path(out), Path(dest)
    record = _record(out, record_id)
    checkpoint = out / CHECKPOINTS / f"{record['checkpoint_key']}.pt"
    if not checkpoint.is_file():
        raise UserError(f"checkpoint {checkpoint} of record '{record_id}' is missing; run its cell again "
                        "(the same run command) to recreate it")
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["states"][record["arch"]]
    arch = record["arch"]
    spec = {
        "timm": timm_arguments(record, state),
        "weights": f"{arch}.safetensors",
        "small_input_stem": bool(record["small_input_stem"]) and arch == "cnn",
        "input": {"image_size": record["image_size"], **IMAGENET_NORMALIZE},
        "source": {key: record[key] for key in ("record_id", "method", "arch", "encoders", "dataset", "batch_size",
                                                "pretrain_epochs", "seed", "init", "checkpoint_key")},
    }
    dest.mkdir(parents=True, exist_ok=True)
    weights, described = dest / spec["weights"], dest / f"{arch}.json"
    save_file({k: v.contiguous() for k, v in state.items()}, str(weights))
    described.write_text(json.dumps(spec, indent=2) + "\n")
    rebuilt = load_exported(described).state_dict()
    if rebuilt.keys() != state.keys() or not all(torch.equal(rebuilt[k], state[k]) for k in state):
        raise UserError(f"the exported {arch} encoder does not rebuild from {described} with the weights it was "
                        "trained with; report this with the record")
    return [weights, described]
