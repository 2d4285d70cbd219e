"""Confidence intervals used by every suite's episode metrics."""

from __future__ import annotations

import math

import numpy as np


def normal_ci95(x: np.ndarray) -> tuple[float, float]:
    """Normal-approximation 95% interval of the mean of ``x``."""
    x = np.asarray(x, dtype=float)
    if len(x) < 2:
        return float(x.mean()), float(x.mean())
    half = 1.96 * x.std(ddof=1) / math.sqrt(len(x))
    return float(x.mean() - half), float(x.mean() + half)


def mean_ci95(x: np.ndarray) -> tuple[float, float]:
    """Normal-approximation 95% interval of a mean of values in [0, 1], clipped to [0, 1]."""
    lo, hi = normal_ci95(x)
    return max(0.0, lo), min(1.0, hi)


def wilson_ci95(successes: int, n: int) -> tuple[float, float]:
    """Wilson score 95% interval of a success rate."""
    if n == 0:
        return 0.0, 0.0
    z, p = 1.96, successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)
