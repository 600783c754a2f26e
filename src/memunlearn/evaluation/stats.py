"""Statistics over seeds: the mean and its t-based confidence interval (docs/methods.md §6)."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


def mean_ci(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float, int]:
    """(mean, t-based CI half-width, n) of the finite values.

    half-width = t_{(1+c)/2, n-1} * s / sqrt(n), s the sample standard
    deviation (ddof 1). Fewer than two values give a NaN half-width: one
    seed says nothing about the spread, which 0 would claim.
    """
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return math.nan, math.nan, 0
    if n == 1:
        return float(x[0]), math.nan, 1
    half = stats.t.ppf((1 + confidence) / 2, n - 1) * x.std(ddof=1) / math.sqrt(n)
    return float(x.mean()), float(half), n
