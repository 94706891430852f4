"""CASS: the loss, ImageNet classifier heads, the reference augmentations and schedule, gradient accumulation."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import timm
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchvision import transforms as T

from cass_bench.methods.cass import CASS, CassConfig, cass_loss
from cass_bench.config.schema import BackboneConfig
from cass_bench.data.loaders import IMAGENET_NORMALIZE
from cass_bench.models.encoders import build_encoder
from cass_bench.errors import UserError
from tests.test_encoders import CNN, VIT, write_imagenet_weights

BACKBONES = BackboneConfig(cnn="resnet18", vit="vit_tiny_patch16_224", vit_patch_size=8)


def _cass(**cfg: object) -> CASS:
    return CASS(CassConfig(output_dim=64, **cfg), BACKBONES, image_size=32, seed=0)  # type: ignore[arg-type]


def test_loss_matches_independent_cosine() -> None:
    a, b = torch.randn(8, 100), torch.randn(8, 100)
    expected = torch.stack([2 - 2 * torch.dot(x, y) / (x.norm() * y.norm()) for x, y in zip(a, b)]).mean()
    assert torch.allclose(cass_loss(a, b), expected, atol=1e-6)
    assert torch.allclose(cass_loss(a, a), torch.tensor(0.0), atol=1e-6)
    assert torch.allclose(cass_loss(a, -a), torch.tensor(4.0), atol=1e-6)
    assert torch.allclose(cass_loss(a, b), (2 - 2 * F.cosine_similarity(a, b)).mean(), atol=1e-6)


def test_gradients_reach_both_networks_and_heads() -> None:
    model = _cass()
    loss, outputs = model.pretrain_loss([torch.randn(4, 3, 32, 32)])
    loss.backward()
    assert outputs.shape == (8, 64)
    for name, part in {"cnn": model.cnn, "vit": model.vit, "cnn_head": model.cnn_head, "vit_head": model.vit_head}.items():
        grads = [p.grad for p in part.parameters() if p.requires_grad]
        assert grads and all(g is not None for g in grads), name
        assert sum(float(g.abs().sum()) for g in grads) > 0, name


def test_encoders_are_timm_models_with_pooled_output() -> None:
    model = _cass()
    encoders = model.encoders()
    assert set(encoders) == {"cnn", "vit"}
    for encoder in encoders.values():
        assert encoder(torch.randn(2, 3, 32, 32)).shape == (2, encoder.num_features)


class _GradRecorder(pl.Callback):
    """Keeps the weights and batch before each step, the gradients the optimiser receives and its learning rates."""

    def __init__(self) -> None:
        self.states: list[dict[str, torch.Tensor]] = []
        self.batches: list[torch.Tensor] = []
        self.grads: list[dict[str, torch.Tensor]] = []
        self.lrs: list[list[float]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        self.states.append({k: v.clone() for k, v in pl_module.state_dict().items()})
        self.batches.append(batch[0][0].clone())

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:  # type: ignore[no-untyped-def]
        self.grads.append({n: p.grad.clone() for n, p in pl_module.named_parameters() if p.grad is not None})
        self.lrs.append([group["lr"] for group in optimizer.param_groups])


def _fit_two_steps(model: CASS) -> _GradRecorder:
    torch.manual_seed(0)
    images = torch.randn(4, 3, 32, 32)
    loader = DataLoader(TensorDataset(images, torch.zeros(4)), batch_size=2,
                        collate_fn=lambda b: ([torch.stack([x for x, _ in b])], None))
    recorder = _GradRecorder()
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[recorder])
    trainer.fit(model, loader)
    assert len(recorder.grads) == 2
    return recorder


def _grads_at(state: dict[str, torch.Tensor], batch: torch.Tensor, **cfg: object) -> dict[str, torch.Tensor]:
    """The gradients of one batch's loss from the given weights, computed outside Lightning."""
    fresh = _cass(**cfg)
    fresh.load_state_dict(state)
    fresh.train()
    params = dict(fresh.named_parameters())
    grads = torch.autograd.grad(fresh.pretrain_loss([batch])[0], list(params.values()), allow_unused=True)
    return {n: g for n, g in zip(params, grads) if g is not None}


def _close(a: torch.Tensor, b: torch.Tensor, rel: float = 1e-4) -> bool:
    """Equal up to float noise, relative to the tensor's scale (gradients here can be ~1e-6)."""
    return float((a - b).norm()) <= rel * float(b.norm()) + 1e-12


