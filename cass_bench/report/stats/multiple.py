"""Holm's step-down correction over a family of p values (``statsmodels.stats.multitest.multipletests``)."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from statsmodels.stats.multitest import multipletests


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p values in the input order; NaN entries stay NaN and do not count in the family's size."""
    p = np.asarray(pvalues, dtype=float)
    adjusted = np.full(p.shape, math.nan)
    finite = np.isfinite(p)
    if finite.any():
        adjusted[finite] = multipletests(p[finite], method="holm")[1]
    return adjusted.tolist()
