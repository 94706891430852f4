"""Formula-driven images in the style of FractalDB, for a supervised start that needs no natural images.

Source: Kataoka et al., "Pre-training without Natural Images" (ACCV 2020; IJCV 2022).

Class: an iterated function system (IFS) of 2 to 4 random 2-D affine maps ``w = [a, b, c, d, e, f]``
(``x' = a x + b y + e``, ``y' = c x + d y + f``) with coefficients uniform in [-1, 1]. Every map is contractive (the
largest singular value of ``[[a, b], [c, d]]`` is below 1; a map that is not is drawn again), and map ``i`` is picked
with probability ``|det_i| / sum_j |det_j|`` (uniform if every determinant is zero).

Instance: the class's system with ONE coefficient of ONE map multiplied by a factor uniform in
``[1 - perturbation, 1 + perturbation]`` (FractalDB's intra-category augmentation), then flipped left-right with
probability 1/2.

Render: the chaos game from (0, 0). ``BURN_IN`` steps are discarded, then ``points`` steps are kept; the kept cloud's
bounding box is scaled, aspect ratio kept, into the square less a margin of ``MARGIN`` of the side on every edge and
centred. A pixel is 255 where at least one point lands and 0 elsewhere (a binary image: no counts are kept). The
chaos game is sequential in time, so it runs for a whole batch of images at once, one step for all of them per
iteration.

Filter (FractalDB's fill-rate rule): a class's system is drawn again until its render lights at least ``min_fill`` of
the pixels. An instance's perturbation is drawn again when it makes a map non-contractive or its render lights less
than ``min_fill``; after ``INSTANCE_TRIES`` failed renders the instance is the class's own accepted render, flipped or
not, so every image passes the filter.

Seeding: every random draw comes from a generator seeded by ``(seed, stream, class, index)`` through
``np.random.SeedSequence``: candidate ``k`` of class ``c`` and instance ``i`` of class ``c`` each own one generator,
used for their parameters and then their chaos game. An image therefore depends only on the recipe's seed, its class
and instance index and the render settings, not on how many classes or instances are drawn or how images are batched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MIN_MAPS = 2
MAX_MAPS = 4
BURN_IN = 100
MARGIN = 0.05
CANDIDATES_PER_ROUND = 4
MAX_CLASS_CANDIDATES = 512
INSTANCE_TRIES = 4
CONTRACTION_TRIES = 16
CHUNK_BYTES = 1 << 27

_CLASS_STREAM = 0
_INSTANCE_STREAM = 1


@dataclass(frozen=True)
class FractalRecipe:
    """Settings of a formula-driven data set; equal recipes give bit-identical data.

    Attributes:
        classes: number of classes (one IFS each).
        instances: images per class.
        image_size: side of the square images in pixels.
        points: chaos-game points plotted per image (after ``BURN_IN`` discarded steps).
        min_fill: least share of lit pixels a class's or instance's render must reach.
        perturbation: an instance multiplies one coefficient by a factor in ``[1 - p, 1 + p]``.
        seed: non-negative root seed.
    """

    classes: int = 32
    instances: int = 100
    image_size: int = 32
    points: int = 20_000
    min_fill: float = 0.05
    perturbation: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.classes < 1 or self.instances < 1:
            raise ValueError(f"classes and instances must be >= 1, got {self.classes} and {self.instances}")
        if self.image_size < 2:
            raise ValueError(f"image_size must be >= 2, got {self.image_size}")
        if self.points < 1:
            raise ValueError(f"points must be >= 1, got {self.points}")
        if not 0.0 <= self.min_fill < 1.0:
            raise ValueError(f"min_fill must lie in [0, 1), got {self.min_fill}")
        if not 0.0 <= self.perturbation < 1.0:
            raise ValueError(f"perturbation must lie in [0, 1), got {self.perturbation}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")


def largest_singular_values(maps: np.ndarray) -> np.ndarray:
    """Spectral norm of the linear part of each affine map.

    Args:
        maps: ``(..., 6)`` maps ``[a, b, c, d, e, f]``.

    Returns:
        ``(...)`` largest singular values of ``[[a, b], [c, d]]``.
    """
    maps = np.asarray(maps, dtype=np.float64)
    a, b, c, d = maps[..., 0], maps[..., 1], maps[..., 2], maps[..., 3]
    frob = a * a + b * b + c * c + d * d
    det = a * d - b * c
    gap = np.sqrt(np.maximum(frob * frob - 4.0 * det * det, 0.0))
    return np.sqrt((frob + gap) / 2.0)


def map_probabilities(system: np.ndarray) -> np.ndarray:
    """Chaos-game probability of each map of one system: ``|det|`` normalised, uniform if every ``det`` is zero.

    Args:
        system: ``(m, 6)`` maps.

    Returns:
        ``(m,)`` probabilities summing to 1.
    """
    system = np.asarray(system, dtype=np.float64)
    weight = np.abs(system[:, 0] * system[:, 3] - system[:, 1] * system[:, 2])
    total = weight.sum()
    if not total > 0.0:
        return np.full(len(system), 1.0 / len(system))
    return weight / total


def fill_rate(images: np.ndarray) -> np.ndarray:
    """Share of lit (non-zero) pixels of each image.

    Args:
        images: ``(..., size, size)`` images.

    Returns:
        ``(...)`` shares in [0, 1].
    """
    return (np.asarray(images) > 0).mean(axis=(-2, -1))


def _generator(seed: int, stream: int, group: int, index: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, stream, group, index])))


def _as_systems(systems: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    if isinstance(systems, np.ndarray) and systems.ndim != 3:
        raise ValueError(f"systems must be an (n, m, 6) array or a list of (m, 6) arrays, got shape {systems.shape}")
    out = [np.asarray(s, dtype=np.float64) for s in systems]
    for s in out:
        if s.ndim != 2 or s.shape[1] != 6 or not 1 <= s.shape[0] <= MAX_MAPS:
            raise ValueError(f"each system must be an (m, 6) array with 1 <= m <= {MAX_MAPS}, got shape {s.shape}")
    return out


def _render_with(systems: list[np.ndarray], size: int, points: int,
                 generators: list[np.random.Generator]) -> np.ndarray:
    """Chaos-game render of each system with its own generator (so results do not depend on batching)."""
    n = len(systems)
    images = np.zeros((n, size, size), dtype=np.uint8)
    steps = BURN_IN + points
    chunk = max(1, CHUNK_BYTES // (12 * steps))
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        images[start:stop] = _render_chunk(systems[start:stop], size, points, generators[start:stop])
    return images


def _render_chunk(systems: list[np.ndarray], size: int, points: int,
                  generators: list[np.random.Generator]) -> np.ndarray:
    n = len(systems)
    steps = BURN_IN + points
    coef = np.zeros((n, MAX_MAPS, 6), dtype=np.float64)
    choice = np.empty((steps, n), dtype=np.intp)
    for j, (system, gen) in enumerate(zip(systems, generators)):
        m = len(system)
        coef[j, :m] = system
        prob = map_probabilities(system)
        cum = np.minimum(np.cumsum(prob), 1.0)
        cum[np.flatnonzero(prob)[-1]:] = 1.0
        choice[:, j] = np.searchsorted(cum, gen.random(steps), side="right") + j * MAX_MAPS
    table = np.ascontiguousarray(coef.reshape(n * MAX_MAPS, 6).T)

    cloud = np.empty((points, 2, n), dtype=np.float32)
    x = np.zeros(n)
    y = np.zeros(n)
    with np.errstate(over="ignore", invalid="ignore"):
        for step in range(steps):
            a, b, c, d, e, f = table[:, choice[step]]
            x, y = a * x + b * y + e, c * x + d * y + f
            if step >= BURN_IN:
                cloud[step - BURN_IN, 0] = x
                cloud[step - BURN_IN, 1] = y
    del choice

    finite = np.isfinite(cloud).all(axis=(0, 1))
    cloud[:, :, ~finite] = 0.0
    low = cloud.min(axis=0)
    high = cloud.max(axis=0)
    centre = (low + high) / 2.0
    extent = (high - low).max(axis=0)
    usable = size * (1.0 - 2.0 * MARGIN)
    scale = np.where(extent > 0, usable / np.where(extent > 0, extent, 1.0), 0.0).astype(np.float32)
    half = np.float32(size / 2.0)
    col = np.floor((cloud[:, 0] - centre[0]) * scale + half)
    row = np.floor(half - (cloud[:, 1] - centre[1]) * scale)
    del cloud
    np.clip(col, 0, size - 1, out=col)
    np.clip(row, 0, size - 1, out=row)
    flat = (np.arange(n, dtype=np.intp) * size + row.astype(np.intp)) * size + col.astype(np.intp)
    lit = np.zeros(n * size * size, dtype=bool)
    lit[flat.ravel()] = True
    images = lit.reshape(n, size, size).astype(np.uint8) * np.uint8(255)
    images[~finite] = 0
    return images


def render(systems: np.ndarray | Sequence[np.ndarray], size: int, points: int, rng: np.random.Generator) -> np.ndarray:
    """Renders a batch of IFS with the chaos game, all images stepped together.

    Systems may have different numbers of maps; they are padded to ``MAX_MAPS`` maps of probability zero. Each
    system's map probabilities are ``map_probabilities`` of its own (unpadded) maps. A system whose orbit is not
    finite (not contractive) renders as a black image.

    Args:
        systems: ``(n, m, 6)`` array, or a sequence of ``(m_i, 6)`` arrays with ``1 <= m_i <= MAX_MAPS``.
        size: side of the square images in pixels.
        points: chaos-game points plotted per image after ``BURN_IN`` discarded steps.
        rng: source of one child generator per image (``rng.spawn``).

    Returns:
        ``(n, size, size)`` uint8 images, 255 on the attractor and 0 elsewhere.
    """
    if size < 2 or points < 1:
        raise ValueError(f"size must be >= 2 and points >= 1, got {size} and {points}")
    parts = _as_systems(systems)
    return _render_with(parts, size, points, rng.spawn(len(parts)))


def _draw_system(gen: np.random.Generator) -> np.ndarray:
    count = int(gen.integers(MIN_MAPS, MAX_MAPS + 1))
    kept: list[np.ndarray] = []
    while len(kept) < count:
        candidates = gen.uniform(-1.0, 1.0, size=(2 * MAX_MAPS, 6))
        kept.extend(candidates[largest_singular_values(candidates) < 1.0])
    return np.array(kept[:count])


def _base_renders(recipe: FractalRecipe) -> tuple[list[np.ndarray], np.ndarray]:
    """Each class's accepted system and its render (the first candidate whose render passes ``min_fill``)."""
    size = recipe.image_size
    systems: list[np.ndarray | None] = [None] * recipe.classes
    images = np.zeros((recipe.classes, size, size), dtype=np.uint8)
    pending = list(range(recipe.classes))
    first = 0
    while pending:
        if first >= MAX_CLASS_CANDIDATES:
            raise RuntimeError(f"no system among {MAX_CLASS_CANDIDATES} candidates reached min_fill="
                               f"{recipe.min_fill} for classes {pending}; lower min_fill or raise points")
        keys, drawn, gens = [], [], []
        for cls in pending:
            for k in range(first, first + CANDIDATES_PER_ROUND):
                gen = _generator(recipe.seed, _CLASS_STREAM, cls, k)
                keys.append(cls)
                drawn.append(_draw_system(gen))
                gens.append(gen)
        rendered = _render_with(drawn, size, recipe.points, gens)
        passed = fill_rate(rendered) >= recipe.min_fill
        for pos, cls in enumerate(keys):
            if passed[pos] and systems[cls] is None:
                systems[cls] = drawn[pos]
                images[cls] = rendered[pos]
        pending = [cls for cls in pending if systems[cls] is None]
        first += CANDIDATES_PER_ROUND
    return [s for s in systems if s is not None], images


