"""BYOL: bootstrap your own latent, built from lightly's heads, loss, momentum utilities and transforms.

Grill et al., "Bootstrap your own latent" (arXiv 2006.07733). An online network (encoder, projection head,
predictor) predicts the projection an EMA target network gives of the other view; the symmetric negative cosine
similarity is minimised and no gradient flows into the target.
"""

from __future__ import annotations


import torch
from lightly.loss import NegativeCosineSimilarity
from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead
from lightly.models.utils import update_momentum
from lightly.transforms import BYOLTransform, BYOLView1Transform, BYOLView2Transform
from torch import Tensor, nn

from cass_bench.config.schema import BackboneConfig
from cass_bench.models.encoders import build_encoder
from cass_bench.methods.contract import PretrainMethod
from cass_bench.config.recipes import ByolConfig
from cass_bench.methods.parts import EncoderWithHead, blur_sigmas, ema_momentum, momentum_pair
from cass_bench.config.registry import PretrainSetup
from cass_bench.engine.trainer import Optimization


def byol_transform(cfg: ByolConfig, image_size: int) -> BYOLTransform:
    """lightly's two asymmetric BYOL views at ``image_size``, with blur sigmas scaled for small images."""
    sigmas = blur_sigmas(image_size)
    return BYOLTransform(
        view_1_transform=BYOLView1Transform(input_size=image_size, gaussian_blur=cfg.gaussian_blur[0], sigmas=sigmas),
        view_2_transform=BYOLView2Transform(input_size=image_size, gaussian_blur=cfg.gaussian_blur[1], sigmas=sigmas),
    )


class BYOL(PretrainMethod):
    """The BYOL pretraining module for one timm encoder.

    Batch norm in the heads is what keeps BYOL from collapsing, so the module asks for synchronised batch norm
    when trained on several devices.

    Args:
        cfg: BYOL recipe (head widths, SGD settings, EMA momentum, blur).
        backbones: timm names of the encoders.
        arch: the encoder this run trains (``cnn`` or ``vit``).
        image_size: side of the training images.
        seed: seed of the encoder initialisation.
        batch_size: per-device batch size; the learning rate is ``cfg.lr * batch_size / 128``.
        init: the encoder's starting weights (``random``, ``imagenet`` or a checkpoint path, see ``build_encoder``).
    """

    sync_batchnorm = True

    def __init__(
        self, cfg: ByolConfig, backbones: BackboneConfig, arch: str, image_size: int, seed: int, batch_size: int,
        init: str = "random",
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.arch = arch
        self.batch_size = batch_size

        def network() -> EncoderWithHead:
            backbone = build_encoder(arch, backbones, image_size, seed, init=init)
            return EncoderWithHead(backbone, self._projection(backbone.num_features))

        self.online, self.target = momentum_pair(network)
        self.predictor = BYOLPredictionHead(cfg.output_dim, cfg.hidden_dim, cfg.output_dim)
        self.criterion = NegativeCosineSimilarity()
        self.transform = byol_transform(cfg, image_size)

    def _projection(self, input_dim: int) -> BYOLProjectionHead:
        return BYOLProjectionHead(input_dim, self.cfg.hidden_dim, self.cfg.output_dim)

    def encoders(self) -> dict[str, nn.Module]:
        return {self.arch: self.online.backbone}

    def target_momentum(self) -> float:
        """EMA momentum of this step (cosine over the run, see :func:`ema_momentum`)."""
        return ema_momentum(self.cfg.momentum_start, self.cfg.momentum_end, self.progress)

    def pretrain_loss(self, views: list[Tensor]) -> tuple[Tensor, Tensor]:
        update_momentum(self.online, self.target, m=self.target_momentum())
        x0, x1 = views
        z0, z1 = self.online(x0), self.online(x1)
        p0, p1 = self.predictor(z0), self.predictor(z1)
        with torch.no_grad():
            t0, t1 = self.target(x0), self.target(x1)
        loss = 0.5 * (self.criterion(p0, t1) + self.criterion(p1, t0))
        return loss, z0

    def build_optimizer(self, total_steps: int) -> Optimization:
        """SGD on the online network and predictor at ``cfg.lr * batch_size / 128``, cosine over ``total_steps`` (after
        ``cfg.warmup_fraction`` of linear warm-up)."""
        optimizer = torch.optim.SGD(
            [*self.online.parameters(), *self.predictor.parameters()],
            lr=self.cfg.lr * self.batch_size / 128,
            momentum=self.cfg.momentum,
            weight_decay=self.cfg.weight_decay,
        )
        return Optimization.warmup_cosine(optimizer, total_steps, self.cfg.warmup_fraction)


def build(setup: PretrainSetup) -> BYOL:
    """The BYOL module of one pretraining run (``BUILTIN_METHODS`` names this function)."""
    (arch,) = setup.archs
    cfg = setup.cfg
    return BYOL(cfg.recipe(ByolConfig), cfg.backbones, arch, cfg.image_size, setup.seed, setup.batch_size, setup.init)
