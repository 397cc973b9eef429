"""A model's shape: layers, heads, patch grid, prefix tokens; layer and head indices, and the
check every index and count a user passes goes through (``as_int``).

Introduced in notebook 00 (attention math).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Geometry", "as_int", "is_scalar", "layer_indices"]


def as_int(value: Any, what: str, least: int | None = None) -> int:
    """``value`` as an int, in whatever form a user holds a whole number: an int, a numpy integer, a
    0-d integer tensor or array, or a float that is whole (``3.0``, ``np.float32(3)``). Anything else
    (a bool, a fraction such as 2.5, a string, a list) is a ``TypeError``; a number below ``least`` a
    ``ValueError``; either in one line that names ``what`` and the fix. The one check behind every
    layer, head, stage and token index and every count (``batch_size``) vitnotes takes."""
    number = value.item() if getattr(value, "ndim", None) == 0 and hasattr(value, "item") else value
    if isinstance(number, (float, np.floating)) and float(number).is_integer():
        number = int(number)
    if isinstance(number, (bool, np.bool_)) or not isinstance(number, (int, np.integer)):
        raise TypeError(f"{what} must be a whole number (an int such as 3), got {value!r}")
    if least is not None and number < least:
        bound = "a positive int (>= 1)" if least == 1 else f"an int >= {least}"
        raise ValueError(f"{what} must be {bound}, got {number}")
    return int(number)


def is_scalar(value: Any) -> bool:
    """Whether ``value`` is one number (an int, a float, a numpy scalar, a 0-d tensor or array), not a
    list of them: how ``layers=3`` is told from ``layers=[3, 5]``."""
    return isinstance(value, (int, float, np.number)) or getattr(value, "ndim", None) == 0


def _index(value: int, n: int, what: str, unit: str) -> int:
    value = as_int(value, what)
    if not -n <= value < n:
        raise IndexError(f"{what} {value} is out of range: this model has {n} {unit}, use 0..{n - 1} or -1..-{n}")
    return value % n


@dataclass(frozen=True)
class Geometry:
    """What a notebook needs to know about a model's shape.

    ``kind`` is ``"vit"`` (ViT, DeiT), ``"cnn"`` (ResNet) or ``"swin"`` (Swin). For a ViT, ``prefix`` counts
    the tokens before the patches (1 for ViT's CLS, 2 for DeiT's CLS + distillation token) and
    ``grid`` is the patch grid at the model's native ``image_size``. For a CNN, ``layers``
    counts its stages and the attention fields are 0 / None. For a Swin, ``layers`` counts its stages,
    ``grid`` is the patch grid its first stage works on (``stage_grid``: a later stage's), ``prefix`` is 0
    (no CLS token) and the attention fields are 0 (its heads differ by stage; ``vn.core.window_attention``).
    Introduced in notebook 00 (attention math).
    """

    kind: str
    layers: int
    heads: int
    head_dim: int
    hidden: int
    patch_size: int | None
    image_size: int
    channels: int
    prefix: int = 0

    @property
    def grid(self) -> tuple[int, int]:
        """Patch grid (rows, cols) at the native image size."""
        if self.patch_size is None:
            raise ValueError("a CNN has no patch grid; use vn.explain(model, x, 'grad-cam') for its spatial maps")
        return (self.image_size // self.patch_size,) * 2

    @property
    def tokens(self) -> int:
        """Tokens per image at the native size: prefix tokens + patches."""
        gh, gw = self.grid
        return self.prefix + gh * gw

    def grid_for(self, height: int, width: int) -> tuple[int, int]:
        """Patch grid for an input of ``height x width`` pixels (interpolated positions; a Swin's first stage)."""
        if self.kind != "swin":
            self.require_vit("a patch grid")
        p = self.patch_size
        if height % p or width % p:
            raise ValueError(
                f"image size {height}x{width} is not a multiple of the patch size {p}; "
                f"resize to a multiple of {p} (model.preprocess does this for you)"
            )
        return height // p, width // p

    def stage_grid(self, height: int, width: int, stage: int) -> tuple[int, int]:
        """A Swin stage's grid (rows, cols) for ``height x width`` images: the patch grid, halved (rounded
        up, as patch merging pads an odd side) once per stage before ``stage`` (negative counts from the end)."""
        if self.kind != "swin":
            raise TypeError(f"stage_grid is a Swin's; this model is a {self.kind.upper()}")
        rows, cols = self.grid_for(height, width)
        for _ in range(self.layer(stage)):
            rows, cols = (rows + 1) // 2, (cols + 1) // 2
        return rows, cols

    def not_vit(self, what: str) -> str:
        """The one sentence that refuses ``what`` (an analysis of a ViT's attention) on this model."""
        if self.kind == "swin":
            return (
                f"{what} needs a ViT-family model with a global CLS token, and a Swin has none: its attention "
                "stays inside shifted local windows and patch merging changes the grid between stages, so no "
                "attention reaches across the image to roll out or to read a CLS row from; use grad-cam, "
                "integrated gradients or occlusion, or vn.core.window_attention(model, pixel_values, layer) for "
                "each block's windows"
            )
        return (
            f"{what} needs a ViT-family model (ViT, DeiT), but this model is a {self.kind.upper()}; "
            "for CNNs use vn.explain(model, pixel_values, 'grad-cam', stage=...)"
        )

    def require_vit(self, what: str) -> None:
        if self.kind != "vit":
            raise TypeError(self.not_vit(what))

    def layer(self, layer: int) -> int:
        """Normalise a layer index (negative counts from the end) and check its range."""
        return _index(layer, self.layers, "layer", "layers" if self.kind == "vit" else "stages")

    def head(self, head: int) -> int:
        """Check a head index (negative counts from the end)."""
        self.require_vit("a head index")
        return _index(head, self.heads, "head", "heads per layer")


def layer_indices(geom: Geometry, layers: int | Iterable[int] | None) -> list[int]:
    """Normalise ``layers`` (None = all, an int, or a list; negatives count from the end)."""
    if layers is None:
        return list(range(geom.layers))
    if is_scalar(layers):
        layers = [layers]
    out = [geom.layer(layer) for layer in layers]
    if not out:
        raise ValueError("layers is empty; pass None for all layers or a list of layer indices")
    if len(set(out)) != len(out):
        raise ValueError(f"layers {list(layers)} name the same layer twice")
    return out
