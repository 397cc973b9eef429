"""Positional heads against heads that follow the content: move the content, see what moves.

Shift every image sideways by whole patches (``torch.roll``: the columns that leave on the right
come back on the left, so every patch keeps its pixels and only its place changes), or mirror it
left-right. A *positional* head keeps its CLS map where it was, in image coordinates; a head that
follows the content moves its map with the content. For each image and head, two Pearson
correlations with the map on the original image:

- ``fixed``: the map on the moved image as it is (high for a positional head);
- ``moved``: the map on the moved image moved back on the grid (high for a content head);

and the score ``moved - fixed``: above 0 the head follows the content, below 0 it stays in place.
A ViT without position embeddings is blind to where a patch sits, so under a whole-patch roll its
maps move exactly with the content (``moved = 1``): the tests check that. A mirror also mirrors the
pixels inside each patch, so there it is a weaker, approximate control.
Introduced in notebook 02 (heads).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch

from ..core.capture import capture
from ..core.geometry import as_int
from ..core.model import vit_input
from ..stats import map_correlation
from .intervals import bootstrap

__all__ = ["TRANSFORMS", "move_images", "content_following", "following_table"]

TRANSFORMS = ("shift", "flip")


def move_images(pixel_values: torch.Tensor, kind: str, shift_px: int = 0) -> torch.Tensor:
    """The images moved: ``"shift"`` rolls them ``shift_px`` pixels to the right (wrapping around),
    ``"flip"`` mirrors them left-right. Introduced in notebook 02 (heads)."""
    if kind == "shift":
        return torch.roll(pixel_values, shifts=shift_px, dims=-1)
    if kind == "flip":
        return pixel_values.flip(-1)
    raise ValueError(f"kind must be one of {TRANSFORMS}, got {kind!r}")


def _move_back(grids: torch.Tensor, kind: str, patches: int) -> torch.Tensor:
    """Maps ``[..., rows, cols]`` of moved images brought back to the original images' places."""
    return torch.roll(grids, shifts=-patches, dims=-1) if kind == "shift" else grids.flip(-1)


def content_following(
    model: Any, pixel_values: torch.Tensor, *, shift: int = 1, base: torch.Tensor | None = None, batch_size: int = 64
) -> dict[str, dict[str, torch.Tensor]]:
    """For each move (``"shift"`` by ``shift`` whole patches to the right, ``"flip"``), the correlations
    ``{"fixed": [layer, batch, head], "moved": [layer, batch, head]}`` of every head's CLS map on the moved
    image with its map on the original image: as it is, and moved back (module docstring). NaN where a map
    is constant. ``base`` may hold the CLS maps of the unmoved images if they are already captured
    (``vn.capture(model, pixel_values, cls_only=True).cls_grids()``), to save one forward pass.
    Introduced in notebook 02 (heads)."""
    net, geom, x = vit_input(model, pixel_values, batch_size, "content_following")
    shift = as_int(shift, "shift")
    if not 0 < shift < geom.grid_for(*x.shape[-2:])[1]:
        raise ValueError(f"shift is a whole number of patches between 1 and the grid's width - 1, got {shift!r}")
    if base is None:
        base = capture(model, x, cls_only=True, batch_size=batch_size).cls_grids()  # [layer, batch, head, rows, cols]
    elif base.ndim != 5 or base.shape[1] != x.shape[0]:
        raise ValueError(
            f"base must be the CLS maps [layer, batch, head, rows, cols] of these {x.shape[0]} images, "
            f"got shape {tuple(base.shape)}"
        )
    out = {}
    for kind in TRANSFORMS:
        moved = move_images(x, kind, shift * geom.patch_size)
        other = capture(model, moved, cls_only=True, batch_size=batch_size).cls_grids()
        out[kind] = {
            "fixed": map_correlation(base, other),
            "moved": map_correlation(base, _move_back(other, kind, shift)),
        }
    return out


def following_table(scores: dict[str, dict[str, torch.Tensor]], *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per (layer, head) from ``content_following``: for each move, the mean over images of
    ``fixed``, ``moved`` and the score ``moved - fixed``, the score's percentile-bootstrap 95 % interval
    over images (``<move>_low``, ``<move>_high``), and ``n`` (images). Layers are numbered from 0.
    Introduced in notebook 02 (heads)."""
    rows: dict[tuple[int, int], dict[str, float]] = {}
    for kind, pair in scores.items():
        score = pair["moved"] - pair["fixed"]  # [layer, batch, head]
        n_layers, n, n_heads = score.shape
        for layer in range(n_layers):
            for head in range(n_heads):
                iv = bootstrap(score[layer, :, head].numpy(), n_boot=n_boot, seed=seed)
                row = rows.setdefault((layer, head), {"layer": layer, "head": head})
                row.update({f"{kind}_fixed": float(pair["fixed"][layer, :, head].nanmean()),
                            f"{kind}_moved": float(pair["moved"][layer, :, head].nanmean()),
                            kind: iv.value, f"{kind}_low": iv.low, f"{kind}_high": iv.high, "n": iv.n})  # fmt: skip
    return pd.DataFrame(list(rows.values()))
