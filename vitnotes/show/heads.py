"""Figures of chapters 01 and 02: position-embedding similarity, attention distance per head, one full
attention matrix, and the positional-vs-content control.

Every function returns a ``matplotlib.figure.Figure``. Introduced in notebooks 01 (layers) and 02 (heads).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

__all__ = ["position_similarity_plot", "distance_dots", "attention_matrix", "following_plot"]


def position_similarity_plot(sim: torch.Tensor, *, size: float = 5.0, cmap: str = "viridis") -> Figure:
    """Cosine similarity of position embeddings (ViT paper, Fig. 7): ``sim`` ``[rows, cols, rows, cols]``
    (``vn.stats.position_similarity``) drawn as one small map per patch, placed where that patch sits, all on one
    -1..1 colour scale with one colour bar. Introduced in notebook 01 (layers)."""
    s = torch.as_tensor(sim, dtype=torch.float32)
    if s.ndim != 4 or s.shape[:2] != s.shape[2:]:
        raise ValueError(f"sim must be [rows, cols, rows, cols] (vn.stats.position_similarity), got {tuple(s.shape)}")
    r, c = s.shape[:2]
    gap = 1  # one blank cell between the small maps
    mosaic = np.full((r * (r + gap) - gap, c * (c + gap) - gap), np.nan)
    for i in range(r):
        for j in range(c):
            mosaic[i * (r + gap) : i * (r + gap) + r, j * (c + gap) : j * (c + gap) + c] = s[i, j].numpy()
    fig = Figure(figsize=(size + 0.8, size), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(mosaic, cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
    ax.set_xticks([(c + gap) * j + (c - 1) / 2 for j in range(c)], [str(j) for j in range(c)], fontsize=7)
    ax.set_yticks([(r + gap) * i + (r - 1) / 2 for i in range(r)], [str(i) for i in range(r)], fontsize=7)
    ax.set_xlabel("patch column")
    ax.set_ylabel("patch row")
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    fig.colorbar(im, ax=ax, shrink=0.8, label="cosine similarity")
    return fig


def distance_dots(
    df: pd.DataFrame, uniform_px: float, *, column: str = "distance_px", size: tuple[float, float] = (5.0, 3.2)
) -> Figure:
    """Mean attention distance of every head as a dot per layer (ViT paper, Fig. 11): ``df`` has one row
    per (layer, head) (``vn.cls_summary`` of a full capture); the dashed line is uniform attention's
    distance; the y axis starts at 0. Introduced in notebook 01 (layers)."""
    for col in ("layer", column):
        if col not in df.columns:
            raise ValueError(f"column {col!r} not in the table (columns: {list(df.columns)}); capture full attention")
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.subplots()
    ax.scatter(df["layer"], df[column], s=14, alpha=0.7, color="C0", label="one head")
    ax.axhline(uniform_px, color="grey", lw=1, ls="--", label=f"uniform attention ({uniform_px:.1f} px)")
    top = max(float(df[column].max()), uniform_px)
    ax.set_ylim(0, top * 1.1)
    ax.set_xlim(-0.5, float(df["layer"].max()) + 0.5)
    ax.set_xticks(sorted(df["layer"].unique()))
    ax.set_xlabel("layer")
    ax.set_ylabel("mean attention distance (pixels)")
    ax.legend(fontsize=7, loc="lower right")
    return fig


def attention_matrix(
    probs: torch.Tensor, prefix: int = 1, *, title: str | None = None, size: float = 4.2, cmap: str = "magma"
) -> Figure:
    """One full attention matrix ``[query, key]`` (rows sum to 1) as an image with its colour bar; thin
    lines separate the prefix tokens (CLS first) from the patches. Colours use a square-root scale (the
    bar shows the probabilities), so small weights stay visible next to the large ones.
    Introduced in notebook 02 (heads)."""
    from matplotlib.colors import PowerNorm

    a = torch.as_tensor(probs, dtype=torch.float32)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"attention_matrix expects one square matrix [query, key], got shape {tuple(a.shape)}")
    fig = Figure(figsize=(size + 0.9, size), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(a.numpy(), cmap=cmap, norm=PowerNorm(0.5, vmin=0, vmax=float(a.max())), interpolation="nearest")
    for at in (prefix - 0.5,):
        ax.axhline(at, color="cyan", lw=0.6)
        ax.axvline(at, color="cyan", lw=0.6)
    first = "0: CLS" if prefix == 1 else f"0..{prefix - 1}: prefix tokens"
    ax.set_xlabel(f"key token ({first}, then the patches in raster order)")
    ax.set_ylabel("query token")
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.8, label="attention probability")
    return fig


def following_plot(
    table: pd.DataFrame, kind: str = "shift", *, weak: float | None = None, size: tuple[float, float] = (4.6, 4.0)
) -> Figure:
    """The positional-vs-content control (``vn.evaluate.following_table``): one dot per head, x = correlation with the
    original map when the content moved and the map stayed (``fixed``), y = with the map moved back
    (``moved``), coloured by layer. Above the diagonal: the head follows the content; below: it stays in
    place. ``weak``: a correlation below which neither explains the head's map; the square where both
    are below it is shaded and labelled. Introduced in notebook 02 (heads)."""
    for col in (f"{kind}_fixed", f"{kind}_moved", "layer"):
        if col not in table.columns:
            raise ValueError(f"column {col!r} not in the table (columns: {list(table.columns)})")
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.subplots()
    lo = min(0.0, float(np.nanmin(table[[f"{kind}_fixed", f"{kind}_moved"]].to_numpy())))
    if weak is not None:
        from matplotlib.patches import Rectangle

        box = Rectangle((lo - 0.02, lo - 0.02), weak - lo + 0.02, weak - lo + 0.02, color="0.88", zorder=0, lw=0)
        ax.add_patch(box)
        ax.text(lo, lo, f"neither:\nboth < {weak:g}", ha="left", va="bottom", fontsize=7, color="0.3")
    sc = ax.scatter(table[f"{kind}_fixed"], table[f"{kind}_moved"], c=table["layer"], cmap="viridis", s=16)
    ax.plot([lo, 1], [lo, 1], color="grey", lw=1, ls="--")
    ax.set_xlim(lo - 0.02, 1.02)
    ax.set_ylim(lo - 0.02, 1.02)
    ax.set_aspect("equal")
    ax.set_xlabel("correlation, map left in place")
    ax.set_ylabel("correlation, map moved back")
    ax.set_title(f"{kind}: above the line = follows the content", fontsize=9)
    fig.colorbar(sc, ax=ax, shrink=0.8, label="layer")
    return fig
