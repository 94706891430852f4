"""DINO and BYOL: momentum networks, multi-crop, centring, learning, the collapse signal and a Lightning fit."""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import pytest
import pytorch_lightning as pl
import torch
from PIL import Image
from torch import Tensor

from cass_bench.methods.baselines.byol import BYOL, ByolConfig
from cass_bench.methods.baselines.dino import DINO, DinoConfig, local_crop_size, teacher_temperature
from cass_bench.methods.cass import CASS, CassConfig
from cass_bench.config.schema import BackboneConfig, BenchConfig
from cass_bench.data.embedded import embedded
from cass_bench.data.loaders import make_loader
from cass_bench.methods.contract import PretrainMethod
from cass_bench.engine.trainer import Progress, pretrain_trainer

BACKBONES = BackboneConfig(cnn="test_resnet", vit="test_vit", vit_patch_size=8)
SIZE = 16
BATCH = 8
DINO_CFG = DinoConfig(hidden_dim=64, bottleneck_dim=16, output_dim=128, n_local_views=2, momentum_start=0.9)
BYOL_CFG = ByolConfig(hidden_dim=64, output_dim=32, momentum_start=0.9)


def _dino(arch: str = "cnn", cfg: DinoConfig = DINO_CFG, size: int = SIZE) -> DINO:
    return DINO(cfg, BACKBONES, arch, size, seed=0)


def _byol(arch: str = "cnn", size: int = SIZE) -> BYOL:
    return BYOL(BYOL_CFG, BACKBONES, arch, size, seed=0, batch_size=BATCH)


def _images(size: int = SIZE) -> list[Image.Image]:
    images = embedded(image_size=size, split_seed=0).train.images
    return [images.load(i) for i in range(BATCH)]


def _views(transform: Callable[[Image.Image], list[Tensor]], size: int = SIZE) -> list[Tensor]:
    """One batch: the transform applied to each image, stacked view by view."""
    per_image = [transform(image) for image in _images(size)]
    return [torch.stack(views) for views in zip(*per_image)]


def _params(module: torch.nn.Module) -> dict[str, Tensor]:
    return {name: p.detach().clone() for name, p in module.named_parameters()}


@pytest.mark.parametrize("arch", ["cnn", "vit"])
def test_dino_teacher_starts_as_student_copy_and_gets_no_gradients(arch: str) -> None:
    model = _dino(arch)
    student, teacher = model.student.state_dict(), model.teacher.state_dict()
    assert student.keys() == teacher.keys()
    assert all(torch.equal(student[k], teacher[k]) for k in student)
    assert all(not p.requires_grad for p in model.teacher.parameters())
    loss, _ = model.pretrain_loss(_views(model.transform))
    loss.backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.student.backbone.parameters())


def test_dino_teacher_moves_only_by_ema_of_the_student() -> None:
    pl.seed_everything(0, verbose=False)
    model = _dino()
    views = _views(model.transform)
    optimizer = torch.optim.Adam([p for p in model.student.parameters() if p.requires_grad], lr=1e-2)
    loss, _ = model.pretrain_loss(views)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    old_teacher, new_student = _params(model.teacher), _params(model.student)
    model.pretrain_loss(views)
    m = DINO_CFG.momentum_start
    moved = False
    for name, param in model.teacher.named_parameters():
        expected = m * old_teacher[name] + (1 - m) * new_student[name]
        assert torch.allclose(param, expected, atol=1e-6), name
        moved |= not torch.equal(param, old_teacher[name])
    assert moved


def test_dino_schedules_take_the_step_and_epoch_explicitly() -> None:
    cfg = dataclasses.replace(DINO_CFG, momentum_start=0.9, momentum_end=1.0, warmup_teacher_temp=0.02,
                              teacher_temp=0.06, warmup_teacher_temp_epochs=10)
    model = _dino(cfg=cfg)
    assert model.teacher_momentum() == 0.9
    for step, expected in ((0, 0.9), (5, 0.95), (10, 1.0)):
        model.progress = Progress(step=step, total_steps=11)
        assert model.teacher_momentum() == pytest.approx(expected)
    temps = []
    for epoch in range(4):
        model.progress = Progress(epoch=epoch, total_epochs=4)
        temps.append(model.teacher_temperature())
    assert temps == pytest.approx([0.02, 0.04, 0.06, 0.06])
    assert teacher_temperature(cfg, 4, 100) == pytest.approx(0.02 + 0.04 * 4 / 9)
    assert teacher_temperature(cfg, 4, None) == pytest.approx(0.02 + 0.04 * 4 / 9)


def test_dino_centre_changes_after_a_step() -> None:
    model = _dino()
    before = model.criterion.center.clone()
    assert "criterion.center" in model.state_dict()
    model.pretrain_loss(_views(model.transform))
    assert not torch.allclose(model.criterion.center, before)


@pytest.mark.parametrize("arch", ["cnn", "vit"])
def test_dino_student_sees_global_and_local_crops_teacher_only_global(arch: str) -> None:
    size = 32
    model = _dino(arch, size=size)
    local = round(size * DINO_CFG.local_crop_fraction)
    views = model.transform(_images(size)[0])
    assert [tuple(v.shape) for v in views] == [(3, size, size)] * 2 + [(3, local, local)] * DINO_CFG.n_local_views
    seen: dict[str, list[tuple[int, ...]]] = {"student": [], "teacher": []}
    for role in seen:
        getattr(model, role).backbone.register_forward_hook(
            lambda _m, args, _out, role=role: seen[role].append(tuple(args[0].shape)))
    model.pretrain_loss(_views(model.transform, size))
    n_local = DINO_CFG.n_local_views
    assert seen["student"] == [(2 * BATCH, 3, size, size), (n_local * BATCH, 3, local, local)]
    assert seen["teacher"] == [(2 * BATCH, 3, size, size)]