def test_no_gradient_carried_from_one_step_to_the_next() -> None:
    recorder = _fit_two_steps(_cass())
    by_hand = _grads_at(recorder.states[1], recorder.batches[1])
    assert by_hand.keys() == recorder.grads[1].keys()
    for name, grad in by_hand.items():
        assert _close(recorder.grads[1][name], grad), name
    assert any(not _close(recorder.grads[0][n], recorder.grads[1][n], 1e-2) for n in recorder.grads[1])


def test_accumulated_gradients_sum_over_steps_and_adam_uses_the_sum() -> None:
    """``accumulate_gradients``: the second step's gradient is the sum of both steps', as in the reference loop."""
    model = _cass(accumulate_gradients=True)
    recorder = _fit_two_steps(model)
    first = _grads_at(recorder.states[0], recorder.batches[0], accumulate_gradients=True)
    second = _grads_at(recorder.states[1], recorder.batches[1], accumulate_gradients=True)
    assert first.keys() == second.keys() == recorder.grads[1].keys()
    for name in first:
        assert _close(recorder.grads[0][name], first[name]), name
        assert _close(recorder.grads[1][name], first[name] + second[name]), name
    assert all(not _close(recorder.grads[1][n], second[n], 1e-2) for n in first if float(first[n].norm()) > 0)
    # the reference schedule is stepped every batch: lr of step 2 is CosineAnnealingLR's value after one step
    cfg = model.cfg
    lr1 = cfg.eta_min + (cfg.lr - cfg.eta_min) * (1 + math.cos(math.pi / cfg.t_max)) / 2
    assert recorder.lrs[0] == [cfg.lr, cfg.lr]
    assert recorder.lrs[1] == pytest.approx([lr1, lr1], rel=1e-9)
    # two hand-written Adam steps on the gradients the optimiser received land on the trained weights
    b1, b2, eps = 0.9, 0.999, 1e-8
    final = dict(model.named_parameters())

    def flat(tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([tensors[n].detach().reshape(-1).double() for n in first])

    p0, g1, g2 = flat(recorder.states[0]), flat(recorder.grads[0]), flat(recorder.grads[1])
    m, v = (1 - b1) * g1, (1 - b2) * g1 ** 2
    p1 = p0 - cfg.lr / (1 - b1) * m / ((v / (1 - b2)).sqrt() + eps)
    assert torch.allclose(p1, flat(recorder.states[1]), atol=1e-6, rtol=0)
    m, v = b1 * m + (1 - b1) * g2, b2 * v + (1 - b2) * g2 ** 2
    p2 = p1 - lr1 / (1 - b1 ** 2) * m / ((v / (1 - b2 ** 2)).sqrt() + eps)
    assert torch.allclose(p2, flat(final), atol=1e-6, rtol=0)


def test_reference_schedule_cycles_every_batch() -> None:
    model = _cass()
    optimization = model.build_optimizer(total_steps=1000)
    optimizer, scheduler = optimization.optimizer, optimization.scheduler
    assert optimization.lightning()["lr_scheduler"]["interval"] == "step"
    assert isinstance(scheduler, torch.optim.lr_scheduler.CosineAnnealingLR)
    assert len(optimizer.param_groups) == 2
    lrs = []
    for _ in range(32):
        optimizer.step()
        scheduler.step()
        lrs.append([group["lr"] for group in optimizer.param_groups])
    cfg = model.cfg
    assert (cfg.schedule, cfg.t_max, cfg.eta_min, cfg.lr) == ("reference", 16, 1e-6, 1e-3)
    assert lrs[7] == pytest.approx([(cfg.lr + cfg.eta_min) / 2] * 2, rel=1e-6)
    assert lrs[15] == pytest.approx([cfg.eta_min] * 2, rel=1e-6)
    assert lrs[31] == pytest.approx([cfg.lr] * 2, rel=1e-6)


def test_reference_augmentations() -> None:
    view = _cass().transform.view
    steps = view.transforms
    assert [type(t) for t in steps] == [T.Resize, T.RandomApply, T.RandomApply, T.RandomVerticalFlip,
                                        T.RandomHorizontalFlip, T.ToTensor, T.Normalize]
    assert steps[0].size == (32, 32)
    for apply, geometric in ((steps[1], T.RandomPerspective), (steps[2], T.RandomAffine)):
        assert apply.p == 0.3
        assert [type(t) for t in apply.transforms] == [T.ColorJitter, geometric]
        jitter = apply.transforms[0]
        for factor in (jitter.brightness, jitter.contrast, jitter.saturation):
            assert factor == pytest.approx((0.8, 1.2))
        assert jitter.hue is None
    perspective = steps[1].transforms[1]
    assert perspective.distortion_scale == 0.2 and perspective.p == 0.5
    affine = steps[2].transforms[1]
    assert affine.degrees == [-10.0, 10.0] and affine.translate is None and affine.scale is None
    assert affine.shear is None
    assert steps[3].p == 0.3 and steps[4].p == 0.3
    assert steps[6].mean == IMAGENET_NORMALIZE["mean"] and steps[6].std == IMAGENET_NORMALIZE["std"]

    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8))
    plain = T.Compose([T.Resize((32, 32)), T.ToTensor(), T.Normalize(**IMAGENET_NORMALIZE)])(image)
    outputs = []
    for seed in range(40):
        torch.manual_seed(seed)
        views = _cass().transform(image) if seed == 0 else [view(image)]
        assert len(views) == 1 and views[0].shape == (3, 32, 32) and views[0].dtype == torch.float32
        outputs.append(views[0])
    # with no random step firing (about 0.7 ** 4 of the draws) the view is the resized, normalised image
    assert any(torch.allclose(out, plain) for out in outputs)
    assert any(not torch.allclose(out, plain) for out in outputs)


