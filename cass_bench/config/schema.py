"""Typed benchmark configuration: YAML file + command-line overrides, validated before anything runs.

Every section is a frozen dataclass; `load_config` reads a YAML file, applies overrides given as dotted
keys (``{"finetune.epochs": 3}``) and validates the result. Unknown keys are errors, not silently ignored.
The shared sections are defined here; each method's recipe section (a :class:`MethodRecipe`) is defined in the
method's own module and found through the registry, so the YAML key of a recipe is its method's name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field, fields, is_dataclass
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

import yaml

from cass_bench.methods import registry
from cass_bench.errors import UserError
from cass_bench.config.recipe import MethodRecipe

ARCHS = ("cnn", "vit")
PRECISIONS = ("32", "32-true", "bf16-mixed", "16-mixed")
EVALS = ("finetune", "linear", "knn")
INITS = ("random", "imagenet")
STEM_CHOICES = ("auto", "true", "false")
LAUNCHERS = ("local", "submitit-local", "slurm")


@dataclass(frozen=True)
class BackboneConfig:
    """timm encoders shared by every method in a cell.

    Attributes:
        cnn: timm name of the CNN encoder.
        vit: timm name of the ViT encoder.
        vit_patch_size: patch size the ViT is built with (None keeps the model's own); small images need
            small patches to have more than a handful of tokens.
        weights_dir: folder holding ``<timm name>.safetensors|.pth`` files for offline ImageNet init
            (``init: imagenet``); unset, timm fetches the weights from the hub.
        small_input_stem: ``auto`` (below 64 px), ``true`` or ``false``: replace a ResNet's 7x7 stride-2
            convolution and max-pool by a 3x3 stride-1 convolution, as lightly and solo-learn do for small images.
    """

    cnn: str = "resnet18"
    vit: str = "vit_tiny_patch16_224"
    vit_patch_size: int | None = 8
    weights_dir: str | None = None
    small_input_stem: str = "auto"

    def uses_small_stem(self, image_size: int) -> bool:
        """Whether the CNN gets the small-image stem at ``image_size`` (``auto``: below 64 px)."""
        choice = self.small_input_stem.lower()
        return image_size < 64 if choice == "auto" else choice == "true"


R = TypeVar("R", bound=MethodRecipe)


def default_recipes() -> dict[str, MethodRecipe]:
    """Every registered method's recipe at its defaults, keyed by method name."""
    return {name: kind() for name, kind in registry.recipe_classes().items()}


@dataclass(frozen=True)
class FinetuneConfig:
    """The downstream recipe shared by every method (CASS reference: Adam 3e-4, cosine, focal loss).

    Attributes:
        budget: ``steps`` (default: ``steps`` optimiser steps at every label fraction, batches drawn with
            replacement from the labelled subset) or ``epochs`` (the reference's ``epochs`` passes over the subset,
            stopped early after ``patience`` validations without improvement when ``patience`` > 0).
        steps: optimiser steps with ``budget: steps``.
        epochs: epochs with ``budget: epochs``.
        select: ``last`` (the final model is reported) or ``best_val`` (the model with the best validation
            macro-F1; the validation set is then cut to at most the labelled subset's size).
        val_every: optimiser steps between validations with ``budget: steps`` and ``select: best_val``.
        patience: validations without improvement before stopping (0: never stop early).
        lr: Adam learning rate, cosine-annealed over the budget.
        batch_size: fine-tuning batch size (``budget: epochs`` caps it at the labelled subset's size).
        focal_alpha, focal_gamma: sigmoid focal loss parameters.
        min_class_weight: class counts are min-max scaled to ``[min_class_weight, 1]``.
    """

    budget: str = "steps"
    steps: int = 300
    epochs: int = 50
    select: str = "last"
    val_every: int = 50
    patience: int = 0
    lr: float = 3e-4
    batch_size: int = 32
    focal_alpha: float = 1.0
    focal_gamma: float = 2.0
    min_class_weight: float = 0.2


@dataclass(frozen=True)
class EvalConfig:
    """Evaluations run on every pretrained encoder at every label fraction, and the chance test.

    Attributes:
        evals: any of ``finetune`` (end-to-end), ``linear`` (logistic regression on frozen pooled features, its
            inverse regularisation ``C`` chosen by cross-validation inside the labelled subset) and ``knn``
            (lightly's weighted kNN vote on frozen, L2-normalised features).
        knn_k, knn_temperature: kNN neighbours and vote temperature (solo-learn's defaults).
        linear_c_grid: the values of ``C`` the linear probe's cross-validation chooses from.
        linear_folds: cross-validation folds (fewer when a class has fewer examples; with one example per
            class the middle of the grid is used).
        chance_permutations: permutations of the one-sided test that a record's test F1 is above chance.
        chance_alpha: its significance level.
    """

    evals: tuple[str, ...] = EVALS
    knn_k: int = 20
    knn_temperature: float = 0.07
    linear_c_grid: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)
    linear_folds: int = 5
    chance_permutations: int = 1000
    chance_alpha: float = 0.05


