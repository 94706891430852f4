"""Checks of the machine a sweep runs on, made before any work: the device, precision and strategy, the output
folder and its free disk space. Each raises UserError with one line naming the problem and the fix.

The config's own values are checked when it is loaded (:func:`cass_bench.config.checks.validate`); the datasets, names
and sizes by :func:`cass_bench.run.sweep.preflight`, which calls these last, so a refused run writes nothing.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import timm
import torch
from pytorch_lightning.strategies import StrategyRegistry

from cass_bench.config.schema import INITS, BackboneConfig, BenchConfig
from cass_bench.models.encoders import backbone_name, build_encoder
from cass_bench.errors import UserError
from cass_bench.records.store import RECORDS

DISK_MARGIN = 1.2
"""Free space asked for: this times the checkpoints the pending cells will write."""
MB = 2**20


def resolved_device(accelerator: str) -> str:
    """The device family an accelerator name runs on: ``cuda``, ``mps`` or ``cpu``.

    Raises:
        UserError: a GPU accelerator is named but none is available.
    """
    if accelerator in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"accelerator '{accelerator}' asks for a CUDA GPU, but torch sees none; "
                            "use --accelerator cpu (or auto), or run on a machine with a GPU")
        return "cuda"
    if accelerator == "mps":
        if not torch.backends.mps.is_available():
            raise UserError("accelerator 'mps' asks for an Apple GPU, but torch sees none; use --accelerator cpu")
        return "mps"
    if accelerator == "auto" and torch.cuda.is_available():
        return "cuda"
    return "cpu"


def check_device(cfg: BenchConfig) -> None:
    """Checks that the accelerator is available, the precision runs on it and the strategy is known.

    Raises:
        UserError: naming the setting and what to use instead.
    """
    device = resolved_device(cfg.accelerator)
    if device == "cpu" and cfg.precision == "16-mixed":
        raise UserError("precision 16-mixed needs a GPU and this run uses the CPU; use --precision bf16-mixed or 32")
    if device == "cuda" and cfg.precision == "bf16-mixed" and not torch.cuda.is_bf16_supported():
        raise UserError(f"precision bf16-mixed is not supported by {torch.cuda.get_device_name(0)}; "
                        "use --precision 16-mixed or 32")
    known = ["auto", *StrategyRegistry.available_strategies()]
    if cfg.strategy not in known:
        raise UserError(f"unknown strategy '{cfg.strategy}'; use auto, ddp or another Lightning strategy name")


def check_encoders(cfg: BenchConfig, archs: tuple[str, ...]) -> None:
    """Checks that the ViT's patches tile the image and that an ``--init`` checkpoint fits the configured encoders.

    Args:
        cfg: the validated config.
        archs: the encoders the sweep builds.

    Raises:
        UserError: a patch size that does not divide the image size, or init weights of other shapes (named with
            the first mismatch by :func:`cass_bench.models.encoders.build_encoder`).
    """
    patch = cfg.backbones.vit_patch_size
    if "vit" in archs and patch is not None and cfg.image_size % patch:
        divisors = [d for d in range(2, cfg.image_size) if cfg.image_size % d == 0]
        raise UserError(f"backbones.vit_patch_size {patch} does not divide the image size {cfg.image_size}, so the "
                        f"ViT cannot tile its input; use a divisor ({', '.join(map(str, divisors[:6])) or '1'}) or "
                        "another --image-size")
    if cfg.init not in INITS and Path(cfg.init).expanduser().exists():
        for arch in archs:
            build_encoder(arch, cfg.backbones, cfg.image_size, seed=0, init=cfg.init)
        _check_start_heads(cfg, archs)


def _check_start_heads(cfg: BenchConfig, archs: tuple[str, ...]) -> None:
    """With an init path, a method comparing the start's own classifiers (``heads: start``, CASS) needs the init's
    classifiers to have one width; UserError naming both widths otherwise."""
    if not any(getattr(cfg.recipes.get(m), "heads", None) == "start" for m in cfg.methods) or len(archs) < 2:
        return
    widths = {}
    for arch in archs:
        head = build_encoder(arch, cfg.backbones, cfg.image_size, seed=0, init=cfg.init, start_head=True)
        classifier = head.get_classifier()
        if isinstance(classifier, torch.nn.Linear):
            widths[arch] = classifier.out_features
    if len(set(widths.values())) > 1:
        shown = ", ".join(f"{arch} {width}" for arch, width in widths.items())
        raise UserError(f"init '{cfg.init}' holds classifiers of different widths ({shown}), which CASS with "
                        "cass.heads: start cannot compare; use cass.heads: fresh, or an init whose classifiers "
                        "have one width")


def encoder_bytes(backbones: BackboneConfig, arch: str) -> int:
    """The size of one encoder's float32 state dict, from a model built on the meta device (no memory used)."""
    with torch.device("meta"):
        model = timm.create_model(backbone_name(arch, backbones), num_classes=0)
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * 4 for t in tensors)


def check_output(out: Path, needed_bytes: int) -> None:
    """Creates the output folder, opens its records file for append and checks the free disk space.

    Args:
        out: the results folder.
        needed_bytes: what the pending cells will write (their checkpoints), before the safety margin.

    Raises:
        UserError: ``out`` is a file, cannot be created or written, or its disk lacks the space; whatever this
            check created is removed again.
    """
    if out.exists() and not out.is_dir():
        raise UserError(f"--out '{out}' is an existing file, not a folder; pass a folder path for the results")
    created = _missing_parents(out)
    records = out / RECORDS
    new_records = not records.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        with open(records, "ab"):
            pass
    except OSError as exc:
        _remove(created, None)
        raise UserError(f"cannot write to output folder '{out}' ({exc.strerror or type(exc).__name__}); "
                        "pass a writable folder with --out") from None
    free = shutil.disk_usage(out).free
    if free < needed_bytes * DISK_MARGIN:
        _remove(created, records if new_records else None)
        raise UserError(
            f"only {free / MB:.0f} MB free on the disk of '{out}', and the pending cells' checkpoints need about "
            f"{needed_bytes * DISK_MARGIN / MB:.0f} MB; free disk space or pass another --out"
        )


def _missing_parents(path: Path) -> list[Path]:
    """``path`` and its ancestors that do not exist yet, deepest first."""
    missing = []
    for candidate in (path, *path.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    return missing


def _remove(created: list[Path], records: Path | None) -> None:
    """Removes what this check created: the empty records file, then the folders (deepest first)."""
    if records is not None:
        records.unlink(missing_ok=True)
    for folder in created:
        try:
            os.rmdir(folder)
        except OSError:
            return
