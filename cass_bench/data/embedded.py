"""The offline datasets, built from scikit-learn's bundled handwritten digits (1,797 real 8x8 images)."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits

from cass_bench.data.bundle import MULTICLASS, MULTILABEL, ArrayImages, DatasetBundle, ImageSet
from cass_bench.data.splits import SPLIT, split_bundle, stratified_split


def digit_images() -> tuple[np.ndarray, np.ndarray]:
    """The bundled digits as uint8 ``(1797, 8, 8)`` images (0..255) and int64 labels."""
    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    return images, digits.target.astype(np.int64)


def embedded(image_size: int, split_seed: int) -> DatasetBundle:
    """The ``embedded`` dataset: 10-class digits, upsampled to ``image_size``, split 70/10/20 stratified.

    Args:
        image_size: side of the output images.
        split_seed: seed of the train/val/test split.

    Returns:
        The dataset bundle (grayscale replicated to 3 channels).
    """
    images, labels = digit_images()
    everything = ImageSet(ArrayImages(images, image_size), labels)
    return split_bundle("embedded", MULTICLASS, tuple(str(d) for d in range(10)), everything, None, split_seed)


def pair_images(images: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Two 8x8 digits side by side, padded to a 16x16 square: ``(N, 16, 16)`` uint8."""
    pairs = np.concatenate([images[left], images[right]], axis=2)
    pad = (pairs.shape[2] - pairs.shape[1]) // 2
    return np.pad(pairs, ((0, 0), (pad, pad), (0, 0)))


def digit_sets(labels: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """0/1 labels ``(N, 10)``: which digits appear in each pair."""
    sets = np.zeros((len(left), 10), dtype=np.int64)
    rows = np.arange(len(left))
    sets[rows, labels[left]] = 1
    sets[rows, labels[right]] = 1
    return sets


def embedded_multilabel(image_size: int, split_seed: int) -> DatasetBundle:
    """The ``embedded-multilabel`` dataset: pairs of digits side by side, labels = the set of digits shown.

    The digits are first split 70/10/20 (stratified, seeded); each split then pairs every digit with a random
    partner from the same split (seeded), so no digit image appears in two splits. About one pair in ten shows
    the same digit twice and has a single positive label.

    Args:
        image_size: side of the output images.
        split_seed: seed of the split and of the pairing.

    Returns:
        The multi-label bundle: 10 labels, ``(N, 10)`` 0/1 int64.
    """
    images, labels = digit_images()
    rng = np.random.default_rng(split_seed)
    parts = []
    for indices in stratified_split(labels, SPLIT, split_seed):
        partners = rng.permutation(indices)
        parts.append(ImageSet(ArrayImages(pair_images(images, indices, partners), image_size),
                              digit_sets(labels, indices, partners)))
    return DatasetBundle(
        name="embedded-multilabel",
        task=MULTILABEL,
        class_names=tuple(str(d) for d in range(10)),
        train=parts[0],
        val=parts[1],
        test=parts[2],
    )
