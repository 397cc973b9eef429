"""Paired verdicts: is one map better than another on the same images?

Every map of chapter 09 is scored on the same images, so two maps are compared image by image,
not by whether two separate intervals overlap (two overlapping intervals can hide a difference
that every image shows, and two separated ones can come from a handful of comparisons among a
hundred). For each comparison of method A with method B on one metric (and baseline):

- **the paired difference** ``d_i = A_i - B_i`` of every image with both values defined, its
  mean with a percentile-bootstrap interval over the images (``vn.bootstrap``: ``n_boot``
  resamples, ``seed``), the effect size ``d_z`` (mean / standard deviation of ``d``, ``ddof=1``)
  and ``wins``, the share of the images on which A is strictly better (in the metric's direction,
  ``BETTER``);
- **a p-value**: the two-sided sign-flip permutation test of the mean difference (under "A and B
  are exchangeable on every image" each ``d_i`` is as likely to be ``-d_i``): the share of sign
  patterns whose ``|mean|`` is at least the observed one. Exact (every one of the ``2**n`` patterns)
  when ``2**n <= n_perm``; otherwise ``n_perm`` random patterns drawn once per call from
  ``numpy.random.default_rng(seed)`` and shared by every comparison, with ``p = (1 + hits) /
  (1 + n_perm)``;
- **Holm's correction** across every row of the table one call returns (``p_adjusted``; Holm 1979:
  the k-th smallest of m p-values is multiplied by ``m - k + 1``, then made non-decreasing), so that
  the chance of calling even one tied pair different stays below ``alpha`` however many
  comparisons the table holds.

**The rule** (``PAIRED_RULE``): A is *better* than B when its Holm-adjusted p-value is below
``alpha`` (0.05) and the mean paired difference lies on the metric's better side; *worse* when it
is below ``alpha`` and on the other side; otherwise these images *cannot tell* them apart.

Introduced in notebook 09 (which explanation can you trust?).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .intervals import bootstrap

__all__ = ["PAIRED_RULE", "holm", "paired_verdicts", "per_image", "sign_flip_pvalues"]

PAIRED_RULE = (
    "A map is better than another on a metric when the mean over images of their paired difference lies "
    "on the metric's better side and its two-sided sign-flip p-value, Holm-corrected across every "
    "comparison of the table, is below 0.05; worse when it lies on the other side with the same p-value; "
    "otherwise these images cannot tell the two apart."
)
WORDS = ("better", "worse", "cannot tell")
_BLOCK = 1 << 21  # sign entries drawn at a time


def holm(p: Any) -> np.ndarray:
    """Holm's step-down adjusted p-values (same order as ``p``; NaN stays NaN and is not counted)."""
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    scaled = p[order] * (m - np.arange(m))
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out


