"""Chance levels and the permutation test of above-chance macro-F1."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from cass_bench.evaluation.chance import above_chance_pvalue, macro_f1, majority_f1, random_f1
from cass_bench.data.bundle import MULTICLASS, MULTILABEL
from cass_bench.evaluation.finetune import compute_metrics


def one_hot(pred: np.ndarray, num_classes: int) -> np.ndarray:
    return np.eye(num_classes)[pred]


AUROC_WARNING = "ignore:No positive samples in targets"  # compute_metrics' AUROC on a class absent on purpose


@pytest.mark.filterwarnings(AUROC_WARNING)
@pytest.mark.parametrize("num_classes", [3, 10])
def test_macro_f1_matches_torchmetrics_multiclass(num_classes: int) -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, num_classes - 1, 60)  # the last class never occurs in the targets
    for pred in (rng.integers(0, num_classes - 1, 60), rng.integers(0, num_classes, 60), y.copy()):
        expected = compute_metrics(torch.tensor(one_hot(pred, num_classes)), torch.tensor(y), MULTICLASS).f1_macro
        assert macro_f1(y, pred, num_classes, MULTICLASS) == pytest.approx(expected, abs=1e-6)


@pytest.mark.filterwarnings(AUROC_WARNING)
def test_macro_f1_matches_torchmetrics_multilabel() -> None:
    rng = np.random.default_rng(2)
    y = (rng.random((50, 4)) < 0.4).astype(np.int64)
    y[:, 3] = 0  # a label never true
    pred = rng.random((50, 4)) < 0.5
    pred[:, 3] = False  # and never predicted
    expected = compute_metrics(torch.tensor(pred, dtype=torch.float32), torch.tensor(y), MULTILABEL).f1_macro
    assert macro_f1(y, pred, 4, MULTILABEL) == pytest.approx(expected, abs=1e-6)


def test_majority_predictor_is_at_chance() -> None:
    rng = np.random.default_rng(0)
    train = np.array([2] * 30 + [0] * 10 + [1] * 5)
    y = rng.integers(0, 3, 200)
    majority = int(np.bincount(train).argmax())
    scores = one_hot(np.full(len(y), majority), 3)
    observed = compute_metrics(torch.tensor(scores), torch.tensor(y), MULTICLASS).f1_macro
    assert majority_f1(y, 3, MULTICLASS, train) == pytest.approx(observed, abs=1e-6)
    assert above_chance_pvalue(y, scores, MULTICLASS, permutations=200) > 0.05


def test_majority_f1_multilabel_matches_compute_metrics() -> None:
    rng = np.random.default_rng(3)
    train = (rng.random((40, 3)) < np.array([0.8, 0.2, 0.6])).astype(np.int64)
    y = (rng.random((100, 3)) < 0.5).astype(np.int64)
    majority = (train.mean(axis=0) > 0.5).astype(np.float32)
    scores = np.broadcast_to(majority, y.shape).copy()
    observed = compute_metrics(torch.tensor(scores), torch.tensor(y), MULTILABEL).f1_macro
    assert majority_f1(y, 3, MULTILABEL, train) == pytest.approx(observed, abs=1e-6)


def test_perfect_predictor_is_above_chance() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    permutations = 500
    p = above_chance_pvalue(y, one_hot(y, 4), MULTICLASS, permutations=permutations)
    assert p < 0.01
    assert p == pytest.approx(1 / (1 + permutations))
    y_multi = (rng.random((200, 3)) < 0.4).astype(np.int64)
    assert above_chance_pvalue(y_multi, y_multi.astype(float), MULTILABEL, permutations=permutations) < 0.01


def test_pvalue_range_and_determinism() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 5, 80)
    scores = rng.random((80, 5))
    permutations = 99
    p = above_chance_pvalue(y, scores, MULTICLASS, permutations=permutations, seed=3)
    assert 1 / (1 + permutations) <= p <= 1
    assert p == above_chance_pvalue(y, scores, MULTICLASS, permutations=permutations, seed=3)
    assert p > 0.01  # random scores carry no signal


def test_random_f1_balanced_ten_classes() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 1000)
    train = np.repeat(np.arange(10), 20)
    assert random_f1(y, 10, MULTICLASS, train, draws=200) == pytest.approx(0.1, abs=0.01)
    assert majority_f1(y, 10, MULTICLASS, train) < random_f1(y, 10, MULTICLASS, train)


def test_random_f1_multilabel_in_range() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random((300, 3)) < 0.5).astype(np.int64)
    train = (rng.random((60, 3)) < 0.5).astype(np.int64)
    value = random_f1(y, 3, MULTILABEL, train, draws=50)
    assert 0.3 < value < 0.7  # F1 of guessing a ~half-prevalent label at ~half rate is about 0.5


def test_permutation_test_is_fast() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 1000)
    scores = rng.random((1000, 10))
    start = time.perf_counter()
    above_chance_pvalue(y, scores, MULTICLASS, permutations=1000)
    assert time.perf_counter() - start < 1.0
