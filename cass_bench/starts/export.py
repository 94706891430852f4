"""Exporting the formula-driven start: ``cnn.safetensors`` and ``vit.safetensors`` (each encoder WITH its source
classifier) and ``start.json`` (its recipe, key, source accuracies and the timm arguments that rebuild each model).

The folder is a valid ``init`` (``--init FOLDER``): the encoders load from it, and CASS with ``cass.heads: start``
keeps their source classifiers, exactly as with ``init: fractal``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from cass_bench.config.schema import ARCHS, BenchConfig, to_dict
from cass_bench.data.loaders import IMAGENET_NORMALIZE
from cass_bench.errors import UserError
from cass_bench.models.encoders import backbone_name
from cass_bench.starts.cache import Start, ensure_start
from cass_bench.records.identity import start_payload

DESCRIPTION = "start.json"


def check_destination(dest: Path, names: list[str], force: bool) -> None:
    """Refuses an export destination that is a file, or that holds the files to write unless ``force``.

    Raises:
        UserError: naming the destination and the fix.
    """
    if dest.exists() and not dest.is_dir():
        raise UserError(f"export destination '{dest}' is a file, not a folder; pass a folder path")
    present = [name for name in names if (dest / name).exists()]
    if present and not force:
        raise UserError(f"'{dest}' already holds {' and '.join(present)}; pass --force to overwrite them, or "
                        "export to another folder")


def _timm_arguments(arch: str, cfg: BenchConfig, start: Start) -> dict[str, Any]:
    """``timm.create_model`` arguments of one exported model (with its classifier; small stem: see the JSON)."""
    kwargs: dict[str, Any] = {"model_name": backbone_name(arch, cfg.backbones), "num_classes": cfg.source.classes}
    if arch == "vit":
        kwargs.update(img_size=cfg.image_size, dynamic_img_size=True,
                      patch_size=int(start.states[arch]["patch_embed.proj.weight"].shape[-1]))
    return kwargs


def describe_start(cfg: BenchConfig, start: Start) -> dict[str, Any]:
    """The JSON written beside an exported start."""
    return {
        "init": "fractal",
        "start_key": start.key,
        "recipe": start_payload(cfg),
        "source": to_dict(cfg.source),
        "classes": cfg.source.classes,
        "source_accuracy": {arch: start.source_accuracy(arch) for arch in ARCHS},
        "measures": start.measures,
        "weights": {arch: f"{arch}.safetensors" for arch in ARCHS},
        "timm": {arch: _timm_arguments(arch, cfg, start) for arch in ARCHS},
        "small_input_stem": cfg.backbones.uses_small_stem(cfg.image_size),
        "input": {"image_size": cfg.image_size, **IMAGENET_NORMALIZE, "channels": "grey replicated to RGB"},
    }


def export_start(cfg: BenchConfig, dest: str | Path, force: bool = False) -> list[Path]:
    """Writes the start of ``cfg`` (trained first if it is not cached) to ``dest``.

    Args:
        cfg: the config whose ``source`` section, backbones and image size name the start.
        dest: the folder to write (created).
        force: overwrite the files when ``dest`` holds them.

    Returns:
        The files written: ``cnn.safetensors``, ``vit.safetensors``, ``start.json``.

    Raises:
        UserError: ``dest`` is a file, or holds the files and ``force`` is not set.
    """
    folder = Path(dest)
    names = [f"{arch}.safetensors" for arch in ARCHS] + [DESCRIPTION]
    check_destination(folder, names, force)
    start = ensure_start(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    for arch in ARCHS:
        save_file({k: v.contiguous() for k, v in start.states[arch].items()}, str(folder / f"{arch}.safetensors"))
    (folder / DESCRIPTION).write_text(json.dumps(describe_start(cfg, start), indent=2, default=str) + "\n")
    return [folder / name for name in names]
