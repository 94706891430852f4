"""Checks of a loaded config's values that no type can express (a choice is a ``Literal`` type, checked on loading):
ranges, names, and the launcher's section.

Each check raises :class:`cass_bench.errors.UserError` with the fix on the first problem; :func:`validate` runs them
all and is called by :func:`cass_bench.config.load.load_config`.
"""

from __future__ import annotations

import math
import os
from dataclasses import fields
from pathlib import Path
from typing import Any

from cass_bench.config.schema import INITS, BenchConfig, SlurmConfig
from cass_bench.config.tuning import AT
from cass_bench.config.vocabulary import EVALS
from cass_bench.config.registry import get_method
from cass_bench.errors import UserError

MAX_IMAGE_SIZE = 1024
"""The largest image side accepted (the paper's largest input is 384 px)."""
MAX_BATCH = 65_536
"""The largest batch size accepted (per device), far above what any device holds at these image sizes."""
SOURCE_MAX_CLASSES = 10_000
SOURCE_MAX_INSTANCES = 100_000
SOURCE_MAX_IMAGES = 2_000_000
"""The most formula-driven images a start renders and holds (classes x instances)."""
SOURCE_MAX_POINTS = 10_000_000
"""The most chaos-game points per formula-driven image (the default is 20 000)."""
SEED_MAX = 2**32 - 1
"""Seeds must lie in ``[0, SEED_MAX]``, the range numpy and Lightning seed with."""
FLOAT32_MAX = 3.4028234663852886e38
"""The largest float32, the kNN vote's precision."""


def knn_min_temperature(k: int) -> float:
    """The smallest kNN vote temperature whose weights stay finite in float32.

    The vote sums ``exp(sim / T)`` over ``k`` neighbours with ``sim <= 1``, so it stays below the largest float32
    while ``1 / T <= ln(FLOAT32_MAX) - ln(k)``; one unit more is kept as a margin (about 0.0118 for ``k = 20``). At
    that limit the smallest weight, ``exp(-1 / T)``, is still a normal float32 (no 0 / 0).
    """
    return 1.0 / (math.log(FLOAT32_MAX) - math.log(max(k, 1)) - 1.0)


def validate(cfg: BenchConfig) -> None:
    """Checks values that no type can express; raises UserError with the fix on the first problem."""
    for f in cfg.label_fractions:
        if not 0 < f <= 1:
            raise UserError(f"label fraction {f} is impossible; use values in (0, 1], e.g. 0.01,0.1,1")
    for b in cfg.batch_sizes:
        if b < 1:
            raise UserError(f"batch size {b} is impossible; use whole numbers >= 1, e.g. 16,32")
        if b > MAX_BATCH:
            raise UserError(f"batch size {b} is above the limit of {MAX_BATCH}; use at most {MAX_BATCH}")
    for e in cfg.pretrain_epochs:
        if e < 1:
            raise UserError(f"pretraining epochs {e} is impossible; use whole numbers >= 1")
    for name, seq in (("methods", cfg.methods), ("datasets", cfg.datasets), ("label_fractions", cfg.label_fractions),
                      ("batch_sizes", cfg.batch_sizes), ("seeds", cfg.seeds), ("pretrain_epochs", cfg.pretrain_epochs),
                      ("archs", cfg.archs), ("eval.evals", cfg.eval.evals)):
        if not seq:
            raise UserError(f"'{name}' is empty; give at least one value")
        repeated = [v for k, v in enumerate(seq) if v in seq[:k]]
        if repeated:
            raise UserError(f"'{name}' lists {repeated[0]!r} more than once, which would run or count it twice; "
                            "give each value once")
    ft = cfg.finetune
    for key, value in (("steps", ft.steps), ("epochs", ft.epochs), ("val_every", ft.val_every)):
        if value < 1:
            raise UserError(f"finetune.{key} must be >= 1, got {value}; give a whole number of 1 or more")
    if ft.patience < 0:
        raise UserError(f"finetune.patience must be >= 0, got {ft.patience}; give 0 (never stop early) or more")
    if not cfg.eval.evals:
        raise UserError("'eval.evals' is empty; give at least one of " + ", ".join(EVALS))
    _check_eval(cfg)
    for recipe in cfg.recipes.values():
        recipe.validate()
    _check_source(cfg)
    _check_tune(cfg)
    if cfg.init not in INITS and not Path(cfg.init).expanduser().exists():
        raise UserError(f"init '{cfg.init}' is neither random, imagenet, fractal nor an existing checkpoint path; "
                        "pass --init random|imagenet|fractal|PATH")
    if not 1 <= cfg.finetune.batch_size <= MAX_BATCH:
        raise UserError(f"finetune batch size {cfg.finetune.batch_size} is impossible; use a whole number from 1 to "
                        f"{MAX_BATCH}")
    if cfg.image_size < 8:
        raise UserError(f"image size {cfg.image_size} is too small; use at least 8 pixels")
    patch = cfg.backbones.vit_patch_size
    if patch is not None and not 1 <= patch <= cfg.image_size:
        raise UserError(f"backbones.vit_patch_size {patch} is impossible at image size {cfg.image_size}; use a "
                        f"divisor of the image size (e.g. {_divisor_near(cfg.image_size, 8)}), or unset it to keep "
                        "the model's own")
    if not 0 <= cfg.finetune.min_class_weight <= 1:
        raise UserError(f"finetune.min_class_weight is {cfg.finetune.min_class_weight}; give a number in [0, 1]")
    for key in ("devices", "num_nodes"):
        if getattr(cfg, key) < 1:
            raise UserError(f"{key} {getattr(cfg, key)} is impossible; give a whole number >= 1")
    validate_launcher(cfg)
    _check_ranges(cfg)
    _check_fill(cfg)
    check_out_path(cfg.out)


