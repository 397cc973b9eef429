"""Figures: a map over its image, layer strips, head grids, before/after panels, metrics by layer.

Every function returns a ``matplotlib.figure.Figure`` (not registered with pyplot, so a
notebook shows it once and nothing leaks); save it with ``fig.savefig(path)``. Introduced in
notebook 01 (layers).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from ..core.images import Preprocessing, to_pil
from ..stats import normalized_entropy
from .page import MAX_PANELS, page_inches, text_inches, wrap

__all__ = [
    "before_after", "display_image", "head_grid", "head_heatmap", "layer_strip", "metric_by_layer", "overlay",
    "relative_colorbar", "relative_norm", "relative_to_uniform", "upsample",
]  # fmt: skip

RELATIVE_CMAP = "RdBu_r"  # maps relative to uniform: blue below, white at, red above the uniform value


def display_image(image: Any, preprocessing: Preprocessing | None = None) -> np.ndarray:
    """An image ready to draw, ``[H, W]`` or ``[H, W, 3]`` floats in [0, 1].

    Takes a PIL image, a numpy image, or one ``pixel_values`` item ``[C, H, W]`` (then
    ``preprocessing`` undoes the normalisation).
    Introduced in notebook 01 (layers).
    """
    if isinstance(image, torch.Tensor):
        if image.ndim == 4 and image.shape[0] == 1:
            image = image[0]
        if image.ndim != 3:
            raise ValueError(f"expected one pixel_values item [C, H, W], got shape {tuple(image.shape)}")
        x = image.detach().float().cpu().numpy().transpose(1, 2, 0)
        if preprocessing is not None:
            x = x * np.asarray(preprocessing.std) + np.asarray(preprocessing.mean)
        x = np.clip(x, 0, 1)
        return x[..., 0] if x.shape[-1] == 1 else x
    if isinstance(image, np.ndarray):
        grey = image.ndim == 2 or (image.ndim == 3 and image.shape[-1] == 1)
    else:
        grey = getattr(image, "mode", None) == "L"
    pil = to_pil(image, 1 if grey else 3)
    return np.asarray(pil, dtype=np.float32) / 255.0


def upsample(heat: torch.Tensor, size: tuple[int, int], smooth: bool = False) -> np.ndarray:
    """A ``[rows, cols]`` map -> ``[H, W]`` pixels: nearest (shows patches) or bilinear."""
    h = torch.as_tensor(heat, dtype=torch.float32).detach().cpu()
    if h.ndim != 2:
        raise ValueError(f"a map must be 2-D [rows, cols], got shape {tuple(h.shape)}; pick one image/head first")
    mode = dict(mode="bilinear", align_corners=False) if smooth else dict(mode="nearest")
    return F.interpolate(h[None, None], size=size, **mode)[0, 0].numpy()


def relative_to_uniform(maps: Any) -> torch.Tensor:
    """Maps ``[..., rows, cols]`` divided by their uniform value (each map's mean over its cells: ``1 / N``
    for a map that sums to 1), so 1 = what uniform attention gives every patch, 2 = twice that, on any
    grid. Maps must be non-negative with a positive sum. Introduced in notebook 02 (heads)."""
    m = torch.as_tensor(maps, dtype=torch.float32)
    if m.ndim < 2:
        raise ValueError(f"maps must be [..., rows, cols], got shape {tuple(m.shape)}")
    mean = m.mean(dim=(-2, -1), keepdim=True)
    if (m < 0).any() or not (mean > 0).all():
        raise ValueError("relative_to_uniform needs non-negative maps with a positive sum (attention, not gradients)")
    return m / mean


def relative_norm(limit: float = 16.0) -> LogNorm:
    """The colour scale of maps relative to uniform: logarithmic from ``1 / limit`` to ``limit``, so 1
    (uniform) is its middle and halving or doubling moves a colour by the same step. Values outside are
    clipped to the ends (``relative_colorbar`` draws the bar's ends as arrows). Introduced in notebook 02."""
    limit = float(limit)
    if not limit > 1:
        raise ValueError(f"limit must be above 1 (the scale runs from 1/limit to limit), got {limit!r}")
    return LogNorm(1.0 / limit, limit)


def relative_colorbar(fig: Figure, mappable: Any, *, label: str = "attention / uniform", **options: Any):
    """A colour bar for maps on ``relative_norm``: ticks at powers of 2 labelled as ratios (1/4, 1, 4),
    arrows at both ends (values beyond the limits take the end colours). ``options`` go to
    ``fig.colorbar`` (``ax``, ``cax``, ``shrink``, ``orientation``). Introduced in notebook 02 (heads)."""
    norm = mappable.norm
    top = int(math.floor(math.log2(norm.vmax) + 1e-9))
    step = max(1, math.ceil(top / 2))
    exps = sorted({0, top, -top, *range(step, top + 1, step), *range(-step, -top - 1, -step)})
    bar = fig.colorbar(mappable, extend="both", **options)
    ticks = [2.0**e for e in exps]
    bar.set_ticks(ticks, labels=[f"{t:g}" if t >= 1 else f"1/{1 / t:g}" for t in ticks])
    bar.minorticks_off()
    bar.set_label(f"{label} (log scale)")
    return bar


def _draw(
    ax,
    image: np.ndarray,
    heat: Any,
    alpha: float,
    cmap: str,
    smooth: bool,
    title: str | None,
    vmax: float | None = None,
    norm: Any = None,
):
    """Image, then the map over it: scaled to its own min..max, to 0..vmax when given, or by ``norm``."""
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=1)
    im = None
    if heat is not None:
        scale = {"norm": norm} if norm is not None else {"vmin": None if vmax is None else 0.0, "vmax": vmax}
        im = ax.imshow(upsample(heat, image.shape[:2], smooth), cmap=cmap, alpha=alpha, **scale)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return im


