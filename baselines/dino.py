"""DINO: self-distillation with no labels, built from lightly's head, loss, momentum utilities and transform.

Caron et al., "Emerging Properties in Self-Supervised Vision Transformers" (arXiv 2104.14294). A student and an
EMA teacher share one architecture; the teacher sees the two global crops, the student every crop (global and
local), and the student's softmax is pulled towards the teacher's centred, sharpened softmax of the other views.
As in the reference ``MultiCropWrapper``, crops of the same resolution go through the encoder as one batch.
"""

from __future__ import annotations

from typing import TypeVar

import torch
from lightly.loss import DINOLoss
from lightly.models.modules import DINOProjectionHead
from lightly.models.utils import deactivate_requires_grad, update_momentum
from lightly.transforms import DINOTransform
from torch import Tensor, nn

from cass_bench.config import BackboneConfig, DinoConfig
from cass_bench.encoders import build_encoder
from cass_bench.errors import UserError
from cass_bench.method import PretrainMethod, cosine_annealing

OPTIMIZERS = ("adam", "adamw", "sgd")
M = TypeVar("M", bound=nn.Module)


def blur_sigmas(image_size: int, min_scale: float = 0.25) -> tuple[float, float]:
    """The blur sigma range of lightly's 224 px recipes, scaled to ``image_size`` (scale floored at ``min_scale``)."""
    scale = max(image_size / 224, min_scale)
    return 0.1 * scale, 2.0 * scale


def local_crop_size(cfg: DinoConfig, image_size: int, encoder: nn.Module) -> int:
    """Side of the local crops: ``local_crop_fraction`` of the image, a whole number of ViT patches."""
    size = round(image_size * cfg.local_crop_fraction)
    patch_embed = getattr(encoder, "patch_embed", None)
    if patch_embed is None:
        return max(1, size)
    patch = patch_embed.patch_size[0]
    return max(patch, round(size / patch) * patch)


class EncoderWithHead(nn.Module):
    """A timm encoder followed by a projection head."""

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x))


def frozen_copy(source: nn.Module, target: M) -> M:
    """Loads ``source``'s weights into ``target`` (built afresh with the same shape) and freezes it.

    Momentum networks are built rather than deep-copied because lightly's weight-normalised heads cannot be
    deep-copied.

    Returns:
        ``target``, holding ``source``'s weights and without gradients.
    """
    target.load_state_dict(source.state_dict())
    deactivate_requires_grad(target)
    return target



class DINO(PretrainMethod):
    """The DINO pretraining module for one timm encoder.

    Args:
        cfg: DINO recipe (head, optimiser, EMA momentum, temperatures, multi-crop, clipping).
        backbones: timm names of the encoders.
        arch: the encoder this run trains (``cnn`` or ``vit``).
        image_size: side of the training images (and of the global crops).
        seed: seed of the encoder initialisation.
        init: the encoder's starting weights (``random``, ``imagenet`` or a checkpoint path, see ``build_encoder``).
    """

    def __init__(
        self, cfg: DinoConfig, backbones: BackboneConfig, arch: str, image_size: int, seed: int, init: str = "random"
    ) -> None:
        super().__init__()
        if cfg.optimizer not in OPTIMIZERS:
            raise UserError(f"unknown dino.optimizer '{cfg.optimizer}'; choose from {', '.join(OPTIMIZERS)}")
        self.cfg = cfg
        self.arch = arch
        self.gradient_clip_val = cfg.gradient_clip_val
        backbone = build_encoder(arch, backbones, image_size, seed, init=init)
        self.student = EncoderWithHead(backbone, self._head(backbone.num_features))
        self.teacher = frozen_copy(
            self.student,
            EncoderWithHead(
                build_encoder(arch, backbones, image_size, seed, init=init), self._head(backbone.num_features)
            ),
        )
        self.criterion = DINOLoss(cfg.output_dim, teacher_temp=cfg.teacher_temp, student_temp=cfg.student_temp)
        self.transform = DINOTransform(
            global_crop_size=image_size,
            global_crop_scale=cfg.global_crop_scale,
            local_crop_size=local_crop_size(cfg, image_size, backbone),
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
        )

    def encoders(self) -> dict[str, nn.Module]:
        return {self.arch: self.student.backbone}

    def teacher_momentum(self) -> float:
        """EMA momentum of this step (see :meth:`PretrainMethod.ema_momentum`)."""
        return self.ema_momentum(self.cfg.momentum_start, self.cfg.momentum_end)

    def teacher_temperature(self) -> float:
        """Teacher temperature of this epoch: DINOLoss's linear warm-up, cut to end before a short run does."""
        warmup = self.cfg.warmup_teacher_temp_epochs
        if self._trainer is not None and self.trainer.max_epochs is not None and self.trainer.max_epochs > 0:
            warmup = min(warmup, self.trainer.max_epochs - 1)
        if self.current_epoch >= warmup:
            return self.cfg.teacher_temp
        return float(torch.linspace(self.cfg.warmup_teacher_temp, self.cfg.teacher_temp, warmup)[self.current_epoch])

    def pretrain_loss(self, views: list[Tensor]) -> tuple[Tensor, Tensor]:
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
        self.student.head.cancel_last_layer_gradients(current_epoch=self.current_epoch)

    def configure_optimizers(self) -> dict[str, object]:
        params = [p for p in self.student.parameters() if p.requires_grad]
        if self.cfg.optimizer == "sgd":
            optimizer = torch.optim.SGD(params, lr=self.cfg.lr, momentum=0.9, weight_decay=self.cfg.weight_decay)
        elif self.cfg.optimizer == "adamw":
            optimizer = torch.optim.AdamW(params, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        else:
            optimizer = torch.optim.Adam(params, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        scheduler = cosine_annealing(optimizer, self.trainer.estimated_stepping_batches)
        return {"optimizer": optimizer, "lr_scheduler": scheduler}