def _divisor_near(size: int, wanted: int) -> int:
    """The divisor of ``size`` nearest ``wanted`` (the smaller on a tie)."""
    return min((d for d in range(1, size + 1) if size % d == 0), key=lambda d: (abs(d - wanted), d))


def _check_eval(cfg: BenchConfig) -> None:
    """The kNN vote, the linear probe's grid and folds, and the chance test."""
    ev = cfg.eval
    if ev.knn_k < 1:
        raise UserError(f"eval.knn_k {ev.knn_k} is impossible; give a whole number of neighbours >= 1, e.g. 20")
    low = knn_min_temperature(ev.knn_k)
    if ev.knn_temperature < low:
        raise UserError(f"eval.knn_temperature {ev.knn_temperature} is below {low:.4f}, where the kNN vote's "
                        f"weights exp(similarity / temperature) overflow float32 with knn_k {ev.knn_k}; give at "
                        f"least {low:.4f} (default 0.07)")
    if not ev.linear_c_grid or min(ev.linear_c_grid) <= 0:
        raise UserError(f"eval.linear_c_grid {list(ev.linear_c_grid)} needs positive values only; e.g. 0.01,0.1,1")
    if ev.linear_folds < 2:
        raise UserError(f"eval.linear_folds {ev.linear_folds} is impossible; give 2 or more, e.g. 5")
    if ev.chance_permutations < 99:
        raise UserError(f"eval.chance_permutations {ev.chance_permutations} is too few for the chance test; give "
                        "99 or more, e.g. 1000")
    if not 0 < ev.chance_alpha < 1:
        raise UserError(f"eval.chance_alpha {ev.chance_alpha} is impossible; give a level in (0, 1), e.g. 0.05")


def check_out_path(out: str) -> None:
    """Raises UserError when the results folder's path is empty or a name in it is longer than its file system
    allows."""
    if not out.strip():
        raise UserError("--out is empty, which would write the results into the current folder; pass a folder "
                        "path, e.g. --out runs/mine")
    path = Path(out)
    anchor = next((p for p in path.parents if os.path.isdir(p)), Path("."))
    try:
        longest = os.pathconf(anchor, "PC_NAME_MAX")
    except (OSError, ValueError):
        longest = 255
    for part in path.parts:
        if len(os.fsencode(part)) > longest:
            raise UserError(f"--out has a name of {len(os.fsencode(part))} bytes ('{part[:24]}...'), longer than the "
                            f"{longest} its file system allows; pass a shorter folder name")


