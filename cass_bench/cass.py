"""CASS: a CNN and a ViT trained together by pulling their outputs for the same view together.

Singh, Sizikova & Cirrone, "CASS: Cross Architectural Self-Supervision for Medical Image Analysis"
(arXiv 2206.04170). One augmented view goes through both networks; the loss is
``2 - 2 * cos(a, b)`` between their head outputs, averaged over the batch. There is no teacher, no EMA and no
stop-gradient: both networks receive gradients. Unlike the reference notebook, gradients are zeroed every step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from lightly.transforms import BYOLView1Transform
from torch import Tensor, nn

from cass_bench.config import BackboneConfig, CassConfig
from cass_bench.encoders import build_encoder
from cass_bench.method import PretrainMethod, cosine_annealing


def cass_loss(cnn_out: Tensor, vit_out: Tensor) -> Tensor:
    """``2 - 2 * cosine similarity`` of the two networks' outputs, batch mean."""
    return (2 - 2 * (F.normalize(cnn_out, dim=-1) * F.normalize(vit_out, dim=-1)).sum(dim=-1)).mean()


class SingleView:
    """Wraps a view transform so it returns a one-view list, like lightly's multi-view transforms."""

    def __init__(self, view: BYOLView1Transform) -> None:
        self.view = view

    def __call__(self, image: object) -> list[Tensor]:
        return [self.view(image)]


def cass_transform(image_size: int, gaussian_blur: float) -> SingleView:
    """One augmented view per image: lightly's BYOL view-1 augmentations with blur scaled for small images."""
    return SingleView(BYOLView1Transform(input_size=image_size, min_scale=0.4, gaussian_blur=gaussian_blur))


class CASS(PretrainMethod):
    """The CASS pretraining module: two timm encoders, each with a linear head of ``output_dim`` outputs.

    Args:
        cfg: CASS recipe (learning rate, weight decay, head width).
        backbones: timm names of the CNN and the ViT.
        image_size: side of the training images.
        seed: seed of the encoders' initialisation (shared with every other method in the cell).
    """

    def __init__(self, cfg: CassConfig, backbones: BackboneConfig, image_size: int, seed: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.cnn = build_encoder("cnn", backbones, image_size, seed)
        self.vit = build_encoder("vit", backbones, image_size, seed)
        self.cnn_head = nn.Linear(self.cnn.num_features, cfg.output_dim)
        self.vit_head = nn.Linear(self.vit.num_features, cfg.output_dim)
        self.transform = cass_transform(image_size, cfg.gaussian_blur)

    def encoders(self) -> dict[str, nn.Module]:
        return {"cnn": self.cnn, "vit": self.vit}

    def pretrain_loss(self, views: list[Tensor]) -> tuple[Tensor, Tensor]:
        x = views[0]
        cnn_out = self.cnn_head(self.cnn(x))
        vit_out = self.vit_head(self.vit(x))
        return cass_loss(cnn_out, vit_out), torch.cat([cnn_out, vit_out])

    def configure_optimizers(self) -> dict[str, object]:
        groups = [
            {"params": [*self.cnn.parameters(), *self.cnn_head.parameters()]},
            {"params": [*self.vit.parameters(), *self.vit_head.parameters()]},
        ]
        optimizer = torch.optim.Adam(groups, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        return {"optimizer": optimizer, "lr_scheduler": cosine_annealing(optimizer, self.trainer.estimated_stepping_batches)}
