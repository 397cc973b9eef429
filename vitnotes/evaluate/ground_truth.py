"""Ground truth on the spectrograms: where a map's mass lies against where the information is.

In the chirp task (``vn.data.spectrograms``) only the chirp carries information about the
targets; the title, tick labels, colour bar and axes are distractors, and every pixel's region is
known (``vn.data.region_masks``, ``REGIONS``). Per image, for any map:

- **mass on a region**: the share of the map's mass that lies in the region, a patch counting by
  the fraction of its pixels inside (``vitnotes.stats.mask_coverage`` / ``mask_mass``);
- **area of a region**: the region's share of the pixels, i.e. the mass a uniform map puts there
  (the reference); **ratio** = mass on the chirp / area of the chirp (1 = no better than uniform);
- **pointing game** (Zhang et al. 2016, "Top-down neural attention by excitation backprop"): is
  the map's top cell (patch, or pixel for a pixel map) on the chirp? A cell is on the chirp when
  more than ``min_cover`` of its pixels are (default 0: any chirp pixel). Tied top cells count by
  the share of them that hit (the expected hit under a random tie-break). **Chance** = the share
  of the image's cells that are on the chirp (what a random top cell scores).

Negative map values: ``negative="clip"`` (default) sets them to 0 (mass is where the map says
"evidence for"); ``negative="abs"`` uses ``|map|`` (mass is where the map says anything). A map with
no mass left (all zero after clipping) gives NaN for that image, and the bootstrap drops it.

Maps on a grid that divides the mask (a ViT's 8x8 patches on 64x64 masks) are compared cell by
cell through the coverage; on other grids the map is first resized to the mask's pixels
(nearest: every pixel takes its cell's value). Introduced in notebook 09.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from ..data.chirps import REGIONS, region_masks
from ..stats import as_maps, mask_coverage, mask_mass
from .agreement import resize_maps

__all__ = ["DISTRACTORS", "NEGATIVE", "ground_truth", "region_stack"]

DISTRACTORS = ("text", "colorbar", "axes")
NEGATIVE = ("clip", "abs")


def region_stack(masks: Any) -> dict[str, np.ndarray]:
    """``{region: bool [batch, H, W]}`` from region codes ``[batch, H, W]`` (``np.stack(ds["mask"])``),
    one image at a time through ``vn.data.region_masks`` (which validates the codes). A dict of
    bool masks is passed through (each ``[batch, H, W]``)."""
    if isinstance(masks, dict):
        out = {k: np.asarray(v).astype(bool) for k, v in masks.items()}
        shapes = {v.shape for v in out.values()}
        if len(shapes) != 1 or len(next(iter(shapes))) != 3:
            raise ValueError(f"region masks must all be [batch, H, W] bool arrays of one shape, got {shapes}")
        return out
    m = np.asarray(masks)
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3:
        raise ValueError(f"masks must be region codes [batch, H, W] (np.stack(ds['mask'])), got shape {m.shape}")
    per = [region_masks(mi) for mi in m]
    return {r: np.stack([p[r] for p in per]) for r in REGIONS}


def ground_truth(
    maps: Any, masks: Any, *, negative: str = "clip", target: str = "chirp", min_cover: float = 0.0
) -> pd.DataFrame:
    """Per-image ground-truth scores of ``maps`` (``[batch, rows, cols]`` or ``[batch, H, W]``)
    against ``masks`` (region codes ``[batch, H, W]`` or a dict of bool masks): one row per image.

    Columns: ``mass_<region>`` and ``area_<region>`` for every region, ``ratio`` (mass / area of
    ``target``), ``pointing`` (1 / 0, or the hit share of tied top cells) and ``pointing_chance``.
    ``negative``: ``"clip"`` or ``"abs"`` (module docstring). ``df.attrs`` records the settings.
    """
    if negative not in NEGATIVE:
        raise ValueError(f"negative must be one of {NEGATIVE}, got {negative!r}")
    if not 0.0 <= min_cover < 1.0:
        raise ValueError(f"min_cover must lie in [0, 1), got {min_cover}")
    regions = region_stack(masks)
    if target not in regions:
        raise ValueError(f"target region {target!r} not among {sorted(regions)}")
    b, h, w = next(iter(regions.values())).shape
    m = as_maps(maps).double()
    if m.shape[0] != b:
        raise ValueError(f"{m.shape[0]} maps for {b} masks; pass one map per image")
    rows, cols = m.shape[1:]
    if h % rows or w % cols:
        m = resize_maps(m, (h, w), "nearest").double()
        rows, cols = h, w
    m = m.clamp_min(0) if negative == "clip" else m.abs()
    total = m.sum((1, 2), keepdim=True)
    p = torch.where(total > 0, m / total.clamp_min(1e-300), torch.full_like(m, float("nan")))
    out: dict[str, np.ndarray] = {}
    for r, mk in regions.items():
        out[f"mass_{r}"] = mask_mass(p, torch.from_numpy(mk)).double().numpy()
        out[f"area_{r}"] = mk.reshape(b, -1).mean(1)
    area = out[f"area_{target}"]
    with np.errstate(divide="ignore", invalid="ignore"):
        out["ratio"] = np.where(area > 0, out[f"mass_{target}"] / np.where(area > 0, area, 1), np.nan)
    cover = mask_coverage(torch.from_numpy(regions[target]), (rows, cols)).reshape(b, -1)  # [b, cells]
    hit = cover > min_cover
    flat = m.reshape(b, -1)
    top = (flat == flat.max(1, keepdim=True).values) & (flat > 0)
    n_top = top.sum(1)
    pointing = ((top & hit).sum(1).double() / n_top.clamp_min(1)).numpy()
    out["pointing"] = np.where(n_top.numpy() > 0, pointing, np.nan)
    out["pointing_chance"] = hit.double().mean(1).numpy()
    df = pd.DataFrame(out)
    df.index.name = "image"
    df.attrs.update(negative=negative, target=target, min_cover=min_cover, grid=(rows, cols))
    return df
