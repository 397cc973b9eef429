"""Reading a head-ablation sweep against its noise: subsets of the images, agreement between two
sweeps, and bootstrap intervals over images for any weighted combination of heads.

All of it works on the per-image losses ``vn.sweep(..., per_image=True)`` keeps. A head's effect is
its relative loss increase ``mean_i loss_h(i) / mean_i base(i) - 1`` over the images ``i``; the
intervals resample the images (percentile bootstrap, the resampling scheme of ``vn.bootstrap``:
resample ``b`` takes ``rng.integers(0, n, size=n)``, ``rng = numpy.random.default_rng(seed)``) and
recompute that ratio, so numerator and denominator move together. Introduced in notebook 08 (head
ablation).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..interventions.ablation import ImageLosses

__all__ = ["head_intervals", "sweep_agreement", "sweep_subset"]


def _per_image(sweep: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The sweep's per-image losses ``[heads, n]`` and intact losses ``[n]``, or a clear error."""
    per = sweep.attrs.get("per_image")
    if not isinstance(per, ImageLosses):
        raise ValueError("the sweep has no per-image losses: run it with vn.sweep(..., per_image=True)")
    losses, base = np.asarray(per.losses), np.asarray(per.baseline)
    if losses.shape != (len(sweep), base.shape[0]):
        raise ValueError(
            f"per-image losses of shape {losses.shape} do not match {len(sweep)} heads x {base.shape[0]} images; "
            "filtering or sorting the table's rows drops the match: keep the table vn.sweep returned"
        )
    return losses, base


def sweep_subset(sweep: pd.DataFrame, images: Any) -> pd.DataFrame:
    """The sweep a subset of its images would have given: the same table (``loss``,
    ``rel_increase``, the attrs, per-image losses) recomputed over ``images`` (indices or a boolean
    mask over the sweep's images). Two disjoint subsets measure how much the numbers move with the
    images (notebook 08's noise floor). Introduced in notebook 08."""
    losses, base = _per_image(sweep)
    idx = np.arange(base.shape[0])[np.asarray(images)]
    if idx.size == 0:
        raise ValueError("the subset has no images; pass at least one index")
    sub, b = losses[:, idx], base[idx]
    out = sweep[["layer", "head"]].copy()
    out["loss"] = sub.mean(1)
    out["rel_increase"] = out["loss"] / b.mean() - 1.0
    out.attrs.update({**sweep.attrs, "baseline": float(b.mean()), "n": int(idx.size)})
    out.attrs["per_image"] = ImageLosses(sub, b)
    return out


def sweep_agreement(a: pd.DataFrame, b: pd.DataFrame, column: str = "rel_increase") -> dict[str, float]:
    """How far two sweeps of the same heads agree on ``column`` (e.g. two disjoint image sets, or
    zero- and mean-ablation): ``spearman`` (rank correlation over the heads), ``median_abs_diff``
    and ``mean_abs_diff`` (the typical and mean absolute difference of a head's value, in the
    column's units), ``max_abs_diff`` and ``heads``. Introduced in notebook 08."""
    keys = ["layer", "head"]
    for df, name in ((a, "a"), (b, "b")):
        if column not in df.columns or not set(keys) <= set(df.columns):
            raise ValueError(f"sweep {name} needs the columns layer, head and {column!r} (a vn.sweep table)")
    both = a[[*keys, column]].merge(b[[*keys, column]], on=keys, suffixes=("_a", "_b"))
    if len(both) < 2:
        raise ValueError(f"the two sweeps share {len(both)} heads; compare sweeps of the same heads")
    diff = (both[f"{column}_a"] - both[f"{column}_b"]).abs()
    return {
        "spearman": float(both[f"{column}_a"].corr(both[f"{column}_b"], method="spearman")),
        "median_abs_diff": float(diff.median()),
        "mean_abs_diff": float(diff.mean()),
        "max_abs_diff": float(diff.max()),
        "heads": int(len(both)),
    }


def head_intervals(
    sweep: pd.DataFrame,
    contrasts: Mapping[str, Mapping[tuple[int, int], float]],
    *,
    scale: float = 100.0,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """Weighted sums of head effects with percentile-bootstrap intervals over the images.

    ``contrasts``: name -> ``{(layer, head): weight}``; the value is ``scale * sum_h w_h * r_h``
    with ``r_h`` a head's relative loss increase (``scale=100``: percent). A layer's mean effect
    gives each of its heads ``1/12``; "head h minus the other heads of its layer" gives h ``+1``
    and the others ``-1/11``. Every contrast is computed on the same resamples (paired). Returns
    one row per contrast: ``value``, ``low``, ``high``, ``n`` (images). Introduced in notebook 08.
    """
    losses, base = _per_image(sweep)
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive int, got {n_boot!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    row = {(int(la), int(h)): i for i, (la, h) in enumerate(zip(sweep["layer"], sweep["head"]))}
    weights = np.zeros((len(contrasts), len(row)))
    for c, (name, w) in enumerate(contrasts.items()):
        for key, value in w.items():
            if tuple(key) not in row:
                raise ValueError(f"contrast {name!r} names head {tuple(key)}, which the sweep did not ablate")
            weights[c, row[tuple(key)]] = value
    n = base.shape[0]
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    counts = np.zeros((n_boot, n))
    np.add.at(counts, (np.repeat(np.arange(n_boot), n), idx.ravel()), 1.0)
    rel = (losses @ counts.T) / (base @ counts.T) - 1.0  # [heads, n_boot]: each resample's effects
    boot = scale * weights @ rel
    value = scale * weights @ (losses.mean(1) / base.mean() - 1.0)
    low, high = np.percentile(boot, [100 * (1 - level) / 2, 100 * (1 + level) / 2], axis=1)
    return pd.DataFrame(
        {"value": value, "low": low, "high": high, "n": n},
        index=pd.Index(list(contrasts), name="contrast", tupleize_cols=False),
    )
