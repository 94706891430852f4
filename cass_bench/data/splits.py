"""Seeded, stratified train/val/test splits and nested label-fraction subsets."""

from __future__ import annotations

import math

import numpy as np

from cass_bench.data.bundle import MULTILABEL, DatasetBundle, ImageSet

SPLIT = (0.7, 0.1, 0.2)
VAL_SHARE = 0.1


def _strata(labels: np.ndarray) -> np.ndarray:
    """One stratum per example: the class (multi-class) or the rarest positive label (multi-label)."""
    if labels.ndim == 1:
        return labels
    counts = labels.sum(axis=0)
    rarity = np.where(labels > 0, counts[None, :], np.inf)
    strata = rarity.argmin(axis=1)
    strata[~(labels > 0).any(axis=1)] = labels.shape[1]
    return strata


def stratified_split(labels: np.ndarray, fractions: tuple[float, ...], seed: int) -> list[np.ndarray]:
    """Splits indices into parts of the given fractions, stratified by class, seeded.

    Each stratum is shuffled and cut by rounded cumulative fractions, so every class with enough members
    appears in every part.

    Args:
        labels: ``(N,)`` class indices or ``(N, L)`` 0/1 labels.
        fractions: part sizes, summing to 1 (e.g. ``(0.7, 0.1, 0.2)``).
        seed: shuffling seed.

    Returns:
        One sorted index array per part.
    """
    rng = np.random.default_rng(seed)
    strata = _strata(labels)
    bounds = np.cumsum((0.0,) + tuple(fractions))
    parts: list[list[int]] = [[] for _ in fractions]
    for stratum in np.unique(strata):
        members = rng.permutation(np.flatnonzero(strata == stratum))
        cuts = np.round(bounds * len(members)).astype(int)
        for p in range(len(fractions)):
            parts[p].extend(members[cuts[p]:cuts[p + 1]].tolist())
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def stratified_subset(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Exactly ``size`` indices, each class kept in proportion (largest remainder), seeded.

    Each class's picks are the head of one seeded permutation of its members, so for one seed a subset lies inside
    any other whose count of every class is as large (with balanced classes: inside every larger subset).

    Args:
        labels: ``(N,)`` class indices.
        size: how many to keep, in ``0..N``.
        seed: shuffling seed.

    Returns:
        Sorted indices.
    """
    classes, counts = np.unique(labels, return_counts=True)
    shares = counts * (size / len(labels))
    quotas = np.floor(shares).astype(np.int64)
    by_remainder = np.argsort(-(shares - quotas), kind="stable")
    quotas[by_remainder[: size - int(quotas.sum())]] += 1
    rng = np.random.default_rng(seed)
    picked = [rng.permutation(np.flatnonzero(labels == cls))[:quota] for cls, quota in zip(classes, quotas)]
    return np.sort(np.concatenate(picked)).astype(np.int64)


def label_fraction_indices(labels: np.ndarray, fraction: float, seed: int, task: str) -> np.ndarray:
    """The labelled subset used for fine-tuning at ``fraction`` of the training labels.

    Subsets are seeded, stratified and nested (for one seed, the 1% subset lies inside the 10% one) and hold
    at least one example of every class (multi-label: one positive of every label that has any).

    Args:
        labels: training labels, ``(N,)`` or ``(N, L)``.
        fraction: share of labels kept, in (0, 1].
        seed: seed of the draw.
        task: ``multiclass`` or ``multilabel``.

    Returns:
        Sorted indices into the training split.
    """
    rng = np.random.default_rng(seed)
    if task == MULTILABEL:
        order = rng.permutation(len(labels))
        chosen = order[: max(1, math.ceil(fraction * len(labels)))]
        ordered = labels[order] > 0
        missing = ~(labels[chosen] > 0).any(axis=0) & ordered.any(axis=0)
        extras = order[ordered[:, missing].argmax(axis=0)]
        return np.unique(np.concatenate([chosen, extras]))
    picked: list[np.ndarray] = []
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        picked.append(members[: max(1, round(fraction * len(members)))])
    return np.sort(np.concatenate(picked))


def class_counts(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Examples per class (multi-class) or positives per label (multi-label)."""
    if labels.ndim == 1:
        return np.bincount(labels, minlength=num_classes).astype(np.float64)
    return labels.sum(axis=0).astype(np.float64)


def class_weights(labels: np.ndarray, num_classes: int, low: float = 0.2) -> np.ndarray:
    """Class counts min-max scaled to ``[low, 1]`` (the CASS reference weighting); all ones if counts are equal."""
    counts = class_counts(labels, num_classes)
    span = counts.max() - counts.min()
    if span == 0:
        return np.ones(num_classes)
    return low + (1.0 - low) * (counts - counts.min()) / span


def split_bundle(name: str, task: str, class_names: tuple[str, ...], train: ImageSet, test: ImageSet | None,
                 split_seed: int) -> DatasetBundle:
    """A bundle from a labelled set: split 70/10/20 stratified, or 90/10 into train/val when a test set is given.

    Args:
        name, task, class_names: the bundle's identity.
        train: every labelled image (or the training images when ``test`` is given).
        test: a separate test set, or None to split one off ``train``.
        split_seed: seed of the stratified split.
    """
    if test is None:
        tr, va, te = stratified_split(train.labels, SPLIT, split_seed)
        return DatasetBundle(name, task, class_names, train.subset(tr), train.subset(va), train.subset(te))
    tr, va = stratified_split(train.labels, (1 - VAL_SHARE, VAL_SHARE), split_seed)
    return DatasetBundle(name, task, class_names, train.subset(tr), train.subset(va), test)