def _shared_max(maps: torch.Tensor, shared: bool) -> float | None:
    return float(maps.max()) if shared else None


def _with_entropy(title: str | None, heat: torch.Tensor) -> str | None:
    """``title`` and the map's H / log N (its entropy over the patches divided by the uniform map's):
    1 is uniform, 0 is one patch. Signed maps (gradients) have no entropy and keep the bare title."""
    h = torch.as_tensor(heat, dtype=torch.float64).flatten()
    if h.numel() < 2 or (h < 0).any() or not torch.isfinite(h).all() or h.sum() <= 0:
        return title
    value = f"H/logN {float(normalized_entropy(h)):.2f}"
    return f"{title}\n{value}" if title else value


def overlay(
    image: Any,
    heat: torch.Tensor,
    *,
    title: str | None = None,
    alpha: float = 0.55,
    cmap: str = "inferno",
    smooth: bool = False,
    size: float = 3.0,
) -> Figure:
    """One map drawn over its image (left: the image, right: the overlay, with its colour bar).
    Introduced in notebook 01 (layers)."""
    img = display_image(image)
    fig = Figure(figsize=(2 * size + 0.6, size), layout="constrained")
    axes = fig.subplots(1, 2)
    _draw(axes[0], img, None, alpha, cmap, smooth, "image")
    fig.colorbar(_draw(axes[1], img, heat, alpha, cmap, smooth, title or "map"), ax=axes[1], shrink=0.8)
    return fig


