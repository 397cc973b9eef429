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

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..interventions.ablation import ImageLosses

__all__ = ["head_intervals", "sweep_agreement", "sweep_agreement_intervals", "sweep_subset"]


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


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks along axis 0 (ties get their average rank, as pandas' and scipy's Spearman give them)."""
    from scipy.stats import rankdata

    return rankdata(values, axis=0)


def _spearman_columns(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman correlation of ``a[:, j]`` with ``b[:, j]`` for every column ``j`` (``[items, columns]``)."""
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(0), rb - rb.mean(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (ra * rb).sum(0) / np.sqrt((ra**2).sum(0) * (rb**2).sum(0))


def _counts(idx: np.ndarray, n: int) -> np.ndarray:
    """``[n_boot, n]``: how often each image is drawn in each resample ``idx`` ``[n_boot, n]``."""
    counts = np.zeros((idx.shape[0], n))
    np.add.at(counts, (np.repeat(np.arange(idx.shape[0]), idx.shape[1]), idx.ravel()), 1.0)
    return counts


def sweep_agreement_intervals(
    pairs: Mapping[str, tuple[pd.DataFrame, pd.DataFrame]],
    *,
    same_images: bool = False,
    reference: str | None = None,
    layers: Sequence[int] | None = None,
    by: str = "head",
    scale: float = 100.0,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """``vn.evaluate.sweep_agreement``'s Spearman and median absolute difference, with percentile-bootstrap
    intervals over the images, for several pairs of sweeps at once.

    ``pairs``: name -> ``(a, b)``, two sweeps kept with ``per_image=True`` (or
    ``vn.attribution_sweep`` tables) over the same heads. A head's value is its relative loss
    increase times ``scale`` (100: percent, so differences are in percentage points); ``layers``
    keeps only the heads of those layers; ``by="layer"`` first averages each layer's heads, so the
    statistics compare layer means. ``same_images=False`` (two disjoint image sets, e.g. two halves,
    or two models on their own images): resample ``b`` draws ``a``'s images
    ``rng.integers(0, n_a, size=n_a)`` and then ``b``'s ``rng.integers(0, n_b, size=n_b)`` from
    ``rng = numpy.random.default_rng(seed)``, one resample after the other; ``same_images=True``
    (``a`` and ``b`` measured on the same images, in the same order): one draw
    ``rng.integers(0, n, size=n)`` serves both, so what the two share through the images stays shared.
    In each resample every head's ratio is recomputed (``sum_i loss_h(i) / sum_i base(i) - 1``), so
    numerator and denominator move together, as in ``vn.evaluate.head_intervals``.

    Every pair is resampled with the same draws (all ``a`` need one image count, all ``b`` another),
    so pairs compare paired: ``reference`` names a pair, and every other pair gets a row
    ``("<name> minus <reference>", "spearman")``, the difference of the two Spearman correlations.

    Returns one row per (pair, statistic) with statistic ``"spearman"`` or ``"median |difference|"``;
    columns ``value`` (on all images, equal to ``vn.evaluate.sweep_agreement``'s), ``low``, ``high``, ``items``
    (heads or layers compared), ``n_a``, ``n_b`` (images). Introduced in notebook 08 (head ablation).
    """
    if not pairs:
        raise ValueError("pass at least one pair of sweeps: {name: (a, b)}")
    if by not in ("head", "layer"):
        raise ValueError(f"by must be 'head' or 'layer', got {by!r}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive int, got {n_boot!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if reference is not None and reference not in pairs:
        raise ValueError(f"reference {reference!r} is not one of the pairs {list(pairs)}")
    data = {name: _pair(a, b, layers, by) for name, (a, b) in pairs.items()}
    n_a, n_b = {d[0].shape[1] for d in data.values()}, {d[2].shape[1] for d in data.values()}
    if len(n_a) != 1 or len(n_b) != 1:
        raise ValueError("every pair's a needs the same image count, and every pair's b too (they share resamples)")
    n_a, n_b = n_a.pop(), n_b.pop()
    if same_images and n_a != n_b:
        raise ValueError(f"same_images=True needs the same images in a and b, got {n_a} and {n_b}")
    rng = np.random.default_rng(seed)
    if same_images:
        counts_a = counts_b = _counts(rng.integers(0, n_a, size=(n_boot, n_a)), n_a)
    else:
        counts_a = _counts(rng.integers(0, n_a, size=(n_boot, n_a)), n_a)
        counts_b = _counts(rng.integers(0, n_b, size=(n_boot, n_b)), n_b)
    q = [100 * (1 - level) / 2, 100 * (1 + level) / 2]
    rows, boots, values = [], {}, {}
    for name, (la, ba, lb, bb, groups) in data.items():
        va = groups.T @ (scale * (la.mean(1) / ba.mean() - 1.0))  # [items]: on all images
        vb = groups.T @ (scale * (lb.mean(1) / bb.mean() - 1.0))
        ra = groups.T @ (scale * ((la @ counts_a.T) / (ba @ counts_a.T) - 1.0))  # [items, n_boot]: resampled
        rb = groups.T @ (scale * ((lb @ counts_b.T) / (bb @ counts_b.T) - 1.0))
        boots[name] = _spearman_columns(ra, rb)
        values[name] = float(_spearman_columns(va[:, None], vb[:, None])[0])
        stats = (
            ("spearman", values[name], boots[name]),
            ("median |difference|", float(np.median(np.abs(va - vb))), np.median(np.abs(ra - rb), axis=0)),
        )
        for stat, value, boot in stats:
            low, high = np.percentile(boot, q)
            rows.append({"pair": name, "statistic": stat, "value": value, "low": low, "high": high, "items": len(va)})
    for name in pairs if reference is not None else ():
        if name != reference:
            low, high = np.percentile(boots[name] - boots[reference], q)
            rows.append({"pair": f"{name} minus {reference}", "statistic": "spearman",
                         "value": values[name] - values[reference], "low": low, "high": high,
                         "items": data[name][4].shape[1]})  # fmt: skip
    out = pd.DataFrame(rows).assign(n_a=n_a, n_b=n_b)
    return out.set_index(["pair", "statistic"])


def _pair(a: pd.DataFrame, b: pd.DataFrame, layers: Sequence[int] | None, by: str):
    """The two sweeps' per-image losses over their shared heads (in a's order, restricted to ``layers``):
    ``(losses_a [heads, n_a], base_a, losses_b [heads, n_b], base_b, groups [heads, items])``, ``groups``
    the 0/1 (heads) or 1/12-style (layer means) weights that turn head values into the compared items."""
    (la, ba), (lb, bb) = _per_image(a), _per_image(b)
    keys_a = [(int(x), int(y)) for x, y in zip(a["layer"], a["head"])]
    row_b = {(int(x), int(y)): i for i, (x, y) in enumerate(zip(b["layer"], b["head"]))}
    keep = [i for i, k in enumerate(keys_a) if k in row_b and (layers is None or k[0] in set(layers))]
    if len(keep) < 2:
        raise ValueError(f"the two sweeps share {len(keep)} heads (in the layers asked for); compare the same heads")
    keys = [keys_a[i] for i in keep]
    la, lb = la[keep], lb[[row_b[k] for k in keys]]
    if by == "head":
        groups = np.eye(len(keys))
    else:
        names = sorted({k[0] for k in keys})
        groups = np.array([[float(k[0] == layer) for layer in names] for k in keys])
        groups /= groups.sum(0)
        if len(names) < 2:
            raise ValueError("by='layer' needs heads of at least two layers")
    return la, ba, lb, bb, groups
