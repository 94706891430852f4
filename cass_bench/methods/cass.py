"""CASS: a CNN and a ViT trained together by pulling their outputs for the same view together.

Singh, Sizikova & Cirrone, "CASS: Cross Architectural Self-Supervision for Medical Image Analysis"
(arXiv 2206.04170). One augmented view goes through both networks; the loss is ``2 - 2 * cos(a, b)`` between
their classifier outputs, averaged over the batch. There is no teacher, no EMA and no stop-gradient: both networks
receive gradients.

As the reference code runs it: both networks keep a classifier as the CASS output layer (with a pretrained start and
``cass.heads: start``, the start's own classifier: timm's 1000-class ImageNet head, or the ``fractal`` start's
source classifier; fine-tuning later replaces it), each network has its own Adam parameter group, the learning rate follows ``CosineAnnealingLR(T_max=16, eta_min=1e-6)`` stepped every batch (so it cycles),
and the augmentations are the reference's torchvision pipeline. The reference loop never zeroes gradients;
``cass.accumulate_gradients: true`` reproduces that, the default zeroes them every step.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision import transforms as T

from cass_bench.config.schema import BackboneConfig
from cass_bench.data.loaders import IMAGENET_NORMALIZE
from cass_bench.models.encoders import build_encoder
from cass_bench.errors import UserError
from cass_bench.methods.contract import PretrainMethod
from cass_bench.config.recipes import CassConfig
from cass_bench.config.registry import PretrainSetup
from cass_bench.engine.trainer import Optimization

def cass_loss(cnn_out: Tensor, vit_out: Tensor) -> Tensor:
    """``2 - 2 * cosine similarity`` of the two networks' outputs, batch mean."""
    return (2 - 2 * (F.normalize(cnn_out, dim=-1) * F.normalize(vit_out, dim=-1)).sum(dim=-1)).mean()


class SingleView:
    """Wraps a view transform so it returns a one-view list, like lightly's multi-view transforms."""

    def __init__(self, view: Callable[[Any], Tensor]) -> None:
        self.view = view

    def __call__(self, image: object) -> list[Tensor]:
        return [self.view(image)]


def reference_view(image_size: int) -> T.Compose:
    """The reference CASS augmentation of one PIL image, transform for transform.

    ``Resize((s, s))``; ``RandomApply([ColorJitter(0.2, 0.2, 0.2), RandomPerspective(distortion_scale=0.2)],
    p=0.3)``; ``RandomApply([ColorJitter(0.2, 0.2, 0.2), RandomAffine(degrees=10)], p=0.3)``;
    ``RandomVerticalFlip(p=0.3)``; ``RandomHorizontalFlip(p=0.3)``; ``ToTensor()``; ``Normalize`` (ImageNet).
    The reference writes ``RandomPerspective(distortion_scale=0.2)`` without ``p``, so its own default ``p=0.5``
    applies inside the ``RandomApply``: the perspective warp happens on 0.3 * 0.5 = 15% of the images.
    """
    return T.Compose([
        T.Resize((image_size, image_size)),
        T.RandomApply([T.ColorJitter(0.2, 0.2, 0.2), T.RandomPerspective(distortion_scale=0.2)], p=0.3),
        T.RandomApply([T.ColorJitter(0.2, 0.2, 0.2), T.RandomAffine(degrees=10)], p=0.3),
        T.RandomVerticalFlip(p=0.3),
        T.RandomHorizontalFlip(p=0.3),
        T.ToTensor(),
        T.Normalize(**IMAGENET_NORMALIZE),
    ])


def cass_transform(image_size: int) -> SingleView:
    """One augmented view per image: the reference pipeline (:func:`reference_view`)."""
    return SingleView(reference_view(image_size))


