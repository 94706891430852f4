"""The built-in methods' recipes (their config sections), kept apart from the torch-bearing method modules.

A config is loaded, validated and hashed without torch (``run --dry-run``, ``plan``, ``status`` and the report
never import it); each method module imports its recipe from here. A plug-in method may define its recipe in its
own module (:mod:`cass_bench.config.registry`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from cass_bench.config.recipe import MethodRecipe, SearchAxis, sourced
from cass_bench.errors import UserError

if TYPE_CHECKING:
    from cass_bench.config.schema import BenchConfig

CASS_CODE = "CASS reference code (github.com/pranavsinghps1/CASS, pretraining notebook)"
DINO_CODE = "DINO reference (facebookresearch/dino main_dino.py, ViT-S/16 defaults)"
DINO_README = "DINO reference README (facebookresearch/dino, training tips)"
LIGHTLY_CIFAR = "lightly benchmarks/cifar10 (32 px, ResNet-18)"
LIGHTLY_DINO_TRANSFORM = "lightly DINOTransform defaults"
LR_GRID = (1 / 9, 1 / 3, 1.0, 3.0, 9.0)
"""The learning-rate factors every built-in method's tuning tries around its reference value, nearest first: 1,
then x 1/3 and x 3 (``tune.trials: 3``, the packaged configs), then x 1/9 and x 9 (``tune.trials: 5``, for a choice
that lands at an edge of the narrower grid)."""
WARMUP_SCALED = "the same fraction of the run as the reference's warm-up"
IMAGENET_CLASSES = 1000
Schedule = Literal["reference", "cosine"]
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
        warmup_fraction: share of the run's steps over which the learning rate rises linearly before the schedule
            (0: none, as the reference).
    """

    SEARCH = (SearchAxis("lr", factors=LR_GRID),)

    lr: float = sourced(1e-3, CASS_CODE, scaled="taken as is (Adam, per network, batch 16 as here)")
    weight_decay: float = sourced(0.0, CASS_CODE)
    heads: str = sourced("start", CASS_CODE, there="the ImageNet classifiers of both timm models")
    output_dim: int = sourced(1000, CASS_CODE, there="1000 (ImageNet classes)")
    schedule: Schedule = sourced("reference", CASS_CODE, there="CosineAnnealingLR(T_max=16, eta_min=1e-6) stepped per batch")
    t_max: int = sourced(16, CASS_CODE)
    eta_min: float = sourced(1e-6, CASS_CODE)
    accumulate_gradients: bool = sourced(False, CASS_CODE, there="true (the loop never calls zero_grad)",
                                         scaled="zeroed every step: the method as published, not the loop's slip")
    warmup_fraction: float = sourced(0.0, CASS_CODE)

    def validate(self) -> None:
        if self.heads not in HEADS:
            raise UserError(f"unknown cass.heads '{self.heads}'; choose start (the start's own classifiers) or fresh "
                            "(random heads of cass.output_dim)")
        if self.output_dim < 1:
            raise UserError(f"cass.output_dim must be >= 1, got {self.output_dim}")
        if self.t_max < 1:
            raise UserError("cass.t_max must be >= 1")
        check_warmup("cass", self.warmup_fraction)

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


DinoOptimizer = Literal["adam", "adamw", "sgd"]


def check_warmup(method: str, fraction: float) -> None:
    """Raises UserError unless a recipe's ``warmup_fraction`` lies in [0, 1)."""
    if not 0 <= fraction < 1:
        raise UserError(f"{method}.warmup_fraction must lie in [0, 1) (a share of the run's steps), got {fraction}")


