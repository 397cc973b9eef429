"""Comparing explanation maps: one common grid, agreement between every pair of map kinds,
and how rollout builds up with depth.

Introduced in notebook 03 (CNN vs ViT); ``rollout_by_depth`` in notebook 06 (rollout).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..core.capture import Attention
from ..core.images import Preprocessing
from ..core.model import Model, unwrap
from ..methods.base import explain, methods, registered
from ..methods.rollout import _augmented, _discard, _full, fuse_heads
from ..stats import as_maps, normalized_entropy, rank_correlation, topk_overlap
from .intervals import bootstrap

__all__ = ["agreement", "agreement_intervals", "method_maps", "random_maps", "resize_maps", "rollout_by_depth"]

_MODES = ("bilinear", "nearest", "area", "bicubic")


def resize_maps(maps: Any, size: int | tuple[int, int] = 28, mode: str = "bilinear", model: Any = None) -> torch.Tensor:
    """Maps ``[batch, rows, cols]`` -> ``[batch, H, W]`` on a common grid (``size`` = H = W or (H, W)).

    ``bilinear`` (default, ``align_corners=False``) suits upsampling coarse maps to pixels: a 7x7
    Grad-CAM and a 14x14 attention map both become smooth 28x28 maps whose pixels can be ranked;
    ``nearest`` keeps patches as blocks; ``area`` averages when shrinking. A map already at
    ``size`` is returned unchanged.

    ``model``: the model whose input the maps explain. When its preprocessing keeps only the centre
    of an image (ResNet-50's recipe: short side to 256, centre 224, so 7/8 of each side), its maps
    cover only that centre: they are resized onto the centre of the ``size`` grid and the border,
    which the model never saw, gets 0. Introduced in notebook 03.
    """
    m = as_maps(maps)
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if len(hw) != 2 or min(hw) < 1:
        raise ValueError(f"size must be a positive int or (H, W), got {size!r}")
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    if model is not None:
        if not isinstance(getattr(model, "preprocessing", None), Preprocessing):
            raise TypeError(
                f"model= needs a vn.core.Model (its preprocessing says which part of the image the model saw), "
                f"got {type(model).__name__}; load it with vn.load(...), or leave model= out"
            )
        kind, side = model.preprocessing.resize or ("square", model.preprocessing.size)
        seen = model.preprocessing.size / side if kind == "short" else 1.0  # the kept share of each side
        inner = tuple(round(n * seen) for n in hw)
        if inner != hw:
            top, left = (hw[0] - inner[0]) // 2, (hw[1] - inner[1]) // 2
            core = resize_maps(m, inner, mode)
            return F.pad(core, (left, hw[1] - inner[1] - left, top, hw[0] - inner[0] - top))
    if tuple(m.shape[-2:]) == hw:
        return m
    kw = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    return F.interpolate(m[:, None], size=hw, mode=mode, **kw)[:, 0]


def agreement(maps: Mapping[str, Any], metric: str = "spearman", frac: float = 0.1) -> pd.DataFrame:
    """Mean agreement over images between every pair of map kinds: a square table.

    ``maps``: name -> ``[batch, H, W]`` maps of the same images on one grid (see
    ``resize_maps``). ``metric``: ``"spearman"`` (``rank_correlation``) or ``"topk"``
    (``topk_overlap`` with ``frac``). NaNs (constant maps) are left out of the mean;
    ``df.attrs`` holds ``images``, ``metric`` and ``frac``. Introduced in notebook 03.
    """
    if metric not in ("spearman", "topk"):
        raise ValueError(f"metric must be 'spearman' or 'topk', got {metric!r}")
    names = list(maps)
    if len(names) < 2:
        raise ValueError(f"agreement needs at least two kinds of map, got {names}")
    shapes = {n: tuple(as_maps(maps[n], n).shape) for n in names}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"maps differ in shape {shapes}; bring them to one grid with vn.evaluate.resize_maps")
    fn = rank_correlation if metric == "spearman" else (lambda a, b: topk_overlap(a, b, frac))
    table = pd.DataFrame(np.nan, index=names, columns=names)
    for i, a in enumerate(names):
        for b in names[i:]:
            v = float(np.nanmean(fn(maps[a], maps[b]).numpy()))
            table.loc[a, b] = table.loc[b, a] = v
    table.attrs.update(images=shapes[names[0]][0], metric=metric, frac=frac)
    return table


def agreement_intervals(
    maps: Mapping[str, Any],
    reference: Any,
    *,
    against: str | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
) -> pd.DataFrame:
    """Each map kind's per-image Spearman with a ``reference`` map (e.g. occlusion, the causal
    reference of Abnar & Zuidema's own validation of rollout), as a mean over images with its
    percentile-bootstrap ``level`` interval (``vn.bootstrap``, resampling seed 0).

    ``maps``: name -> ``[batch, H, W]`` on the reference's grid (``resize_maps``). ``against``: a
    name in ``maps`` (a control); each other kind then also gets the paired difference from it,
    image by image (``diff``, ``diff_low``, ``diff_high``: the same resamples for both). Rows in
    ``maps``' order: ``map``, ``spearman``, ``low``, ``high``, ``n`` (images with a defined
    correlation; a constant map has none). Introduced in notebook 06 (rollout).
    """
    if against is not None and against not in maps:
        raise ValueError(f"against={against!r} is not one of the maps {list(maps)}")
    ref = as_maps(reference, "reference")
    rho = {name: rank_correlation(m, ref).numpy() for name, m in maps.items()}
    boot = {"n_boot": n_boot, "level": level, "seed": 0}
    rows = []
    for name, r in rho.items():
        iv = bootstrap(r, **boot)
        row = {"map": name, "spearman": iv.value, "low": iv.low, "high": iv.high, "n": iv.n}
        if against is not None:
            d = bootstrap(r - rho[against], **boot) if name != against else None
            nan = float("nan")
            row.update(diff=d.value if d else nan, diff_low=d.low if d else nan, diff_high=d.high if d else nan)
        rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs.update(images=ref.shape[0], against=against)
    return table


def random_maps(n: int, size: int | tuple[int, int] = 28, seed: int = 0) -> torch.Tensor:
    """``n`` maps of independent uniform noise ``[n, H, W]``: the control order for deletion.
    Introduced in notebook 03 (CNN vs ViT)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    hw = (size, size) if isinstance(size, int) else tuple(size)
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, *hw, generator=g)


