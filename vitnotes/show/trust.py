"""Figures of chapter 09 (which explanation can you trust?): maps on one colour scale per method with
colour bars, every method's interval per metric, the mean perturbation curves, and two metrics
against each other (where they disagree).

Introduced in notebook 09.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..core.images import image_stack
from ..evaluate.trust import BETTER, CONTROLS, column_label
from ..stats import as_maps
from .figures import display_image
from .page import MAX_PANELS, page_inches, text_inches, wrap

__all__ = ["curve_plot", "interval_plot", "metric_scatter", "shared_maps"]


def _row_scale(m: np.ndarray, cmap: str, diverging: str) -> dict:
    """One colour scale for a row of maps: 0..max for non-negative maps, symmetric about 0 otherwise."""
    top = float(np.abs(m).max()) or 1.0
    if m.min() < 0:
        return {"cmap": diverging, "vmin": -top, "vmax": top}
    return {"cmap": cmap, "vmin": 0.0, "vmax": top}


def shared_maps(
    images: Any,
    maps: Mapping[str, Any],
    *,
    outline: Any = None,
    titles: Sequence[str] | None = None,
    size: float = 1.05,
    cmap: str = "magma",
    diverging: str = "RdBu_r",
    reference: float | None = None,
    together: Sequence[Sequence[str]] = (),
    columns: int = MAX_PANELS,
) -> Figure:
    """A column per image, a row per map kind (the first row: the images), each row on ONE colour
    scale shared by its images, with its colour bar: within a row, brighter means more, across
    images. Non-negative maps run from 0 (``cmap``); maps with negative values run symmetrically
    about 0 (``diverging``: red for, blue against). Maps are drawn as their cells (no smoothing).
    ``outline``: ``[n, H, W]`` bool masks (e.g. the chirp) drawn as a contour on every map.
    ``reference``: a value marked on every colour bar (e.g. the uniform reference ``1 / patches``
    of maps that sum to 1). ``together``: groups of row names that share one scale (e.g. one
    method's maps for two classes), so that their rows compare across rows too. More than ``columns``
    images (6), or more than fit the page side by side with their titles, wrap into blocks of columns as
    even as they go (10 images: two blocks of 5, one under the other, each with the image row, every map
    row and its colour bar, on the same scales).
    ``size`` is the largest a panel is drawn (inches), smaller where the figure would not fit the
    book's page at full size. Introduced in notebook 09."""
    imgs = image_stack(images)
    n, h, w = imgs.shape[:3]
    rows = {k: as_maps(v, k).numpy() for k, v in maps.items()}
    if any(v.shape[0] != n for v in rows.values()):
        raise ValueError(
            f"every map kind needs one map per image ({n}): { ({k: v.shape[0] for k, v in rows.items()}) }"
        )
    if titles is not None and len(titles) != n:
        raise ValueError(f"{len(titles)} titles for {n} images; give one title per image")
    unknown = sorted({k for g in together for k in g} - set(rows))
    if unknown:
        raise ValueError(f"together names rows {unknown} that are not among the maps {list(rows)}")
    scales = {k: _row_scale(v, cmap, diverging) for k, v in rows.items()}
    for group in together:
        shared = _row_scale(np.concatenate([rows[k] for k in group]), cmap, diverging)
        scales.update(dict.fromkeys(group, shared))
    label = text_inches(rows, 8) + 0.15  # the row names, 8 pt, left of the rows
    room = page_inches() - label - 0.65  # 0.65: the colour bars and their ticks
    title_w = text_inches(titles or [], 8) + 0.1  # a panel at least as wide as its title: titles never touch
    blocks, per = wrap(n, max(1, min(columns, int(room // max(title_w, 0.6)))))
    panel = min(size, room / per)
    title_h = 0.16 * (1 + max((str(t).count("\n") for t in titles), default=0)) if titles is not None else 0.0
    height = blocks * (panel * (len(rows) + 1) + title_h) + 0.2 * (blocks - 1) + 0.15
    fig = Figure(figsize=(panel * per + label + 0.65, height), layout="constrained")
    ratios: list[float] = []  # grid rows: per block, the images then a row per map kind; a thin band between
    first = []
    for b in range(blocks):
        ratios += [0.2 / panel] if b else []
        first.append(len(ratios))
        ratios += [1.0] * (len(rows) + 1)
    spec = fig.add_gridspec(len(ratios), per, height_ratios=ratios)
    grid = [
        [[fig.add_subplot(spec[first[b] + r, j]) for j in range(min(per, n - b * per))] for r in range(len(rows) + 1)]
        for b in range(blocks)
    ]  # [block][row][column]
    for b, block in enumerate(grid):
        shown = range(b * per, b * per + len(block[0]))
        for j, ax in zip(shown, block[0]):
            img = display_image(imgs[j])
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
            if titles is not None:
                ax.set_title(titles[j], fontsize=8)
        for i, (name, m) in enumerate(rows.items(), start=1):
            part = None if outline is None else np.asarray(outline)[shown.start : shown.stop]
            _map_row(fig, block[i], m[shown.start : shown.stop], scales[name], (h, w), part, reference)
            block[i][0].set_ylabel(name, fontsize=8, rotation=0, ha="right", va="center")
        for row in block:
            for ax in row:
                ax.set_xticks([])
                ax.set_yticks([])
    return fig


def _map_row(
    fig: Figure, axes: Any, maps: np.ndarray, scale: dict, size: tuple[int, int], outline: Any, reference: float | None
) -> None:
    """One row of ``shared_maps``: each image's map stretched over the image's ``size`` (its cells,
    no smoothing), the outline's contour (pixel masks) on each, and the row's colour bar with
    ``reference`` marked."""
    h, w = size
    for j in range(maps.shape[0]):
        im = axes[j].imshow(maps[j], extent=(0, w, h, 0), interpolation="nearest", **scale)
        if outline is not None:
            mask = np.asarray(outline)[j].astype(float)  # pixel centres at k + 0.5 on the maps' extent
            axes[j].contour(np.arange(w) + 0.5, np.arange(h) + 0.5, mask, levels=[0.5], colors="cyan", linewidths=0.6)
    bar = fig.colorbar(im, ax=list(axes), shrink=0.85, pad=0.01)
    bar.ax.tick_params(labelsize=7)
    if reference is not None:
        bar.ax.axhline(reference, color="cyan", lw=2.5)


def _pick(table: pd.DataFrame, metric: str, baseline: str) -> pd.DataFrame:
    t = table[(table["metric"] == metric) & (table["baseline"] == baseline)]
    if t.empty:
        raise ValueError(f"no rows for metric {metric!r} with baseline {baseline!r} in the table")
    return t.set_index("method")


def _direction(metric: str) -> str:
    return {1: "higher is better", -1: "lower is better"}.get(BETTER.get(metric, 0), "")


def interval_plot(
    table: pd.DataFrame,
    columns: Sequence[tuple[str, str]],
    *,
    reference: str = "random",
    controls: Sequence[str] = CONTROLS,
    width: float = 2.3,
) -> Figure:
    """Every method's mean and 95 % interval, a panel per ``(metric, baseline)`` of ``columns``, the
    methods in the table's order; the ``reference`` method's interval is the grey band, the controls
    are grey. A method "beats" the reference where its bar stays out of the band on the better side
    (the panel's title says which side). ``width``: the largest a panel is drawn (inches); panels that
    would not fit the book's page at full size narrow, down to 1.6 inches, then wrap into rows.
    Introduced in notebook 09."""
    methods = list(dict.fromkeys(table["method"]))
    room = page_inches() - 1.4  # the page less the methods' names
    n_rows, per = wrap(len(columns), max(1, int(room // 1.6)))  # panels at least 1.6 inches wide
    width = min(width, room / per)
    fig = Figure(figsize=(width * per + 1.4, n_rows * (0.24 * len(methods) + 0.9)), layout="constrained")
    grid = np.asarray(fig.subplots(n_rows, per, sharey=True, squeeze=False)).ravel()
    for ax in grid[len(columns) :]:
        ax.remove()  # empty slots at the end of the last row
    axes = grid[: len(columns)]
    y = {m: i for i, m in enumerate(methods)}
    for ax, (metric, baseline) in zip(axes, columns):
        t = _pick(table, metric, baseline)
        if reference in t.index:
            ax.axvspan(t.at[reference, "low"], t.at[reference, "high"], color="0.85", zorder=0)
        for m, r in t.iterrows():
            colour = "0.5" if m in controls else "C0"
            err = [[r["value"] - r["low"]], [r["high"] - r["value"]]]
            ax.errorbar(r["value"], y[m], xerr=err, fmt="o", ms=3.5, color=colour, capsize=2, lw=1)
        direction = _direction(metric)
        ax.set_title(column_label(metric, baseline) + (f"\n({direction})" if direction else ""), fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(axis="x", lw=0.3)
    axes[0].set_yticks(range(len(methods)), methods, fontsize=8)
    axes[0].invert_yaxis()
    return fig


# the colour cycle without its grey (grey is for the controls); after nine methods, dotted lines
_COLOURS = [f"C{i}" for i in range(10) if i != 7]
_CONTROL_STYLES = [{"color": "0.25", "ls": "--"}, {"color": "0.55", "ls": ":"}, {"color": "0.4", "ls": "-."}]


def _line_style(k: int) -> dict:
    return {"color": _COLOURS[k % len(_COLOURS)], "ls": "-" if k < len(_COLOURS) else (0, (1, 1))}


def curve_plot(
    curves: Mapping[tuple[str, str], dict],
    baseline: str,
    *,
    methods: Sequence[str] | None = None,
    controls: Sequence[str] = CONTROLS,
    ylabel: str = "score",
    size: tuple[float, float] = (3.4, 2.8),
) -> Figure:
    """Mean deletion (most relevant first) and insertion curves for one ``baseline``, from
    ``evaluation_table(...).attrs["curves"]``: two panels on one y axis, a line per method, each
    its own colour or colour and dash (the controls in grey, dashed, dotted). Introduced in notebook 09."""
    names = [m for (m, b) in curves if b == baseline and (methods is None or m in methods)]
    if not names:
        raise ValueError(f"no curves for baseline {baseline!r}; baselines: {sorted({b for _, b in curves})}")
    rows = -(-len(names) // 4)  # the legend's rows below the panels, four names a row
    fig = Figure(figsize=(min(2 * size[0] + 0.4, page_inches()), size[1] + 0.22 * rows), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    methods_drawn = [m for m in names if m not in controls]
    controls_drawn = [m for m in names if m in controls]
    for m in names:
        c = curves[(m, baseline)]
        style = (
            _line_style(methods_drawn.index(m)) if m not in controls else _CONTROL_STYLES[controls_drawn.index(m) % 3]
        )
        for ax, kind in zip(axes, ("deletion", "insertion")):
            ax.plot(c["fractions"], c[kind], label=m, lw=1.2, **style)
    axes[0].set_title(f"deletion, most relevant first [{baseline}]", fontsize=9)
    axes[1].set_title(f"insertion, most relevant first [{baseline}]", fontsize=9)
    axes[0].set_xlabel("fraction of pixels replaced by the baseline")
    axes[1].set_xlabel("fraction of pixels put back")
    axes[0].set_ylabel(ylabel)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=4, fontsize=8, frameon=False)
    return fig


def metric_scatter(
    table: pd.DataFrame,
    x: tuple[str, str],
    y: tuple[str, str],
    *,
    controls: Sequence[str] = CONTROLS,
    size: tuple[float, float] = (4.6, 3.8),
) -> Figure:
    """Two ``(metric, baseline)`` columns against each other, a point per method with its two
    intervals as a cross; the axes point towards "better" (a lower-is-better axis is reversed), so
    two metrics that agree put the methods along the rising diagonal. Introduced in notebook 09."""
    a, b = _pick(table, *x), _pick(table, *y)
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.subplots()
    for m in (m for m in a.index if m in b.index):
        colour = "0.5" if m in controls else "C0"
        ex = [[a.at[m, "value"] - a.at[m, "low"]], [a.at[m, "high"] - a.at[m, "value"]]]
        ey = [[b.at[m, "value"] - b.at[m, "low"]], [b.at[m, "high"] - b.at[m, "value"]]]
        ax.errorbar(a.at[m, "value"], b.at[m, "value"], xerr=ex, yerr=ey, fmt="o", ms=3.5, color=colour, lw=0.8)
        ax.annotate(m, (a.at[m, "value"], b.at[m, "value"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    if BETTER.get(x[0]) == -1:
        ax.invert_xaxis()
    if BETTER.get(y[0]) == -1:
        ax.invert_yaxis()
    ax.set_xlabel(f"{column_label(*x)} ({_direction(x[0])}, to the right)", fontsize=8)
    ax.set_ylabel(f"{column_label(*y)} ({_direction(y[0])}, upwards)", fontsize=8)
    ax.grid(lw=0.3)
    return fig