def split_classifier(model: nn.Module, image_size: int) -> nn.Module:
    """Takes the classifier off a timm model and returns it, so that ``head(model(x))`` gives the old logits.

    timm's ``reset_classifier(0)`` keeps everything ``forward_head`` does before the classifier (pooling, ViT
    ``fc_norm`` and ``head_drop``, ResNet dropout), so the model then returns pre-logits features and the returned
    module maps them to the same logits. This is checked on one seeded image in eval mode.

    Raises:
        UserError: the model's head does more after its classifier, so it cannot be split this way.
    """
    was_training = model.training
    model.eval()
    x = torch.randn(1, 3, image_size, image_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(x)
        head = model.get_classifier()
        model.reset_classifier(0)
        split = head(model(x))
    model.train(was_training)
    head.train(was_training)
    if split.shape != logits.shape or not torch.allclose(split, logits, rtol=1e-4, atol=1e-5):
        raise UserError(
            f"cannot use the classifier of '{type(model).__name__}' as the CASS head (its output differs once "
            "taken off the model); pick another timm backbone"
        )
    return head


class CASS(PretrainMethod):
    """The CASS pretraining module: two timm encoders, each followed by its classifier (see ``CassConfig.heads``).

    ``cnn``/``vit`` are the encoders (pooled features, what fine-tuning starts from); ``cnn_head``/``vit_head`` are
    their classifiers: the start's own with ``heads: start`` and a start that has them, seeded random linear layers
    of ``output_dim`` outputs otherwise.

    Args:
        cfg: CASS recipe (learning rate, weight decay, heads and their width, schedule, gradient accumulation).
        backbones: timm names of the CNN and the ViT.
        image_size: side of the training images.
        seed: seed of the encoders' initialisation (shared with every other method in the cell).
        init: ``random``, ``imagenet`` or a harness checkpoint path (``fractal`` resolved to the cached start's
            path; see :func:`build_encoder`).

    Raises:
        UserError: ``init: imagenet`` and ``heads: start`` with ``cfg.output_dim`` other than 1000.
    """

    def __init__(
        self, cfg: CassConfig, backbones: BackboneConfig, image_size: int, seed: int, init: str = "random"
    ) -> None:
        super().__init__()
        cfg.check_init(init)
        self.cfg = cfg
        keep = cfg.heads == "start"
        self.cnn = build_encoder("cnn", backbones, image_size, seed, init, cfg.output_dim, start_head=keep)
        self.vit = build_encoder("vit", backbones, image_size, seed, init, cfg.output_dim, start_head=keep)
        self.cnn_head = split_classifier(self.cnn, image_size)
        self.vit_head = split_classifier(self.vit, image_size)
        widths = {arch: _width(head) for arch, head in (("cnn", self.cnn_head), ("vit", self.vit_head))}
        if widths["cnn"] != widths["vit"]:
            raise UserError(f"the start's classifiers differ in width (cnn {widths['cnn']}, vit {widths['vit']}), so "
                            "CASS cannot compare their outputs; use cass.heads: fresh")
        self.transform = cass_transform(image_size)

    def encoders(self) -> dict[str, nn.Module]:
        return {"cnn": self.cnn, "vit": self.vit}

    def pretrain_loss(self, views: list[Tensor]) -> tuple[Tensor, Tensor]:
        x = views[0]
        cnn_out = self.cnn_head(self.cnn(x))
        vit_out = self.vit_head(self.vit(x))
        return cass_loss(cnn_out, vit_out), torch.cat([cnn_out, vit_out])

    def optimizer_zero_grad(self, epoch: int, batch_idx: int, optimizer: torch.optim.Optimizer) -> None:
        """Zeroes gradients, unless ``accumulate_gradients`` (the reference loop never zeroes them)."""
        if not self.cfg.accumulate_gradients:
            optimizer.zero_grad()

    def build_optimizer(self, total_steps: int) -> Optimization:
        """Adam with one parameter group per network; ``cfg.schedule`` (``reference`` ignores ``total_steps``)."""
        groups = [
            {"params": [*self.cnn.parameters(), *self.cnn_head.parameters()]},
            {"params": [*self.vit.parameters(), *self.vit_head.parameters()]},
        ]
        optimizer = torch.optim.Adam(groups, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        if self.cfg.schedule == "reference":
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
                optimizer, T_max=self.cfg.t_max, eta_min=self.cfg.eta_min
            )
            return Optimization(optimizer, scheduler).warmed(total_steps, self.cfg.warmup_fraction)
        return Optimization.warmup_cosine(optimizer, total_steps, self.cfg.warmup_fraction)


def _width(head: nn.Module) -> int:
    """Output width of a classifier (its last weight's rows)."""
    weights = [p for name, p in head.named_parameters() if name.endswith("weight")]
    return int(weights[-1].shape[0]) if weights else 0


def build(setup: PretrainSetup) -> CASS:
    """The CASS module of one pretraining run (``BUILTIN_METHODS`` names this function)."""
    cfg = setup.cfg
    return CASS(cfg.recipe(CassConfig), cfg.backbones, cfg.image_size, setup.seed, setup.init)
