"""The shared fine-tuning stage: step budget, zero-initialised head, focal loss, class weights and metrics."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score
from torchvision.ops import sigmoid_focal_loss

from cass_bench.data.splits import class_weights
from cass_bench.models.encoders import build_encoder
from cass_bench.evaluation.finetune import compute_metrics, finetune, selection_subset, weighted_focal_loss


def test_focal_loss_matches_torchvision_with_weights() -> None:
    torch.manual_seed(0)
    logits, targets = torch.randn(6, 4), torch.randint(0, 2, (6, 4)).float()
    weights = torch.tensor([0.2, 1.0, 0.5, 0.8])
    per_element = sigmoid_focal_loss(logits, targets, alpha=-1, gamma=2.0, reduction="none")
    expected = (per_element * weights).mean()
    assert torch.allclose(weighted_focal_loss(logits, targets, weights, alpha=1.0, gamma=2.0), expected)
    assert torch.allclose(weighted_focal_loss(logits, targets, weights, alpha=0.5, gamma=2.0), 0.5 * expected)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    assert torch.allclose(weighted_focal_loss(logits, targets, torch.ones(4), 1.0, 0.0), bce.mean())


def test_class_weights_are_counts_min_max_scaled() -> None:
    labels = np.array([0] * 10 + [1] * 30 + [2] * 50)
    assert np.allclose(class_weights(labels, 3), [0.2, 0.6, 1.0])
    assert np.allclose(class_weights(np.array([0, 1, 2]), 3), [1, 1, 1])
    multilabel = np.array([[1, 0, 1], [1, 0, 0], [1, 1, 0]])
    assert np.allclose(class_weights(multilabel, 3), [1.0, 0.2, 0.2])


def test_multiclass_metrics_match_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 200)
    scores = rng.random((200, 5)).astype(np.float32)
    scores[np.arange(200)[:120], y[:120]] += 1.0
    scores = np.clip(scores, 0, 1)
    got = compute_metrics(torch.tensor(scores), torch.tensor(y), "multiclass")
    pred = scores.argmax(1)
    assert got.f1_macro == pytest.approx(f1_score(y, pred, average="macro"), abs=1e-5)
    assert got.f1_micro == pytest.approx(f1_score(y, pred, average="micro"), abs=1e-5)
    assert got.balanced_accuracy == pytest.approx(balanced_accuracy_score(y, pred), abs=1e-5)
    assert got.accuracy == pytest.approx((pred == y).mean(), abs=1e-5)
    onehot = np.eye(5)[y]
    seed_code = f1_score(onehot.ravel(), (scores > 0.5).ravel().astype(int))
    assert got.f1_seed_code == pytest.approx(seed_code, abs=1e-5)
    ovr = np.mean([roc_auc_score(onehot[:, c], scores[:, c]) for c in range(5)])
    assert got.auroc == pytest.approx(ovr, abs=1e-4)


def test_multilabel_metrics_match_scikit_learn() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, (150, 4))
    scores = np.clip(rng.random((150, 4)) * 0.6 + y * 0.3, 0, 1).astype(np.float32)
    got = compute_metrics(torch.tensor(scores), torch.tensor(y), "multilabel")
    pred = (scores > 0.5).astype(int)
    assert got.f1_macro == pytest.approx(f1_score(y, pred, average="macro"), abs=1e-5)
    assert got.f1_micro == pytest.approx(f1_score(y, pred, average="micro"), abs=1e-5)
    per_label = [balanced_accuracy_score(y[:, j], pred[:, j]) for j in range(4)]
    assert got.balanced_accuracy == pytest.approx(np.mean(per_label), abs=1e-5)
    assert got.accuracy == pytest.approx((pred == y).all(1).mean(), abs=1e-5)
    assert got.f1_seed_code == pytest.approx(got.f1_micro, abs=1e-6)


def _tiny_setup(steps: int, select: str = "last") -> tuple[Any, Any]:
    from cass_bench.config.load import load_config
    from cass_bench.data.sources import load_dataset

    cfg = load_config(None, {"image_size": 16, "backbones.vit_patch_size": 4, "finetune.steps": steps,
                             "finetune.batch_size": 8, "finetune.select": select, "finetune.val_every": 2})
    return cfg, load_dataset("embedded", 16, cfg.data_dir, cfg.split_seed)


class _StepCounter(pl.Callback):
    def __init__(self) -> None:
        self.optimizer_steps = 0
        self.first_head: torch.Tensor | None = None

    def on_train_batch_start(self, trainer: pl.Trainer, module: pl.LightningModule, batch: Any, idx: int) -> None:
        if self.first_head is None:
            self.first_head = torch.cat([module.head.weight.detach().flatten(), module.head.bias.detach()]).clone()

    def on_before_optimizer_step(self, trainer: pl.Trainer, module: pl.LightningModule, optimizer: Any) -> None:
        self.optimizer_steps += 1


def test_step_budget_is_the_same_at_every_fraction_and_the_head_starts_at_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, bundle = _tiny_setup(steps=6)
    counters: list[_StepCounter] = []
    original = pl.Trainer.__init__

    def with_counter(self: pl.Trainer, *args: Any, **kwargs: Any) -> None:
        counters.append(_StepCounter())
        kwargs["callbacks"] = [*kwargs.get("callbacks", []), counters[-1]]
        original(self, *args, **kwargs)

    monkeypatch.setattr(pl.Trainer, "__init__", with_counter)
    results = {}
    for fraction in (0.01, 0.1, 1.0):
        encoder = build_encoder("cnn", cfg.backbones, 16, seed=0)
        results[fraction] = finetune(encoder, bundle, fraction, 0, cfg)
    assert [c.optimizer_steps for c in counters] == [6, 6, 6]
    assert all(r.steps == r.selected_step == 6 for r in results.values())
    assert [r.n_labelled for r in results.values()] == sorted(r.n_labelled for r in results.values())
    assert results[0.01].n_labelled == 10 < 8 * 6  # 1% is 10 images, drawn with replacement for 6 batches of 8
    for counter in counters:
        assert counter.first_head is not None and torch.count_nonzero(counter.first_head) == 0
    for result in results.values():
        assert result.y_score.shape == (len(bundle.test), 10) and 0 <= compute_metrics(torch.tensor(result.y_score), torch.tensor(result.y_true), bundle.task).f1_macro <= 1


def test_best_validation_selection_uses_a_validation_set_no_larger_than_the_labelled_subset() -> None:
    cfg, bundle = _tiny_setup(steps=4, select="best_val")
    subset = selection_subset(bundle.val, 10, seed=0, task=bundle.task)
    assert len(subset) == 10 and len(np.unique(subset.labels)) == 10
    result = finetune(build_encoder("cnn", cfg.backbones, 16, seed=0), bundle, 0.01, 0, cfg)
    assert result.steps == 4 and result.selected_step in (2, 4)
