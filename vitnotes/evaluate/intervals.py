"""Percentile-bootstrap intervals over images.

Every number chapter 09 prints with an interval comes from here: the mean over images of a
per-image value, and the 2.5th and 97.5th percentiles (``level=0.95``) of the means of
``n_boot`` resamples of the images drawn with replacement (Efron's percentile bootstrap).
Resamples are drawn by ``numpy.random.default_rng(seed).integers(0, n, size=n)``, one row per
resample in order, so the interval is reproducible and two methods evaluated on the same images
with the same seed are resampled identically (paired). Images whose value is undefined (NaN,
e.g. a map with no positive mass) are left out before resampling; ``n`` says how many remained.
Introduced in notebook 09 (which explanation can you trust?).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Interval", "bootstrap", "interval_frame"]

_BLOCK = 1 << 22  # indices drawn per block: memory stays ~32 MiB whatever n_boot x n


@dataclass(frozen=True)
class Interval:
    """A mean over images with its percentile-bootstrap interval: ``value`` (the plain mean),
    ``low``, ``high``, ``n`` (images used) and the settings that produced it."""

    value: float
    low: float
    high: float
    n: int
    n_boot: int
    level: float
    seed: int


def bootstrap(values: Any, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> Interval:
    """Mean of per-image ``values`` and its percentile-bootstrap ``level`` interval.

    Resample ``b`` (``b = 0 .. n_boot - 1``) takes the images ``rng.integers(0, n, size=n)``
    of ``rng = numpy.random.default_rng(seed)`` (drawn in that order, in blocks, so memory is
    bounded); the interval is ``numpy.percentile`` of the resampled means at
    ``(1 - level) / 2`` and ``(1 + level) / 2`` (linear interpolation). NaNs are dropped first;
    with no finite value everything is NaN; with one value the interval is that value. Introduced in notebook 01."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive int, got {n_boot!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    v = v[~np.isnan(v)]
    n = v.size
    if n == 0:
        nan = float("nan")
        return Interval(nan, nan, nan, 0, int(n_boot), level, seed)
    if np.isinf(v).any():
        raise ValueError("values contain inf; a mean over images with an infinite value has no interval")
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    rows = max(1, _BLOCK // n)
    for lo in range(0, n_boot, rows):
        hi = min(n_boot, lo + rows)
        idx = rng.integers(0, n, size=(hi - lo, n))
        means[lo:hi] = v[idx].mean(1)
    low, high = np.percentile(means, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return Interval(float(v.mean()), float(low), float(high), int(n), int(n_boot), level, seed)


def interval_frame(
    values: Any, index: Sequence | None = None, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> pd.DataFrame:
    """``bootstrap`` for several quantities at once: ``values`` is ``[quantity, image]`` (array or tensor,
    e.g. a per-layer statistic ``[layer, image]``) or a mapping ``{name: per-image values}``; one row per
    quantity (labelled by ``index``, or the mapping's keys) with ``value``, ``low``, ``high`` and ``n``.
    Every row is resampled with the same ``seed`` (paired). Introduced in notebook 01 (layers)."""
    if isinstance(values, Mapping):
        index, rows = list(values), [np.asarray(v, dtype=np.float64) for v in values.values()]
    else:
        arr = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values, dtype=np.float64)
        if arr.ndim != 2:
            raise ValueError(f"values must be [quantity, image] (2-D) or a mapping, got shape {arr.shape}")
        rows = list(arr)
        index = list(index) if index is not None else list(range(len(rows)))
    if len(index) != len(rows):
        raise ValueError(f"{len(index)} labels for {len(rows)} quantities; give one label per row")
    out = []
    for v in rows:
        iv = bootstrap(v, n_boot=n_boot, seed=seed, level=level)
        out.append({"value": iv.value, "low": iv.low, "high": iv.high, "n": iv.n})
    return pd.DataFrame(out, index=pd.Index(index))
