"""CASS: the loss, gradients reaching both networks, and no gradient carried between steps."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from cass_bench.cass import CASS, cass_loss
from cass_bench.config import BackboneConfig, CassConfig

BACKBONES = BackboneConfig(cnn="resnet18", vit="vit_tiny_patch16_224", vit_patch_size=8)


def _cass() -> CASS:
    return CASS(CassConfig(output_dim=64), BACKBONES, image_size=32, seed=0)


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
    """Keeps the weights and batch before each step and the gradients the optimiser receives."""

    def __init__(self) -> None:
        self.states: list[dict[str, torch.Tensor]] = []
        self.batches: list[torch.Tensor] = []
        self.grads: list[dict[str, torch.Tensor]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        self.states.append({k: v.clone() for k, v in pl_module.state_dict().items()})
        self.batches.append(batch[0][0].clone())

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:  # type: ignore[no-untyped-def]
        self.grads.append({n: p.grad.clone() for n, p in pl_module.named_parameters() if p.grad is not None})


def test_no_gradient_carried_from_one_step_to_the_next() -> None:
    torch.manual_seed(0)
    images = torch.randn(8, 3, 32, 32)
    loader = DataLoader(TensorDataset(images, torch.zeros(8)), batch_size=4, collate_fn=lambda b: ([torch.stack([x for x, _ in b])], None))
    model, recorder = _cass(), _GradRecorder()
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[recorder])
    trainer.fit(model, loader)
    assert len(recorder.grads) == 2
    fresh = _cass()
    fresh.load_state_dict(recorder.states[1])
    fresh.train()
    fresh.pretrain_loss([recorder.batches[1]])[0].backward()
    for name, param in fresh.named_parameters():
        if name.startswith("cnn.") and param.grad is not None:
            assert torch.allclose(recorder.grads[1][name], param.grad, atol=1e-5, rtol=1e-4), name
    differs = any(not torch.allclose(recorder.grads[0][n], recorder.grads[1][n]) for n in recorder.grads[1])
    assert differs
