"""Method name -> spec: the one list every other module derives methods from.

Each method lives in one module that defines its recipe (a :class:`~cass_bench.config.recipe.MethodRecipe`), its
pretraining module and ``METHOD``, its :class:`MethodSpec`. Adding a method is one new module plus its line in
``METHOD_MODULES``; :func:`register` adds one at run time (a plug-in, e.g. in a test). Modules are imported on
first use, so the config, the registry and the method modules can import each other's names freely.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

from cass_bench.errors import UserError

if TYPE_CHECKING:
    from cass_bench.config.schema import BenchConfig
    from cass_bench.methods.contract import PretrainMethod
    from cass_bench.config.recipe import MethodRecipe

METHOD_MODULES = ("cass_bench.methods.cass", "cass_bench.methods.baselines.dino", "cass_bench.methods.baselines.byol")
"""The built-in methods' modules, in the order methods are listed, tabled and plotted."""

PROPOSED = "cass"
"""The method whose claims the benchmark tests."""
COST_BASELINE = "dino"
"""The method the proposed method's cost claims (time per epoch, step time) are measured against."""


@dataclass(frozen=True)
class PretrainSetup:
    """What a method needs to build itself for one pretraining run.

    Attributes:
        cfg: the whole benchmark config (each method reads its own recipe and the shared backbones).
        archs: encoders this run trains (``("cnn", "vit")`` for a joint method, one arch otherwise).
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
        name: the name used on the CLI, in records and as the recipe's config section.
        summary: one line for ``list``.
        joint: True if one run trains every architecture together; False runs it once per arch.
        build: builds the pretraining module, or None for the no-pretraining reference.
        color: matplotlib colour of the method in every plot.
        recipe: the method's recipe class (None: no settings of its own).
    """

    name: str
    summary: str
    joint: bool
    build: Callable[[PretrainSetup], PretrainMethod] | None
    color: str = "tab:purple"
    recipe: type[MethodRecipe] | None = None

    @property
    def is_reference(self) -> bool:
        """True for the no-pretraining reference (``supervised``): the one way it is told apart."""
        return self.build is None


REFERENCE = MethodSpec("supervised", "no pretraining: the same initial encoder fine-tuned directly", False, None,
                       "tab:gray")

_REGISTRY: dict[str, MethodSpec] = {}
_PLUGINS: list[str] = []


def _spec_of(module: str) -> MethodSpec:
    spec = getattr(importlib.import_module(module), "METHOD", None)
    if not isinstance(spec, MethodSpec):
        raise UserError(f"method module '{module}' defines no METHOD = MethodSpec(...)")
    return spec


def _specs() -> dict[str, MethodSpec]:
    if not _REGISTRY:
        specs = [_spec_of(module) for module in METHOD_MODULES]
        _REGISTRY.update({spec.name: spec for spec in [*specs, REFERENCE]})
    return _REGISTRY


def register(module: str) -> MethodSpec:
    """Imports a method module and registers its ``METHOD`` after the built-in methods.

    Cell processes of a sweep register the same plug-ins (see :func:`plugin_modules`).

    Args:
        module: dotted name of the module, importable from the working directory.

    Returns:
        The registered spec.

    Raises:
        UserError: the module defines no ``METHOD``, or another method already has its name.
    """
    spec = _spec_of(module)
    specs = _specs()
    if specs.get(spec.name, spec) is not spec:
        raise UserError(f"method '{spec.name}' of '{module}' is already registered by another module")
    specs[spec.name] = spec
    if module not in _PLUGINS:
        _PLUGINS.append(module)
    return spec


def unregister(module: str) -> None:
    """Removes a plug-in registered with :func:`register` (built-in methods stay)."""
    if module in _PLUGINS:
        _PLUGINS.remove(module)
        _specs().pop(_spec_of(module).name, None)


def plugin_modules() -> list[str]:
    """Modules registered at run time, in registration order."""
    return list(_PLUGINS)


def method_names() -> list[str]:
    """Registered method names, in registration order."""
    return list(_specs())


def get_method(name: str) -> MethodSpec:
    """Looks up a method; raises UserError listing the known names."""
    specs = _specs()
    try:
        return specs[name]
    except KeyError:
        raise UserError(f"unknown method '{name}'; known methods: {', '.join(specs)}") from None


def recipe_classes() -> dict[str, type[MethodRecipe]]:
    """Each registered method's recipe class, keyed by method name (the config sections)."""
    return {name: spec.recipe for name, spec in _specs().items() if spec.recipe is not None}


def pretraining_methods() -> list[str]:
    """Methods that pretrain (every method but the reference), in registration order."""
    return [name for name, spec in _specs().items() if not spec.is_reference]


def comparators() -> list[str]:
    """Self-supervised methods the proposed method is compared against, in registration order."""
    return [name for name in pretraining_methods() if name != PROPOSED]


def reference_methods() -> list[str]:
    """Methods that do no pretraining (the fine-tuned-from-initialisation reference)."""
    return [name for name, spec in _specs().items() if spec.is_reference]


def method_order(methods: list[str] | set[str] | tuple[str, ...]) -> list[str]:
    """Sorts method names by registration order; unregistered names go last, alphabetically."""
    known = method_names()
    return sorted(methods, key=lambda m: (known.index(m) if m in known else len(known), m))


def method_color(name: str) -> str:
    """Plot colour of a method (a neutral colour for unregistered names)."""
    spec = _specs().get(name)
    return spec.color if spec else "tab:purple"


def run_key(method: str, archs: Sequence[str]) -> str:
    """Name of one pretraining run: the method for a joint method, ``<method>-<arch>`` otherwise."""
    return method if get_method(method).joint else f"{method}-{'+'.join(archs)}"


def split_run_key(key: str, archs: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    """``dino-vit`` -> (``dino``, (``vit``,)); a joint method's key -> (method, ``archs``)."""
    method, _, arch = key.partition("-")
    return method, ((arch,) if arch else tuple(archs))


def run_keys(archs: Sequence[str]) -> list[str]:
    """The key of every pretraining run of every pretraining method over ``archs``, in registration order."""
    keys = []
    for method in pretraining_methods():
        keys.extend([run_key(method, archs)] if get_method(method).joint else [run_key(method, (a,)) for a in archs])
    return keys
