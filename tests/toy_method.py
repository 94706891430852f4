"""A toy pretraining method, registered at run time by ``test_plugin_method.py``: one encoder pulled towards the
same features for two random crops of an image. It exists to show that a method is one module and one
registration: nothing else in the harness names it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn
from torchvision import transforms as T

from cass_bench.config.schema import BackboneConfig
from cass_bench.data.loaders import IMAGENET_NORMALIZE
from cass_bench.models.encoders import build_encoder
from cass_bench.errors import UserError
from cass_bench.methods.contract import PretrainMethod
from cass_bench.config.recipe import MethodRecipe
from cass_bench.config.registry import MethodSpec, PretrainSetup
from cass_bench.engine.trainer import Optimization


@dataclass(frozen=True)
class ToyConfig(MethodRecipe):
    """The toy recipe.

    Attributes:
        lr: Adam learning rate, cosine-annealed over the run.
        min_crop: smallest area fraction of a random crop.
    """

    lr: float = 1e-3
    min_crop: float = 0.5

    def validate(self) -> None:
        if self.lr <= 0:
            raise UserError(f"toy.lr must be > 0, got {self.lr}")


class TwoCrops:
    """Two random resized crops of one image, normalised."""

    def __init__(self, image_size: int, min_crop: float) -> None:
        self.view = T.Compose([T.RandomResizedCrop(image_size, scale=(min_crop, 1.0)), T.ToTensor(),
                               T.Normalize(**IMAGENET_NORMALIZE)])

    def __call__(self, image: Image.Image) -> list[Tensor]:
        return [self.view(image), self.view(image)]


class Toy(PretrainMethod):
    """One timm encoder; loss ``2 - 2 cos`` between its pooled features of two crops."""

    def __init__(self, cfg: ToyConfig, backbones: BackboneConfig, arch: str, image_size: int, seed: int,
                 init: str) -> None:
        super().__init__()
        self.cfg, self.arch = cfg, arch
        self.encoder = build_encoder(arch, backbones, image_size, seed, init=init)
        self.transform = TwoCrops(image_size, cfg.min_crop)

    def encoders(self) -> dict[str, nn.Module]:
        return {self.arch: self.encoder}

    def pretrain_loss(self, views: list[Tensor]) -> tuple[Tensor, Tensor]:
        a, b = self.encoder(views[0]), self.encoder(views[1])
        return (2 - 2 * F.cosine_similarity(a, b, dim=-1)).mean(), a

    def build_optimizer(self, total_steps: int) -> Optimization:
        return Optimization.cosine(torch.optim.Adam(self.encoder.parameters(), lr=self.cfg.lr), total_steps)


def builder(kind: type[Toy] = Toy, recipe: type[ToyConfig] = ToyConfig) -> Callable[[PretrainSetup], Toy]:
    """The build function of a toy-shaped method: ``kind`` on one encoder, with its recipe section ``recipe``."""
    def build(setup: PretrainSetup) -> Toy:
        (arch,) = setup.archs
        cfg = setup.cfg
        return kind(cfg.recipe(recipe), cfg.backbones, arch, cfg.image_size, setup.seed, setup.init)
    return build


METHOD = MethodSpec("toy", "toy: two crops, one encoder, cosine alignment", joint=False, build=builder(),
                    color="tab:olive", recipe=ToyConfig)
