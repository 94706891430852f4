"""Macro-AUROC over the classes a test split can score.

A class with no positive (or no negative) example in the test split has no ROC curve; torchmetrics counts it as 0
in its macro average. Here such a class is left out and the mean is over the classes that have both.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import functional as tmf

from cass_bench.data.bundle import MULTILABEL


def macro_auroc(scores: Tensor, targets: Tensor, task: str) -> float | None:
    """Mean one-vs-rest AUROC over the classes (or labels) with both positive and negative test examples.

    Args:
        scores: ``(N, C)`` per-class scores.
        targets: ``(N,)`` class indices or ``(N, C)`` 0/1 labels.
        task: ``multiclass`` or ``multilabel``.

    Returns:
        The mean, or None when no class has both positives and negatives.
    """
    if task == MULTILABEL:
        columns = targets.long()
    else:
        columns = (targets.long()[:, None] == torch.arange(scores.shape[1], device=scores.device)).long()
    values = []
    for c in range(scores.shape[1]):
        positives = int(columns[:, c].sum())
        if 0 < positives < len(columns):
            values.append(float(tmf.classification.binary_auroc(scores[:, c], columns[:, c])))
    return sum(values) / len(values) if values else None

