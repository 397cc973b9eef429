"""Integrated gradients on pixels (Sundararajan et al. 2017), through captum. Chapter 09."""

from __future__ import annotations

from typing import Any

import torch

from ..core.geometry import as_int
from ..core.model import check_pixel_values, chunk_size, chunked, forward, targets_for, unwrap
from ._common import pixel_baseline
from .base import method

__all__ = ["integrated_gradients"]


@method(
    "integrated gradients",
    kinds=("vit", "cnn", "swin"),
    class_specific=True,
    default=False,
    what=(
        "Gradients of the class score averaged on the straight path from a baseline image, times the "
        "difference, per patch; signed."
    ),
)
def integrated_gradients(
    model: Any,
    pixel_values: torch.Tensor,
    target: Any = None,
    *,
    baseline: Any = "black",
    n_steps: int = 32,
    method: str = "gausslegendre",
    level: str | None = None,
    batch_size: int | None = None,
) -> torch.Tensor:
    """Integrated gradients summed over channels: summed per patch ``[batch, rows, cols]``
    (``level="grid"``, a ViT's and a Swin's default: the patch grid, a Swin's first stage), or
    ``[batch, H, W]`` on the pixel grid (``level="pixels"``, a CNN's default and only choice).
    Signed, not normalised: the sum of a map approximates ``S(x) - S(baseline)`` (completeness),
    the better the more ``n_steps``.

    ``baseline``: ``"black"`` (default; pixel value 0, needs a ``vn.core.Model`` for its normalisation),
    ``"grey"``, ``"zero"`` (0 after normalisation), ``"mean"`` (each image's channel means), a number
    or a tensor. ``method`` is captum's quadrature (``"gausslegendre"``, ``"riemann_left"``,
    ``"riemann_right"``, ``"riemann_middle"``, ``"riemann_trapezoid"``). ``target``: None =
    predicted class, an int, or one per image; for a regression model an output index.

    captum's ``IntegratedGradients`` runs ``n_steps`` forward/backward passes per image, at most
    ``batch_size`` interpolated images at a time (None: 32 on the CPU, sized from the free memory on
    a GPU): peak memory per image in a forward is one
    training-style forward's autograd graph, whatever ``n_steps`` is (measured 7.3 MiB per
    interpolated image on ``fmnist-vit-p4``, CPU fp32, ``benchmarks/bench_memory.py``).
    """
    from captum.attr import IntegratedGradients

    net, geom = unwrap(model)
    pixel_values = check_pixel_values(pixel_values, geom)
    level = level or ("pixels" if geom.patch_size is None else "grid")
    if level not in ("pixels", "grid"):
        raise ValueError(f"level must be 'pixels' or 'grid', got {level!r}")
    if level == "grid" and geom.patch_size is None:
        geom.require_vit("integrated gradients with level='grid' (a CNN has no patch grid; use level='pixels')")
    n_steps = as_int(n_steps, "n_steps", least=2)
    grid = geom.grid_for(*pixel_values.shape[-2:]) if level == "grid" else None
    batch_size = chunk_size(model, pixel_values, batch_size, cpu=32, keeps="graph")

    def logits_of(x: torch.Tensor) -> torch.Tensor:
        return forward(net, x).logits.float()

    ig = IntegratedGradients(logits_of)
    out = []
    for x, tgt in chunked(pixel_values, target, batch_size):
        with torch.no_grad():
            t = targets_for(net, tgt, logits_of(x))
        base = pixel_baseline(model, x, baseline)
        with torch.enable_grad():
            a = ig.attribute(
                x, baselines=base, target=t, n_steps=n_steps, method=method, internal_batch_size=batch_size
            )
        r = a.detach().sum(1).float().cpu()
        if grid is not None:
            p = geom.patch_size
            r = r.reshape(r.shape[0], grid[0], p, grid[1], p).sum((2, 4))
        out.append(r)
    return torch.cat(out)
