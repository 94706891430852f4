"""Plain-PyTorch reference training steps of every registered method, written without the harness's method classes.

The harness exists to compare the cost of CASS with DINO and BYOL, so its Lightning machinery must not distort
that comparison. These loops are the yardstick: each method's step written the way one would write it by hand
(timm models from ``timm.create_model``, lightly's heads, losses and momentum utilities, a ``torch.optim``
optimiser, ``zero_grad`` every step unless CASS's ``accumulate_gradients`` says otherwise). Only dimensions,
the small-image-stem choice and optimiser/schedule settings are read from the harness config (each loop reads its
method's recipe, found by the recipe's class), so both sides train the same networks with the same recipe. Step
timing and its statistics come from ``benchmarks.timing``, shared with the harness.

Networks as the harness shapes them, built here by hand: a ResNet-like CNN gets the small-image stem (3x3
stride-1 ``conv1``, no max-pool) when ``backbones.uses_small_stem(image_size)``; CASS puts a linear classifier of
the CASS recipe's ``output_dim`` outputs on each pooled encoder output. Weights always start from a seeded random
initialisation (not necessarily the harness's values, nor ``init: imagenet``): time and FLOPs do not depend on
them, and the parity test loads the harness's weights into these loops before comparing steps.

A step is: zero the gradients, compute the loss of one batch of views, back-propagate, apply the method's
post-backward rule (DINO: last-layer freeze and gradient clipping), step the optimiser and its schedule (CASS:
its ``schedule``, ``reference`` = ``CosineAnnealingLR(T_max=t_max, eta_min=eta_min)`` stepped every
batch, ``cosine`` = one decay over ``total_steps``; DINO/BYOL: one cosine decay over ``total_steps``). The EMA
momentum of DINO and BYOL follows a cosine from its start to its end value over ``total_steps``; DINO's teacher
temperature warms up linearly over ``warmup_teacher_temp_epochs``, cut to end before a run of ``total_epochs`` does.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import timm
import torch
import torch.nn.functional as F
from lightly.loss import DINOLoss, NegativeCosineSimilarity
from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead, DINOProjectionHead
from lightly.models.utils import get_weight_decay_parameters, update_momentum
from lightly.utils.optim import update_param_groups
from lightly.utils.scheduler import CosineWarmupScheduler, cosine_schedule
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from cass_bench.methods.baselines.byol import ByolConfig
from cass_bench.methods.baselines.dino import DinoConfig
from benchmarks.timing import timed
from cass_bench.methods.cass import CassConfig
from cass_bench.config.schema import ARCHS, BackboneConfig, BenchConfig
from cass_bench.engine.flops import meta_copy, to_meta
from cass_bench.config.registry import get_method, parse_run_key

DEFAULT_TOTAL_STEPS = 1000


def timm_encoder(arch: str, backbones: BackboneConfig, image_size: int, seed: int) -> nn.Module:
    """A timm model with pooled output, built with the same name and keyword arguments as the harness config.

    A CNN with a ResNet stem (a ``Conv2d`` ``conv1`` and a ``maxpool``) gets the small-image stem when
    ``backbones.uses_small_stem(image_size)``: ``conv1`` becomes a 3x3 stride-1 convolution with the same channels
    and bias (Kaiming-normal fan-out, as timm initialises ResNets) and the max-pool is dropped.

    Args:
        arch: ``cnn`` or ``vit``.
        backbones: timm names, ViT patch size and small-image-stem choice.
        image_size: side of the training images (the ViT is built for it, with dynamic image size).
        seed: initialisation seed.
    """
    torch.manual_seed(seed)
    if arch == "cnn":
        model = timm.create_model(backbones.cnn, num_classes=0)
        if (backbones.uses_small_stem(image_size) and isinstance(getattr(model, "conv1", None), nn.Conv2d)
                and hasattr(model, "maxpool")):
            old = model.conv1
            model.conv1 = nn.Conv2d(old.in_channels, old.out_channels, kernel_size=3, stride=1, padding=1,
                                    bias=old.bias is not None)
            nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
            if model.conv1.bias is not None:
                nn.init.zeros_(model.conv1.bias)
            model.maxpool = nn.Identity()
        return model
    kwargs: dict[str, object] = {"img_size": image_size, "dynamic_img_size": True}
    if backbones.vit_patch_size is not None:
        kwargs["patch_size"] = backbones.vit_patch_size
    return timm.create_model(backbones.vit, num_classes=0, **kwargs)


def _with_head(backbone: nn.Module, head: nn.Module) -> nn.Sequential:
    """``head(backbone(x))``, with the submodules named ``backbone`` and ``head``."""
    return nn.Sequential(OrderedDict([("backbone", backbone), ("head", head)]))


def _frozen_copy_of(source: nn.Module, fresh: nn.Module) -> nn.Module:
    fresh.load_state_dict(source.state_dict())
    for p in fresh.parameters():
        p.requires_grad = False
    return fresh


class PlainMethod(nn.Module):
    """One method's networks, optimiser and training step.

    Subclasses build ``self.optimizer`` over their trainable parameters and implement :meth:`loss`.

    Attributes:
        steps_taken: optimiser steps taken so far (step-based schedules read it).
        epoch: the epoch the next step belongs to (epoch-based rules read it).
        total_steps, total_epochs: the run's length the schedules assume (epochs: None when unknown).
    """

    optimizer: torch.optim.Optimizer
    clip_norm: float | None = None
    zero_grads: bool = True

    def __init__(self, total_steps: int = DEFAULT_TOTAL_STEPS, total_epochs: int | None = None) -> None:
        super().__init__()
        self.total_steps, self.total_epochs = total_steps, total_epochs
        self.steps_taken = 0
        self.epoch = 0

    def _schedule(self, total_steps: int) -> None:
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=max(1, total_steps))

    def loss(self, views: Sequence[Tensor]) -> Tensor:
        """The loss of one batch of views."""
        raise NotImplementedError

    def after_backward(self) -> None:
        """Gradient rules applied between backward and the optimiser step (none by default)."""

    def train_step(self, views: Sequence[Tensor]) -> Tensor:
        """One full training step on a batch of views; returns the (detached) loss."""
        if self.zero_grads:
            self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(views)
        loss.backward()
        self.after_backward()
        if self.clip_norm is not None:
            params = [p for group in self.optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.clip_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.steps_taken += 1
        return loss.detach()

    def momentum(self, start: float, end: float) -> float:
        """EMA momentum of this step: cosine from ``start`` to ``end`` over ``total_steps``."""
        return cosine_schedule(self.steps_taken, self.total_steps, start, end)


class PlainCass(PlainMethod):
    """CASS: a CNN and a ViT, each with a linear classifier; loss ``2 - 2 cos`` between their outputs; Adam per network.

    The learning rate follows the recipe's ``schedule`` (``reference``: cycling ``CosineAnnealingLR(T_max=t_max,
    eta_min=eta_min)``, ``cosine``: one decay over ``total_steps``); its ``accumulate_gradients`` skips zeroing.
    """

    def __init__(self, cfg: BenchConfig, seed: int = 0, total_steps: int = DEFAULT_TOTAL_STEPS) -> None:
        super().__init__(total_steps)
        c = cfg.recipe(CassConfig)
        self.cnn = timm_encoder("cnn", cfg.backbones, cfg.image_size, seed)
        self.vit = timm_encoder("vit", cfg.backbones, cfg.image_size, seed)
        self.cnn_head = nn.Linear(self.cnn.num_features, c.output_dim)
        self.vit_head = nn.Linear(self.vit.num_features, c.output_dim)
        self.optimizer = torch.optim.Adam(
            [{"params": [*self.cnn.parameters(), *self.cnn_head.parameters()]},
             {"params": [*self.vit.parameters(), *self.vit_head.parameters()]}],
            lr=c.lr, weight_decay=c.weight_decay,
        )
        self.zero_grads = not c.accumulate_gradients
        if c.schedule == "reference":
            self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=c.t_max,
                                                                        eta_min=c.eta_min)
        elif c.schedule == "cosine":
            self._schedule(total_steps)
        else:
            raise ValueError(f"unknown schedule '{c.schedule}'; choose reference or cosine")

    def loss(self, views: Sequence[Tensor]) -> Tensor:
        x = views[0]
        a = F.normalize(self.cnn_head(self.cnn(x)), dim=-1)
        b = F.normalize(self.vit_head(self.vit(x)), dim=-1)
        return (2 - 2 * (a * b).sum(dim=-1)).mean()


class PlainDino(PlainMethod):
    """DINO on one encoder: student on every crop, EMA teacher on the two global crops, lightly's DINOLoss."""

    def __init__(self, cfg: BenchConfig, arch: str, seed: int = 0, total_steps: int = DEFAULT_TOTAL_STEPS,
                 total_epochs: int | None = None, batch_size: int = 16) -> None:
        super().__init__(total_steps, total_epochs)
        d = cfg.recipe(DinoConfig)
        self.cfg = d
        self.student = self._network(cfg, arch, seed)
        self.teacher = _frozen_copy_of(self.student, self._network(cfg, arch, seed))
        self.criterion = DINOLoss(d.output_dim, teacher_temp=d.teacher_temp, student_temp=d.student_temp)
        decayed, plain = get_weight_decay_parameters([self.student])
        params = [{"name": "weight_decay", "params": [p for p in decayed if p.requires_grad]},
                  {"name": "no_weight_decay", "params": [p for p in plain if p.requires_grad], "weight_decay": 0.0}]
        lr = d.lr * batch_size / d.lr_reference_batch if d.lr_reference_batch else d.lr
        if d.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=d.weight_decay)
        elif d.optimizer == "adamw":
            self.optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=d.weight_decay)
        else:
            self.optimizer = torch.optim.Adam(params, lr=lr, weight_decay=d.weight_decay)
        self.clip_norm = d.gradient_clip_val
        if d.warmup_fraction > 0:
            warmup = max(1, round(d.warmup_fraction * total_steps))
            self.scheduler = CosineWarmupScheduler(self.optimizer, warmup, max(total_steps, warmup + 1), end_value=0.0)
        else:
            self._schedule(total_steps)

    def _network(self, cfg: BenchConfig, arch: str, seed: int) -> nn.Sequential:
        d = cfg.recipe(DinoConfig)
        backbone = timm_encoder(arch, cfg.backbones, cfg.image_size, seed)
        head = DINOProjectionHead(backbone.num_features, d.hidden_dim, d.bottleneck_dim, d.output_dim,
                                  batch_norm=d.batch_norm, freeze_last_layer=d.freeze_last_layer,
                                  norm_last_layer=d.norm_last_layer)
        return _with_head(backbone, head)

    def teacher_temp(self) -> float:
        """The teacher temperature of this epoch: linear warm-up, ending by the run's last epoch at the latest."""
        d = self.cfg
        warmup = d.warmup_teacher_temp_epochs
        if self.total_epochs is not None:
            warmup = min(warmup, self.total_epochs - 1)
        if self.epoch >= warmup:
            return d.teacher_temp
        return d.warmup_teacher_temp + (d.teacher_temp - d.warmup_teacher_temp) * self.epoch / max(1, warmup - 1)

    def loss(self, views: Sequence[Tensor]) -> Tensor:
        decay = cosine_schedule(self.steps_taken, self.total_steps, self.cfg.weight_decay, self.cfg.weight_decay_end)
        update_param_groups(self.optimizer, updates=[{"name": "weight_decay", "weight_decay": decay}])
        update_momentum(self.student, self.teacher, m=self.momentum(self.cfg.momentum_start, self.cfg.momentum_end))
        globals_, locals_ = list(views[:2]), list(views[2:])
        with torch.no_grad():
            teacher_out = list(self.teacher(torch.cat(globals_)).chunk(2))
        student_out = list(self.student(torch.cat(globals_)).chunk(2))
        if locals_:
            student_out += list(self.student(torch.cat(locals_)).chunk(len(locals_)))
        return self.criterion(teacher_out, student_out, teacher_temp=self.teacher_temp())

    def after_backward(self) -> None:
        self.student.head.cancel_last_layer_gradients(current_epoch=self.epoch)


