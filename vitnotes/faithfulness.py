"""Comparing explanation maps: one common grid, agreement between maps, and deletion curves.

- ``resize_maps``: maps of any grid (a ViT's 14x14 patches, a CNN stage's 7x7) -> one pixel grid;
- ``rank_correlation`` (Spearman, ties averaged) and ``topk_overlap`` (share of the top pixels two
  maps have in common), per image; ``agreement`` tabulates both for every pair of map kinds;
- deletion (Petsiuk et al. 2018, "RISE"): delete the most-attributed pixels first (set them to the
  background value), follow the probability of the class the model predicted on the intact
  image, and take the area under that curve; lower = the map found pixels the model needs.
  A random order is the control.

Introduced in notebook 03 (CNN vs ViT); the figures here are also used by notebook 04.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from .models import Model, resolve_targets

__all__ = [
    "resize_maps", "rank_correlation", "topk_overlap", "agreement", "deletion_order", "delete_pixels",
    "deletion_curve", "deletion_auc", "deletion_study", "deletion_summary", "random_maps", "map_panel", "agreement_heatmap",
    "deletion_plot",
]  # fmt: skip

_MODES = ("bilinear", "nearest", "area", "bicubic")


def _maps(maps: Any, what: str = "maps") -> torch.Tensor:
    """``[batch, rows, cols]`` float tensor from a tensor or array (one ``[rows, cols]`` map is batched)."""
    m = torch.as_tensor(np.asarray(maps) if not isinstance(maps, torch.Tensor) else maps).detach()
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3:
        raise ValueError(f"{what} must be [batch, rows, cols] (or one [rows, cols] map), got shape {tuple(m.shape)}")
    if m.shape[0] == 0 or m.shape[1] == 0 or m.shape[2] == 0:
        raise ValueError(f"{what} of shape {tuple(m.shape)} is empty")
    m = m.float().cpu()
    if not torch.isfinite(m).all():
        raise ValueError(f"{what} contain NaN or inf; check how the maps were computed")
    return m


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
    m = _maps(maps)
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if len(hw) != 2 or min(hw) < 1:
        raise ValueError(f"size must be a positive int or (H, W), got {size!r}")
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    if model is not None:
        kind, side = getattr(model, "preprocessing", None).resize or ("square", model.preprocessing.size)
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


def _pair(a: Any, b: Any) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = _maps(a, "map a"), _maps(b, "map b")
    if a.shape != b.shape:
        raise ValueError(
            f"maps of shape {tuple(a.shape)} and {tuple(b.shape)} differ; bring both to one grid with vn.resize_maps"
        )
    return a.flatten(1).double(), b.flatten(1).double()


def rank_correlation(a: Any, b: Any) -> torch.Tensor:
    """Spearman rank correlation between two sets of maps, one value per image ``[batch]``.

    Pixels are ranked within each map (tied values get their average rank) and the ranks are
    correlated (Pearson). A constant map has no ranking: its correlation is NaN.
    """
    from scipy.stats import rankdata

    a, b = _pair(a, b)
    ra = torch.from_numpy(rankdata(a.numpy(), axis=1))
    rb = torch.from_numpy(rankdata(b.numpy(), axis=1))
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    den = (ra.square().sum(1) * rb.square().sum(1)).sqrt()
    r = (ra * rb).sum(1) / den
    return torch.where(den > 0, r, torch.full_like(r, float("nan"))).float()


def _top(m: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` largest entries per row; ties go to the earlier pixel (raster order)."""
    return torch.argsort(-m, dim=1, stable=True)[:, :k]


def topk_overlap(a: Any, b: Any, frac: float = 0.1) -> torch.Tensor:
    """Share of the top ``frac`` of pixels that two maps have in common, per image ``[batch]``.

    ``k = max(1, round(frac * pixels))``; 1 = the same top pixels, ``frac`` = what two random
    maps share on average. Ties are broken by raster order (first pixel first).
    """
    a, b = _pair(a, b)
    if not 0.0 < frac <= 1.0:
        raise ValueError(f"frac must lie in (0, 1], got {frac}")
    k = max(1, round(frac * a.shape[1]))
    n = a.shape[1]
    ia = torch.zeros(a.shape[0], n, dtype=torch.bool).scatter_(1, _top(a, k), True)
    ib = torch.zeros(b.shape[0], n, dtype=torch.bool).scatter_(1, _top(b, k), True)
    return ((ia & ib).sum(1).double() / k).float()


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
    shapes = {n: tuple(_maps(maps[n], n).shape) for n in names}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"maps differ in shape {shapes}; bring them to one grid with vn.resize_maps")
    fn = rank_correlation if metric == "spearman" else (lambda a, b: topk_overlap(a, b, frac))
    table = pd.DataFrame(np.nan, index=names, columns=names)
    for i, a in enumerate(names):
        for b in names[i:]:
            v = float(np.nanmean(fn(maps[a], maps[b]).numpy()))
            table.loc[a, b] = table.loc[b, a] = v
    table.attrs.update(images=shapes[names[0]][0], metric=metric, frac=frac)
    return table


