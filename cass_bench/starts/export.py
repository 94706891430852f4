"""Exporting the formula-driven start: ``cnn.safetensors`` and ``vit.safetensors`` (each encoder WITH its source
classifier) and ``start.json`` (its recipe, key, source accuracies and the timm arguments that rebuild each model).

The folder is a valid ``init`` (``--init FOLDER``): the encoders load from it, and CASS with ``cass.heads: start``
keeps their source classifiers, exactly as with ``init: fractal``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from cass_bench.config.schema import ARCHS, BenchConfig, to_dict
from cass_bench.data.loaders import IMAGENET_NORMALIZE
from cass_bench.errors import UserError
from cass_bench.models.encoders import backbone_name, vit_arguments
from cass_bench.starts.cache import Start, cache_root, check_cache_root, ensure_start
from cass_bench.records.identity import start_payload

DESCRIPTION = "start.json"


def check_destination(dest: Path, names: list[str], force: bool) -> None:
    """Refuses an export destination that is a file, or that holds the files to write unless ``force``.

    Raises:
        UserError: naming the destination and the fix.
    """
    if dest.exists() and not dest.is_dir():
        raise UserError(f"export destination '{dest}' is a file, not a folder; pass a folder path")
    above = next((p for p in dest.parents if os.path.lexists(p)), None)
    if above is not None and not above.is_dir():
        raise UserError(f"export destination '{dest}' is under '{above}', which is a file, not a folder; pass a "
                        "folder path")
    present = [name for name in names if (dest / name).exists()]
    if present and not force:
        raise UserError(f"'{dest}' already holds {' and '.join(present)}; pass --force to overwrite them, or "
                        "export to another folder")


def _timm_arguments(arch: str, cfg: BenchConfig, start: Start) -> dict[str, Any]:
    """``timm.create_model`` arguments of one exported model (with its classifier; small stem: see the JSON)."""
    kwargs: dict[str, Any] = {"model_name": backbone_name(arch, cfg.backbones), "num_classes": cfg.source.classes}
    if arch == "vit":
        kwargs.update(vit_arguments(cfg.image_size, int(start.states[arch]["patch_embed.proj.weight"].shape[-1])))
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
    check_cache_root()
    created = [p for p in (folder, *folder.parents) if not os.path.lexists(p)]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the export folder '{folder}' ({exc.strerror or type(exc).__name__}); pass a "
                        "folder path that can be written") from None
    try:
        start = ensure_start(cfg)
        for arch in ARCHS:
            save_file({k: v.contiguous() for k, v in start.states[arch].items()}, str(folder / f"{arch}.safetensors"))
        (folder / DESCRIPTION).write_text(json.dumps(describe_start(cfg, start), indent=2, default=str) + "\n")
    except OSError as exc:
        _remove_new(folder, names, created)
        raise UserError(f"cannot save the start ({exc.strerror or type(exc).__name__}); free disk space (the cache "
                        f"'{cache_root()}' and '{folder}'), then run export --start again") from None
    return [folder / name for name in names]


def _remove_new(folder: Path, names: list[str], created: list[Path]) -> None:
    """Removes what a failed export wrote: its files, then the folders it created (deepest first)."""
    for name in names:
        (folder / name).unlink(missing_ok=True)
    for path in created:
        try:
            path.rmdir()
        except OSError:
            return