class PlainByol(PlainMethod):
    """BYOL on one encoder: online network and predictor, EMA target, symmetric negative cosine, SGD."""

    def __init__(self, cfg: BenchConfig, arch: str, seed: int = 0, batch_size: int = 16,
                 total_steps: int = DEFAULT_TOTAL_STEPS) -> None:
        super().__init__(total_steps)
        b = cfg.recipe(ByolConfig)
        self.cfg = b
        self.online = self._network(cfg, arch, seed)
        self.target = _frozen_copy_of(self.online, self._network(cfg, arch, seed))
        self.predictor = BYOLPredictionHead(b.output_dim, b.hidden_dim, b.output_dim)
        self.criterion = NegativeCosineSimilarity()
        self.optimizer = torch.optim.SGD(
            [*self.online.parameters(), *self.predictor.parameters()],
            lr=b.lr * batch_size / 128, momentum=b.momentum, weight_decay=b.weight_decay,
        )
        self._schedule(total_steps)

    def _network(self, cfg: BenchConfig, arch: str, seed: int) -> nn.Sequential:
        backbone = timm_encoder(arch, cfg.backbones, cfg.image_size, seed)
        return _with_head(backbone, BYOLProjectionHead(backbone.num_features, self.cfg.hidden_dim,
                                                       self.cfg.output_dim))

    def loss(self, views: Sequence[Tensor]) -> Tensor:
        update_momentum(self.online, self.target, m=self.momentum(self.cfg.momentum_start, self.cfg.momentum_end))
        x0, x1 = views
        p0, p1 = self.predictor(self.online(x0)), self.predictor(self.online(x1))
        with torch.no_grad():
            t0, t1 = self.target(x0), self.target(x1)
        return 0.5 * (self.criterion(p0, t1) + self.criterion(p1, t0))