def test_vit_local_crops_are_whole_patches() -> None:
    cfg = dataclasses.replace(DINO_CFG, local_crop_fraction=0.4)
    assert local_crop_size(cfg, 32, _dino("cnn", cfg, 32).student.backbone) == 13
    vit = _dino("vit", cfg, 32)
    assert local_crop_size(cfg, 32, vit.student.backbone) == 16
    assert vit.transform(_images(32)[0])[-1].shape[-1] == 16


@pytest.mark.parametrize("method", ["dino", "byol", "cass"])
def test_a_few_steps_on_one_batch_lower_the_loss(method: str) -> None:
    pl.seed_everything(0, verbose=False)
    builders: dict[str, Callable[[], PretrainMethod]] = {
        "dino": lambda: _dino(cfg=dataclasses.replace(DINO_CFG, freeze_last_layer=0)),
        "byol": _byol,
        "cass": lambda: CASS(CassConfig(output_dim=32), BACKBONES, SIZE, seed=0),
    }
    model = builders[method]()
    views = _views(model.transform)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for _ in range(8):
        loss, _ = model.pretrain_loss(views)
        optimizer.zero_grad()
        loss.backward()
        model.on_after_backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.1, losses


def _collapse(model: PretrainMethod) -> None:
    """Makes the compared outputs constant: the head's last linear layer outputs its bias only."""
    head = model.student.head if isinstance(model, DINO) else model.online.head
    last = head.layers[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(1.0)


@pytest.mark.parametrize("method", ["dino", "byol"])
def test_embedding_spread_falls_to_zero_on_a_collapsed_model(method: str) -> None:
    spreads = {}
    for state in ("healthy", "collapsed"):
        model = _dino() if method == "dino" else _byol()
        if state == "collapsed":
            _collapse(model)
        model.training_step((_views(model.transform), torch.zeros(BATCH)), 0)
        model.on_train_epoch_end()
        spreads[state] = model.embedding_std_history[-1] * math.sqrt(model.embedding_dim)
    assert spreads["healthy"] > 0.3, spreads
    assert spreads["collapsed"] < 1e-3, spreads


class _GradNorms(pl.Callback):
    """The norm of every step's gradients as the optimiser's parameters hold them before clipping."""

    def __init__(self) -> None:
        self.norms: list[float] = []

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                                 optimizer: torch.optim.Optimizer) -> None:
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        self.norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))


def _fit(model: PretrainMethod, size: int, batches: int, callbacks: list[pl.Callback] = ()) -> pl.Trainer:
    """One epoch of ``batches`` steps through the harness's pretraining Trainer."""
    images = embedded(image_size=size, split_seed=0).train.subset(range(batches * BATCH))
    loader = make_loader(images, model.transform, BATCH, True, 0, drop_last=True)
    trainer = pretrain_trainer(model, BenchConfig(accelerator="cpu"), 1, list(callbacks))
    trainer.fit(model, loader)
    return trainer


def test_gradient_clipping_bounds_the_gradient_norm_of_a_step() -> None:
    """With SGD (no momentum history yet, no weight decay) the first step moves the weights by lr x the clipped
    gradient, so the step's length shows the gradient norm the optimiser used."""
    clip, lr = 1e-3, 1.0
    cfg = dataclasses.replace(DINO_CFG, optimizer="sgd", lr=lr, weight_decay=0.0, weight_decay_end=0.0,
                              gradient_clip_val=clip, freeze_last_layer=0, warmup_fraction=0.0)
    model = _dino(cfg=cfg)
    before = _params(model.student)
    norms = _GradNorms()
    _fit(model, SIZE, 1, [norms])
    moved = torch.cat([(before[n] - p.detach()).flatten() for n, p in model.student.named_parameters()
                       if p.requires_grad])
    assert norms.norms[0] > 10 * clip
    assert float(moved.norm()) / lr == pytest.approx(clip, rel=1e-3)


@pytest.mark.parametrize("method,arch", [("dino", "cnn"), ("dino", "vit"), ("byol", "cnn"), ("byol", "vit")])
def test_fits_through_lightning(method: str, arch: str) -> None:
    size = 32
    model = _dino(arch, size=size) if method == "dino" else _byol(arch, size=size)
    trainer = _fit(model, size, 2)
    assert trainer.global_step == 2
    assert model.progress == Progress(step=1, total_steps=2, epoch=0, total_epochs=1)
    assert len(model.embedding_std_history) == 1 and model.embedding_std_history[0] > 0
    if method == "byol":
        assert trainer.optimizers[0].param_groups[0]["initial_lr"] == pytest.approx(BYOL_CFG.lr * BATCH / 128)
    encoders = model.encoders()
    assert list(encoders) == [arch]
    encoder = encoders[arch].eval()
    with torch.no_grad():
        assert encoder(torch.randn(2, 3, size, size)).shape == (2, encoder.num_features)
