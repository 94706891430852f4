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

BUILTIN_METHODS: dict[str, str] = {
    "cass": "cass_bench.methods.cass",
    "dino": "cass_bench.methods.baselines.dino",
    "byol": "cass_bench.methods.baselines.byol",
}
"""The built-in methods' modules by name, in the order methods are listed, tabled and plotted. A module is imported
the first time its spec is asked for, so names, order and colours (all the report needs) never load torch."""
BUILTIN_COLORS = {"cass": "tab:red", "dino": "tab:blue", "byol": "tab:green"}
"""Plot colour of each built-in method (a plug-in's comes with its spec)."""

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

_LOADED: dict[str, MethodSpec] = {}
_PLUGINS: dict[str, MethodSpec] = {}
_PLUGIN_MODULES: list[str] = []


def _spec_of(module: str) -> MethodSpec:
    spec = getattr(importlib.import_module(module), "METHOD", None)
    if not isinstance(spec, MethodSpec):
        raise UserError(f"method module '{module}' defines no METHOD = MethodSpec(...); define one in that module")
    return spec


def _builtin(name: str) -> MethodSpec:
    """The spec of a built-in method, importing its module on first use."""
    if name not in _LOADED:
        _LOADED[name] = _spec_of(BUILTIN_METHODS[name])
    return _LOADED[name]


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
    taken = spec.name in BUILTIN_METHODS or spec.name == REFERENCE.name
    if taken or _PLUGINS.get(spec.name, spec) is not spec:
        raise UserError(f"method '{spec.name}' of '{module}' is already registered by another module; "
                        "give the plug-in another name")
    _PLUGINS[spec.name] = spec
    if module not in _PLUGIN_MODULES:
        _PLUGIN_MODULES.append(module)
    return spec


def unregister(module: str) -> None:
    """Removes a plug-in registered with :func:`register` (built-in methods stay)."""
    if module in _PLUGIN_MODULES:
        _PLUGIN_MODULES.remove(module)
        _PLUGINS.pop(_spec_of(module).name, None)


def plugin_modules() -> list[str]:
    """Modules registered at run time, in registration order."""
    return list(_PLUGIN_MODULES)


def method_names() -> list[str]:
    """Registered method names, in registration order (the built-ins, the reference, then plug-ins)."""
    return [*BUILTIN_METHODS, REFERENCE.name, *_PLUGINS]


def get_method(name: str) -> MethodSpec:
    """Looks up a method; raises UserError listing the known names."""
    if name in BUILTIN_METHODS:
        return _builtin(name)
    if name == REFERENCE.name:
        return REFERENCE
    if name in _PLUGINS:
        return _PLUGINS[name]
    raise UserError(f"unknown method '{name}'; known methods: {', '.join(method_names())}")


def recipe_classes() -> dict[str, type[MethodRecipe]]:
    """Each registered method's recipe class, keyed by method name (the config sections; imports every method)."""
    specs = [get_method(name) for name in method_names()]
    return {spec.name: spec.recipe for spec in specs if spec.recipe is not None}


def reference_methods() -> list[str]:
    """Methods that do no pretraining (the fine-tuned-from-initialisation reference)."""
    return [REFERENCE.name, *(name for name, spec in _PLUGINS.items() if spec.is_reference)]


def pretraining_methods() -> list[str]:
    """Methods that pretrain (every method but the reference), in registration order."""
    references = reference_methods()
    return [name for name in method_names() if name not in references]


def comparators() -> list[str]:
    """Self-supervised methods the proposed method is compared against, in registration order."""
    return [name for name in pretraining_methods() if name != PROPOSED]


def method_order(methods: list[str] | set[str] | tuple[str, ...]) -> list[str]:
    """Sorts method names by registration order; unregistered names go last, alphabetically."""
    known = method_names()
    return sorted(methods, key=lambda m: (known.index(m) if m in known else len(known), m))


def method_color(name: str) -> str:
    """Plot colour of a method (a neutral colour for unregistered names)."""
    if name in _PLUGINS:
        return _PLUGINS[name].color
    return REFERENCE.color if name == REFERENCE.name else BUILTIN_COLORS.get(name, "tab:purple")


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
