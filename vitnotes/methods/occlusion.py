"""Occlusion (patch-ablation importance, Zeiler & Fergus 2014): the causal reference map of chapter 09."""

from __future__ import annotations

from typing import Any

import torch

from ..core.model import check_pixel_values, chunk_size, chunked, forward, score, targets_for, unwrap
from ._common import cell_grid, pixel_baseline
from .base import method

__all__ = ["occlusion"]


@method(
    "occlusion",
    kinds=("vit", "cnn", "swin"),
    class_specific=True,
    default=False,
    what="How much the class score drops when one patch is replaced by a baseline (the image's mean by default).",
)
def occlusion(
    model: Any,
    pixel_values: torch.Tensor,
    target: Any = None,
    *,
    baseline: Any = "mean",
    patch: int | None = None,
    batch_size: int | None = None,
) -> torch.Tensor:
    """Drop in the target score when one cell of the grid is replaced by a baseline:
    ``map[b, i, j] = S(x_b) - S(x_b with cell (i, j) replaced)``, ``[batch, rows, cols]``, signed
    (negative where hiding the cell raises the score), not normalised.

    Cells are the ViT's or Swin's patches (``patch`` = its patch size), or ``patch x patch`` pixel squares
    for any model (required for a CNN). ``baseline``: ``"mean"`` (default: each image's own
    per-channel mean, a flat grey-ish fill), ``"grey"`` / ``"black"`` (pixel 0.5 / 0, need a
    ``vn.core.Model``), ``"zero"`` (0 after normalisation), a number or a tensor the shape of an image.
    ``target``: None = predicted class, an int, or one per image; for a regression model an
    output index.

    Cost: one forward per (image, cell) plus one per image. The occluded copies of all images
    form one stream cut into forwards of ``batch_size`` copies (None: 64 on the CPU, sized from the
    free memory on a GPU), so peak memory is one inference
    forward of ``batch_size`` images, whatever the grid (measured 0.46 MiB per copy on
    ``fmnist-vit-p4``, CPU fp32, ``benchmarks/bench_memory.py``), plus the chunk's baselines.
    """
    net, geom = unwrap(model)
    pixel_values = check_pixel_values(pixel_values, geom)
    h, w = pixel_values.shape[-2:]
    patch, rows, cols = cell_grid(geom, h, w, patch, "occluded square")
    cells = rows * cols
    batch_size = chunk_size(model, pixel_values, batch_size, cpu=64, keeps="forward")
    masks = torch.zeros(cells, 1, h, w, dtype=torch.bool)  # [cell, 1, H, W]
    for k in range(cells):
        i, j = divmod(k, cols)
        masks[k, :, i * patch : (i + 1) * patch, j * patch : (j + 1) * patch] = True

    out = []
    device = next(net.parameters()).device  # the copies are made where the model runs
    masks = masks.to(device)
    with torch.no_grad():
        for x, tgt in chunked(pixel_values, target, batch_size):
            x = x.to(device)
            logits = forward(net, x).logits
            t = targets_for(net, tgt, logits)
            clean = score(logits, t).double()
            base = pixel_baseline(model, x, baseline)
            drops = torch.empty(x.shape[0] * cells, dtype=torch.float64, device=device)
            for start in range(0, x.shape[0] * cells, batch_size):
                idx = torch.arange(start, min(start + batch_size, x.shape[0] * cells), device=device)
                img, cell = idx // cells, idx % cells
                copies = torch.where(masks[cell], base[img], x[img])
                drops[idx] = clean[img] - score(forward(net, copies).logits, t[img]).double()
            out.append(drops.reshape(x.shape[0], rows, cols).float().cpu())
    return torch.cat(out)