def layer_strip(
    image: Any,
    maps: torch.Tensor,
    *,
    labels: Sequence[str] | None = None,
    alpha: float = 0.55,
    cmap: str = "inferno",
    smooth: bool = False,
    shared: bool = True,
    entropy: bool = True,
    size: float = 1.8,
    columns: int = MAX_PANELS,
) -> Figure:
    """Maps ``[n, rows, cols]`` (e.g. one per layer) side by side over the same image, or over one
    image each when ``image`` is a list of ``n`` images (e.g. one head on several images).

    By default every panel is on one 0..max scale with a colour bar, and each title gives the map's
    H / log N (``entropy=False`` drops it), so a nearly uniform map looks nearly uniform;
    ``shared=False`` gives each panel its own colour range (where, not how much: nearly uniform
    maps then look busy) and a colour bar of its own. More than ``columns`` maps (6), or more than fit
    the page side by side with their titles, wrap into rows as even as they go (12 maps: two rows of 6,
    under one colour bar); ``size`` is the largest a panel is drawn (inches), smaller where the strip
    would not fit the book's page at full size, so that its text stays readable. Introduced in
    notebook 01 (layers).
    """
    maps = torch.as_tensor(maps)
    if maps.ndim != 3:
        raise ValueError(f"layer_strip expects maps [n, rows, cols], got shape {tuple(maps.shape)}")
    labels = list(labels) if labels is not None else [f"layer {i}" for i in range(len(maps))]
    if len(labels) != len(maps):
        raise ValueError(f"{len(labels)} labels for {len(maps)} maps; give one label per map")
    if isinstance(image, (list, tuple)):
        if len(image) != len(maps):
            raise ValueError(f"{len(image)} images for {len(maps)} maps; give one image, or one per map")
        imgs = [display_image(i) for i in image]
    else:
        imgs = [display_image(image)] * len(maps)
    bar = 0.75 if shared else 0.0  # the shared colour bar and its ticks; or one bar per panel
    room = page_inches() - bar
    title_w = text_inches([*labels, "H/logN 0.00"] if entropy else labels, 9) + 0.1  # titles never touch
    fit = int(room // (max(title_w, 0.6) + (0.0 if shared else 0.55)))  # the panels the page holds in a row
    n_rows, per_row = wrap(len(maps), max(1, min(columns, fit)))
    panel = min(size, room / per_row - (0.0 if shared else 0.55))
    title_lines = 1 + bool(entropy) + max(str(label).count("\n") for label in labels)
    width = panel * per_row + bar + (0.0 if shared else 0.55 * per_row)
    fig = Figure(figsize=(width, n_rows * (panel + 0.17 * title_lines) + 0.15), layout="constrained")
    grid = np.atleast_2d(np.asarray(fig.subplots(n_rows, per_row, squeeze=False)))
    axes = list(grid.ravel()[: len(maps)])
    for ax in grid.ravel()[len(maps) :]:
        ax.remove()  # an empty slot at the end of the last row
    vmax = _shared_max(maps, shared)
    for ax, img, m, label in zip(axes, imgs, maps, labels, strict=True):
        im = _draw(ax, img, m, alpha, cmap, smooth, _with_entropy(label, m) if entropy else label, vmax)
        if not shared:
            fig.colorbar(im, ax=ax, shrink=0.7)
    if shared:
        fig.colorbar(im, ax=axes, shrink=0.8)
    return fig


def head_grid(
    image: Any,
    maps: torch.Tensor,
    *,
    layers: Sequence[int] | None = None,
    alpha: float = 0.6,
    cmap: str | None = None,
    smooth: bool = False,
    shared: bool = True,
    relative: float | None = None,
    size: float = 1.0,
    columns: int = MAX_PANELS,
) -> Figure:
    """Maps ``[layer, head, rows, cols]`` (or ``[head, rows, cols]``) as a grid: a row per layer, or
    rows of at most ``columns`` heads (6: a layer's 12 heads take two rows of 6, each panel titled
    with its head). ``size`` is the largest a panel is drawn (inches), smaller where the grid would
    not fit the book's page at full size. By default one 0..max scale and a colour bar for the whole
    grid (``cmap`` inferno); ``shared=False`` gives each panel its own range (no common bar: only
    where each map is large, not how much).

    ``relative=limit`` (e.g. 16) draws every map relative to uniform (``relative_to_uniform``: 1 = what
    uniform attention gives each patch) on one logarithmic scale from ``1 / limit`` to ``limit`` for all
    panels (``relative_norm``; ``cmap`` RdBu_r: blue below uniform, white at it, red above), so one
    outlier cannot darken the others; values beyond the limits take the end colours. Each panel's title
    then gives its head and the map's H / log N (1 = uniform, 0 = one patch).
    Introduced in notebook 00 (attention math)."""
    maps = torch.as_tensor(maps)
    if maps.ndim == 3:
        maps = maps[None]
    if maps.ndim != 4:
        raise ValueError(f"head_grid expects maps [layer, head, rows, cols], got shape {tuple(maps.shape)}")
    n_l, n_h = maps.shape[:2]
    layers = list(layers) if layers is not None else list(range(n_l))
    if len(layers) != n_l:
        raise ValueError(f"{len(layers)} layer labels for {n_l} layers of maps; give one per layer")
    img = display_image(image)
    norm = relative_norm(relative) if relative is not None else None
    cmap = cmap or (RELATIVE_CMAP if norm is not None else "inferno")
    shown = relative_to_uniform(maps).clamp(norm.vmin, norm.vmax) if norm is not None else maps
    per_layer, per_row = wrap(n_h, columns)  # rows per layer, heads per row
    wrapped = per_layer > 1
    bar = 0.0 if norm is None and not shared else (1.0 if norm is not None else 0.7)
    panel = min(size, (page_inches() - 0.3 - bar) / per_row)
    titled = norm is not None or wrapped  # every panel titled; else the first row only
    gap = 0.25 if wrapped and n_l > 1 else 0.0  # a blank band between layers whose heads take several rows
    height = n_l * per_layer * (panel + 0.17 * titled) + gap * (n_l - 1)
    height += 0.2 * (not titled) + 0.25 * (norm is not None) + 0.1
    fig = Figure(figsize=(panel * per_row + 0.3 + bar, height), layout="constrained")
    ratios: list[float] = []  # grid rows: each layer's rows of heads, a thin blank row before each but the first
    first = []
    for i in range(n_l):
        ratios += [gap / (panel + 0.17)] if gap and i else []
        first.append(len(ratios))
        ratios += [1.0] * per_layer
    spec = fig.add_gridspec(len(ratios), per_row, height_ratios=ratios)
    axes = np.array([[fig.add_subplot(spec[first[i] + j // per_row, j % per_row]) for j in range(n_h)]
                     for i in range(n_l)])  # fmt: skip
    vmax = _shared_max(maps, shared) if norm is None else None
    for i in range(n_l):
        for j in range(n_h):
            if norm is not None:
                title = f"h{j} {float(normalized_entropy(maps[i, j].flatten().double())):.2f}"
            else:
                title = f"h{j}" if i == 0 or wrapped else None
            im = _draw(axes[i, j], img, shown[i, j], alpha, cmap, smooth, title, vmax, norm)
            axes[i, j].title.set_fontsize(8)
        for j in range(0, n_h, per_row):
            axes[i, j].set_ylabel(f"L{layers[i]}", fontsize=9)  # the first panel of each of the layer's rows
    if norm is not None:
        relative_colorbar(fig, im, ax=axes.ravel().tolist(), shrink=0.6 if n_l * per_layer > 2 else 0.9)
        fig.supxlabel("panel titles: head and H / log N of its map (1 = uniform, 0 = one patch)", fontsize=8)
    elif shared:
        fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.6 if n_l * per_layer > 2 else 0.9)
    return fig


def _grey(img: np.ndarray) -> np.ndarray:
    """A colour image ``[H, W, 3]`` in [0, 1] as its luminance ``[H, W]`` (grey images unchanged)."""
    return img @ np.array([0.299, 0.587, 0.114]) if img.ndim == 3 else img


def _outline(ax, mask: Any, colour: str) -> None:
    """The contour of a bool mask ``[H, W]`` on an image axis (pixel centres at integer positions)."""
    m = np.asarray(mask, dtype=float)
    ax.contour(np.arange(m.shape[1]), np.arange(m.shape[0]), m, levels=[0.5], colors=colour, linewidths=0.9)


def before_after(
    image: Any,
    before: torch.Tensor,
    after: torch.Tensor,
    *,
    titles: tuple[str, str] = ("before", "after"),
    alpha: float = 0.55,
    cmap: str = "inferno",
    smooth: bool = False,
    grey: bool = False,
    outline: Any = None,
    outline_colour: str = "cyan",
    size: float = 2.4,
) -> Figure:
    """Two maps of one image on ONE 0..max colour scale with its colour bar (titles give each map's
    H / log N), and their difference (after - before, blue = lost, red = gained) with its own bar.
    ``grey=True`` draws the image in grey under the maps, so that a colourful map stays readable over a
    colourful image (a spectrogram); ``outline``: a bool mask ``[H, W]`` (e.g. the chirp) drawn as a
    contour on all three panels. Introduced in notebook 07 (fine-tuning)."""
    before, after = torch.as_tensor(before, dtype=torch.float32), torch.as_tensor(after, dtype=torch.float32)
    if before.shape != after.shape:
        raise ValueError(f"before {tuple(before.shape)} and after {tuple(after.shape)} maps differ in shape")
    img = display_image(image)
    img = _grey(img) if grey else img
    if outline is not None and np.shape(outline) != img.shape[:2]:
        raise ValueError(f"outline must be a mask of the image's size {img.shape[:2]}, got {np.shape(outline)}")
    fig = Figure(figsize=(3 * size + 1.2, size + 0.5), layout="constrained")
    axes = fig.subplots(1, 3)
    vmax = float(torch.maximum(before.max(), after.max()))
    for ax, m, title in zip(axes[:2], (before, after), titles):
        im = _draw(ax, img, m, alpha, cmap, smooth, _with_entropy(title, m), vmax)
    fig.colorbar(im, ax=list(axes[:2]), shrink=0.8)
    diff = (after - before).numpy()
    lim = float(np.abs(diff).max()) or 1.0
    im = axes[2].imshow(upsample(after - before, img.shape[:2], smooth), cmap="RdBu_r", vmin=-lim, vmax=lim)
    axes[2].set_xticks([])
    axes[2].set_yticks([])
    axes[2].set_title(f"{titles[1]} - {titles[0]}", fontsize=9)
    fig.colorbar(im, ax=axes[2], shrink=0.8)
    if outline is not None:
        for ax in axes:
            _outline(ax, outline, outline_colour)
    return fig


def metric_by_layer(
    df: pd.DataFrame,
    metric: str,
    *,
    hue: str | None = None,
    heads: bool = True,
    ylabel: str | None = None,
    reference: float | None = None,
    reference_label: str = "uniform map",
    zero: bool = False,
    size: tuple[float, float] = (5.0, 3.0),
) -> Figure:
    """A per-(layer, head) metric against depth: the mean over heads as a line (one per ``hue``
    value), each head as a faint dot. ``reference``: a value to draw as a dashed grey line (e.g. the
    uniform map's entropy ``log N``), labelled ``reference_label``; ``zero=True`` starts the y axis
    at 0. Introduced in notebook 01 (layers)."""
    import seaborn as sns

    for col in ("layer", metric) + ((hue,) if hue else ()):
        if col not in df.columns:
            raise ValueError(f"column {col!r} not in the table (columns: {list(df.columns)})")
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.subplots()
    if heads and "head" in df.columns:
        sns.stripplot(data=df, x="layer", y=metric, hue=hue, ax=ax, alpha=0.35, size=3, native_scale=True,
                      legend=False, dodge=False, jitter=0.15)  # fmt: skip
    sns.lineplot(data=df, x="layer", y=metric, hue=hue, ax=ax, errorbar=None, marker="o")
    if reference is not None:
        ax.axhline(reference, color="0.4", ls="--", lw=1, label=reference_label)
        ax.legend(fontsize=8)
    if zero:
        ax.set_ylim(bottom=0)
    ax.set_ylabel(ylabel or metric)
    ax.set_xlabel("layer")
    return fig


def head_heatmap(
    df: pd.DataFrame,
    value: str,
    *,
    label: str | None = None,
    scale: float = 1.0,
    fmt: str = ".2f",
    cmap: str = "rocket_r",
    center: float | None = None,
    symlog: float | None = None,
    low: str | None = None,
    high: str | None = None,
    limit: float | None = None,
    size: tuple[float, float] = (6.4, 4.6),
) -> Figure:
    """A per-(layer, head) value as a layer x head heatmap with each cell annotated (``value`` times
    ``scale``, e.g. 100 for percent). ``center`` gives a diverging colour map around that value;
    ``symlog=t`` a diverging symmetric-log colour scale around 0, linear within ``[-t, t]`` (for
    values that span orders of magnitude and signs; choose ``t`` at least the noise floor, so that
    noise stays pale instead of taking whole decades of the colour scale). ``low`` and ``high``:
    columns of an interval for each value (e.g. ``vn.evaluate.head_intervals``' 95 % bootstrap interval, in
    the same units as ``value``); a cell whose interval contains 0 is drawn grey and hatched, its
    number in grey, and a legend says so. ``limit``: the colour scale's half-range for ``symlog``
    (default: the largest absolute value), to put several heatmaps on one scale.
    Introduced in notebook 08."""
    import seaborn as sns
    from matplotlib.colors import SymLogNorm
    from matplotlib.patches import Patch, Rectangle

    for col in ("layer", "head", value) + tuple(c for c in (low, high) if c is not None):
        if col not in df.columns:
            raise ValueError(f"column {col!r} not in the table (columns: {list(df.columns)})")
    if (low is None) != (high is None):
        raise ValueError("pass both low and high (the interval's columns), or neither")
    if symlog is not None and not symlog > 0:
        raise ValueError(f"symlog is the linear range around 0 and must be > 0, got {symlog}")
    if limit is not None and not limit > 0:
        raise ValueError(f"limit is the colour scale's half-range and must be > 0, got {limit}")
    table = df.pivot_table(index="layer", columns="head", values=value, aggfunc="mean") * scale
    unsure = np.zeros(table.shape, dtype=bool)
    if low is not None:
        lo = df.pivot_table(index="layer", columns="head", values=low, aggfunc="mean").reindex_like(table)
        hi = df.pivot_table(index="layer", columns="head", values=high, aggfunc="mean").reindex_like(table)
        unsure = ((lo.to_numpy() <= 0) & (hi.to_numpy() >= 0)).astype(bool)
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.subplots()
    kw: dict[str, Any] = dict(cmap="vlag" if center is not None else cmap, center=center)
    if symlog is not None:
        lim = limit or float(np.nanmax(np.abs(table.to_numpy()))) or 1.0
        kw = dict(cmap="vlag", norm=SymLogNorm(linthresh=symlog, vmin=-lim, vmax=lim))
    sns.heatmap(table, ax=ax, annot=True, fmt=fmt, annot_kws={"fontsize": 8}, mask=unsure if unsure.any() else None,
                cbar_kws={"label": label or value}, **kw)  # fmt: skip
    if symlog is not None:  # plain ticks: 0, the linear range's ends, then the powers of ten beyond it
        lim, powers = kw["norm"].vmax, 10.0 ** np.arange(math.floor(math.log10(symlog)) + 1, 12)
        ticks = [symlog, *powers[(powers > 1.5 * symlog) & (powers <= lim)]]
        ticks = [-t for t in ticks[::-1]] + [0.0] + ticks
        bar = ax.collections[0].colorbar
        bar.set_ticks(ticks, labels=[format(t, ".3g" if abs(t) < 1000 else ".0f") for t in ticks])
        bar.minorticks_off()
    if low is not None:
        for i, j in zip(*np.nonzero(unsure)):
            ax.add_patch(Rectangle((j, i), 1, 1, facecolor="0.92", edgecolor="0.72", hatch="////", lw=0))
            ax.text(j + 0.5, i + 0.5, format(table.iat[i, j], fmt), ha="center", va="center", fontsize=8, color="0.4")
        grey = Patch(facecolor="0.92", edgecolor="0.72", hatch="////", label="its interval contains 0 (number in grey)")
        ax.legend(handles=[grey], loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=8, frameon=False)
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    return fig
