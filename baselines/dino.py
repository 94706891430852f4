"""DINO: self-distillation with no labels, built from lightly's head, loss, momentum utilities and transform.

Caron et al., "Emerging Properties in Self-Supervised Vision Transformers" (arXiv 2104.14294). A student and an
EMA teacher share one architecture; the teacher sees the two global crops, the student every crop (global and
local), and the student's softmax is pulled towards the teacher's centred, sharpened softmax of the other views.
As in the reference ``MultiCropWrapper``, crops of the same resolution go through the encoder as one batch.
"""

from __future__ import annotations


import torch
from lightly.loss import DINOLoss
from lightly.models.modules import DINOProjectionHead
from lightly.models.utils import get_weight_decay_parameters, update_momentum
from lightly.utils.optim import update_param_groups
from lightly.utils.scheduler import cosine_schedule
from lightly.transforms import DINOTransform
from torch import Tensor, nn

from cass_bench.config.schema import BackboneConfig
from cass_bench.models.encoders import build_encoder
from cass_bench.methods.contract import PretrainMethod
from cass_bench.config.recipes import DinoConfig
from cass_bench.methods.parts import EncoderWithHead, blur_sigmas, ema_momentum, momentum_pair
from cass_bench.config.registry import PretrainSetup
from cass_bench.engine.trainer import Optimization

DECAYED = "weight_decay"
"""The optimiser group whose weight decay follows the schedule (every parameter but norms and biases)."""


def teacher_temperature(cfg: DinoConfig, epoch: int, total_epochs: int | None) -> float:
    """Teacher temperature of an epoch: DINOLoss's linear warm-up, cut to end before a run of ``total_epochs`` does.

    Args:
        cfg: the recipe (warm-up and final temperatures, warm-up epochs).
        epoch: the current epoch, from 0.
        total_epochs: epochs of the run (None: unknown, the warm-up is not cut).
    """
    warmup = cfg.warmup_teacher_temp_epochs
    if total_epochs is not None:
        warmup = min(warmup, total_epochs - 1)
    if epoch >= warmup:
        return cfg.teacher_temp
    return float(torch.linspace(cfg.warmup_teacher_temp, cfg.teacher_temp, warmup)[epoch])


def local_crop_size(cfg: DinoConfig, image_size: int, encoder: nn.Module) -> int:
    """Side of the local crops: ``local_crop_fraction`` of the image, a whole number of ViT patches."""
    size = round(image_size * cfg.local_crop_fraction)
    patch_embed = getattr(encoder, "patch_embed", None)
    if patch_embed is None:
        return max(1, size)
    patch = patch_embed.patch_size[0]
    return max(patch, round(size / patch) * patch)


