"""Frozen-feature evaluations: pooled encoder features, a cosine kNN vote and a cross-validated linear probe."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.multiclass import OneVsRestClassifier
from sklearn.preprocessing import StandardScaler
from torch import nn

from cass_bench.config.checks import knn_min_temperature
from cass_bench.evaluation.chance import macro_f1
from cass_bench.data.bundle import MULTILABEL, ImageSet
from cass_bench.data.loaders import eval_transform, make_loader


def extract_features(encoder: nn.Module, images: ImageSet, batch_size: int = 256,
                     device: torch.device | None = None) -> np.ndarray:
    """Pooled features of a timm encoder (forward returns ``(B, D)``) over an image set.

    Runs in ``eval()`` mode under ``torch.no_grad()`` and restores every submodule's previous train/eval mode.

    Args:
        encoder: the encoder.
        images: the images (through ``eval_transform()``, in order).
        batch_size: images per forward pass.
        device: where to run; defaults to the device of the encoder's first parameter (CPU if it has none).

    Returns:
        ``(N, D)`` float32 features.
    """
    if device is None:
        device = next((p.device for p in encoder.parameters()), torch.device("cpu"))
    modes = [(module, module.training) for module in encoder.modules()]
    loader = make_loader(images, eval_transform(), batch_size, shuffle=False, num_workers=0)
    chunks: list[np.ndarray] = []
    try:
        encoder.eval()
        with torch.no_grad():
            for batch, _ in loader:
                chunks.append(encoder(batch.to(device)).float().cpu().numpy())
    finally:
        for module, training in modes:
            module.training = training
    return np.concatenate(chunks).astype(np.float32, copy=False)


def knn_scores(train_features: np.ndarray, train_labels: np.ndarray, test_features: np.ndarray, num_classes: int,
               task: str, k: int = 20, temperature: float = 0.07) -> np.ndarray:
    """Weighted cosine kNN vote on L2-normalised features.

    The vote is lightly's ``knn_predict``: cosine similarity to every training feature, the top ``k`` neighbours
    (``k`` capped at the number of training examples), weights ``exp(sim / temperature)``. Multi-class: the weights
    are summed per neighbour class and each row is normalised to sum to 1 (its arg-max is ``knn_predict``'s top-1).
    Multi-label: the weighted mean of the neighbours' 0/1 label vectors, in [0, 1] per label (> 0.5 predicts it).
    The weights stay finite in float32 for temperatures down to
    :func:`cass_bench.config.checks.knn_min_temperature` (checked when the config is loaded); below it the call is
    refused rather than giving NaN scores.

    Args:
        train_features: ``(N_train, D)`` features.
        train_labels: ``(N_train,)`` class indices or ``(N_train, L)`` 0/1 labels.
        test_features: ``(N_test, D)`` features.
        num_classes: classes (multi-class) or labels (multi-label).
        task: ``multiclass`` or ``multilabel``.
        k: neighbours.
        temperature: similarity temperature.

    Returns:
        ``(N_test, num_classes)`` scores.

    Raises:
        ValueError: ``temperature`` below the limit that keeps the vote finite.
    """
    if not temperature >= knn_min_temperature(k):
        raise ValueError(f"kNN temperature {temperature} is below {knn_min_temperature(k):.4f}, where the vote of "
                         f"{k} neighbours overflows float32; use a larger eval.knn_temperature")
    bank = F.normalize(torch.as_tensor(train_features, dtype=torch.float32), dim=1)
    query = F.normalize(torch.as_tensor(test_features, dtype=torch.float32), dim=1)
    k = min(k, len(bank))
    sim_weight, sim_indices = torch.mm(query, bank.t()).topk(k=k, dim=-1)
    weight = (sim_weight / temperature).exp()  # (B, K)
    if task == MULTILABEL:
        neighbour = torch.as_tensor(train_labels, dtype=torch.float32)[sim_indices]  # (B, K, L)
        scores = (neighbour * weight.unsqueeze(-1)).sum(dim=1) / weight.sum(dim=1, keepdim=True)
    else:
        neighbour = torch.as_tensor(train_labels, dtype=torch.long)[sim_indices]  # (B, K)
        scores = torch.zeros(len(query), num_classes).scatter_add_(1, neighbour, weight)
        scores = scores / scores.sum(dim=1, keepdim=True)
    return scores.numpy()


def _placed(model: LogisticRegression, x_test: np.ndarray, num_classes: int) -> np.ndarray:
    """A fitted multi-class model's probabilities at its classes' columns of ``(N_test, num_classes)`` (others 0)."""
    scores = np.zeros((len(x_test), num_classes))
    scores[:, model.classes_] = model.predict_proba(x_test)
    return scores


def _fit_scores(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, num_classes: int, task: str,
                c: float, seed: int) -> np.ndarray:
    """Scores ``(N_test, num_classes)`` of logistic regression(s) at ``C = c`` on already standardised features."""
    scores = np.zeros((len(x_test), num_classes))
    if task == MULTILABEL:
        y = np.asarray(y_train).astype(np.int64)
        constant = (y == y[0]).all(axis=0)
        scores[:, constant] = y[0, constant]
        if (~constant).any():
            model = OneVsRestClassifier(LogisticRegression(C=c, max_iter=1000, random_state=seed))
            model.fit(x_train, y[:, ~constant])
            scores[:, ~constant] = model.predict_proba(x_test)
        return scores
    y = np.asarray(y_train).astype(np.int64)
    present = np.unique(y)
    if len(present) == 1:
        scores[:, present[0]] = 1.0
        return scores
    return _placed(LogisticRegression(C=c, max_iter=1000, random_state=seed).fit(x_train, y), x_test, num_classes)


def _path_scores(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, num_classes: int, task: str,
                 grid: Sequence[float], seed: int) -> list[np.ndarray]:
    """Scores at each ``C`` of the ascending ``grid``, as :func:`_fit_scores` gives them.

    Multi-class fits with two or more classes present run along the regularisation path, each warm-started from
    the previous ``C``'s solution. The problem is strictly convex, so both starts reach the same optimum up to the
    solver's tolerance; weakly regularised fits on separable features, where lbfgs stops early or at ``max_iter``,
    can differ in their probabilities (rarely in their predictions). The rest are fitted from scratch.
    """
    y = np.asarray(y_train).astype(np.int64)
    if task == MULTILABEL or len(np.unique(y)) < 2:
        return [_fit_scores(x_train, y_train, x_test, num_classes, task, c, seed) for c in grid]
    model = LogisticRegression(max_iter=1000, random_state=seed, warm_start=True)
    return [_placed(model.set_params(C=c).fit(x_train, y), x_test, num_classes) for c in grid]


def _hard(scores: np.ndarray, task: str) -> np.ndarray:
    return scores > 0.5 if task == MULTILABEL else scores.argmax(axis=1)


def _cv_splits(labels: np.ndarray, task: str, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cross-validation splits of the labelled training subset, or ``[]`` when none is possible."""
    n = len(labels)
    if task != MULTILABEL:
        smallest = int(np.bincount(np.unique(labels, return_inverse=True)[1]).min())
        if smallest >= 2 and min(folds, smallest) >= 2:
            splitter = StratifiedKFold(n_splits=min(folds, smallest), shuffle=True, random_state=seed)
            return list(splitter.split(np.zeros(n), labels))
    if min(folds, n) < 2:
        return []
    return list(KFold(n_splits=min(folds, n), shuffle=True, random_state=seed).split(np.zeros(n)))


def choose_c(features: np.ndarray, labels: np.ndarray, num_classes: int, task: str, c_grid: Sequence[float],
             folds: int, seed: int) -> float:
    """The ``C`` of ``c_grid`` with the best mean cross-validated macro-F1 on standardised features.

    The rule: multi-class with every present class having >= 2 examples uses ``StratifiedKFold`` with
    ``min(folds, smallest class count)`` splits; otherwise (a singleton class, or multi-label) plain ``KFold`` with
    ``min(folds, N)`` splits; both shuffled with ``seed``. When fewer than 2 splits are possible, or the grid has a
    single value, the middle value of the sorted grid (lower middle for even lengths) is used. Ties in mean
    macro-F1 (e.g. one example per class, where no held-out class is ever seen in training) go to the value
    nearest the middle, then to the smaller one.

    Args:
        features: ``(N, D)`` standardised training features.
        labels: ``(N,)`` class indices or ``(N, L)`` 0/1 labels.
        num_classes: classes (multi-class) or labels (multi-label).
        task: ``multiclass`` or ``multilabel``.
        c_grid: candidate inverse regularisation strengths.
        folds: requested number of folds.
        seed: random seed for the folds and the solver.
    """
    grid = sorted(float(c) for c in c_grid)
    middle = (len(grid) - 1) // 2
    splits = _cv_splits(labels, task, folds, seed) if len(grid) > 1 else []
    if not splits:
        return grid[middle]
    per_fold = [
        [macro_f1(labels[va], _hard(scores, task), num_classes, task)
         for scores in _path_scores(features[tr], labels[tr], features[va], num_classes, task, grid, seed)]
        for tr, va in splits
    ]
    means = [float(m) for m in np.mean(per_fold, axis=0)]
    best = max(means)
    tied = [i for i, m in enumerate(means) if m >= best - 1e-12]
    return grid[min(tied, key=lambda i: (abs(i - middle), i))]


def linear_probe_scores(train_features: np.ndarray, train_labels: np.ndarray, test_features: np.ndarray,
                        num_classes: int, task: str, c_grid: Sequence[float], folds: int,
                        seed: int) -> tuple[np.ndarray, float]:
    """Logistic-regression probe on standardised frozen features, ``C`` chosen by cross-validation.

    Features are standardised with a ``StandardScaler`` fitted on the training features. ``C`` is chosen inside
    the labelled training features only (see ``choose_c`` for the rule), then the probe is refitted on all of them.
    Multi-class: one multinomial ``LogisticRegression(max_iter=1000)``, ``predict_proba`` placed at each class's
    column (classes missing from the training labels score 0). Multi-label: one logistic regression per label
    (``OneVsRestClassifier``); a label constant in the training labels gets that constant as its score.

    Args:
        train_features: ``(N_train, D)`` features of the labelled training subset.
        train_labels: ``(N_train,)`` class indices or ``(N_train, L)`` 0/1 labels.
        test_features: ``(N_test, D)`` features to score.
        num_classes: classes (multi-class) or labels (multi-label).
        task: ``multiclass`` or ``multilabel``.
        c_grid: candidate values of ``C``.
        folds: requested cross-validation folds.
        seed: random seed.

    Returns:
        ``(N_test, num_classes)`` scores and the chosen ``C``.
    """
    scaler = StandardScaler().fit(train_features)
    x_train, x_test = scaler.transform(train_features), scaler.transform(test_features)
    labels = np.asarray(train_labels)
    c = choose_c(x_train, labels, num_classes, task, c_grid, folds, seed)
    return _fit_scores(x_train, labels, x_test, num_classes, task, c, seed), c