# --------------------------------------------------------------------------- deletion
def random_maps(n: int, size: int | tuple[int, int] = 28, seed: int = 0) -> torch.Tensor:
    """``n`` maps of independent uniform noise ``[n, H, W]``: the control order for deletion."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    hw = (size, size) if isinstance(size, int) else tuple(size)
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, *hw, generator=g)


def deletion_order(maps: Any, seed: int = 0) -> torch.Tensor:
    """Pixel indices (raster order) from most to least attributed, ``[batch, pixels]``.

    Ties (e.g. the zeros of a Grad-CAM after its ReLU, or the pixels of one patch) are broken at
    random with ``seed``, so a tie never favours the top of the image.
    """
    m = _maps(maps).flatten(1)
    g = torch.Generator().manual_seed(seed)
    perm = torch.stack([torch.randperm(m.shape[1], generator=g) for _ in range(m.shape[0])])  # random tie order
    ranked = torch.argsort(-m.gather(1, perm), dim=1, stable=True)
    return perm.gather(1, ranked)


def _images(images: Any) -> np.ndarray:
    imgs = np.asarray(images)
    if imgs.ndim not in (3, 4) or (imgs.ndim == 4 and imgs.shape[-1] not in (1, 3)):
        raise ValueError(
            f"images must be a stack [batch, H, W] (grey) or [batch, H, W, 1|3] (colour) of raw images, "
            f"got shape {imgs.shape}"
        )
    if imgs.shape[0] == 0:
        raise ValueError("empty batch: pass at least one image")
    return imgs


def delete_pixels(images: Any, order: torch.Tensor, k: int, background: float = 0) -> np.ndarray:
    """Copies of raw ``images`` ``[batch, H, W(, C)]`` with the first ``k`` pixels of each image's
    ``order`` (from ``deletion_order``) set to ``background`` (all channels)."""
    imgs = _images(images)
    b, h, w = imgs.shape[:3]
    order = torch.as_tensor(order)
    if tuple(order.shape) != (b, h * w):
        raise ValueError(f"order must be [batch, pixels] = ({b}, {h * w}), got {tuple(order.shape)}")
    if not 0 <= k <= h * w:
        raise ValueError(f"k must lie in 0..{h * w}, got {k}")
    out = imgs.copy().reshape(b, h * w, -1)
    rows = np.repeat(np.arange(b), k)
    out[rows, order[:, :k].numpy().reshape(-1)] = background
    return out.reshape(imgs.shape)


def _check_model(model: Any) -> Model:
    if not isinstance(model, Model):
        raise TypeError(f"deletion curves need a vn.Model (it preprocesses the edited images), got "
                        f"{type(model).__name__}; load it with vn.load(...)")
    return model


def _probs(model: Model, edited: np.ndarray, batch_size: int) -> torch.Tensor:
    """Softmax probabilities ``[n, classes]`` of raw images through the model's own preprocessing."""
    return model.predict(model.preprocess(edited), batch_size=batch_size).float().softmax(-1)


def _deletion(model: Model, imgs: np.ndarray, maps: Any, steps: int, background: float, target: Any, seed: int,
              batch_size: int, ends: tuple[torch.Tensor, torch.Tensor] | None = None
              ) -> tuple[torch.Tensor, np.ndarray]:
    b, h, w = imgs.shape[:3]
    m = _maps(maps)
    if m.shape[0] != b:
        raise ValueError(f"{m.shape[0]} maps for {b} images; pass one map per image")
    order = deletion_order(resize_maps(m, (h, w)), seed)
    fractions = np.linspace(0.0, 1.0, steps + 1)
    ks = [int(round(f * h * w)) for f in fractions]
    if ends is None:  # the intact and the fully deleted images do not depend on the order
        ends = (_probs(model, imgs, batch_size), _probs(model, delete_pixels(imgs, order, h * w, background), batch_size))
    inner = np.concatenate([delete_pixels(imgs, order, k, background) for k in ks[1:-1]]) if steps > 1 else None
    probs = [ends[0]]
    if inner is not None:
        probs += list(_probs(model, inner, batch_size).split(b))
    probs.append(ends[1])
    probs = torch.stack(probs)  # [steps + 1, batch, classes]
    t = resolve_targets(target, probs[0])
    curves = probs.gather(2, t[None, :, None].expand(len(fractions), b, 1))[..., 0].T  # [batch, steps + 1]
    return curves.contiguous(), fractions