class DINO(PretrainMethod):
    """The DINO pretraining module for one timm encoder.

    Optimised as the reference does (:class:`DinoConfig` names each value's source): the learning rate scaled
    linearly with the batch size, a linear warm-up then a cosine decay, weight decay on a cosine schedule and never
    on norms and biases, gradient clipping, the head's last layer frozen for the first epoch.

    Args:
        cfg: DINO recipe (head, optimiser, EMA momentum, temperatures, multi-crop, clipping).
        backbones: timm names of the encoders.
        arch: the encoder this run trains (``cnn`` or ``vit``).
        image_size: side of the training images (and of the global crops).
        seed: seed of the encoder initialisation.
        init: the encoder's starting weights (``random``, ``imagenet`` or a checkpoint path, see ``build_encoder``).
    """

    def __init__(
        self, cfg: DinoConfig, backbones: BackboneConfig, arch: str, image_size: int, seed: int, init: str = "random",
        batch_size: int | None = None,
    ) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.arch = arch
        self.batch_size = batch_size if batch_size is not None else max(1, cfg.lr_reference_batch)
        self.optimizer: torch.optim.Optimizer | None = None  # set by build_optimizer; its weight decay is scheduled
        self.gradient_clip_val = cfg.gradient_clip_val

        def network() -> EncoderWithHead:
            backbone = build_encoder(arch, backbones, image_size, seed, init=init)
            return EncoderWithHead(backbone, self._head(backbone.num_features))

        self.student, self.teacher = momentum_pair(network)
        self.criterion = DINOLoss(cfg.output_dim, teacher_temp=cfg.teacher_temp, student_temp=cfg.student_temp)
        self.transform = DINOTransform(
            global_crop_size=image_size,
            global_crop_scale=cfg.global_crop_scale,
            local_crop_size=local_crop_size(cfg, image_size, self.student.backbone),
            local_crop_scale=cfg.local_crop_scale,
            n_local_views=cfg.n_local_views,
            gaussian_blur=cfg.gaussian_blur,
            sigmas=blur_sigmas(image_size),
            solarization_prob=cfg.solarization_prob,
        )

    def _head(self, input_dim: int) -> DINOProjectionHead:
        return DINOProjectionHead(
            input_dim=input_dim,
            hidden_dim=self.cfg.hidden_dim,
            bottleneck_dim=self.cfg.bottleneck_dim,
            output_dim=self.cfg.output_dim,
            batch_norm=self.cfg.batch_norm,
            freeze_last_layer=self.cfg.freeze_last_layer,
            norm_last_layer=self.cfg.norm_last_layer,
        )

    def encoders(self) -> dict[str, nn.Module]:
        return {self.arch: self.student.backbone}

    def teacher_momentum(self) -> float:
        """EMA momentum of this step (cosine over the run, see :func:`ema_momentum`)."""
        return ema_momentum(self.cfg.momentum_start, self.cfg.momentum_end, self.progress)

    def teacher_temperature(self) -> float:
        """Teacher temperature of this epoch (see :func:`teacher_temperature`)."""
        return teacher_temperature(self.cfg, self.progress.epoch, self.progress.total_epochs)

    def pretrain_loss(self, views: list[Tensor]) -> tuple[Tensor, Tensor]:
        if self.optimizer is not None:
            update_param_groups(self.optimizer, updates=[{"name": DECAYED, "weight_decay": self.weight_decay()}])
        update_momentum(self.student, self.teacher, m=self.teacher_momentum())
        global_views, local_views = views[:2], views[2:]
        global_batch = torch.cat(global_views)
        with torch.no_grad():
            teacher_out = self.teacher(global_batch).chunk(2)
        student_global = self.student(global_batch)
        student_out = list(student_global.chunk(2))
        if local_views:
            student_out += list(self.student(torch.cat(local_views)).chunk(len(local_views)))
        loss = self.criterion(list(teacher_out), student_out, teacher_temp=self.teacher_temperature())
        return loss, student_global

    def on_after_backward(self) -> None:
        self.student.head.cancel_last_layer_gradients(current_epoch=self.progress.epoch)

    def weight_decay(self) -> float:
        """Weight decay of this step: cosine from ``weight_decay`` to ``weight_decay_end`` over the run (set on the
        optimiser's decayed group at the start of every step, as the reference does)."""
        if self.progress.total_steps is None:
            return self.cfg.weight_decay
        return cosine_schedule(self.progress.step, self.progress.total_steps, self.cfg.weight_decay,
                               self.cfg.weight_decay_end)


    def build_optimizer(self, total_steps: int) -> Optimization:
        """``cfg.optimizer`` over the student at ``cfg.scaled_lr(batch_size)``, warmed up then cosine-annealed over
        ``total_steps``; norms and biases in a group without weight decay."""
        decayed, plain = get_weight_decay_parameters([self.student])
        groups = [{"name": DECAYED, "params": [p for p in decayed if p.requires_grad]},
                  {"name": "no_weight_decay", "params": [p for p in plain if p.requires_grad], "weight_decay": 0.0}]
        lr, wd = self.cfg.scaled_lr(self.batch_size), self.cfg.weight_decay
        if self.cfg.optimizer == "sgd":
            optimizer = torch.optim.SGD(groups, lr=lr, momentum=0.9, weight_decay=wd)
        elif self.cfg.optimizer == "adamw":
            optimizer = torch.optim.AdamW(groups, lr=lr, weight_decay=wd)
        else:
            optimizer = torch.optim.Adam(groups, lr=lr, weight_decay=wd)
        self.optimizer = optimizer
        return Optimization.warmup_cosine(optimizer, total_steps, self.cfg.warmup_fraction)


def build(setup: PretrainSetup) -> DINO:
    """The DINO module of one pretraining run (``BUILTIN_METHODS`` names this function)."""
    (arch,) = setup.archs
    cfg = setup.cfg
    return DINO(cfg.recipe(DinoConfig), cfg.backbones, arch, cfg.image_size, setup.seed, setup.init, setup.batch_size)