@dataclass(frozen=True)
class SlurmConfig:
    """Resources of each cell's job with ``launcher: slurm`` (and the time limit of ``submitit-local`` jobs).

    Attributes:
        partition, account, constraint: ``sbatch --partition/--account/--constraint`` (unset: the cluster's default).
        nodes: nodes per job (unset: ``num_nodes``); it must equal ``num_nodes``.
        gpus_per_node: GPUs per node (unset: ``devices`` unless ``accelerator: cpu``); at least ``devices``.
        cpus_per_task: CPU cores per task, i.e. per device (unset: ``num_workers + 1``, 5 when ``num_workers`` is
            unset).
        mem_gb: memory per node in GB (unset: the partition's default).
        timeout_min: the job's time limit; a job reaching it is requeued up to 3 times by submitit's checkpoint hook.
        array_parallelism: most jobs of one array running at once.
        setup: shell lines run before the job starts (``module load ...``, ``source venv/bin/activate``).
        additional_parameters: any other ``sbatch`` option, e.g. ``{qos: high, mail-type: END}``.
    """

    partition: str | None = None
    account: str | None = None
    constraint: str | None = None
    nodes: int | None = None
    gpus_per_node: int | None = None
    cpus_per_task: int | None = None
    mem_gb: float | None = None
    timeout_min: int = 1440
    array_parallelism: int = 64
    setup: tuple[str, ...] = ()
    additional_parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BenchConfig:
    """A whole benchmark: the sweep axes, the shared settings and every method's recipe.

    Attributes:
        methods: methods to run (see ``python -m cass_bench list``).
        datasets: dataset names: ``embedded``, ``embedded-multilabel``, ``medmnist:<flag>`` or a dataset YAML.
        archs: encoder architectures pretrained by single-encoder methods and fine-tuned for every method.
        label_fractions: fractions of the training labels used for fine-tuning.
        batch_sizes: pretraining batch sizes (per device).
        seeds: seeds; each seed draws its own label subsets and initialisation.
        pretrain_epochs: pretraining epoch counts.
        image_size: side of the square input images.
        data_dir: folder holding MedMNIST ``.npz`` files.
        split_seed: seed of the train/val/test split (fixed across seeds so test sets are shared).
        pretrain_batches: pretraining batches per epoch (Lightning's ``limit_train_batches``); unset, the whole
            training set. For smoke tests: a capped epoch is not the protocol's epoch, so it enters the record ids.
        num_workers: DataLoader workers; unset (the default), chosen from the machine by
            :func:`cass_bench.data.loaders.loader_workers` so data loading overlaps the step.
        precision: Lightning precision (``32``, ``bf16-mixed``, ``16-mixed``).
        accelerator, devices, num_nodes, strategy: Lightning Trainer placement for pretraining.
        channels_last: use channels-last memory format.
        out: output folder for records, predictions, checkpoints and the report.
        init: the encoders' starting weights, the same for every method in a cell: ``random`` (seeded),
            ``imagenet`` (timm's weights: the hub, or ``backbones.weights_dir`` offline) or the path of an encoder
            checkpoint the harness wrote (``checkpoints/<key>.pt``) or a folder of ``cnn.safetensors`` /
            ``vit.safetensors``.
        backbones, finetune, eval: the shared sections.
        recipes: each registered method's recipe, keyed by method name (in YAML, a top-level section named after
            the method).
        launcher: how the sweep's cells run: ``local`` (one process after another on this machine),
            ``submitit-local`` (each cell a submitit job on this machine) or ``slurm`` (each cell a SLURM job).
        slurm: the jobs' resources (see :class:`SlurmConfig`).
    """

    methods: tuple[str, ...] = (registry.PROPOSED,)
    datasets: tuple[str, ...] = ("embedded",)
    archs: tuple[str, ...] = ARCHS
    label_fractions: tuple[float, ...] = (0.01, 0.1, 1.0)
    batch_sizes: tuple[int, ...] = (16,)
    seeds: tuple[int, ...] = (0,)
    pretrain_epochs: tuple[int, ...] = (20,)
    image_size: int = 32
    data_dir: str = "~/.medmnist"
    split_seed: int = 0
    pretrain_batches: int | None = None
    num_workers: int | None = None
    precision: str = "32"
    accelerator: str = "auto"
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"
    channels_last: bool = False
    out: str = "runs/latest"
    init: str = "random"
    backbones: BackboneConfig = field(default_factory=BackboneConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    recipes: dict[str, MethodRecipe] = field(default_factory=default_recipes)

    def recipe(self, kind: type[R]) -> R:
        """The recipe of type ``kind`` (each method reads its own section this way)."""
        for recipe in self.recipes.values():
            if type(recipe) is kind:
                return recipe
        raise KeyError(f"no {kind.__name__} in this config; is its method registered?")

    def with_recipe(self, recipe: MethodRecipe) -> BenchConfig:
        """A copy of this config with ``recipe`` in place of the recipe of the same type."""
        names = [name for name, old in self.recipes.items() if type(old) is type(recipe)]
        if not names:
            raise KeyError(f"no {type(recipe).__name__} in this config; is its method registered?")
        return dataclasses.replace(self, recipes={**self.recipes, names[0]: recipe})

    def __getattr__(self, name: str) -> MethodRecipe:
        """``cfg.<method name>``: that method's recipe, as its section is named in YAML and hashed in records."""
        recipes = self.__dict__.get("recipes", {})
        if name.startswith("_") or name not in recipes:
            raise AttributeError(f"'BenchConfig' has no attribute or method recipe '{name}'")
        return recipes[name]
    launcher: str = "local"
    slurm: SlurmConfig = field(default_factory=SlurmConfig)


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Converts a YAML/CLI value to the annotated type, or raises UserError naming the key."""
    text = str(hint)
    try:
        if is_dataclass(hint):
            if not isinstance(value, dict):
                raise UserError(f"config key '{key}' must be a mapping, got {value!r}")
            return _build(hint, value, key + ".")
        if text.startswith("tuple"):
            items = value.split(",") if isinstance(value, str) else value
            if not isinstance(items, (list, tuple)):
                items = [items]
            inner = hint.__args__[0]
            return tuple(_coerce(v.strip() if isinstance(v, str) else v, inner, key) for v in items)
        if value is None and "None" in text:
            return None
        if hint is bool or text == "bool":
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes"):
                    return True
                if value.lower() in ("0", "false", "no"):
                    return False
                raise ValueError(value)
            return bool(value)
        if hint is int or text.startswith("int"):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if hint is float:
            return float(value)
        if hint is str or text.startswith("str"):
            return str(value).lower() if isinstance(value, bool) else str(value)
    except (TypeError, ValueError):
        raise UserError(f"config key '{key}' has an invalid value {value!r} (expected {text})") from None
    return value


def _reject_unknown(data: dict[str, Any], known: set[str], prefix: str) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise UserError(
            f"unknown config key '{prefix}{unknown[0]}'; known keys here: {', '.join(sorted(known))}"
        )


def _build(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    hints = get_type_hints(cls)
    _reject_unknown(data, {f.name for f in fields(cls)}, prefix)
    kwargs = {name: _coerce(value, hints[name], prefix + name) for name, value in data.items()}
    return cls(**kwargs)


def _build_config(data: dict[str, Any]) -> BenchConfig:
    """A BenchConfig from YAML-shaped data: shared keys, plus one section per registered method's recipe."""
    kinds = registry.recipe_classes()
    shared = {f.name for f in fields(BenchConfig)} - {"recipes"}
    _reject_unknown(data, shared | set(kinds), "")
    recipes = {name: _coerce(data.get(name, {}), kind, name) for name, kind in kinds.items()}
    hints = get_type_hints(BenchConfig)
    return BenchConfig(**{k: _coerce(v, hints[k], k) for k, v in data.items() if k in shared}, recipes=recipes)


def _nest(overrides: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for dotted, value in overrides.items():
        node = nested
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(path: str | Path | Traversable | None, overrides: dict[str, Any] | None = None) -> BenchConfig:
    """Reads a YAML config, applies dotted-key overrides and validates the result.

    Args:
        path: YAML file (a path, or a packaged config from :func:`cass_bench.config.files.resolve_config`); None
            uses only the defaults.
        overrides: values keyed by dotted field names, e.g. ``{"finetune.epochs": 2}``; None values are skipped.

    Returns:
        The validated configuration.

    Raises:
        UserError: on a missing or malformed file, an unknown key or an impossible value.
    """
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path) if isinstance(path, str) else path
        if not p.is_file():
            raise UserError(f"config file '{p}' not found; pass an existing YAML file with --config")
        try:
            data = yaml.safe_load(p.read_text())
        except yaml.YAMLError as exc:
            first = str(exc).splitlines()[0]
            raise UserError(f"config file '{p}' is not valid YAML ({first}); fix its syntax") from None
        if data is None:
            raise UserError(f"config file '{p}' is empty; write the settings in it, or leave out --config to "
                            "use configs/default.yaml")
        if not isinstance(data, dict):
            raise UserError(f"config file '{p}' must hold a mapping of keys to values")
    clean = {k: v for k, v in (overrides or {}).items() if v is not None}
    return config_from_dict(_merge(data, _nest(clean)))


def to_dict(obj: Any) -> dict[str, Any]:
    """A plain JSON-ready dict of a config or section (tuples become lists; recipes become top-level sections)."""
    data = json.loads(json.dumps(dataclasses.asdict(obj)))
    if isinstance(obj, BenchConfig):
        data.update(data.pop("recipes"))
    return data


def stable_hash(payload: Any, length: int = 12) -> str:
    """A short, order-independent hash of JSON-ready data."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def config_from_dict(data: dict[str, Any]) -> BenchConfig:
    """Rebuilds a validated config from ``to_dict`` output."""
    from cass_bench.config.checks import validate

    cfg = _build_config(data)
    validate(cfg)
    return cfg