def validate_launcher(cfg: BenchConfig) -> None:
    """Checks ``launcher`` and the ``slurm`` section; raises UserError with the fix on the first problem."""
    sl = cfg.slurm
    for key in ("nodes", "gpus_per_node", "cpus_per_task", "timeout_min", "array_parallelism", "mem_gb"):
        value = getattr(sl, key)
        if value is not None and value < (0 if key == "gpus_per_node" else 1):
            raise UserError(f"slurm.{key} must be >= {0 if key == 'gpus_per_node' else 1}, got {value}; "
                            f"give a larger number, or leave slurm.{key} unset")
    if sl.nodes is not None and sl.nodes != cfg.num_nodes:
        raise UserError(f"slurm.nodes is {sl.nodes} but num_nodes is {cfg.num_nodes}; Lightning's DDP needs them "
                        f"equal: set --num-nodes {sl.nodes} or drop slurm.nodes")
    if sl.gpus_per_node is not None and cfg.accelerator != "cpu" and sl.gpus_per_node < cfg.devices:
        raise UserError(f"slurm.gpus_per_node is {sl.gpus_per_node} but devices is {cfg.devices}; each task needs "
                        f"its own GPU: set slurm.gpus_per_node >= {cfg.devices} or --devices {sl.gpus_per_node}")
    if not isinstance(sl.additional_parameters, dict):
        raise UserError("slurm.additional_parameters is not a mapping; write it as sbatch options and their "
                        "values, e.g. {qos: high}")
    for key, value in sl.additional_parameters.items():
        if not isinstance(key, str) or not isinstance(value, (str, int, float, bool)):
            raise UserError(f"slurm.additional_parameters sets '{key}' to {type(value).__name__}, but an sbatch "
                            "option takes one word or number; write it as e.g. {qos: high, mail-type: END}")
    named = {f.name.replace("_", "-") for f in fields(SlurmConfig)} | {"time", "mem", "ntasks-per-node"}
    for key in sl.additional_parameters:
        if str(key).replace("_", "-") in named:
            raise UserError(f"slurm.additional_parameters sets '{key}', which the slurm section names itself; "
                            f"set slurm.{str(key).replace('-', '_')} instead")


def _check_ranges(cfg: BenchConfig) -> None:
    """Seeds, worker count, image size, accelerator name, and every real number of every section."""
    for name, seed in [*(("seed", s) for s in cfg.seeds), ("split_seed", cfg.split_seed)]:
        if not 0 <= seed <= SEED_MAX:
            raise UserError(f"{name} {seed} is impossible; use whole numbers from 0 to {SEED_MAX}")
    if cfg.pretrain_batches is not None and cfg.pretrain_batches < 1:
        raise UserError(f"pretrain_batches {cfg.pretrain_batches} is impossible; use 1 or more, or leave it unset "
                        "for whole epochs")
    if cfg.num_workers is not None and cfg.num_workers < 0:
        raise UserError(f"num_workers {cfg.num_workers} is impossible; use 0 (load in the main process) or more")
    if cfg.cpu_peak_gflops is not None and not cfg.cpu_peak_gflops > 0:
        raise UserError(f"cpu_peak_gflops {cfg.cpu_peak_gflops} is impossible; give one CPU thread's peak fp32 GFLOP/s "
                        "(above 0), or leave it unset to derive it from the CPU")
    if cfg.image_size > MAX_IMAGE_SIZE:
        raise UserError(f"image size {cfg.image_size} is above the limit of {MAX_IMAGE_SIZE} pixels; "
                        f"use at most {MAX_IMAGE_SIZE}")
    sections: list[tuple[str, Any]] = [("", cfg), ("backbones.", cfg.backbones), ("source.", cfg.source),
                                       ("finetune.", cfg.finetune),
                                       ("eval.", cfg.eval), *((f"{n}.", r) for n, r in cfg.recipes.items())]
    for prefix, section in sections:
        for f in fields(section):
            _check_real(prefix + f.name, getattr(section, f.name))
            _check_count(prefix + f.name, getattr(section, f.name))


def _check_source(cfg: BenchConfig) -> None:
    """The ``source`` section (the ``fractal`` start's recipe), checked whatever the init so a typo shows early."""
    src = cfg.source
    for key, value, low, high in (("classes", src.classes, 2, SOURCE_MAX_CLASSES),
                                  ("instances", src.instances, 2, SOURCE_MAX_INSTANCES),
                                  ("points", src.points, 1, SOURCE_MAX_POINTS), ("epochs", src.epochs, 1, None),
                                  ("vit_epochs", src.vit_epochs, 1, None), ("batch_size", src.batch_size, 1, MAX_BATCH),
                                  ("render_size", src.render_size, 8, MAX_IMAGE_SIZE)):
        if value is not None and value < low:
            raise UserError(f"source.{key} {value} is impossible; give a whole number >= {low}")
        if value is not None and high is not None and value > high:
            raise UserError(f"source.{key} {value} is above the limit of {high}; give at most {high}")
    images = src.classes * src.instances
    if images > SOURCE_MAX_IMAGES:
        raise UserError(f"source.classes x source.instances is {images} images, above the limit of "
                        f"{SOURCE_MAX_IMAGES}; lower one of them")
    for key, value in (("min_fill", src.min_fill), ("perturbation", src.perturbation), ("holdout", src.holdout),
                       ("label_smoothing", src.label_smoothing)):
        if not 0 <= value < 1:
            raise UserError(f"source.{key} {value} is impossible; give a number in [0, 1)")
    if src.warmup_epochs < 0:
        raise UserError(f"source.warmup_epochs {src.warmup_epochs} is impossible; give 0 or more")
    if not 0 <= src.seed <= SEED_MAX:
        raise UserError(f"source.seed {src.seed} is impossible; use whole numbers from 0 to {SEED_MAX}")