def test_cass_encoders_are_the_shared_seeded_encoders() -> None:
    model = _cass()
    for arch, encoder in model.encoders().items():
        plain = build_encoder(arch, BACKBONES, 32, seed=0)
        assert encoder.state_dict().keys() == plain.state_dict().keys(), arch
        assert all(torch.equal(v, plain.state_dict()[k]) for k, v in encoder.state_dict().items()), arch
        plain.load_state_dict(encoder.state_dict())  # what fine-tuning does with a CASS checkpoint
    assert model.cnn.conv1.kernel_size == (3, 3)  # the small-image stem at 32 px
    assert isinstance(model.cnn_head, nn.Linear) and model.cnn_head.out_features == 64


@pytest.fixture(scope="module")
def imagenet_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, torch.Tensor]]]:
    folder = tmp_path_factory.mktemp("imagenet")
    return folder, write_imagenet_weights(folder)


def test_imagenet_init_uses_timms_classifiers_as_the_cass_heads(imagenet_dir) -> None:  # type: ignore[no-untyped-def]
    folder, saved = imagenet_dir
    backbones = dataclasses.replace(BACKBONES, weights_dir=str(folder), small_input_stem="false")
    model = CASS(CassConfig(), backbones, image_size=32, seed=0, init="imagenet").eval()
    torch.manual_seed(1)
    x = torch.randn(3, 3, 32, 32)
    # the CNN: the seeded model the weights came from gives the same logits
    torch.manual_seed(123)
    source_cnn = timm.create_model(CNN, num_classes=1000).eval()
    # the ViT: timm's own load of the file at the built size (patch and position embeddings resampled)
    timm_vit = timm.create_model(VIT, pretrained=True, num_classes=1000, img_size=32, patch_size=8,
                                 dynamic_img_size=True,
                                 pretrained_cfg_overlay={"file": str(folder / f"{VIT}.safetensors"),
                                                         "custom_load": False}).eval()
    with torch.no_grad():
        assert torch.allclose(model.cnn_head(model.cnn(x)), source_cnn(x), atol=1e-5, rtol=1e-4)
        assert torch.allclose(model.vit_head(model.vit(x)), timm_vit(x), atol=1e-5, rtol=1e-4)
        loss, outputs = model.pretrain_loss([x])
    assert outputs.shape == (6, 1000)
    assert torch.equal(model.cnn_head.weight, saved[CNN]["fc.weight"])
    assert torch.equal(model.cnn_head.bias, saved[CNN]["fc.bias"])
    assert torch.equal(model.vit_head.weight, saved[VIT]["head.weight"])
    assert torch.equal(model.vit_head.bias, saved[VIT]["head.bias"])
    assert model.cnn(x).shape == (3, 512) and model.vit(x).shape == (3, 192)  # encoders give pooled features
    assert "fc.weight" not in model.cnn.state_dict() and "head.weight" not in model.vit.state_dict()


def test_imagenet_init_needs_the_imagenet_head_width(imagenet_dir) -> None:  # type: ignore[no-untyped-def]
    folder, _ = imagenet_dir
    backbones = dataclasses.replace(BACKBONES, weights_dir=str(folder))
    with pytest.raises(UserError, match="output_dim: 1000"):
        CASS(CassConfig(output_dim=64), backbones, image_size=32, seed=0, init="imagenet")


def test_imagenet_init_without_the_file_names_it(tmp_path: Path) -> None:
    backbones = dataclasses.replace(BACKBONES, weights_dir=str(tmp_path))
    with pytest.raises(UserError, match=str(tmp_path / "resnet18.safetensors")):
        CASS(CassConfig(), backbones, image_size=32, seed=0, init="imagenet")
