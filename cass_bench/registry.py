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
        color: matplotlib colour of the method in every plot.
    """

    name: str
    summary: str
    joint: bool
    build: Callable[[PretrainSetup], PretrainMethod] | None
    color: str = "tab:purple"

    @property
    def is_reference(self) -> bool:
        """True for the no-pretraining reference (``supervised``): the one way it is told apart."""
        return self.build is None


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
        MethodSpec("cass", "CASS: CNN + ViT trained together with a cosine loss between their outputs", True, _cass,
                   "tab:red"),
        MethodSpec("dino", "DINO (lightly): self-distillation with multi-crop, one encoder per run", False, _dino,
                   "tab:blue"),
        MethodSpec("byol", "BYOL (lightly): online/target networks with a predictor, one encoder per run", False, _byol,
                   "tab:green"),
        MethodSpec("supervised", "no pretraining: the same initial encoder fine-tuned directly", False, None,
                   "tab:gray"),
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


PROPOSED = "cass"


def comparators() -> list[str]:
    """Self-supervised methods the proposed method is compared against, in registration order."""
    return [name for name, spec in _REGISTRY.items() if name != PROPOSED and not spec.is_reference]


def reference_methods() -> list[str]:
    """Methods that do no pretraining (the fine-tuned-from-initialisation reference)."""
    return [name for name, spec in _REGISTRY.items() if spec.is_reference]


def method_order(methods: list[str] | set[str] | tuple[str, ...]) -> list[str]:
    """Sorts method names by registration order; unregistered names go last, alphabetically."""
    known = method_names()
    return sorted(methods, key=lambda m: (known.index(m) if m in known else len(known), m))


def method_color(name: str) -> str:
    """Plot colour of a method (a neutral colour for unregistered names)."""
    spec = _REGISTRY.get(name)
    return spec.color if spec else "tab:purple"