def class_systems(recipe: FractalRecipe) -> list[np.ndarray]:
    """The IFS of every class, contractive and passing the fill-rate filter.

    Args:
        recipe: generator settings.

    Returns:
        One ``(m, 6)`` array of maps per class, ``2 <= m <= 4``.
    """
    return _base_renders(recipe)[0]


def _perturb(system: np.ndarray, gen: np.random.Generator, amount: float) -> np.ndarray:
    """``system`` with one coefficient of one map scaled; the unchanged system if no contractive draw is found."""
    for _ in range(CONTRACTION_TRIES):
        which = int(gen.integers(len(system)))
        coefficient = int(gen.integers(6))
        factor = gen.uniform(1.0 - amount, 1.0 + amount)
        changed = system.copy()
        changed[which, coefficient] *= factor
        if largest_singular_values(changed[which]) < 1.0:
            return changed
    return system.copy()


def fractal_dataset(recipe: FractalRecipe) -> tuple[np.ndarray, np.ndarray]:
    """Renders the whole data set: ``recipe.instances`` perturbed, filtered, possibly flipped images per class.

    Args:
        recipe: generator settings.

    Returns:
        ``images``: ``(classes * instances, size, size)`` uint8 grayscale (replicate channels for RGB);
        ``labels``: ``(classes * instances,)`` int64, class-major (class 0's instances first).
    """
    bases, base_images = _base_renders(recipe)
    size = recipe.image_size
    total = recipe.classes * recipe.instances
    labels = np.repeat(np.arange(recipe.classes, dtype=np.int64), recipe.instances)
    gens = [_generator(recipe.seed, _INSTANCE_STREAM, cls, i)
            for cls in range(recipe.classes) for i in range(recipe.instances)]
    flips = np.array([gen.random() < 0.5 for gen in gens], dtype=bool)
    images = np.zeros((total, size, size), dtype=np.uint8)
    pending = np.arange(total)
    for _ in range(INSTANCE_TRIES):
        if pending.size == 0:
            break
        drawn = [_perturb(bases[labels[i]], gens[i], recipe.perturbation) for i in pending]
        rendered = _render_with(drawn, size, recipe.points, [gens[i] for i in pending])
        passed = fill_rate(rendered) >= recipe.min_fill
        images[pending[passed]] = rendered[passed]
        pending = pending[~passed]
    images[pending] = base_images[labels[pending]]
    images[flips] = images[flips, :, ::-1]
    return images, labels
