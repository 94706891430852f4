"""The one encoder factory every method uses: timm models built with ``num_classes=0`` (pooled features)."""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from torch import nn

from cass_bench.config import ARCHS, BackboneConfig
from cass_bench.errors import UserError


def backbone_name(arch: str, backbones: BackboneConfig) -> str:
    """The timm model name configured for an architecture (``cnn`` or ``vit``)."""
    if arch not in ARCHS:
        raise UserError(f"unknown arch '{arch}'; choose from {', '.join(ARCHS)}")
    return backbones.cnn if arch == "cnn" else backbones.vit


def check_backbones(backbones: BackboneConfig, archs: tuple[str, ...]) -> None:
    """Raises UserError if a configured timm name does not exist or a weights file is missing."""
    for arch in archs:
        name = backbone_name(arch, backbones)
        if not timm.is_model(name):
            raise UserError(
                f"unknown timm backbone '{name}' for {arch}; pick a name from timm.list_models(), "
                f"e.g. {'resnet18' if arch == 'cnn' else 'vit_tiny_patch16_224'}"
            )
        if backbones.pretrained and backbones.weights_dir is not None:
            _local_weights(name, Path(backbones.weights_dir).expanduser())


def _local_weights(name: str, folder: Path) -> Path:
    for suffix in (".safetensors", ".pth", ".bin"):
        candidate = folder / f"{name}{suffix}"
        if candidate.is_file():
            return candidate
    raise UserError(
        f"no local weights for '{name}' in '{folder}'; put {name}.safetensors (or .pth) there, "
        "or unset backbones.weights_dir to download from the hub"
    )


def build_encoder(arch: str, backbones: BackboneConfig, image_size: int, seed: int) -> nn.Module:
    """Builds the timm encoder of an architecture with pooled-feature output.

    ViTs are built for ``image_size`` with ``dynamic_img_size=True`` so smaller crops (DINO's local views)
    pass through too.

    Args:
        arch: ``cnn`` or ``vit``.
        backbones: timm names, ViT patch size and ImageNet-init settings.
        image_size: side of the training images.
        seed: initialisation seed; the same (arch, seed) gives the same weights in every method.

    Returns:
        A timm model whose forward returns ``(B, model.num_features)``.
    """
    name = backbone_name(arch, backbones)
    kwargs: dict[str, object] = {"num_classes": 0}
    if arch == "vit":
        kwargs.update(img_size=image_size, dynamic_img_size=True)
        if backbones.vit_patch_size is not None:
            kwargs["patch_size"] = backbones.vit_patch_size
    if backbones.pretrained and backbones.weights_dir is not None:
        path = _local_weights(name, Path(backbones.weights_dir).expanduser())
        kwargs["pretrained_cfg_overlay"] = {"file": str(path)}
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return timm.create_model(name, pretrained=backbones.pretrained, **kwargs)
    except RuntimeError as exc:
        if backbones.pretrained:
            raise UserError(
                f"could not load ImageNet weights for '{name}' ({str(exc).splitlines()[0]}); "
                "set backbones.weights_dir to a folder with the weights file, or backbones.pretrained: false"
            ) from None
        raise
