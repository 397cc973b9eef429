"""Figures of what the layers hold: readability by layer (logit lens, linear probes) and linear CKA
heatmaps. Introduced in notebooks 01 (readability) and 03 (CKA).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

__all__ = ["readability_plot", "cka_heatmap"]


def readability_plot(
    curves: Mapping[str, Any],
    *,
    chance: float | None = None,
    ylabel: str = "accuracy",
    size: tuple[float, float] = (6.0, 3.2),
) -> Figure:
    """Per-layer accuracies on one axis, layers in order along x. Each entry of ``curves`` is a table
    with ``accuracy``, ``low`` and ``high`` (``logit_lens``, ``linear_probes``: a line and its interval
    as a band) or a Series (a dashed line); ``chance`` adds a dotted grey line. Introduced in notebook 01."""
    if not curves:
        raise ValueError("nothing to draw: pass at least one table or series")
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.subplots()
    layers = None
    for i, (label, c) in enumerate(curves.items()):
        layers = list(c.index) if layers is None else layers
        if list(c.index) != layers:
            raise ValueError(f"{label!r} has layers {list(c.index)}, the first curve {layers}: give them one index")
        x = np.arange(len(layers))
        if isinstance(c, pd.DataFrame):
            ax.plot(x, c["accuracy"], marker="o", ms=3, color=f"C{i}", label=label)
            ax.fill_between(x, c["low"], c["high"], color=f"C{i}", alpha=0.2, lw=0)
        else:
            ax.plot(x, c.to_numpy(), ls="--", marker=".", color=f"C{i}", label=label)
    if chance is not None:
        ax.axhline(chance, color="grey", ls=":", lw=1, label="chance")
    ax.set_xticks(np.arange(len(layers)), [str(v) for v in layers], fontsize=8)
    ax.set(xlabel="read out after", ylabel=ylabel, ylim=(0, 1.02))
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    return fig


def cka_heatmap(panels: Mapping[str, pd.DataFrame], *, size: float = 3.4) -> Figure:
    """CKA tables (``cka``: rows one model's layers, columns another's) side by side on one 0-1 colour
    scale with one colour bar; the first layer sits at the bottom left, and each table's index and
    column names label the axes. Introduced in notebook 03 (CNN vs ViT)."""
    if not panels:
        raise ValueError("nothing to draw: pass at least one CKA table")
    fig = Figure(figsize=(size * len(panels) + 0.8, size), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    image = None
    for ax, (title, t) in zip(axes, panels.items(), strict=True):
        image = ax.imshow(t.to_numpy(), origin="lower", vmin=0.0, vmax=1.0, cmap="magma", aspect="auto")
        ax.set_xticks(np.arange(t.shape[1]), [str(c) for c in t.columns], rotation=90, fontsize=7)
        ax.set_yticks(np.arange(t.shape[0]), [str(r) for r in t.index], fontsize=7)
        ax.set(xlabel=t.columns.name or "", ylabel=t.index.name or "")
        ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=list(axes), label="linear CKA", shrink=0.9)
    return fig