def sign_flip_pvalues(differences: Any, *, n_perm: int = 100_000, seed: int = 0) -> np.ndarray:
    """Two-sided sign-flip p-values of the mean of each column of ``differences`` ``[image, comparison]``
    (module docstring). A NaN (an image without both values) counts as no difference: flipping it
    changes nothing, so each column is tested on its own defined images. A column with no defined
    value, or only zeros, gets p = 1 (nothing to tell)."""
    d = np.asarray(differences, dtype=np.float64)
    if d.ndim == 1:
        d = d[:, None]
    if d.ndim != 2:
        raise ValueError(f"differences must be [image, comparison], got shape {d.shape}")
    if isinstance(n_perm, bool) or not isinstance(n_perm, (int, np.integer)) or n_perm < 1:
        raise ValueError(f"n_perm must be a positive int, got {n_perm!r}")
    d = np.nan_to_num(d, nan=0.0)
    n, _ = d.shape
    observed = np.abs(d.sum(0))
    tol = 1e-9 * np.abs(d).sum(0)  # sums of the same terms in another order
    hits = np.zeros(d.shape[1])
    if n == 0:
        return np.ones(d.shape[1])
    exact = n < 63 and 2**n <= n_perm
    if exact:
        total = 2**n
        for lo in range(0, total, max(1, _BLOCK // n)):
            codes = np.arange(lo, min(total, lo + max(1, _BLOCK // n)), dtype=np.int64)
            signs = 1.0 - 2.0 * ((codes[:, None] >> np.arange(n)) & 1)
            hits += (np.abs(signs @ d) >= observed - tol).sum(0)
        p = hits / total
    else:
        rng = np.random.default_rng(seed)
        rows = max(1, _BLOCK // n)
        for lo in range(0, n_perm, rows):
            signs = 1.0 - 2.0 * rng.integers(0, 2, size=(min(n_perm, lo + rows) - lo, n))
            hits += (np.abs(signs @ d) >= observed - tol).sum(0)
        p = (1.0 + hits) / (1.0 + n_perm)
    p[observed <= tol] = 1.0
    return np.minimum(p, 1.0)


def per_image(table: pd.DataFrame) -> pd.DataFrame:
    """The per-image values a table carries in its ``values`` column (``evaluation_table(...,
    per_image=True)``, ``randomisation_check``) as a long table: one row per (method, family, metric,
    baseline, image) with ``value``."""
    if "values" not in table:
        raise ValueError("the table has no per-image values: make it with vn.evaluation_table(..., per_image=True)")
    rows = [
        (r.method, r.family, r.metric, r.baseline, i, v)
        for r in table.itertuples(index=False)
        if isinstance(r.values, tuple)
        for i, v in enumerate(r.values)
    ]
    return pd.DataFrame(rows, columns=["method", "family", "metric", "baseline", "image", "value"])


def _pairs(groups: dict, against: Sequence[str], pairs: Any) -> list[tuple[tuple, str, str]]:
    """(group key, A, B) of every comparison, in a stable order, each unordered pair once."""
    out, seen = [], set()
    for key, g in groups.items():
        names = list(g)
        todo = [(m, c) for c in against if c in g for m in names if m != c]
        if isinstance(pairs, str):
            if pairs != "all":
                raise ValueError(f"pairs must be 'all' or a list of (method, method), got {pairs!r}")
            todo += [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
        else:
            todo += [(a, b) for a, b in (pairs or ()) if a in g and b in g and a != b]
        for a, b in todo:
            if (key, a, b) not in seen and (key, b, a) not in seen:
                seen.add((key, a, b))
                out.append((key, a, b))
    return out


def _directions(better: Any) -> dict[str, int]:
    """``better`` checked: metric names with +1 (higher is better) or -1 (lower is better)."""
    if better is None:
        return {}
    if not isinstance(better, Mapping) or any(v not in (1, -1) for v in better.values()):
        raise ValueError(
            f"better must map metric names to +1 (higher is better) or -1 (lower is better), got {better!r}"
        )
    return {str(k): int(v) for k, v in better.items()}


def paired_verdicts(
    table: pd.DataFrame,
    against: Sequence[str] = ("random",),
    pairs: Iterable[tuple[str, str]] | str = (),
    *,
    families: Sequence[str] | None = None,
    better: Mapping[str, int] | None = None,
    alpha: float = 0.05,
    n_boot: int = 1000,
    n_perm: int = 100_000,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """Paired comparisons with one multiplicity correction (the rule: ``PAIRED_RULE``, module docstring).

    ``table``: ``evaluation_table(..., per_image=True)``'s rows (several tables concatenated are fine),
    each with its per-image ``values``; only metrics with a direction (``BETTER``) and rows of
    ``families`` (None: all but ``"sanity"``, which has its own rule, ``vn.sanity_verdict``) are
    compared; ``better`` adds or overrides directions (``{metric: +1 or -1}``), e.g. for per-image
    measurements made with ``vn.evaluate.interval_rows(..., per_image=True)``, where "better" then reads as
    "higher" (+1) or "lower" (-1). Comparisons: every method against each of ``against`` (methods are ``A``, the control
    ``B``), and ``pairs`` (``[(A, B), ...]``, or ``"all"``: every two methods of a column), on every
    (metric, baseline) where both have values. Returns one row per comparison: ``method``, ``other``,
    ``family``, ``metric``, ``baseline``, ``n`` (images with both values), ``difference`` (mean of
    A - B) with ``low``, ``high``, ``d_z``, ``wins`` (share of images where A is better), ``p``,
    ``p_adjusted`` (Holm, across all the rows) and ``verdict`` (better / worse / cannot tell, for A).
    Introduced in notebook 03.
    """
    from .trust import BETTER

    BETTER = {**BETTER, **_directions(better)}
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    if "values" not in table:
        raise ValueError("the table has no per-image values: make it with vn.evaluation_table(..., per_image=True)")
    t = table[table["metric"].isin(list(BETTER)) & table["values"].map(lambda v: isinstance(v, tuple))]
    t = t[t["family"] != "sanity"] if families is None else t[t["family"].isin(list(families))]
    groups: dict[tuple, dict[str, np.ndarray]] = {}
    for r in t.itertuples(index=False):
        groups.setdefault((r.family, r.metric, r.baseline), {})[r.method] = np.asarray(r.values, dtype=np.float64)
    todo = _pairs(groups, against, pairs)
    rows, diffs = [], []
    for (family, metric, baseline), a, b in todo:
        va, vb = groups[(family, metric, baseline)][a], groups[(family, metric, baseline)][b]
        if va.shape != vb.shape:
            raise ValueError(f"{a} and {b} have values for {va.size} and {vb.size} images on {metric} [{baseline}]")
        d = va - vb
        ok = ~np.isnan(d)
        iv = bootstrap(d, n_boot=n_boot, seed=seed, level=level)
        sd = float(np.std(d[ok], ddof=1)) if ok.sum() > 1 else math.nan
        wins = float((BETTER[metric] * d[ok] > 0).mean()) if ok.any() else math.nan
        rows.append(
            {
                "method": a, "other": b, "family": family, "metric": metric, "baseline": baseline, "n": iv.n,
                "difference": iv.value, "low": iv.low, "high": iv.high,
                "d_z": iv.value / sd if sd > 0 else math.nan, "wins": wins,
            }
        )  # fmt: skip
        diffs.append(d)
    cols = ["method", "other", "family", "metric", "baseline", "n", "difference", "low", "high", "d_z", "wins"]
    out = pd.DataFrame(rows, columns=cols)
    p = np.ones(len(out))
    for size in sorted({d.size for d in diffs}):
        idx = [i for i, d in enumerate(diffs) if d.size == size]
        p[idx] = sign_flip_pvalues(np.stack([diffs[i] for i in idx], 1), n_perm=n_perm, seed=seed)
    out["p"] = p
    out["p_adjusted"] = holm(p)
    side = np.sign(out["difference"].to_numpy() * out["metric"].map(BETTER).to_numpy())
    significant = out["p_adjusted"].to_numpy() < alpha
    out["verdict"] = np.select([significant & (side > 0), significant & (side < 0)], WORDS[:2], WORDS[2])
    out.attrs.update(alpha=alpha, n_perm=n_perm, n_boot=n_boot, seed=seed, level=level, comparisons=len(out))
    return out