def deletion_curve(
    model: Model,
    images: Any,
    maps: Any,
    *,
    steps: int = 10,
    background: float = 0,
    target: Any = None,
    seed: int = 0,
    batch_size: int = 128,
) -> tuple[torch.Tensor, np.ndarray]:
    """Deletion curve: the probability of the target class as the most-attributed pixels go.

    ``images``: raw images ``[batch, H, W(, C)]`` (uint8 as loaded); ``maps``: ``[batch, rows, cols]``
    attributions, resized to ``H x W`` bilinearly when on another grid. At each of ``steps + 1``
    fractions ``0, 1/steps, ..., 1`` of the pixels, the most-attributed ones (``deletion_order``)
    are set to ``background`` (0: black, Fashion-MNIST's background) in the raw image, which
    then goes through ``model.preprocess`` (so a 56-pixel CNN sees the same deletions as a
    28-pixel ViT). ``target``: None = the class the model predicts on the intact image.
    Returns (probabilities ``[batch, steps + 1]``, fractions). Introduced in notebook 03.
    """
    model = _check_model(model)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return _deletion(model, _images(images), maps, steps, background, target, seed, batch_size)


def deletion_auc(curves: torch.Tensor, fractions: Sequence[float]) -> torch.Tensor:
    """Area under each deletion curve ``[batch, points]`` over ``fractions`` (trapezoid), ``[batch]``."""
    c = torch.as_tensor(curves, dtype=torch.float64)
    x = torch.as_tensor(np.asarray(fractions), dtype=torch.float64)
    if c.ndim != 2 or c.shape[1] != x.numel() or x.numel() < 2:
        raise ValueError(f"curves must be [batch, {x.numel()}] for {x.numel()} fractions (at least 2), "
                         f"got {tuple(c.shape)}")
    return torch.trapezoid(c, x, dim=1).float()


