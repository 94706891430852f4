"""Checks of a loaded config's values that no type can express: ranges, names, and the launcher's section.

Each check raises :class:`cass_bench.errors.UserError` with the fix on the first problem; :func:`validate` runs them
all and is called by :func:`cass_bench.config.schema.load_config`.
"""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path
from typing import Any

from cass_bench.config.schema import ARCHS, EVALS, INITS, LAUNCHERS, PRECISIONS, STEM_CHOICES, BenchConfig, SlurmConfig
from cass_bench.errors import UserError

ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
MAX_IMAGE_SIZE = 1024
"""The largest image side accepted (the paper's largest input is 384 px)."""
SEED_MAX = 2**32 - 1
"""Seeds must lie in ``[0, SEED_MAX]``, the range numpy and Lightning seed with."""


def validate(cfg: BenchConfig) -> None:
    """Checks values that no type can express; raises UserError with the fix on the first problem."""
    for f in cfg.label_fractions:
        if not 0 < f <= 1:
            raise UserError(f"label fraction {f} is impossible; use values in (0, 1], e.g. 0.01,0.1,1")
    for b in cfg.batch_sizes:
        if b < 1:
            raise UserError(f"batch size {b} is impossible; use whole numbers >= 1, e.g. 16,32")
    for e in cfg.pretrain_epochs:
        if e < 1:
            raise UserError(f"pretraining epochs {e} is impossible; use whole numbers >= 1")
    for name, seq in (("methods", cfg.methods), ("datasets", cfg.datasets), ("label_fractions", cfg.label_fractions),
                      ("batch_sizes", cfg.batch_sizes), ("seeds", cfg.seeds), ("pretrain_epochs", cfg.pretrain_epochs),
                      ("archs", cfg.archs)):
        if not seq:
            raise UserError(f"'{name}' is empty; give at least one value")
    for arch in cfg.archs:
        if arch not in ARCHS:
            raise UserError(f"unknown arch '{arch}'; choose from {', '.join(ARCHS)}")
    ft = cfg.finetune
    if ft.budget not in ("steps", "epochs"):
        raise UserError(f"unknown finetune.budget '{ft.budget}'; choose steps or epochs")
    if ft.select not in ("last", "best_val"):
        raise UserError(f"unknown finetune.select '{ft.select}'; choose last or best_val")
    for key, value in (("steps", ft.steps), ("epochs", ft.epochs), ("val_every", ft.val_every)):
        if value < 1:
            raise UserError(f"finetune.{key} must be >= 1, got {value}")
    if ft.patience < 0:
        raise UserError(f"finetune.patience must be >= 0, got {ft.patience}")
    for name in cfg.eval.evals:
        if name not in EVALS:
            raise UserError(f"unknown evaluation '{name}' in eval.evals; choose from {', '.join(EVALS)}")
    if not cfg.eval.evals:
        raise UserError("'eval.evals' is empty; give at least one of " + ", ".join(EVALS))
    if cfg.eval.knn_k < 1 or cfg.eval.knn_temperature <= 0:
        raise UserError("eval.knn_k must be >= 1 and eval.knn_temperature > 0")
    if not cfg.eval.linear_c_grid or min(cfg.eval.linear_c_grid) <= 0 or cfg.eval.linear_folds < 2:
        raise UserError("eval.linear_c_grid needs positive values and eval.linear_folds must be >= 2")
    if cfg.eval.chance_permutations < 99 or not 0 < cfg.eval.chance_alpha < 1:
        raise UserError("eval.chance_permutations must be >= 99 and eval.chance_alpha in (0, 1)")
    if cfg.backbones.small_input_stem.lower() not in STEM_CHOICES:
        raise UserError(f"backbones.small_input_stem must be one of {', '.join(STEM_CHOICES)}, "
                        f"got '{cfg.backbones.small_input_stem}'")
    for recipe in cfg.recipes.values():
        recipe.validate()
    if cfg.init not in INITS and not Path(cfg.init).expanduser().exists():
        raise UserError(f"init '{cfg.init}' is neither random, imagenet nor an existing checkpoint path; "
                        "pass --init random|imagenet|PATH")
    if cfg.finetune.batch_size < 1:
        raise UserError(f"finetune batch size {cfg.finetune.batch_size} is impossible; use a whole number >= 1")
    if cfg.image_size < 8:
        raise UserError(f"image size {cfg.image_size} is too small; use at least 8 pixels")
    if cfg.precision not in PRECISIONS:
        raise UserError(f"unknown precision '{cfg.precision}'; choose from {', '.join(PRECISIONS)}")
    if not 0 <= cfg.finetune.min_class_weight <= 1:
        raise UserError("finetune.min_class_weight must lie in [0, 1]")
    if cfg.devices < 1 or cfg.num_nodes < 1:
        raise UserError("devices and num_nodes must be >= 1")
    validate_launcher(cfg)
    _check_ranges(cfg)


def validate_launcher(cfg: BenchConfig) -> None:
    """Checks ``launcher`` and the ``slurm`` section; raises UserError with the fix on the first problem."""
    if cfg.launcher not in LAUNCHERS:
        raise UserError(f"unknown launcher '{cfg.launcher}'; choose from {', '.join(LAUNCHERS)}")
    sl = cfg.slurm
    for key in ("nodes", "gpus_per_node", "cpus_per_task", "timeout_min", "array_parallelism", "mem_gb"):
        value = getattr(sl, key)
        if value is not None and value < (0 if key == "gpus_per_node" else 1):
            raise UserError(f"slurm.{key} must be >= {0 if key == 'gpus_per_node' else 1}, got {value}")
    if sl.nodes is not None and sl.nodes != cfg.num_nodes:
        raise UserError(f"slurm.nodes is {sl.nodes} but num_nodes is {cfg.num_nodes}; Lightning's DDP needs them "
                        f"equal: set --num-nodes {sl.nodes} or drop slurm.nodes")
    if sl.gpus_per_node is not None and cfg.accelerator != "cpu" and sl.gpus_per_node < cfg.devices:
        raise UserError(f"slurm.gpus_per_node is {sl.gpus_per_node} but devices is {cfg.devices}; each task needs "
                        f"its own GPU: set slurm.gpus_per_node >= {cfg.devices} or --devices {sl.gpus_per_node}")
    if not isinstance(sl.additional_parameters, dict):
        raise UserError("slurm.additional_parameters must be a mapping of sbatch options to values, "
                        "e.g. {qos: high}")
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
    if cfg.image_size > MAX_IMAGE_SIZE:
        raise UserError(f"image size {cfg.image_size} is above the limit of {MAX_IMAGE_SIZE} pixels; "
                        f"use at most {MAX_IMAGE_SIZE}")
    if cfg.accelerator not in ACCELERATORS:
        raise UserError(f"unknown accelerator '{cfg.accelerator}'; choose from {', '.join(ACCELERATORS)}")
    sections: list[tuple[str, Any]] = [("", cfg), ("backbones.", cfg.backbones), ("finetune.", cfg.finetune),
                                       ("eval.", cfg.eval), *((f"{n}.", r) for n, r in cfg.recipes.items())]
    for prefix, section in sections:
        for f in fields(section):
            _check_real(prefix + f.name, getattr(section, f.name))


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
