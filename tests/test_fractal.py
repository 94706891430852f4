"""Formula-driven (FractalDB-style) images: determinism, filtering, class structure and the chaos-game render."""

from __future__ import annotations

import numpy as np
import pytest

from cass_bench.starts.fractal import (
    MAX_MAPS,
    MIN_MAPS,
    FractalRecipe,
    class_systems,
    fill_rate,
    fractal_dataset,
    largest_singular_values,
    map_probabilities,
    render,
)

SMALL = FractalRecipe(classes=6, instances=8, image_size=32, points=5000, seed=3)
SIERPINSKI = np.array([[0.5, 0.0, 0.0, 0.5, 0.0, 0.0],
                       [0.5, 0.0, 0.0, 0.5, 0.5, 0.0],
                       [0.5, 0.0, 0.0, 0.5, 0.25, 0.5]])


@pytest.fixture(scope="module")
def small() -> tuple[np.ndarray, np.ndarray]:
    return fractal_dataset(SMALL)


def _pooled(images: np.ndarray, cells: int = 8) -> np.ndarray:
    n, size, _ = images.shape
    k = size // cells
    return images.reshape(n, cells, k, cells, k).mean(axis=(2, 4)).reshape(n, -1) / 255.0


def _mean_distances(images: np.ndarray, labels: np.ndarray, mirror: bool) -> tuple[float, float]:
    """Mean pooled L1 distance between different instances of one class, and between images of different classes."""
    plain = _pooled(images)
    dist = np.abs(plain[:, None] - plain[None]).mean(axis=-1)
    if mirror:
        flipped = _pooled(images[:, :, ::-1].copy())
        dist = np.minimum(dist, np.abs(plain[:, None] - flipped[None]).mean(axis=-1))
    same = labels[:, None] == labels[None]
    other = ~np.eye(len(labels), dtype=bool)
    return float(dist[same & other].mean()), float(dist[~same].mean())


def test_shapes_dtype_and_class_major_labels(small: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = small
    assert images.shape == (SMALL.classes * SMALL.instances, SMALL.image_size, SMALL.image_size)
    assert images.dtype == np.uint8
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, np.repeat(np.arange(SMALL.classes), SMALL.instances))
    np.testing.assert_array_equal(np.bincount(labels), np.full(SMALL.classes, SMALL.instances))
    assert set(np.unique(images).tolist()) == {0, 255}


def test_same_recipe_is_bit_identical_and_seed_matters(small: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = small
    again, again_labels = fractal_dataset(FractalRecipe(classes=6, instances=8, image_size=32, points=5000, seed=3))
    np.testing.assert_array_equal(images, again)
    np.testing.assert_array_equal(labels, again_labels)
    other, _ = fractal_dataset(FractalRecipe(classes=6, instances=8, image_size=32, points=5000, seed=4))
    changed = (images != other).reshape(len(images), -1).any(axis=1)
    assert changed.all()


def test_class_and_instance_independent_of_counts(small: tuple[np.ndarray, np.ndarray]) -> None:
    images, _ = small
    fewer = FractalRecipe(classes=2, instances=3, image_size=32, points=5000, seed=3)
    part, _ = fractal_dataset(fewer)
    full = images.reshape(SMALL.classes, SMALL.instances, 32, 32)[:2, :3].reshape(-1, 32, 32)
    np.testing.assert_array_equal(part, full)
    for mine, theirs in zip(class_systems(fewer), class_systems(SMALL)[:2]):
        np.testing.assert_array_equal(mine, theirs)


def test_every_image_passes_fill_filter(small: tuple[np.ndarray, np.ndarray]) -> None:
    fills = fill_rate(small[0])
    assert fills.min() >= SMALL.min_fill
    assert fills.max() < 0.9


def test_stricter_fill_filter_is_applied() -> None:
    strict = FractalRecipe(classes=4, instances=4, image_size=32, points=5000, min_fill=0.25, seed=1)
    images, _ = fractal_dataset(strict)
    assert fill_rate(images).min() >= 0.25
    loose = render(np.stack([SIERPINSKI[:2], SIERPINSKI[1:]]), 32, 5000, np.random.default_rng(0))
    assert fill_rate(loose).max() < 0.25


def test_classes_differ_more_than_instances(small: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = small
    within, between = _mean_distances(images, labels, mirror=True)
    assert within < 0.5 * between
    within_raw, between_raw = _mean_distances(images, labels, mirror=False)
    assert within_raw < between_raw


def test_instances_of_a_class_vary(small: tuple[np.ndarray, np.ndarray]) -> None:
    images, _ = small
    per_class = images.reshape(SMALL.classes, SMALL.instances, -1)
    for members in per_class:
        assert len(np.unique(members, axis=0)) > 1


def test_class_systems_contractive_with_valid_probabilities() -> None:
    systems = class_systems(SMALL)
    assert len(systems) == SMALL.classes
    for system in systems:
        assert system.ndim == 2 and system.shape[1] == 6
        assert MIN_MAPS <= len(system) <= MAX_MAPS
        assert np.abs(system).max() <= 1.0
        linear = system[:, :4].reshape(-1, 2, 2)
        assert np.linalg.svd(linear, compute_uv=False).max() < 1.0
        prob = map_probabilities(system)
        assert prob.shape == (len(system),)
        assert (prob >= 0).all() and prob.sum() == pytest.approx(1.0)
        det = np.abs(np.linalg.det(linear))
        np.testing.assert_allclose(prob, det / det.sum())


def test_singular_values_and_probability_guard() -> None:
    maps = np.random.default_rng(0).uniform(-1.0, 1.0, size=(200, 6))
    expected = np.linalg.svd(maps[:, :4].reshape(-1, 2, 2), compute_uv=False)[:, 0]
    np.testing.assert_allclose(largest_singular_values(maps), expected, rtol=1e-10)
    flat = np.array([[1.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.5, 0.0, 0.0, 0.1, 0.0]])
    np.testing.assert_allclose(map_probabilities(flat), [0.5, 0.5])


def test_render_pads_mixed_systems_with_zero_probability() -> None:
    two = SIERPINSKI[:2]
    mixed = render([SIERPINSKI, two], 32, 3000, np.random.default_rng(7))
    assert mixed.shape == (2, 32, 32) and mixed.dtype == np.uint8
    padded = np.zeros((2, MAX_MAPS, 6))
    padded[0, :3] = SIERPINSKI
    padded[1, :2] = two
    np.testing.assert_array_equal(render(padded, 32, 3000, np.random.default_rng(7)), mixed)
    with pytest.raises(ValueError):
        render(SIERPINSKI, 32, 3000, np.random.default_rng(0))


def test_render_draws_sierpinski_triangle_apex_up() -> None:
    image = render([SIERPINSKI], 32, 20_000, np.random.default_rng(0))[0] > 0
    rows = np.flatnonzero(image.any(axis=1))
    cols = np.flatnonzero(image.any(axis=0))
    assert rows[0] <= 2 and rows[-1] >= 29
    assert cols[0] <= 2 and cols[-1] >= 29
    assert image[rows[0]].sum() < 6 < image[rows[-1]].sum()
    assert not image[17:22, 13:19].any()
    assert 0.2 < fill_rate(image) < 0.5


def test_recipe_rejects_bad_settings() -> None:
    for bad in ({"min_fill": 1.0}, {"perturbation": 1.0}, {"seed": -1}, {"classes": 0}, {"image_size": 1}):
        with pytest.raises(ValueError):
            FractalRecipe(**bad)