@dataclass(frozen=True)
class DinoConfig(MethodRecipe):
    """DINO recipe: the reference's optimisation (AdamW, linear learning-rate scaling, warm-up, weight-decay schedule,
    the small-batch teacher momentum) with lightly's small-image head; every value names its source
    (``docs/methods.md`` tables them).

    Attributes:
        hidden_dim, bottleneck_dim, output_dim, batch_norm: DINOProjectionHead shape (lightly's CIFAR-10 head).
        norm_last_layer: weight-normalised last layer with its norm fixed (the reference default).
        freeze_last_layer: epochs during which the head's last layer gets no gradient.
        optimizer: ``adamw`` (the reference), ``adam`` or ``sgd`` (momentum 0.9).
        lr: base learning rate; the run uses ``lr * batch_size / lr_reference_batch`` (linear scaling, as the
            reference), reached after ``warmup_fraction`` of the steps of linear warm-up, then cosine to 0.
        lr_reference_batch: the batch size at which ``lr`` applies unscaled (0: ``lr`` at every batch size).
        warmup_fraction: share of the run's steps of linear learning-rate warm-up.
        weight_decay, weight_decay_end: weight decay, cosine per step from the first to the second; never applied
            to norms and biases (lightly's ``get_weight_decay_parameters``, as the reference).
        momentum_start, momentum_end: teacher EMA momentum, cosine per step.
        warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs, student_temp: DINOLoss temperatures.
        n_local_views: number of local crops (at ``local_crop_fraction`` of the image size).
        global_crop_scale, local_crop_scale: RandomResizedCrop scales.
        gaussian_blur: blur probabilities (global 1, global 2, local) as in DINOTransform.
        solarization_prob: solarisation probability of the second global view.
        gradient_clip_val: gradient-norm clipping.
    """

    SEARCH = (SearchAxis("lr", factors=LR_GRID),)

    hidden_dim: int = sourced(2048, LIGHTLY_CIFAR, scaled="the reference's 2048 too")
    bottleneck_dim: int = sourced(256, LIGHTLY_CIFAR, scaled="the reference's 256 too")
    output_dim: int = sourced(2048, LIGHTLY_CIFAR, there="2048 (the reference: 65536 for ImageNet)")
    batch_norm: bool = sourced(True, LIGHTLY_CIFAR, there="true (the reference: false)")
    norm_last_layer: bool = sourced(True, DINO_CODE)
    freeze_last_layer: int = sourced(1, DINO_CODE)
    optimizer: DinoOptimizer = sourced("adamw", DINO_CODE)
    lr: float = sourced(5e-4, DINO_CODE, there="0.0005 at batch 256", scaled="x batch/256 (the reference's rule)")
    lr_reference_batch: int = sourced(256, DINO_CODE)
    warmup_fraction: float = sourced(0.1, DINO_CODE, there="10 of 100 epochs", scaled=WARMUP_SCALED)
    weight_decay: float = sourced(0.04, DINO_CODE)
    weight_decay_end: float = sourced(0.4, DINO_CODE)
    momentum_start: float = sourced(0.9995, DINO_README, there="0.996 at batch 1024; 0.9995 advised for small batches")
    momentum_end: float = sourced(1.0, DINO_CODE)
    warmup_teacher_temp: float = sourced(0.04, DINO_CODE)
    teacher_temp: float = sourced(0.04, DINO_CODE)
    warmup_teacher_temp_epochs: int = sourced(0, DINO_CODE, there="0 (both temperatures 0.04: no warm-up)")
    student_temp: float = sourced(0.1, DINO_CODE)
    n_local_views: int = sourced(6, LIGHTLY_DINO_TRANSFORM, there="8 in the reference; lightly's CIFAR-10: 0")
    local_crop_fraction: float = sourced(0.5, LIGHTLY_DINO_TRANSFORM, there="96 of 224 px (0.43); lightly 0.5")
    global_crop_scale: tuple[float, float] = sourced((0.4, 1.0), DINO_CODE)
    local_crop_scale: tuple[float, float] = sourced((0.05, 0.4), DINO_CODE)
    gaussian_blur: tuple[float, float, float] = sourced((1.0, 0.1, 0.5), DINO_CODE,
                                                        there="(1.0, 0.1, 0.5); lightly's CIFAR-10: no blur")
    solarization_prob: float = sourced(0.2, DINO_CODE)
    gradient_clip_val: float = sourced(3.0, DINO_CODE)

    def validate(self) -> None:
        if self.lr_reference_batch < 0:
            raise UserError(f"dino.lr_reference_batch must be >= 0 (0: no scaling), got {self.lr_reference_batch}")
        check_warmup("dino", self.warmup_fraction)

    def scaled_lr(self, batch_size: int) -> float:
        """The learning rate of a run at ``batch_size`` (linear scaling from ``lr_reference_batch``; 0: unscaled)."""
        return self.lr * batch_size / self.lr_reference_batch if self.lr_reference_batch else self.lr


@dataclass(frozen=True)
class ByolConfig(MethodRecipe):
    """BYOL recipe: lightly's CIFAR-10 benchmark settings, each naming its source (``docs/methods.md``).

    Attributes:
        hidden_dim, output_dim: projection/prediction head widths (Linear-BN-ReLU-Linear).
        lr: base SGD learning rate, scaled by batch_size / 128.
        momentum, weight_decay: SGD settings.
        momentum_start, momentum_end: target-network EMA momentum, cosine per step.
        gaussian_blur: blur probability of the two views (view 1, view 2).
        warmup_fraction: share of the run's steps of linear learning-rate warm-up (0: none, as lightly's benchmark).
    """

    SEARCH = (SearchAxis("lr", factors=LR_GRID),)

    hidden_dim: int = sourced(1024, LIGHTLY_CIFAR)
    output_dim: int = sourced(256, LIGHTLY_CIFAR)
    lr: float = sourced(0.06, LIGHTLY_CIFAR, there="0.06 x batch/128", scaled="x batch/128 (lightly's rule)")
    momentum: float = sourced(0.9, LIGHTLY_CIFAR)
    weight_decay: float = sourced(5e-4, LIGHTLY_CIFAR)
    momentum_start: float = sourced(0.99, LIGHTLY_CIFAR)
    momentum_end: float = sourced(1.0, LIGHTLY_CIFAR)
    gaussian_blur: tuple[float, float] = sourced((1.0, 0.1), "lightly BYOLView1/2Transform defaults",
                                                 there="(1.0, 0.1); lightly's CIFAR-10: no blur")
    warmup_fraction: float = sourced(0.0, LIGHTLY_CIFAR)

    def validate(self) -> None:
        check_warmup("byol", self.warmup_fraction)
