"""The offline default datasets, built from scikit-learn's bundled handwritten digits (1,797 real 8x8 images)."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits

from cass_bench.data.bundle import MULTICLASS, ArrayImages, DatasetBundle, ImageSet
from cass_bench.data.splits import stratified_split

SPLIT = (0.7, 0.1, 0.2)


def _digits() -> tuple[np.ndarray, np.ndarray]:
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
    images, labels = _digits()
    source = ArrayImages(images, image_size)
    everything = ImageSet(source, labels)
    train, val, test = stratified_split(labels, SPLIT, split_seed)
    return DatasetBundle(
        name="embedded",
        task=MULTICLASS,
        class_names=tuple(str(d) for d in range(10)),
        train=everything.subset(train),
        val=everything.subset(val),
        test=everything.subset(test),
    )
