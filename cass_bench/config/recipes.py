"""The built-in methods' recipes (their config sections), kept apart from the torch-bearing method modules.

A config is loaded, validated and hashed without torch (``run --dry-run``, ``plan``, ``status`` and the report
never import it); each method module imports its recipe from here. A plug-in method may define its recipe in its
own module (:mod:`cass_bench.config.registry`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from cass_bench.config.recipe import MethodRecipe
from cass_bench.errors import UserError

if TYPE_CHECKING:
    from cass_bench.config.schema import BenchConfig

IMAGENET_CLASSES = 1000
SCHEDULES = ("reference", "cosine")
HEADS = ("start", "fresh")


@dataclass(frozen=True)
class CassConfig(MethodRecipe):
    """CASS recipe as the reference code runs it.

    Attributes:
        lr, weight_decay: Adam settings, one parameter group per network.
        heads: the classifiers whose outputs the loss compares. ``start`` (the reference's choice): the start's own
            classifiers when the start has them (``init: imagenet``: timm's 1000-class ImageNet heads; ``init:
            fractal`` or an exported start folder: the source classifiers, of the source's class count), seeded
            random linear layers of ``output_dim`` otherwise (``init: random``, a checkpoint of encoders only).
            ``fresh``: seeded random linear layers of ``output_dim`` whatever the start.
        output_dim: width of the random heads. With ``heads: start`` and ``init: imagenet`` it must be 1000 (the
            ImageNet heads' width); with ``heads: start`` and ``init: fractal`` it is ignored (the source classifiers
            have ``source.classes`` outputs; the records' ``embedding_dim`` says the width used).
        schedule: ``reference`` (``CosineAnnealingLR(T_max=t_max, eta_min=eta_min)`` stepped every batch, so the
            learning rate cycles every ``2 * t_max`` steps) or ``cosine`` (one decay over the whole run).
        t_max, eta_min: the reference schedule's half-period in steps and floor.
        accumulate_gradients: never zero gradients, exactly as the reference loop (which never calls
            ``zero_grad``); the default zeroes them every step.
    """

    lr: float = 1e-3
    weight_decay: float = 0.0
    heads: str = "start"
    output_dim: int = 1000
    schedule: str = "reference"
    t_max: int = 16
    eta_min: float = 1e-6
    accumulate_gradients: bool = False

    def validate(self) -> None:
        if self.heads not in HEADS:
            raise UserError(f"unknown cass.heads '{self.heads}'; choose start (the start's own classifiers) or fresh "
                            "(random heads of cass.output_dim)")
        if self.output_dim < 1:
            raise UserError(f"cass.output_dim must be >= 1, got {self.output_dim}")
        if self.schedule not in SCHEDULES:
            raise UserError(f"unknown cass.schedule '{self.schedule}'; choose reference or cosine")
        if self.t_max < 1:
            raise UserError("cass.t_max must be >= 1")

    def check(self, cfg: BenchConfig) -> None:
        self.check_init(cfg.init)

    def check_init(self, init: str) -> None:
        """Raises UserError when ``init: imagenet`` with ``heads: start`` meets a width other than ImageNet's 1000."""
        if init == "imagenet" and self.heads == "start" and self.output_dim != IMAGENET_CLASSES:
            raise UserError(
                f"cass.output_dim is {self.output_dim}, but with init: imagenet and cass.heads: start the CASS heads "
                f"are the backbones' ImageNet classifiers ({IMAGENET_CLASSES} outputs); set cass.output_dim: "
                f"{IMAGENET_CLASSES}, or cass.heads: fresh for random heads of {self.output_dim} outputs"
            )


OPTIMIZERS = ("adam", "adamw", "sgd")


@dataclass(frozen=True)
class DinoConfig(MethodRecipe):
    """DINO recipe, lightly's small-GPU settings scaled to small images.

    Attributes:
        hidden_dim, bottleneck_dim, output_dim, batch_norm: DINOProjectionHead shape. Batch norm in the head is
            lightly's small-image (CIFAR-10) setting; without it the head collapses at batch 16 on 32 px images.
        freeze_last_layer: epochs during which the head's last layer gets no gradient.
        lr, weight_decay, optimizer: student optimiser (cosine-annealed).
        momentum_start, momentum_end: teacher EMA momentum, cosine per step.
        warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs, student_temp: DINOLoss temperatures.
        n_local_views: number of local crops (at ``local_crop_fraction`` of the image size).
        global_crop_scale, local_crop_scale: RandomResizedCrop scales.
        gaussian_blur: blur probabilities (global 1, global 2, local) as in DINOTransform.
        solarization_prob: solarisation probability of the second global view.
        gradient_clip_val: gradient-norm clipping.
    """

    hidden_dim: int = 512
    bottleneck_dim: int = 64
    output_dim: int = 2048
    batch_norm: bool = True
    freeze_last_layer: int = 1
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    momentum_start: float = 0.996
    momentum_end: float = 1.0
    warmup_teacher_temp: float = 0.04
    teacher_temp: float = 0.04
    warmup_teacher_temp_epochs: int = 5
    student_temp: float = 0.1
    n_local_views: int = 6
    local_crop_fraction: float = 0.5
    global_crop_scale: tuple[float, float] = (0.4, 1.0)
    local_crop_scale: tuple[float, float] = (0.05, 0.4)
    gaussian_blur: tuple[float, float, float] = (0.5, 0.1, 0.25)
    solarization_prob: float = 0.2
    gradient_clip_val: float = 3.0

    def validate(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise UserError(f"unknown dino.optimizer '{self.optimizer}'; choose from {', '.join(OPTIMIZERS)}")


@dataclass(frozen=True)
class ByolConfig(MethodRecipe):
    """BYOL recipe, lightly's CIFAR-10 benchmark settings.

    Attributes:
        hidden_dim, output_dim: projection/prediction head widths (Linear-BN-ReLU-Linear).
        lr: base SGD learning rate, scaled by batch_size / 128.
        momentum, weight_decay: SGD settings.
        momentum_start, momentum_end: target-network EMA momentum, cosine per step.
        gaussian_blur: blur probability of the two views (view 1, view 2).
    """

    hidden_dim: int = 1024
    output_dim: int = 256
    lr: float = 0.06
    momentum: float = 0.9
    weight_decay: float = 5e-4
    momentum_start: float = 0.99
    momentum_end: float = 1.0
    gaussian_blur: tuple[float, float] = (0.5, 0.1)