def build_plain(key: str, cfg: BenchConfig, seed: int = 0, batch_size: int = 16,
                total_steps: int = DEFAULT_TOTAL_STEPS, total_epochs: int | None = None) -> PlainMethod:
    """Builds the plain reference loop of a run key.

    Args:
        key: a run key (see ``cass_bench.config.registry.run_keys``); the loop is the one
            written for the method's recipe class.
        cfg: the harness config the dimensions and optimiser settings come from.
        seed: initialisation seed.
        batch_size: batch size (BYOL scales its learning rate by it).
        total_steps: length of the cosine learning-rate and momentum schedules (not used by CASS's ``reference``
            learning-rate schedule).
        total_epochs: epochs of the run (DINO's temperature warm-up ends by the last one); None: unknown.

    Raises:
        ValueError: the method has no plain loop.
    """
    method, archs = parse_run_key(key, ARCHS)
    recipe = get_method(method).recipe
    if recipe is CassConfig:
        return PlainCass(cfg, seed, total_steps)
    (arch,) = archs
    if recipe is DinoConfig:
        return PlainDino(cfg, arch, seed, total_steps, total_epochs, batch_size)
    if recipe is ByolConfig:
        return PlainByol(cfg, arch, seed, batch_size, total_steps)
    raise ValueError(f"no plain loop for '{key}'; write one for its recipe {recipe}")


