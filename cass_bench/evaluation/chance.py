"""Chance levels for macro-F1 and a permutation test of "better than chance".

Above-chance test: the test-set predictions (arg-max for multi-class, score > 0.5 per label for multi-label) are
shuffled across examples 1000 times, which keeps how often each class is predicted but breaks any link to the true
labels, and macro-F1 is recomputed for each shuffle. The one-sided p-value is
(1 + number of shuffles scoring at least the observed macro-F1) / (1 + number of shuffles), so a small p-value means
the predictions agree with the labels more than predictions of the same class frequencies would by chance.

Macro-F1 here matches torchmetrics (and so ``cass_bench.evaluation.finetune.compute_metrics``): multi-class averages over the
classes that occur in the targets or the predictions (a class absent from both is left out), multi-label averages
over every label (a label never true nor predicted scores 0).
"""

from __future__ import annotations

import numpy as np

from cass_bench.data.bundle import MULTILABEL


def _batched_macro_f1(y_true: np.ndarray, preds: np.ndarray, num_classes: int, task: str) -> np.ndarray:
    """Macro-F1 of each row of a batch of predictions against the same targets.

    Args:
        y_true: ``(N,)`` class indices or ``(N, L)`` 0/1 labels.
        preds: ``(P, N)`` predicted classes or ``(P, N, L)`` 0/1 predictions.
        num_classes: classes (multi-class) or labels (multi-label).
        task: ``multiclass`` or ``multilabel``.

    Returns:
        ``(P,)`` macro-F1 values.
    """
    batch = preds.shape[0]
    if task == MULTILABEL:
        truth = np.asarray(y_true, dtype=bool)
        pred = np.asarray(preds, dtype=bool)
        tp = (pred & truth[None]).sum(axis=1).astype(np.float64)
        predicted = pred.sum(axis=1).astype(np.float64)
        support = np.broadcast_to(truth.sum(axis=0).astype(np.float64), tp.shape)
        keep = np.ones_like(tp, dtype=bool)
    else:
        truth = np.asarray(y_true, dtype=np.int64)
        pred = np.asarray(preds, dtype=np.int64)
        rows = np.arange(batch, dtype=np.int64)[:, None] * num_classes
        hit = (pred == truth[None]).ravel()
        tp = np.bincount((rows + truth[None]).ravel(), weights=hit, minlength=batch * num_classes)
        tp = tp.reshape(batch, num_classes)
        predicted = np.bincount((rows + pred).ravel(), minlength=batch * num_classes).reshape(batch, num_classes)
        support = np.broadcast_to(np.bincount(truth, minlength=num_classes).astype(np.float64), tp.shape)
        keep = (support + predicted) > 0  # torchmetrics drops classes with tp + fp + fn == 0
    denom = predicted + support  # 2tp + fp + fn
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp, dtype=np.float64), where=denom > 0)
    counted = keep.sum(axis=1)
    return np.divide((f1 * keep).sum(axis=1), counted, out=np.zeros(batch), where=counted > 0)


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int, task: str) -> float:
    """Macro-F1 of hard predictions, computed as torchmetrics does.

    Args:
        y_true: ``(N,)`` class indices or ``(N, L)`` 0/1 labels.
        y_pred: ``(N,)`` predicted classes or ``(N, L)`` 0/1 predictions.
        num_classes: classes (multi-class) or labels (multi-label).
        task: ``multiclass`` or ``multilabel``.
    """
    return float(_batched_macro_f1(y_true, np.asarray(y_pred)[None], num_classes, task)[0])


def is_above_chance(f1: float, p_value: float, majority: float, random: float, alpha: float = 0.05) -> bool:
    """Above chance: the permutation test is significant (``p_value < alpha``) and the macro-F1 beats both chance
    levels. The test alone can call a degenerate predictor significant while it scores below random guessing."""
    return bool(p_value < alpha and f1 > max(majority, random))


