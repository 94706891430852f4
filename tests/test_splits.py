"""Splits and label fractions: seeded, stratified, nested, every class present."""

from __future__ import annotations

import numpy as np

from cass_bench.data.embedded import embedded
from cass_bench.data.splits import label_fraction_indices, stratified_split, stratified_subset

LABELS = np.repeat(np.arange(6), [200, 100, 50, 20, 5, 2])


def test_label_fractions_are_nested_seeded_and_cover_every_class() -> None:
    subsets = [label_fraction_indices(LABELS, f, seed=3, task="multiclass") for f in (0.01, 0.1, 0.5, 1.0)]
    for small, large in zip(subsets, subsets[1:]):
        assert set(small) <= set(large)
    for subset in subsets:
        assert set(LABELS[subset]) == set(range(6))
    assert len(subsets[-1]) == len(LABELS)
    again = label_fraction_indices(LABELS, 0.1, seed=3, task="multiclass")
    other = label_fraction_indices(LABELS, 0.1, seed=4, task="multiclass")
    assert np.array_equal(subsets[1], again)
    assert not np.array_equal(subsets[1], other)


def test_a_stratified_subset_has_the_exact_size_in_proportion_seeded_and_nested() -> None:
    for size in (0, 1, 37, 120, len(LABELS)):
        subset = stratified_subset(LABELS, size, seed=5)
        assert len(subset) == size == len(np.unique(subset))
        expected = np.bincount(LABELS, minlength=6) * size / len(LABELS)
        assert (np.abs(np.bincount(LABELS[subset], minlength=6) - expected) < 1).all()
    assert np.bincount(LABELS[stratified_subset(LABELS, 75, seed=0)], minlength=6).tolist() == [40, 20, 10, 4, 1, 0]
    assert np.array_equal(stratified_subset(LABELS, 37, seed=5), stratified_subset(LABELS, 37, seed=5))
    assert not np.array_equal(stratified_subset(LABELS, 37, seed=5), stratified_subset(LABELS, 37, seed=6))
    assert set(stratified_subset(LABELS, 37, seed=5)) <= set(stratified_subset(LABELS, 120, seed=5))


def test_label_fractions_are_stratified() -> None:
    subset = label_fraction_indices(LABELS, 0.1, seed=0, task="multiclass")
    counts = np.bincount(LABELS[subset], minlength=6)
    assert counts.tolist() == [20, 10, 5, 2, 1, 1]


def test_multilabel_fractions_keep_a_positive_of_every_label_and_nest() -> None:
    rng = np.random.default_rng(0)
    labels = (rng.random((500, 5)) < [0.5, 0.3, 0.1, 0.02, 0.004]).astype(np.int64)
    assert labels[:, 4].sum() > 0
    small = label_fraction_indices(labels, 0.01, seed=1, task="multilabel")
    large = label_fraction_indices(labels, 0.1, seed=1, task="multilabel")
    assert set(small) <= set(large)
    for subset in (small, large):
        assert (labels[subset].sum(axis=0) > 0).all()
    assert abs(len(large) - 50) <= 5


def test_stratified_split_is_disjoint_complete_and_proportional() -> None:
    train, val, test = stratified_split(LABELS, (0.7, 0.1, 0.2), seed=0)
    assert len(set(train) | set(val) | set(test)) == len(LABELS)
    assert not (set(train) & set(val) or set(train) & set(test) or set(val) & set(test))
    assert np.bincount(LABELS[test], minlength=6)[0] == 40


def test_embedded_dataset_is_real_digits_split_70_10_20() -> None:
    bundle = embedded(image_size=32, split_seed=0)
    sizes = len(bundle.train), len(bundle.val), len(bundle.test)
    assert sum(sizes) == 1797 and abs(sizes[0] - 1258) <= 10 and abs(sizes[2] - 359) <= 10
    image = bundle.train.images.load(0)
    assert image.size == (32, 32) and image.mode == "RGB"
    for split in (bundle.train, bundle.val, bundle.test):
        assert set(split.labels.tolist()) == set(range(10))
