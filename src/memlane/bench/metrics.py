"""Pure metric functions shared by every benchmark."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def percentiles(values: Sequence[float], points: Sequence[int] = (50, 95, 99)) -> dict[str, float]:
    """p50/p95/p99 (linear interpolation between order statistics, numpy's default)."""
    if not values:
        return {f"p{p}": float("nan") for p in points}
    array = np.asarray(values, dtype=np.float64)
    return {f"p{p}": float(np.percentile(array, p)) for p in points}
