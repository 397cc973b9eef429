"""Figures of the studies: map panels, agreement heatmaps, deletion curves, the randomisation
cascade, group distributions, the spectrogram task's regions.

Introduced in notebooks 03 (maps, agreement, deletion), 04 (groups), 06 (cascade) and 07 (regions).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from ..core.images import image_stack
from ..data.chirps import REGIONS, region_masks
from ..stats import as_maps
from .figures import _draw, display_image

__all__ = [
    "agreement_heatmap", "cascade_panel", "cascade_plot", "deletion_plot", "group_distributions", "map_panel",
    "show_regions", "transplant_plot",
]  # fmt: skip


def map_panel(
    images: Any,
    maps: Mapping[str, Any],
    *,
    titles: Sequence[str] | None = None,
    alpha: float = 0.6,
    cmap: str = "inferno",
    size: float = 1.25,
    shared: bool | str = False,
    label: str = "map value",
) -> Figure:
    """A grid of maps over their images: a column per image, a row per map kind (the first row
    shows the images alone). ``shared=False``: each panel's colours span its own map's range (where,
    not how much); ``"row"``: one scale from 0 per row, with a colour bar each; ``True``: one scale from
    0 for every panel and one colour bar (``label`` names its unit).

    ``images``: ``[n, H, W(, C)]`` raw images; ``maps``: name -> ``[n, rows, cols]`` (any grid;
    drawn bilinearly upsampled to the image). ``titles``: one per image.
    Introduced in notebook 03 (CNN vs ViT).
    """
    imgs = image_stack(images)
    n = imgs.shape[0]
    titles = list(titles) if titles is not None else [""] * n
    if len(titles) != n:
        raise ValueError(f"{len(titles)} titles for {n} images; give one title per image")
    rows = {k: as_maps(v, k) for k, v in maps.items()}
    for k, v in rows.items():
        if v.shape[0] != n:
            raise ValueError(f"map kind {k!r} has {v.shape[0]} maps for {n} images")
    if shared not in (False, True, "row"):
        raise ValueError(f"shared must be False, True or 'row', got {shared!r}")
    top = max(float(v.max()) for v in rows.values())
    vmax = {k: (float(v.max()) if shared == "row" else top) if shared else None for k, v in rows.items()}
    fig = Figure(figsize=(size * n + 1.0 + 0.8 * bool(shared), size * (len(rows) + 1) + 0.4), layout="constrained")
    axes = np.asarray(fig.subplots(len(rows) + 1, n, squeeze=False))
    ims = {}
    for j in range(n):
        img = display_image(imgs[j])
        _draw(axes[0, j], img, None, alpha, cmap, False, titles[j] or None)
        for i, (k, v) in enumerate(rows.items(), start=1):
            ims[k] = _draw(axes[i, j], img, v[j], alpha, cmap, True, None, vmax=vmax[k])
    axes[0, 0].set_ylabel("image", fontsize=9)
    for i, k in enumerate(rows, start=1):
        axes[i, 0].set_ylabel(k, fontsize=9)
        if shared == "row":
            fig.colorbar(ims[k], ax=axes[i, :].tolist(), shrink=0.9, label=label)
    if shared is True:
        fig.colorbar(ims[k], ax=axes[1:, :].ravel().tolist(), shrink=0.8, label=label)
    return fig


def agreement_heatmap(tables: Mapping[str, pd.DataFrame], *, size: float = 3.6) -> Figure:
    """Square agreement tables (``agreement``) side by side as annotated heatmaps: the lower
    triangle without the diagonal (a map always agrees with itself). Introduced in notebook 03 (CNN vs ViT)."""
    import seaborn as sns

    fig = Figure(figsize=(size * len(tables) + 0.5, size), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(tables)))
    for ax, (title, t) in zip(axes, tables.items(), strict=True):
        t = t.iloc[1:, :-1]  # the diagonal (1 by definition) and the upper triangle are left out
        mask = np.triu(np.ones(t.shape, dtype=bool), k=1)
        sns.heatmap(
            t,
            mask=mask,
            annot=True,
            fmt=".2f",
            vmin=-1 if (t.values < 0).any() else 0,
            vmax=1,
            cmap="vlag" if (t.values < 0).any() else "rocket_r",
            cbar=False,
            square=True,
            ax=ax,
            annot_kws={"fontsize": 8},
        )
        ax.set_title(title, fontsize=10)
        ax.tick_params(labelsize=8)
    return fig


def deletion_plot(
    curves: pd.DataFrame, *, control: str | None = "random", size: tuple[float, float] = (4.0, 3.0)
) -> Figure:
    """Mean deletion curves from ``deletion_study``: a panel per model, a line per map kind
    (the ``control`` kind dashed), shaded +- one standard error. Introduced in notebook 03 (CNN vs ViT)."""
    models = list(dict.fromkeys(curves["model"]))
    fig = Figure(figsize=(size[0] * len(models) + 1.6, size[1]), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(models), sharey=True))
    colours = {k: f"C{i}" for i, k in enumerate(dict.fromkeys(curves["map"]))}
    for ax, mn in zip(axes, models, strict=True):
        sub = curves[curves["model"] == mn]
        for kn, g in sub.groupby("map", sort=False):
            style = dict(color="grey", linestyle="--") if kn == control else dict(color=colours[kn])
            ax.plot(g["fraction"], g["prob"], label=kn, **style)
            ax.fill_between(
                g["fraction"], g["prob"] - g["sem"], g["prob"] + g["sem"], alpha=0.15, color=style["color"], linewidth=0
            )
        ax.set_title(mn, fontsize=10)
        ax.set_xlabel("fraction of pixels deleted")
    axes[0].set_ylabel("p(originally predicted class)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=8, frameon=False)
    return fig


def cascade_plot(
    table: pd.DataFrame,
    baseline: dict[str, float] | None = None,
    *,
    metric: str = "spearman",
    size: tuple[float, float] = (6.4, 3.4),
) -> Figure:
    """Agreement with the trained maps along the cascade (a line per method, steps in the table's
    order from the trained model to the fully random one). ``metric``: a column of the table
    (``"spearman"`` or ``"topk_overlap"``). ``baseline``: method -> a reference value drawn as a
    dashed line of the same colour (e.g. the agreement between trained maps of different images).
    A table with ``low`` and ``high`` columns (``vn.evaluate.cascade_intervals``) gets its intervals drawn
    as error bars, and with ``seed_min`` and ``seed_max`` the spread over seeds as a band.
    Introduced in notebook 06 (rollout)."""
    for col in ("step", "method", metric):
        if col not in table.columns:
            raise ValueError(
                f"column {col!r} not in the table; pass the first result of vn.evaluate.cascading_randomization"
            )
    steps = list(dict.fromkeys(table["step"]))
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.subplots()
    colours = {}
    for k, (method, group) in enumerate(table.groupby("method", sort=False)):
        g = group.set_index("step").loc[steps]
        x = np.arange(len(steps)) + 0.06 * (k - 1)  # a small offset keeps overlapping bars apart
        (line,) = ax.plot(x, g[metric].to_numpy(), marker="o", ms=4, label=method)
        colours[method] = line.get_color()
        if metric == "spearman" and {"low", "high"} <= set(g.columns):
            err = np.stack([g[metric] - g["low"], g["high"] - g[metric]]).clip(min=0)
            ax.errorbar(x, g[metric], yerr=err, fmt="none", ecolor=line.get_color(), capsize=2, lw=1)
        if metric == "spearman" and {"seed_min", "seed_max"} <= set(g.columns):
            ax.fill_between(x, g["seed_min"], g["seed_max"], color=line.get_color(), alpha=0.15, lw=0)
    for method, value in (baseline or {}).items():
        ax.axhline(value, ls="--", lw=1, color=colours.get(method, "grey"), alpha=0.8)
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xticks(range(len(steps)), steps, rotation=30, ha="right", fontsize=8)
    labels = {"spearman": "Spearman with trained map", "topk_overlap": "top-patch overlap with trained map"}
    ax.set_ylabel(labels.get(metric, metric))
    ax.set_xlabel("randomised (cascading from the top)")
    ax.set_ylim(-0.3, 1.05)
    ax.legend(fontsize=8, loc="lower left")
    return fig


def cascade_panel(
    image: Any, maps: dict[str, dict[str, torch.Tensor]], index: int = 0, *, size: float = 1.15
) -> Figure:
    """One image's maps along the cascade: a column per step, a row per method (the second result
    of ``cascading_randomization``; ``index`` picks the image in the batch). Each row shares one
    colour scale from 0, with its colour bar and the uniform reference (1 / patches) marked on it:
    a map that is flat on that scale is uniform, however clean its shape would look scaled on its
    own. Introduced in notebook 06 (rollout)."""
    from .trust import shared_maps

    steps = list(maps)
    if not steps:
        raise ValueError("maps is empty; pass the second result of vn.evaluate.cascading_randomization")
    methods = list(maps[steps[0]])
    img = np.asarray(image)
    rows = {m: torch.stack([maps[s][m][index] for s in steps]) for m in methods}
    cells = int(np.prod(next(iter(rows.values())).shape[-2:]))
    return shared_maps(
        np.repeat(img[None], len(steps), 0),
        rows,
        titles=[s.replace(" + ", "\n+ ") for s in steps],
        size=size,
        reference=1.0 / cells,
    )


def group_distributions(
    df: pd.DataFrame,
    by: str,
    columns: Sequence[str],
    *,
    labels: tuple[str, str] = ("yes", "no"),
    ncols: int = 4,
    zero: bool = False,
    references: Mapping[str, float] | None = None,
    size: tuple[float, float] = (2.0, 2.2),
):
    """One small box plot per column (``ncols`` to a row), the two groups of the boolean column
    ``by`` side by side (``labels`` name the True and the False group, drawn blue and red).
    ``zero=True`` starts every y axis at 0 (or below, for negative values), so that a narrow range
    is not blown up to the panel's height; ``references``: ``{column: value}`` drawn as a dashed grey
    line (e.g. the uniform map's entropy). Returns a matplotlib ``Figure``. Introduced in notebook 04
    (misclassified images)."""
    import seaborn as sns
    from matplotlib.figure import Figure

    for c in (by, *columns):
        if c not in df.columns:
            raise ValueError(f"column {c!r} not in the table (columns: {list(df.columns)})")
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1, got {ncols}")
    ncols = min(ncols, len(columns))
    nrows = -(-len(columns) // ncols)
    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    axes = np.asarray(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax in axes[len(columns) :]:
        ax.set_visible(False)
    group = df[by].map({True: labels[0], False: labels[1]})
    palette = {labels[0]: "C0", labels[1]: "C3"}
    for ax, c in zip(axes, columns):
        sns.boxplot(x=group, y=df[c], order=list(labels), ax=ax, hue=group, palette=palette, legend=False,
                    width=0.6, fliersize=2)  # fmt: skip
        ax.set_xlabel("")
        ax.set_title(c, fontsize=9)
        ax.set_ylabel("")
        if references and c in references:
            ax.axhline(references[c], color="0.4", ls="--", lw=1)
        if zero:
            ax.set_ylim(bottom=min(0.0, float(df[c].min())))
    return fig


_REGION_COLOURS = {
    "background": "#f2f2f2",
    "plot": "#9ecae1",
    "chirp": "#e6550d",
    "text": "#756bb1",
    "colorbar": "#31a354",
    "axes": "#636363",
}


def show_regions(image: Any, mask: Any, size: float = 2.6):
    """One spectrogram and its ground-truth regions side by side (a ``matplotlib`` Figure), with a
    legend giving each region's share of the pixels. Introduced in notebook 07."""
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    m = np.asarray(mask)
    regions = region_masks(m)  # validates the mask
    img = np.asarray(image)
    if img.shape[:2] != m.shape:
        raise ValueError(
            f"image {img.shape[:2]} and mask {m.shape} differ in size; pass one dataset row's image and mask"
        )
    fig = Figure(figsize=(2 * size + 1.6, size), layout="constrained")
    axes = fig.subplots(1, 2)
    axes[0].imshow(img)
    axes[0].set_title("image", fontsize=9)
    axes[1].imshow(
        m,
        cmap=ListedColormap([_REGION_COLOURS[r] for r in REGIONS]),
        vmin=-0.5,
        vmax=len(REGIONS) - 0.5,
        interpolation="nearest",
    )
    axes[1].set_title("regions", fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [Patch(color=_REGION_COLOURS[r], label=f"{r} ({regions[r].mean():.0%})") for r in REGIONS]
    axes[1].legend(handles=handles, loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8, frameon=False)
    return fig


# the states of transplant_table, each with its line style: the original in grey (dashed on its own data)
_STATE_STYLES = {
    "original, own data": dict(color="0.45", ls="--", marker="s"),
    "original": dict(color="0.25", ls="-", marker="s"),
    "transplant": dict(color="C0", ls="-", marker="o"),
    "fine-tuned": dict(color="C1", ls="-", marker="o"),
}


def transplant_plot(
    table: pd.DataFrame, *, log: Sequence[str] = ("chirp mass / area",), size: tuple[float, float] = (6.8, 3.0)
) -> Figure:
    """``transplant_table``'s states layer by layer, one panel per statistic: each state's mean and its
    interval as a band (over images, or over fine-tuning runs where the table says so), and the
    uniform map's value (1 for both statistics) as a dotted line. The statistics in ``log`` get a log
    scale (a ratio: 2x and 0.5x lie as far from 1). Introduced in notebook 07."""
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

    need = {"statistic", "layer", "metric", "value", "low", "high"}
    if not need <= set(table.columns):
        raise ValueError(f"pass vn.transplant_table's table (columns {sorted(need)}), got {list(table.columns)}")
    stats = list(dict.fromkeys(table["statistic"]))
    fig = Figure(figsize=size, layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(stats)))
    for ax, stat in zip(axes, stats):
        t = table[table["statistic"] == stat]
        for state, style in _STATE_STYLES.items():
            s = t[t["metric"] == state].sort_values("layer")
            if s.empty:
                continue
            over = s["over"].iloc[0] if "over" in s.columns else "images"
            ax.plot(s["layer"], s["value"], ms=3, lw=1.3, label=f"{state} (interval over {over})", **style)
            ax.fill_between(s["layer"], s["low"], s["high"], color=style["color"], alpha=0.2, lw=0)
        ax.axhline(1.0, color="0.6", ls=":", lw=1)
        ax.set_xticks(sorted(t["layer"].unique()))
        ax.set(xlabel="layer", ylabel=stat + (" (log scale)" if stat in log else ""))
        if stat in log:
            ax.set_yscale("log")
            lo, hi = ax.get_ylim()
            ticks = [v for v in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100) if lo <= v <= hi]
            ax.yaxis.set_major_locator(FixedLocator(ticks))
            ax.yaxis.set_major_formatter(ScalarFormatter())
            ax.yaxis.set_minor_locator(NullLocator())
        ax.tick_params(labelsize=8)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    return fig
