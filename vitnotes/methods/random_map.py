"""A random map: the control every attribution method must beat (chapter 09)."""

from __future__ import annotations

from typing import Any

import torch

from ..core.model import check_batch_size, check_pixel_values, unwrap
from ._common import cell_grid
from .base import method

__all__ = ["random_map"]


@method(
    "random",
    kinds=("vit", "cnn", "swin"),
    default=False,
    what="Uniform random values: the control every method has to beat.",
)
def random_map(
    model: Any,
    pixel_values: torch.Tensor,
    target: Any = None,
    *,
    seed: int = 0,
    patch: int | None = None,
    batch_size: int = 64,
) -> torch.Tensor:
    """Uniform random values in [0, 1) on the patch grid, ``[batch, rows, cols]``.

    Drawn from its own generator seeded by ``seed``: the same seed and batch size give the same
    maps, and the global random state is untouched. ``target`` is ignored (any class gets the same
    map). The grid is the ViT's (or Swin's) patch grid, or ``H/patch x W/patch`` for a CNN (``patch`` required
    there). ``batch_size`` is accepted for the common signature; memory is the map itself (4 bytes per cell).
    """
    _, geom = unwrap(model)
    pixel_values = check_pixel_values(pixel_values, geom)
    check_batch_size(batch_size, optional=True)
    _, rows, cols = cell_grid(geom, *pixel_values.shape[-2:], patch, "cell of the random map's grid")
    g = torch.Generator().manual_seed(int(seed))
    return torch.rand(pixel_values.shape[0], rows, cols, generator=g)