def _check_tune(cfg: BenchConfig) -> None:
    """The ``tune`` section against the rest: tuning seeds apart from measured ones, equal trials, sane choices."""
    tune = cfg.tune
    shared = sorted(set(tune.seeds) & set(cfg.seeds))
    if tune.trials and shared:
        raise UserError(f"tune.seeds and seeds share {shared}; tuning must not see a measured seed: pick tuning "
                        "seeds outside the measured ones (e.g. 1000)")
    for key, values in tune.chosen.items():
        method, _, dataset = key.partition(AT)
        if bool(dataset) != tune.per_dataset or (dataset and dataset not in cfg.datasets):
            raise UserError(f"tune.chosen names '{key}', which is not a method" + (" and one of the run's datasets "
                            "(method@dataset)" if tune.per_dataset else "") + " of this tuning; remove tune.chosen "
                            "and let the tuning stage write it")
        recipe = cfg.recipes.get(method)
        if not tune.tunes(recipe) or not isinstance(values, dict):
            raise UserError(f"tune.chosen names '{method}', which has no tuned recipe here; remove it (the tuning "
                            "stage writes tune.chosen itself)")
        tuned = {axis.name for axis in recipe.SEARCH}
        for key, value in values.items():
            if key not in tuned or isinstance(value, bool) or not isinstance(value, (int, float)):
                raise UserError(f"tune.chosen.{method}.{key} = {value!r} is not a value of {method}'s search space "
                                f"({', '.join(sorted(tuned))}); remove it and let the tuning stage write it")
    if tune.trials:
        for method in cfg.methods:
            if get_method(method).is_reference:
                continue
            recipe = cfg.recipes.get(method)
            if not tune.tunes(recipe):
                raise UserError(f"method '{method}' declares no search space, so tuning would give it 0 trials and "
                                f"the others {tune.trials}; give its recipe a SEARCH, or set tune.trials: 0")
            tune.trial_points(recipe)


def _check_fill(cfg: BenchConfig) -> None:
    """With ``init: fractal``: enough chaos-game points to reach ``source.min_fill`` of a render (each point fills at
    most one pixel), which the start would otherwise find only after hundreds of rejected candidates."""
    src = cfg.source
    side = src.render_size or cfg.image_size
    if cfg.init == "fractal" and src.points < src.min_fill * side * side:
        needed = math.ceil(src.min_fill * side * side)
        raise UserError(f"source.points {src.points} cannot fill source.min_fill {src.min_fill} of a {side} px "
                        f"render (each point fills at most one pixel); give at least {needed} points or lower "
                        "source.min_fill")


def _check_count(key: str, value: Any) -> None:
    """Every whole number of every section is a count or a size, never negative (bools are not counts)."""
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if isinstance(v, int) and not isinstance(v, bool) and v < 0:
            raise UserError(f"config key '{key}' is {v}; it counts or sizes something, so give 0 or more")


def _check_real(key: str, value: Any) -> None:
    """Every real number finite; learning rates positive; weight decays and focal parameters not negative."""
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if not isinstance(v, float):
            continue
        if not math.isfinite(v):
            raise UserError(f"config key '{key}' is {v}; give a finite number")
        leaf = key.rsplit(".", 1)[-1]
        if (leaf == "lr" or leaf.endswith("_lr")) and v <= 0:
            raise UserError(f"learning rate {key}={v} is impossible; give a positive number, e.g. 0.001")
        if leaf in ("weight_decay", "focal_gamma", "focal_alpha") and v < 0:
            raise UserError(f"config key '{key}' is {v}; it must be >= 0")