def deletion_study(
    models: Mapping[str, Model],
    images: Any,
    maps: Mapping[str, Any],
    *,
    steps: int = 10,
    background: float = 0,
    seed: int = 0,
    batch_size: int = 128,
    progress: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every map kind deleted on every model: (curves, per-image AUCs), both long tables.

    ``curves``: one row per (model, map, fraction) with the mean and standard error over images
    of the probability of the model's originally predicted class. ``aucs``: one row per (model,
    map, image) with ``auc``. Each map kind's deletion order is tie-broken with the same ``seed``.
    Add ``vn.random_maps`` as a map kind for the random control. Introduced in notebook 03.
    """
    jobs = [(mn, kn) for mn in models for kn in maps]
    if progress:
        from tqdm.auto import tqdm

        jobs = tqdm(jobs, desc="deletion curves")
    imgs = _images(images)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    blank = np.full_like(imgs, background)
    ends = {mn: (_probs(_check_model(m), imgs, batch_size), _probs(m, blank, batch_size)) for mn, m in models.items()}
    curve_rows, auc_rows = [], []
    for mn, kn in jobs:
        c, fr = _deletion(models[mn], imgs, maps[kn], steps, background, None, seed, batch_size, ends[mn])
        for j, f in enumerate(fr):
            col = c[:, j].double()
            sem = float(col.std(unbiased=True) / np.sqrt(len(col))) if len(col) > 1 else float("nan")
            curve_rows.append({"model": mn, "map": kn, "fraction": float(f), "prob": float(col.mean()), "sem": sem})
        for i, a in enumerate(deletion_auc(c, fr).tolist()):
            auc_rows.append({"model": mn, "map": kn, "image": i, "auc": a})
    curves, aucs = pd.DataFrame(curve_rows), pd.DataFrame(auc_rows)
    for df in (curves, aucs):
        df.attrs.update(images=int(imgs.shape[0]), steps=steps, background=background)
    return curves, aucs


def deletion_summary(aucs: pd.DataFrame, control: str = "random") -> pd.DataFrame:
    """Per (model, map) from ``deletion_study``'s AUCs: the mean AUC and its standard error, and,
    against the ``control`` map kind on the same images, the share of images where the map's AUC
    is lower (better) and a two-sided Wilcoxon signed-rank p-value. Introduced in notebook 03.
    """
    from scipy.stats import wilcoxon

    need = {"model", "map", "image", "auc"}
    if not need <= set(aucs.columns):
        raise ValueError(f"expected deletion_study's AUC table with columns {sorted(need)}, got {list(aucs.columns)}")
    if control not in set(aucs["map"]):
        raise ValueError(f"control map {control!r} not in the table (maps: {sorted(set(aucs['map']))})")
    rows = []
    for (mn, kn), g in aucs.groupby(["model", "map"], sort=False):
        ref = aucs[(aucs["model"] == mn) & (aucs["map"] == control)].set_index("image")["auc"]
        a = g.set_index("image")["auc"]
        d = (a - ref.loc[a.index]).to_numpy()
        p = float("nan") if kn == control or not np.any(d) else float(wilcoxon(d).pvalue)
        rows.append({"model": mn, "map": kn, "auc": a.mean(), "sem": a.std(ddof=1) / np.sqrt(len(a)),
                     f"below_{control}": float(np.mean(d < 0)) if kn != control else float("nan"),
                     "p_wilcoxon": p})
    return pd.DataFrame(rows).set_index(["model", "map"])


# --------------------------------------------------------------------------- figures
def map_panel(
    images: Any,
    maps: Mapping[str, Any],
    *,
    titles: Sequence[str] | None = None,
    alpha: float = 0.6,
    cmap: str = "inferno",
    size: float = 1.25,
) -> Figure:
    """A grid of maps over their images: a column per image, a row per map kind (the first row
    shows the images alone). Each panel's colours span its own map's range (where, not how much).

    ``images``: ``[n, H, W(, C)]`` raw images; ``maps``: name -> ``[n, rows, cols]`` (any grid;
    drawn bilinearly upsampled to the image). ``titles``: one per image.
    """
    from .viz import _draw, display_image

    imgs = _images(images)
    n = imgs.shape[0]
    titles = list(titles) if titles is not None else [""] * n
    if len(titles) != n:
        raise ValueError(f"{len(titles)} titles for {n} images; give one title per image")
    rows = {k: _maps(v, k) for k, v in maps.items()}
    for k, v in rows.items():
        if v.shape[0] != n:
            raise ValueError(f"map kind {k!r} has {v.shape[0]} maps for {n} images")
    fig = Figure(figsize=(size * n + 1.0, size * (len(rows) + 1) + 0.4), layout="constrained")
    axes = np.asarray(fig.subplots(len(rows) + 1, n, squeeze=False))
    for j in range(n):
        img = display_image(imgs[j])
        _draw(axes[0, j], img, None, alpha, cmap, False, titles[j] or None)
        for i, (k, v) in enumerate(rows.items(), start=1):
            _draw(axes[i, j], img, v[j], alpha, cmap, True, None)
    axes[0, 0].set_ylabel("image", fontsize=9)
    for i, k in enumerate(rows, start=1):
        axes[i, 0].set_ylabel(k, fontsize=9)
    return fig


def agreement_heatmap(tables: Mapping[str, pd.DataFrame], *, size: float = 3.6) -> Figure:
    """Square agreement tables (``agreement``) side by side as annotated heatmaps: the lower
    triangle without the diagonal (a map always agrees with itself)."""
    import seaborn as sns

    fig = Figure(figsize=(size * len(tables) + 0.5, size), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(tables)))
    for ax, (title, t) in zip(axes, tables.items(), strict=True):
        t = t.iloc[1:, :-1]  # the diagonal (1 by definition) and the upper triangle are left out
        mask = np.triu(np.ones(t.shape, dtype=bool), k=1)
        sns.heatmap(t, mask=mask, annot=True, fmt=".2f", vmin=-1 if (t.values < 0).any() else 0, vmax=1,
                    cmap="vlag" if (t.values < 0).any() else "rocket_r", cbar=False, square=True, ax=ax,
                    annot_kws={"fontsize": 8})
        ax.set_title(title, fontsize=10)
        ax.tick_params(labelsize=8)
    return fig


def deletion_plot(curves: pd.DataFrame, *, control: str | None = "random", size: tuple[float, float] = (4.0, 3.0)
                  ) -> Figure:
    """Mean deletion curves from ``deletion_study``: a panel per model, a line per map kind
    (the ``control`` kind dashed), shaded +- one standard error."""
    models = list(dict.fromkeys(curves["model"]))
    fig = Figure(figsize=(size[0] * len(models) + 1.6, size[1]), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(models), sharey=True))
    colours = {k: f"C{i}" for i, k in enumerate(dict.fromkeys(curves["map"]))}
    for ax, mn in zip(axes, models, strict=True):
        sub = curves[curves["model"] == mn]
        for kn, g in sub.groupby("map", sort=False):
            style = dict(color="grey", linestyle="--") if kn == control else dict(color=colours[kn])
            ax.plot(g["fraction"], g["prob"], label=kn, **style)
            ax.fill_between(g["fraction"], g["prob"] - g["sem"], g["prob"] + g["sem"], alpha=0.15,
                            color=style["color"], linewidth=0)
        ax.set_title(mn, fontsize=10)
        ax.set_xlabel("fraction of pixels deleted")
    axes[0].set_ylabel("p(originally predicted class)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=8, frameon=False)
    return fig