def rollout_by_depth(
    attn: Attention, *, head_fusion: str = "mean", discard_ratio: float = 0.0, residual: float = 0.5
) -> pd.DataFrame:
    """How the rollout builds up layer by layer: one row per ``end_layer`` (rollout of the captured
    layers from the first through ``end_layer``), averaged over images.

    Columns: ``agreement`` = Spearman rank correlation of its CLS map with the full rollout's;
    ``row_spread`` = mean total-variation distance between each patch token's rollout row and
    the CLS token's row (both over the patches, renormalised; 0 = every token's row is the same
    map); ``identity_share`` = mean diagonal weight ``R[j, j]`` of the patch tokens (what the
    residual path keeps of a token's own input); ``entropy_norm`` of the CLS map.
    ``head_fusion``, ``discard_ratio`` and ``residual`` as in ``rollout``.
    Introduced in notebook 06.
    """
    if not isinstance(attn, Attention):
        raise TypeError(f"rollout_by_depth needs a vn.capture result (an Attention), got {type(attn).__name__}")
    if not 0.0 <= residual <= 1.0:
        raise ValueError(f"residual must lie in [0, 1], got {residual}")
    a = _full(attn)
    pre = attn.geometry.prefix
    partial = []  # the running product after each layer, [batch, T, N] over the patches
    r = None
    for layer in range(a.shape[0]):  # the same product as rollout(), kept after every layer
        step = _augmented(_discard(fuse_heads(a[layer], head_fusion).double(), discard_ratio), residual)
        r = step if r is None else step @ r
        p = r[:, :, pre:]
        partial.append(p / p.sum(-1, keepdim=True).clamp_min(1e-300))
    full = partial[-1][:, 0]
    rows = []
    for end, p in enumerate(partial):
        cls, patches = p[:, 0], p[:, pre:]
        rows.append(
            {
                "end_layer": attn.layers[end],
                "agreement": float(rank_correlation(cls, full).mean()),
                "row_spread": float(0.5 * (patches - cls[:, None]).abs().sum(-1).mean()),
                "identity_share": float(torch.diagonal(patches, dim1=-2, dim2=-1).mean()),
                "entropy_norm": float(normalized_entropy(cls).mean()),
            }
        )
    df = pd.DataFrame(rows)
    df.attrs.update(images=int(full.shape[0]), head_fusion=head_fusion, discard_ratio=discard_ratio, residual=residual)
    return df


def method_maps(
    model: Any, pixel_values: torch.Tensor, target: Any = None, *, names: list[str] | None = None, size: Any = None
) -> dict[str, torch.Tensor]:
    """The registered map methods in the studies' default set that explain ``model`` from its input
    (``vn.methods(kind)`` registered without ``default=False``), or the ``names`` given (any of
    ``vn.methods(kind)``): ``{name: [batch, rows, cols]}``, for ``vn.agreement`` and
    ``vn.evaluate.deletion_study`` as they are. ``size`` (an int or (H, W)) brings every map onto one grid
    with ``resize_maps`` (``model=`` places a centre-crop model's maps where it looked).
    A new method in ``methods/`` joins both studies with no change here. Introduced in notebook 03.
    """
    _, geom = unwrap(model)
    if names is None:
        names = [n for n in methods(geom.kind) if registered(n).takes_model and registered(n).default]
    names = list(names)
    out = {n: explain(model, pixel_values, n, target) for n in names}
    place = model if isinstance(model, Model) else None
    return out if size is None else {n: resize_maps(m, size, model=place) for n, m in out.items()}
