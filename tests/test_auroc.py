"""Macro-AUROC leaves out the classes a test split cannot score instead of counting them as 0."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from cass_bench.evaluation.auroc import macro_auroc
from cass_bench.evaluation.finetune import compute_metrics


def test_a_class_absent_from_the_test_split_is_left_out() -> None:
    rng = np.random.default_rng(0)
    y = np.array([0, 1, 3] * 10)
    scores = rng.random((len(y), 4))
    scores[np.arange(len(y)), y] += 0.5
    expected = np.mean([roc_auc_score(y == c, scores[:, c]) for c in (0, 1, 3)])
    value = compute_metrics(torch.as_tensor(scores, dtype=torch.float32), torch.as_tensor(y), "multiclass").auroc
    assert value == pytest.approx(expected, abs=1e-5)
    assert value > 0.75


def test_multilabel_labels_without_positives_or_negatives_are_left_out() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random((40, 3)) < 0.5).astype(int)
    y[:, 1] = 0
    y[:, 2] = 1
    y[0, 2] = 0
    scores = rng.random((40, 3))
    expected = np.mean([roc_auc_score(y[:, c], scores[:, c]) for c in (0, 2)])
    value = macro_auroc(torch.as_tensor(scores), torch.as_tensor(y), "multilabel")
    assert value == pytest.approx(expected, abs=1e-6)


def test_no_scorable_class_gives_none() -> None:
    assert macro_auroc(torch.rand(5, 3), torch.zeros(5, dtype=torch.long), "multiclass") is None
