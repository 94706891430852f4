"""The shared fine-tuning stage: focal loss, class weights and metric definitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score
from torchvision.ops import sigmoid_focal_loss

from cass_bench.data.splits import class_weights
from cass_bench.finetune import compute_metrics, weighted_focal_loss


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
    assert got["f1_macro"] == pytest.approx(f1_score(y, pred, average="macro"), abs=1e-5)
    assert got["f1_micro"] == pytest.approx(f1_score(y, pred, average="micro"), abs=1e-5)
    assert got["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred), abs=1e-5)
    assert got["accuracy"] == pytest.approx((pred == y).mean(), abs=1e-5)
    onehot = np.eye(5)[y]
    seed_code = f1_score(onehot.ravel(), (scores > 0.5).ravel().astype(int))
    assert got["f1_seed_code"] == pytest.approx(seed_code, abs=1e-5)
    ovr = np.mean([roc_auc_score(onehot[:, c], scores[:, c]) for c in range(5)])
    assert got["auroc"] == pytest.approx(ovr, abs=1e-4)


def test_multilabel_metrics_match_scikit_learn() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, (150, 4))
    scores = np.clip(rng.random((150, 4)) * 0.6 + y * 0.3, 0, 1).astype(np.float32)
    got = compute_metrics(torch.tensor(scores), torch.tensor(y), "multilabel")
    pred = (scores > 0.5).astype(int)
    assert got["f1_macro"] == pytest.approx(f1_score(y, pred, average="macro"), abs=1e-5)
    assert got["f1_micro"] == pytest.approx(f1_score(y, pred, average="micro"), abs=1e-5)
    per_label = [balanced_accuracy_score(y[:, j], pred[:, j]) for j in range(4)]
    assert got["balanced_accuracy"] == pytest.approx(np.mean(per_label), abs=1e-5)
    assert got["accuracy"] == pytest.approx((pred == y).all(1).mean(), abs=1e-5)
    assert got["f1_seed_code"] == pytest.approx(got["f1_micro"], abs=1e-6)
