"""Typed benchmark configuration: every section a frozen dataclass, the shared ones defined here.

Each method's recipe section (a :class:`MethodRecipe`) is defined in the method's own module and found through the
registry, so the YAML key of a recipe is its method's name. Loading and coercion: :mod:`cass_bench.config.load`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, get_args

from cass_bench.config import registry
from cass_bench.config.claim_row import parse_claim_row
from cass_bench.errors import UserError
from cass_bench.config.recipe import MethodRecipe
from cass_bench.config.seedplan import PlanConfig
from cass_bench.config.tuning import TuneConfig
from cass_bench.config.fields import CELL, NONE, PRETRAIN, RECORD, flagged, setting
from cass_bench.config.vocabulary import Eval

Arch = Literal["cnn", "vit"]
Precision = Literal["32", "32-true", "bf16-mixed", "16-mixed"]
Accelerator = Literal["auto", "cpu", "gpu", "cuda", "mps"]
Stem = Literal["auto", "true", "false"]
SourceOptimizer = Literal["adamw", "adam", "sgd"]
Launcher = Literal["local", "submitit-local", "slurm"]
Budget = Literal["steps", "epochs"]
Select = Literal["last", "best_val"]
Alone = Literal["false", "true", "pilot"]
"""The choices of a config value, as types: loading refuses any other value (:mod:`cass_bench.config.load`)."""
ARCHS: tuple[str, ...] = get_args(Arch)
PRECISIONS: tuple[str, ...] = get_args(Precision)
ACCELERATORS: tuple[str, ...] = get_args(Accelerator)
LAUNCHERS: tuple[str, ...] = get_args(Launcher)
INITS = ("random", "imagenet", "fractal")


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
    small_input_stem: Stem = "auto"

    def uses_small_stem(self, image_size: int) -> bool:
        """Whether the CNN gets the small-image stem at ``image_size`` (``auto``: below 64 px)."""
        return image_size < 64 if self.small_input_stem == "auto" else self.small_input_stem == "true"


@dataclass(frozen=True)
class SourceConfig:
    """The formula-driven supervised start of ``init: fractal``: its images and how both encoders learn them.

    The images are FractalDB-style (:mod:`cass_bench.starts.fractal`): ``classes`` iterated function systems,
    ``instances`` perturbed renders each. Each encoder (the configured CNN and ViT, built as the cells build them)
    gets a classifier of ``classes`` outputs and is trained with cross-entropy on the images (grey replicated to
    three channels, ImageNet-normalised), ``holdout`` of each class's instances kept apart to measure its source
    accuracy. Everything is seeded from ``seed`` alone: the start is the same for every method and cell seed.
    The defaults were tuned on the default setting (digits at 16 px, resnet18 small stem + vit_tiny patch 4): the
    CNN needs few epochs, the ViT many (its source accuracy and its features' kNN quality still rise at 20).

    Attributes:
        classes, instances, points, min_fill, perturbation: the generator's recipe (see ``FractalRecipe``).
        render_size: side the images are rendered at before being resized to the benchmark's ``image_size``
            (unset: rendered at ``image_size``).
        seed: seed of the images, the split, the initialisation and the batches.
        holdout: share of each class's instances held out for the source accuracy.
        epochs: training epochs of the CNN (and of the ViT when ``vit_epochs`` is unset).
        vit_epochs: training epochs of the ViT (unset: ``epochs``).
        batch_size: training batch size.
        optimizer: ``adamw``, ``adam`` or ``sgd`` (momentum 0.9, Nesterov).
        lr: peak learning rate of the CNN (and of the ViT when ``vit_lr`` is unset), reached after
            ``warmup_epochs`` of linear warm-up and cosine-annealed to zero over the rest.
        vit_lr: peak learning rate of the ViT (unset: ``lr``).
        weight_decay: the optimiser's weight decay.
        warmup_epochs: epochs of linear warm-up (may be fractional).
        augment: random shifts (up to 1/8 of the side) and left-right flips of each training batch.
        label_smoothing: cross-entropy label smoothing.
        starts: how many distinct starts stand behind the seeds: 1, one start (``seed``) for every seed; 0, one
            start per seed (seed s trains from start ``seed + s``); k > 1, k starts reused in turn
            (``seed + s mod k``). Each is trained once and cached.
    """

    classes: int = 32
    instances: int = 100
    points: int = 20_000
    min_fill: float = 0.05
    perturbation: float = 0.2
    render_size: int | None = None
    seed: int = 0
    holdout: float = 0.1
    epochs: int = 5
    vit_epochs: int | None = 20
    batch_size: int = 64
    optimizer: SourceOptimizer = "adamw"
    lr: float = 1e-3
    vit_lr: float | None = None
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    augment: bool = True
    label_smoothing: float = 0.0
    starts: int = 1

    def __post_init__(self) -> None:
        if self.starts < 0:
            raise UserError(f"source.starts must be >= 0 (0: one start per seed, 1: one start, k: k in turn), got "
                            f"{self.starts}")

    def seed_for(self, seed: int) -> int:
        """The source seed of the start behind measured seed ``seed`` (see ``starts``)."""
        if self.starts == 1:
            return self.seed
        return self.seed + (seed if self.starts == 0 else seed % self.starts)


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

    budget: Budget = "steps"
    steps: int = flagged(300, "--finetune-steps", help="fine-tuning optimiser steps (finetune.budget: steps)")
    epochs: int = flagged(50, "--finetune-epochs", help="fine-tuning epochs (finetune.budget: epochs)")
    select: Select = "last"
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

    evals: tuple[Eval, ...] = flagged(tuple(Eval), "--evals", help="finetune,linear,knn (default: all three)")
    knn_k: int = 20
    knn_temperature: float = 0.07
    linear_c_grid: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)
    linear_folds: int = 5
    chance_permutations: int = 1000
    chance_alpha: float = 0.05


@dataclass(frozen=True)
class ClaimsConfig:
    """The claim checks' pre-registered family, fixed before any result is read (see the report's rules).

    Attributes:
        family: the rows of the paper's family, which Holm's correction runs over
            (:mod:`cass_bench.config.claim_row`); empty: the default family over the configured grid.
        alpha: family-wise error rate of the verdicts.
        power: the power at which the report states each row's minimum detectable effect.
    """

    family: tuple[str, ...] = ()
    alpha: float = 0.05
    power: float = 0.8

    def __post_init__(self) -> None:
        if not (0 < self.alpha < 1 and 0 < self.power < 1):
            raise UserError(f"claims.alpha and claims.power must lie in (0, 1), got {self.alpha} and {self.power}")
        for row in self.family:
            parse_claim_row(row)


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
        datasets: dataset names: ``embedded``, ``embedded-multilabel``, ``fashion[:<train>[/<test>]]``,
            ``medmnist:<flag>`` or a dataset YAML.
        archs: encoder architectures pretrained by single-encoder methods and fine-tuned for every method.
        label_fractions: fractions of the training labels used for fine-tuning.
        batch_sizes: pretraining batch sizes (per device).
        seeds: seeds; each seed draws its own label subsets and initialisation.
        pretrain_epochs: pretraining epoch counts.
        image_size: side of the square input images.
        data_dir: folder holding MedMNIST ``.npz`` or Fashion-MNIST IDX files (Fashion-MNIST falls back to the OS
            package's folder when this one holds none).
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
            ``vit.safetensors``, or ``fractal``: the formula-driven supervised start the ``source`` section
            describes, trained once per recipe and cached (:mod:`cass_bench.starts`).
        backbones, finetune, eval: the shared sections.
        claims: the claim checks' pre-registered family (read by the report, not by the run).
        tune: the tuning budget and, once tuning ran, the values it chose (see :class:`TuneConfig`).
        plan: seeds planned from a pilot instead of listed (see :class:`PlanConfig`).
        source: the recipe of the ``fractal`` start (unused by other inits).
        recipes: each registered method's recipe, keyed by method name (in YAML, a top-level section named after
            the method).
        pretrain_alone: ``true``: run each pretraining run's measured part alone among this results folder's
            processes: an exclusive lock on ``<out>/pretrain.lock`` while it trains, a shared one around every
            evaluation, so the shards of a sweep time their pretraining honestly
            (:mod:`cass_bench.engine.neighbours`); ``pilot``: so for the seed plan's pilot seeds only (every seed
            without a plan), the costs' seeds, while the planned seeds after it run side by side (no one waits;
            their times are left out of the cost rows); ``false``: no lock.
        cpu_peak_gflops: the peak fp32 GFLOP/s of one CPU thread that CPU runs' MFU divides by; unset, derived from
            the instruction set and clock (:mod:`cass_bench.engine.cpu_peak`). Set it where the detection is wrong.
        launcher: how the sweep's cells run: ``local`` (one process after another on this machine),
            ``submitit-local`` (each cell a submitit job on this machine) or ``slurm`` (each cell a SLURM job).
        slurm: the jobs' resources (see :class:`SlurmConfig`).
    """

    methods: tuple[str, ...] = flagged((registry.PROPOSED,), "--methods", role=CELL,
                                       help="e.g. cass,dino,byol,supervised")
    datasets: tuple[str, ...] = flagged(("embedded",), "--dataset", "--datasets", role=CELL,
                                        help="embedded, embedded-multilabel, fashion, medmnist:<flag> or a dataset "
                                        "YAML; comma-separated")
    archs: tuple[Arch, ...] = flagged(ARCHS, "--archs", role=CELL, help="encoders: cnn,vit")
    label_fractions: tuple[float, ...] = flagged((0.01, 0.1, 1.0), "--label-fractions", role=CELL,
                                                 help="e.g. 0.01,0.1,1")
    batch_sizes: tuple[int, ...] = flagged((16,), "--batch-sizes", role=CELL, help="pretraining batch sizes, e.g. 16,32")
    seeds: tuple[int, ...] = flagged((0,), "--seeds", role=CELL, help="e.g. 0,1")
    pretrain_epochs: tuple[int, ...] = flagged((20,), "--pretrain-epochs", role=CELL, help="one or more, e.g. 10,20")
    image_size: int = flagged(32, "--image-size", role=PRETRAIN)
    data_dir: str = flagged("~/.medmnist", "--data-dir", role=NONE, help="folder of MedMNIST .npz or Fashion-MNIST "
                            "IDX files (default ~/.medmnist)")
    split_seed: int = setting(0, PRETRAIN)
    pretrain_batches: int | None = setting(None, PRETRAIN)
    num_workers: int | None = flagged(None, "--num-workers", role=NONE, help="DataLoader workers")
    precision: Precision = flagged("32", "--precision", role=PRETRAIN, help="32, bf16-mixed or 16-mixed")
    accelerator: Accelerator = flagged("auto", "--accelerator", role=NONE, help="auto, cpu or gpu")
    devices: int = flagged(1, "--devices", role=PRETRAIN, help="devices per node (DDP when > 1)")
    num_nodes: int = flagged(1, "--num-nodes", role=PRETRAIN)
    strategy: str = flagged("auto", "--strategy", role=PRETRAIN, help="Lightning strategy, e.g. ddp")
    channels_last: bool = setting(False, PRETRAIN)
    out: str = flagged("runs/latest", "--out", role=NONE, help="results folder (default from the config)")
    init: str = flagged("random", "--init", role=PRETRAIN, help="starting weights of every encoder: random, imagenet, "
                        "fractal (a formula-driven supervised start trained once and cached) or a checkpoint path")
    backbones: BackboneConfig = setting(role=PRETRAIN, factory=BackboneConfig)
    source: SourceConfig = setting(role=NONE, factory=SourceConfig)
    finetune: FinetuneConfig = setting(role=RECORD, factory=FinetuneConfig)
    eval: EvalConfig = setting(role=RECORD, factory=EvalConfig)
    claims: ClaimsConfig = setting(role=NONE, factory=ClaimsConfig)
    tune: TuneConfig = setting(role=NONE, factory=TuneConfig)
    plan: PlanConfig = setting(role=NONE, factory=PlanConfig)
    recipes: dict[str, MethodRecipe] = setting(role=PRETRAIN, factory=default_recipes)
    pretrain_alone: Alone = flagged("false", "--pretrain-alone", role=NONE, const="true", help="pretrain one run at "
                                    "a time in this results folder (an exclusive lock; other shards wait): honest "
                                    "costs from a sharded sweep; '--pretrain-alone pilot': only the seed plan's "
                                    "pilot seeds, the planned seeds side by side")
    cpu_peak_gflops: float | None = flagged(None, "--cpu-peak-gflops", role=NONE, help="peak fp32 GFLOP/s of one CPU "
                                            "thread for CPU runs' MFU (default: from the instruction set and clock)")
    launcher: Launcher = flagged("local", "--launcher", role=NONE, choices=LAUNCHERS, help="local: cells one after "
                                 "another here (default); submitit-local: each cell a job on this machine; slurm: each "
                                 "cell a SLURM job (resources from the config's slurm section)")
    slurm: SlurmConfig = setting(role=NONE, factory=SlurmConfig)

    def for_dataset(self, dataset: str) -> BenchConfig:
        """This config as a cell of ``dataset`` runs it: the values tuning chose for that dataset when it chose per
        dataset (:meth:`TuneConfig.for_dataset`); itself otherwise."""
        tune = self.tune.for_dataset(dataset)
        return self if tune is self.tune else dataclasses.replace(self, tune=tune)

    def pretrains_alone(self, seed: int) -> bool:
        """Whether the pretraining runs of ``seed`` are timed alone in the results folder (``pretrain_alone``)."""
        if self.pretrain_alone == "pilot":
            return seed in self.plan.pilot_seeds(self.seeds)
        return self.pretrain_alone == "true"

    def recipe(self, kind: type[R]) -> R:
        """The recipe of type ``kind``, with the values tuning chose (each method reads its own section this way)."""
        for name, recipe in self.recipes.items():
            if type(recipe) is kind:
                return self.tune.apply(name, recipe)
        raise KeyError(f"no {kind.__name__} in this config; is its method registered?")

    def with_recipe(self, recipe: MethodRecipe) -> BenchConfig:
        """A copy of this config with ``recipe`` in place of the recipe of the same type."""
        names = [name for name, old in self.recipes.items() if type(old) is type(recipe)]
        if not names:
            raise KeyError(f"no {type(recipe).__name__} in this config; is its method registered?")
        return dataclasses.replace(self, recipes={**self.recipes, names[0]: recipe})


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
