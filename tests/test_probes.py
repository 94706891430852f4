"""Frozen-feature evaluations: feature extraction, the kNN vote and the cross-validated linear probe."""

from __future__ import annotations

import numpy as np
import torch
from lightly.utils.benchmarking import knn_predict
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from torch import nn

from cass_bench.data.bundle import MULTICLASS, MULTILABEL, ArrayImages, ImageSet
from cass_bench.evaluation.probes import _fit_scores, _path_scores, extract_features, knn_scores, linear_probe_scores

GRID = (0.01, 0.1, 1.0, 10.0, 100.0)


def clusters(per_class: int, num_classes: int, dim: int = 8, spread: float = 0.05, seed: int = 0
             ) -> tuple[np.ndarray, np.ndarray]:
    """Points around ``num_classes`` random centres (well separated for small ``spread``)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_classes, dim)) * 3
    labels = np.repeat(np.arange(num_classes), per_class)
    return (centres[labels] + spread * rng.normal(size=(len(labels), dim))).astype(np.float32), labels


def test_knn_argmax_matches_lightly() -> None:
    rng = np.random.default_rng(0)
    train, test = rng.normal(size=(60, 16)).astype(np.float32), rng.normal(size=(25, 16)).astype(np.float32)
    labels = rng.integers(0, 5, 60)
    for k in (5, 20, 100):  # 100 > 60 training examples: capped
        scores = knn_scores(train, labels, test, 5, MULTICLASS, k=k, temperature=0.07)
        assert scores.shape == (25, 5)
        np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-5)
        bank = torch.nn.functional.normalize(torch.tensor(train), dim=1).t()
        query = torch.nn.functional.normalize(torch.tensor(test), dim=1)
        lightly_top1 = knn_predict(query, bank, torch.tensor(labels), 5, knn_k=min(k, 60), knn_t=0.07)[:, 0]
        np.testing.assert_array_equal(scores.argmax(axis=1), lightly_top1.numpy())


def test_knn_matches_brute_force_vote() -> None:
    rng = np.random.default_rng(1)
    train, test = rng.normal(size=(40, 6)), rng.normal(size=(15, 6))
    labels = rng.integers(0, 4, 40)
    k, t = 7, 0.1
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    sim = unit(test) @ unit(train).T
    expected = np.zeros((15, 4))
    for i in range(15):
        for j in np.argsort(-sim[i])[:k]:
            expected[i, labels[j]] += np.exp(sim[i, j] / t)
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(knn_scores(train, labels, test, 4, MULTICLASS, k=k, temperature=t), expected,
                               rtol=1e-4, atol=1e-6)


def test_knn_separated_clusters_are_perfect() -> None:
    features, labels = clusters(10, 4)
    test, test_labels = clusters(5, 4, seed=0)
    scores = knn_scores(features, labels, test + 0.01, 4, MULTICLASS, k=5)
    assert (scores.argmax(axis=1) == test_labels).all()


def test_knn_multilabel_is_weighted_label_mean() -> None:
    rng = np.random.default_rng(2)
    train, test = rng.normal(size=(30, 5)), rng.normal(size=(10, 5))
    labels = (rng.random((30, 3)) < 0.5).astype(np.int64)
    scores = knn_scores(train, labels, test, 3, MULTILABEL, k=30, temperature=0.5)
    assert scores.shape == (10, 3) and (scores >= 0).all() and (scores <= 1).all()
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    weight = np.exp(unit(test) @ unit(train).T / 0.5)  # k = all neighbours
    np.testing.assert_allclose(scores, weight @ labels / weight.sum(axis=1, keepdims=True), rtol=1e-4)


def test_linear_probe_matches_sklearn() -> None:
    features, labels = clusters(12, 3, spread=2.0, seed=3)
    test, _ = clusters(6, 3, spread=2.0, seed=4)
    scores, c = linear_probe_scores(features, labels, test, 4, MULTICLASS, GRID, folds=3, seed=0)
    assert c in GRID
    assert scores.shape == (len(test), 4)
    assert (scores[:, 3] == 0).all()  # class 3 never labelled
    scaler = StandardScaler().fit(features)
    direct = LogisticRegression(C=c, max_iter=1000).fit(scaler.transform(features), labels)
    np.testing.assert_array_equal(scores.argmax(axis=1), direct.predict(scaler.transform(test)))
    np.testing.assert_allclose(scores[:, :3], direct.predict_proba(scaler.transform(test)), atol=1e-6)
    again, c_again = linear_probe_scores(features, labels, test, 4, MULTICLASS, GRID, folds=3, seed=0)
    assert c_again == c and np.array_equal(again, scores)


def test_warm_started_path_gives_the_cold_fits_scores_when_they_converge() -> None:
    features, labels = clusters(15, 3, spread=2.0, seed=5)
    test, _ = clusters(5, 3, spread=2.0, seed=6)
    x, x_test = StandardScaler().fit(features).transform(features), StandardScaler().fit(features).transform(test)
    path = _path_scores(x, labels, x_test, 3, MULTICLASS, GRID, seed=0)
    assert len(path) == len(GRID)
    for c, scores in zip(GRID, path):
        cold = _fit_scores(x, labels, x_test, 3, MULTICLASS, c, seed=0)
        np.testing.assert_array_equal(scores.argmax(axis=1), cold.argmax(axis=1))
        if c <= 1.0:  # well regularised: lbfgs stops at the same optimum from either start, within its tolerance
            np.testing.assert_allclose(scores, cold, atol=5e-3)


def test_linear_probe_one_example_per_class_uses_middle_c() -> None:
    features, labels = clusters(1, 5, seed=5)
    scores, c = linear_probe_scores(features, labels, features, 5, MULTICLASS, GRID, folds=5, seed=0)
    assert c == sorted(GRID)[(len(GRID) - 1) // 2]
    assert scores.shape == (5, 5)
    assert (scores.argmax(axis=1) == labels).all()


def test_linear_probe_multilabel_shapes_and_constant_labels() -> None:
    rng = np.random.default_rng(6)
    features = rng.normal(size=(30, 6))
    labels = np.stack([features[:, 0] > 0, features[:, 1] > 0, np.ones(30, bool)], axis=1).astype(np.int64)
    test = rng.normal(size=(12, 6))
    scores, c = linear_probe_scores(features, labels, test, 3, MULTILABEL, GRID, folds=3, seed=0)
    assert c in GRID
    assert scores.shape == (12, 3) and (scores >= 0).all() and (scores <= 1).all()
    assert (scores[:, 2] == 1).all()  # constant label keeps its constant
    scaler = StandardScaler().fit(features)
    for label in range(2):
        direct = LogisticRegression(C=c, max_iter=1000).fit(scaler.transform(features), labels[:, label])
        np.testing.assert_allclose(scores[:, label], direct.predict_proba(scaler.transform(test))[:, 1], atol=1e-6)


class TinyEncoder(nn.Module):
    """Pooled ``(B, 4)`` features with a dropout whose mode matters."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.drop = nn.Dropout(0.5)
        self.num_features = 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert not self.training
        return self.drop(self.conv(x).mean(dim=(2, 3)))


def test_extract_features_shape_and_mode() -> None:
    rng = np.random.default_rng(7)
    images = ImageSet(ArrayImages(rng.integers(0, 256, (7, 8, 8), dtype=np.uint8), 8), np.arange(7) % 2)
    encoder = TinyEncoder().train()
    features = extract_features(encoder, images, batch_size=3)
    assert features.shape == (7, 4) and features.dtype == np.float32
    assert encoder.training and encoder.drop.training and encoder.conv.training
    np.testing.assert_array_equal(features[2:5], extract_features(encoder, images.subset([2, 3, 4])))
    encoder.eval()
    extract_features(encoder, images)
    assert not encoder.training
