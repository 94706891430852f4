"""Feature collapse, measured and judged in one place: the effective ranks, the spread and the collapse rules.

The collapse measure is the effective rank of *centred*, L2-normalised pooled features (:func:`centred_rank`): each
feature vector is scaled to unit norm, the batch mean is subtracted, and RankMe (Garrido et al., ICML 2023: the
exponential of the entropy of the normalised singular values) is taken over the directions whose spread is at least
:data:`SPREAD_FLOOR`. Centring matters: features that share a large mean direction (post-ReLU CNN features, a ViT's
class token) read close to 1 on the uncentred rank however varied they are around that mean, so the uncentred rank
(:func:`effective_rank`, kept for comparison) cannot tell a shared mean from a collapse.

Numpy only (no torch import), so the report can name the rules without loading torch.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

COLLAPSE_RANK = 2.0
"""An encoder is collapsed when its centred rank ends below this: its features vary along fewer than ~2 directions."""
SPREAD_FLOOR = 1e-3
"""A direction of the centred unit-norm features counts only if its root-mean-square spread over the batch
(singular value / sqrt(batch size)) reaches this, so a tiny isotropic residue around one point does not read as
full rank."""
EMBEDDING_COLLAPSE = 0.05
"""A method's outputs are collapsed when their spread ends below this share of the healthy ``1/sqrt(dim)``."""


def _matrix(features: Any) -> np.ndarray:
    """Features as a float64 ``(N, D)`` array (a CPU torch tensor converts without copying its graph)."""
    if hasattr(features, "detach"):
        features = features.detach().cpu().double().numpy()
    matrix = np.asarray(features, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"features must be an (N, D) array, got shape {matrix.shape}")
    return matrix


def rankme(singular: np.ndarray) -> float:
    """RankMe of singular values: ``exp`` of the entropy of ``s / sum(s)`` (0 when there are none)."""
    if singular.size == 0 or not singular.sum() > 0:
        return 0.0
    p = singular / singular.sum() + 1e-12
    return float(math.exp(-(p * np.log(p)).sum()))


def unit_rows(features: Any) -> np.ndarray:
    """Each feature vector scaled to unit L2 norm (an all-zero vector stays zero)."""
    matrix = _matrix(features)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


def effective_rank(features: Any) -> float:
    """RankMe of the raw ``(N, D)`` features, uncentred (reads ~1 whenever the features share a large mean)."""
    return rankme(np.linalg.svd(_matrix(features), compute_uv=False))


def centred_rank(features: Any, floor: float = SPREAD_FLOOR) -> float:
    """The collapse measure: RankMe of the centred, L2-normalised ``(N, D)`` features.

    Args:
        features: pooled features, one row per image.
        floor: directions whose root-mean-square spread (singular value / sqrt(N)) is below this count as zero.

    Returns:
        The effective number of directions the features vary along; 0 when every image maps to (almost) one point.
    """
    unit = unit_rows(features)
    centred = unit - unit.mean(axis=0, keepdims=True)
    singular = np.linalg.svd(centred, compute_uv=False)
    return rankme(singular[singular / math.sqrt(max(1, len(unit))) >= floor])


def feature_spread(features: Any) -> float:
    """Mean per-dimension standard deviation of the L2-normalised features (0 when every image maps to one point)."""
    unit = unit_rows(features)
    if len(unit) < 2:
        return 0.0
    return float((unit - unit[:1]).std(axis=0, ddof=1).mean())  # shifted by one row: identical rows give exactly 0


def collapsed(rank_history: list[float] | None) -> bool | None:
    """True when the centred rank ends below :data:`COLLAPSE_RANK` (None: not measured)."""
    if not rank_history:
        return None
    return bool(rank_history[-1] < COLLAPSE_RANK)


def embedding_collapsed(std: float | None, dim: int | None) -> bool | None:
    """True when a method's output spread ends below :data:`EMBEDDING_COLLAPSE` of ``1/sqrt(dim)`` (None: unknown)."""
    if std is None or not dim:
        return None
    return bool(std * math.sqrt(dim) < EMBEDDING_COLLAPSE)
