"""Method name -> spec: the one list every other module derives methods from (torch-free, so it sits with the config).

A built-in method is one module holding its pretraining module and a ``build`` function, its recipe in the torch-free
:mod:`cass_bench.config.recipes`, and its line in :data:`BUILTIN_METHODS`, which names the build as
``"module:function"`` so that names, order, colours, joint-ness and recipes (all the config, the plan and the report
need) never import torch; the module is imported when a cell builds the method. :func:`register` adds a plug-in at
run time: one module defining ``METHOD = MethodSpec(...)`` with its recipe and build (e.g. in a test).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Sequence

from cass_bench.errors import UserError
from cass_bench.config.recipes import ByolConfig, CassConfig, DinoConfig

if TYPE_CHECKING:
    from cass_bench.config.recipe import MethodRecipe
    from cass_bench.config.schema import BenchConfig

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
        weights: the file of the start the run's caller resolved (``init: fractal``); None: ``cfg.init`` as given.
    """

    cfg: BenchConfig
    archs: tuple[str, ...]
    batch_size: int
    seed: int
    weights: str | None = None

    @property
    def init(self) -> str:
        """The encoders' starting weights: the resolved start's file, else ``cfg.init``."""
        return self.cfg.init if self.weights is None else self.weights


@dataclass(frozen=True)
class MethodSpec:
    """A registered method.

    Attributes:
        name: the name used on the CLI, in records and as the recipe's config section.
        summary: one line for ``list``.
        joint: True if one run trains every architecture together; False runs it once per arch.
        build: builds the pretraining module, a :class:`cass_bench.methods.contract.PretrainMethod` (a function,
            or its ``"module:function"`` name, imported on first use), or None for the no-pretraining reference.
        color: matplotlib colour of the method in every plot.
        recipe: the method's recipe class (None: no settings of its own).
    """

    name: str
    summary: str
    joint: bool
    build: Callable[[PretrainSetup], Any] | str | None
    color: str = "tab:purple"
    recipe: type[MethodRecipe] | None = None

    @property
    def is_reference(self) -> bool:
        """True for the no-pretraining reference (``supervised``): the one way it is told apart."""
        return self.build is None

    def make(self, setup: PretrainSetup) -> Any:
        """The pretraining module (a ``PretrainMethod``) for ``setup``, importing the method's module if ``build``
        names it."""
        build = self.build
        if build is None:
            raise ValueError(f"{self.name} does no pretraining; nothing to build")
        if isinstance(build, str):
            module, _, function = build.partition(":")
            build = getattr(importlib.import_module(module), function)
        return build(setup)


BUILTIN_METHODS: dict[str, MethodSpec] = {spec.name: spec for spec in (
    MethodSpec("cass", "CASS: CNN + ViT trained together with a cosine loss between their outputs", joint=True,
               build="cass_bench.methods.cass:build", color="tab:red", recipe=CassConfig),
    MethodSpec("dino", "DINO (lightly): self-distillation with multi-crop, one encoder per run", joint=False,
               build="cass_bench.methods.baselines.dino:build", color="tab:blue", recipe=DinoConfig),
    MethodSpec("byol", "BYOL (lightly): online/target networks with a predictor, one encoder per run", joint=False,
               build="cass_bench.methods.baselines.byol:build", color="tab:green", recipe=ByolConfig),
)}
"""The built-in methods, in the order methods are listed, tabled and plotted."""
REFERENCE = MethodSpec("supervised", "no pretraining: the same initial encoder fine-tuned directly", False, None,
                       "tab:gray")

_PLUGINS: dict[str, MethodSpec] = {}
_PLUGIN_MODULES: list[str] = []


def _spec_of(module: str) -> MethodSpec:
    try:
        imported = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise UserError(f"cannot import method module '{module}' ({exc}); give a dotted module name importable from "
                        "the working directory (e.g. mylab.mymethod for mylab/mymethod.py)") from None
    spec = getattr(imported, "METHOD", None)
    if not isinstance(spec, MethodSpec):
        raise UserError(f"method module '{module}' defines no METHOD = MethodSpec(...); define one in that module")
    return spec


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
        return BUILTIN_METHODS[name]
    if name == REFERENCE.name:
        return REFERENCE
    if name in _PLUGINS:
        return _PLUGINS[name]
    raise UserError(f"unknown method '{name}'; known methods: {', '.join(method_names())}")


def recipe_classes() -> dict[str, type[MethodRecipe]]:
    """Each registered method's recipe class, keyed by method name (the config sections)."""
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
    known = {**BUILTIN_METHODS, REFERENCE.name: REFERENCE, **_PLUGINS}
    return known[name].color if name in known else "tab:purple"


class RunKey(NamedTuple):
    """One pretraining run: a method and the encoders it trains (both for a joint method, one otherwise)."""

    method: str
    archs: tuple[str, ...]

    @property
    def name(self) -> str:
        """How benchmarks and tables name the run: the method for a joint method, ``<method>-<arch>`` otherwise."""
        return self.method if get_method(self.method).joint else f"{self.method}-{'+'.join(self.archs)}"

    @property
    def label(self) -> str:
        """The name with the method in capitals (``DINO-cnn``)."""
        return self.method.upper() + self.name[len(self.method):]


def run_key(method: str, archs: Sequence[str]) -> str:
    """Name of one pretraining run (:attr:`RunKey.name`)."""
    return RunKey(method, tuple(archs)).name


def run_keys_of(archs: Sequence[str]) -> list[RunKey]:
    """Every pretraining run of every pretraining method over ``archs``, in registration order."""
    keys = []
    for method in pretraining_methods():
        groups = [tuple(archs)] if get_method(method).joint else [(a,) for a in archs]
        keys.extend(RunKey(method, g) for g in groups)
    return keys


def run_keys(archs: Sequence[str]) -> list[str]:
    """The name of every pretraining run of every pretraining method over ``archs``, in registration order."""
    return [key.name for key in run_keys_of(archs)]


def parse_run_key(name: str, archs: Sequence[str]) -> RunKey:
    """The run a name stands for, found among the registered runs (a method name may hold a hyphen).

    Raises:
        UserError: no registered run over ``archs`` has that name; the message lists them.
    """
    for key in run_keys_of(archs):
        if key.name == name:
            return key
    raise UserError(f"unknown pretraining run '{name}'; known runs: {', '.join(run_keys(archs))}")
