"""Method name -> spec that builds its pretraining module (the one place methods are looked up)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from cass_bench.config import BenchConfig
from cass_bench.errors import UserError
from cass_bench.method import PretrainMethod


@dataclass(frozen=True)
class PretrainSetup:
    """What a method needs to build itself for one pretraining run.

    Attributes:
        cfg: the whole benchmark config (each method reads its own section and the shared backbones).
        archs: encoders this run trains (``("cnn", "vit")`` for CASS, one arch for DINO/BYOL).
        batch_size: per-device pretraining batch size.
        seed: seed of the run.
    """

    cfg: BenchConfig
    archs: tuple[str, ...]
    batch_size: int
    seed: int


@dataclass(frozen=True)
class MethodSpec:
    """A registered method.

    Attributes:
        name: the name used on the CLI and in records.
        summary: one line for ``list``.
        joint: True if one run trains every architecture together (CASS); False runs it once per arch.
        build: builds the pretraining module, or None for the no-pretraining reference.
    """

    name: str
    summary: str
    joint: bool
    build: Callable[[PretrainSetup], PretrainMethod] | None


def _cass(setup: PretrainSetup) -> PretrainMethod:
    from cass_bench.cass import CASS

    return CASS(setup.cfg.cass, setup.cfg.backbones, setup.cfg.image_size, setup.seed, setup.cfg.init)


def _dino(setup: PretrainSetup) -> PretrainMethod:
    from baselines.dino import DINO

    (arch,) = setup.archs
    return DINO(setup.cfg.dino, setup.cfg.backbones, arch, setup.cfg.image_size, setup.seed, setup.cfg.init)


def _byol(setup: PretrainSetup) -> PretrainMethod:
    from baselines.byol import BYOL

    (arch,) = setup.archs
    return BYOL(setup.cfg.byol, setup.cfg.backbones, arch, setup.cfg.image_size, setup.seed, setup.batch_size,
                setup.cfg.init)


_REGISTRY: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        MethodSpec("cass", "CASS: CNN + ViT trained together with a cosine loss between their outputs", True, _cass),
        MethodSpec("dino", "DINO (lightly): self-distillation with multi-crop, one encoder per run", False, _dino),
        MethodSpec("byol", "BYOL (lightly): online/target networks with a predictor, one encoder per run", False, _byol),
        MethodSpec("supervised", "no pretraining: the same initial encoder fine-tuned directly", False, None),
    )
}


def method_names() -> list[str]:
    """Registered method names, in registration order."""
    return list(_REGISTRY)


def get_method(name: str) -> MethodSpec:
    """Looks up a method; raises UserError listing the known names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UserError(f"unknown method '{name}'; known methods: {', '.join(_REGISTRY)}") from None