def score_macro_f1(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Macro-F1 of ``(N, C)`` scores as the records compute it: arg-max for ``(N,)`` class indices, ``> 0.5`` per
    label for ``(N, L)`` 0/1 labels (the task follows from the labels' shape)."""
    y_true, y_score = np.asarray(y_true), np.asarray(y_score)
    task = MULTILABEL if y_true.ndim == 2 else "multiclass"
    return macro_f1(y_true, _hard(y_score, task), y_score.shape[1], task)


def _hard(y_score: np.ndarray, task: str) -> np.ndarray:
    """Arg-max (multi-class) or ``> 0.5`` per label (multi-label)."""
    return y_score > 0.5 if task == MULTILABEL else y_score.argmax(axis=1)


def majority_f1(y_true: np.ndarray, num_classes: int, task: str, train_labels: np.ndarray) -> float:
    """Macro-F1 of always predicting the labelled training subset's majority.

    Multi-class: the most frequent training class (the lowest index on ties). Multi-label: each label's majority
    value in the training subset (0 on an exact tie).

    Args:
        y_true: ``(N,)`` test class indices or ``(N, L)`` 0/1 test labels.
        num_classes: classes (multi-class) or labels (multi-label).
        task: ``multiclass`` or ``multilabel``.
        train_labels: labels of the labelled training subset, same layout as ``y_true``.
    """
    n = len(y_true)
    if task == MULTILABEL:
        majority = np.asarray(train_labels, dtype=np.float64).mean(axis=0) > 0.5
        pred = np.broadcast_to(majority, (n, num_classes))
    else:
        majority = int(np.bincount(np.asarray(train_labels, dtype=np.int64), minlength=num_classes).argmax())
        pred = np.full(n, majority)
    return macro_f1(y_true, pred, num_classes, task)


def random_f1(y_true: np.ndarray, num_classes: int, task: str, train_labels: np.ndarray, draws: int = 200,
              seed: int = 0) -> float:
    """Expected macro-F1 of random guessing at the labelled training subset's label frequencies.

    Multi-class guesses draw a class with the training class frequencies; multi-label guesses set each label
    independently with its training prevalence. The value is the mean over ``draws`` seeded simulations.

    Args:
        y_true: ``(N,)`` test class indices or ``(N, L)`` 0/1 test labels.
        num_classes: classes (multi-class) or labels (multi-label).
        task: ``multiclass`` or ``multilabel``.
        train_labels: labels of the labelled training subset, same layout as ``y_true``.
        draws: simulations averaged.
        seed: random seed.
    """
    rng = np.random.default_rng(seed)
    n = len(y_true)
    if task == MULTILABEL:
        prevalence = np.asarray(train_labels, dtype=np.float64).mean(axis=0)
        preds = rng.random((draws, n, num_classes)) < prevalence
    else:
        counts = np.bincount(np.asarray(train_labels, dtype=np.int64), minlength=num_classes).astype(np.float64)
        preds = rng.choice(num_classes, size=(draws, n), p=counts / counts.sum())
    return float(_batched_macro_f1(y_true, preds, num_classes, task).mean())


def above_chance_pvalue(y_true: np.ndarray, y_score: np.ndarray, task: str, permutations: int = 1000,
                        seed: int = 0) -> float:
    """One-sided permutation p-value of "test macro-F1 is no better than chance".

    The hard predictions (rows of the prediction matrix) are permuted against the labels, which keeps the
    prediction marginals fixed; p = (1 + #{permuted macro-F1 >= observed}) / (1 + permutations), so it lies in
    ``[1 / (1 + permutations), 1]``.

    Args:
        y_true: ``(N,)`` class indices or ``(N, L)`` 0/1 labels.
        y_score: ``(N, C)`` scores; arg-max (multi-class) or ``> 0.5`` (multi-label) gives the predictions.
        task: ``multiclass`` or ``multilabel``.
        permutations: number of random permutations.
        seed: random seed.
    """
    score = np.asarray(y_score)
    num_classes = score.shape[1]
    pred = _hard(score, task)
    observed = macro_f1(y_true, pred, num_classes, task)
    rng = np.random.default_rng(seed)
    order = rng.permuted(np.broadcast_to(np.arange(len(pred)), (permutations, len(pred))), axis=1)
    permuted = _batched_macro_f1(y_true, pred[order], num_classes, task)
    # a small tolerance so float noise in equal F1 values counts as a tie (ties count against the model)
    exceed = int(np.count_nonzero(permuted >= observed - 1e-12))
    return (1 + exceed) / (1 + permutations)