def time_epoch(method: PlainMethod, batches: Sequence[Sequence[Tensor]], epoch: int = 0) -> list[float]:
    """Trains one pass over a fixed list of view batches; returns the seconds of every step.

    ``torch`` thread settings are left as they are; CUDA is synchronised around each step.

    Args:
        method: the plain loop (on the device the batches are on).
        batches: batches of views, each a list of ``(B, 3, H, W)`` tensors.
        epoch: the epoch number (DINO's teacher-temperature warm-up and last-layer freeze depend on it).
    """
    method.train()
    method.epoch = epoch
    return [timed(lambda views=views: method.train_step(views)) for views in batches]


def count_flops(method: PlainMethod, views: Sequence[Tensor]) -> int:
    """FLOPs of one training step's forward and backward, counted by ``FlopCounterMode`` on a meta-device copy.

    The optimiser's work is element-wise and not counted by FlopCounterMode, so the count equals forward plus
    backward. On the meta device attention takes the composite path, whose matrix products are counted (CPU's
    fused attention kernel has no FLOP formula); the loop itself is left untouched.

    Args:
        method: the plain loop.
        views: one batch of views.
    """
    method.train()
    copied = meta_copy(method)
    with FlopCounterMode(display=False) as counter:
        copied.loss(to_meta(list(views))).backward()
    return int(counter.get_total_flops())
