"""A model's shape: layers, heads, patch grid, prefix tokens; layer and head indices.

Introduced in notebook 00 (attention math).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

__all__ = ["Geometry", "layer_indices"]


def _index(value: int, n: int, what: str, unit: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be an int, got {type(value).__name__}")
    if not -n <= value < n:
        raise IndexError(f"{what} {value} is out of range: this model has {n} {unit}, use 0..{n - 1} or -1..-{n}")
    return int(value) % n


@dataclass(frozen=True)
class Geometry:
    """What a notebook needs to know about a model's shape.

    ``kind`` is ``"vit"`` (ViT, DeiT) or ``"cnn"`` (ResNet). For a ViT, ``prefix`` counts the
    tokens before the patches (1 for ViT's CLS, 2 for DeiT's CLS + distillation token) and
    ``grid`` is the patch grid at the model's native ``image_size``. For a CNN, ``layers``
    counts its stages and the attention fields are 0 / None.
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
            raise ValueError("a CNN has no patch grid; use vn.gradcam for its spatial maps")
        return (self.image_size // self.patch_size,) * 2

    @property
    def tokens(self) -> int:
        """Tokens per image at the native size: prefix tokens + patches."""
        gh, gw = self.grid
        return self.prefix + gh * gw

    def grid_for(self, height: int, width: int) -> tuple[int, int]:
        """Patch grid for an input of ``height x width`` pixels (interpolated positions)."""
        self.require_vit("a patch grid")
        p = self.patch_size
        if height % p or width % p:
            raise ValueError(
                f"image size {height}x{width} is not a multiple of the patch size {p}; "
                f"resize to a multiple of {p} (model.preprocess does this for you)"
            )
        return height // p, width // p

    def require_vit(self, what: str) -> None:
        if self.kind != "vit":
            raise TypeError(
                f"{what} needs a ViT-family model (ViT, DeiT), but this model is a {self.kind.upper()}; "
                "for CNNs use vn.gradcam(model, pixel_values, stage=...)"
            )

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
    if isinstance(layers, int):
        layers = [layers]
    out = [geom.layer(layer) for layer in layers]
    if not out:
        raise ValueError("layers is empty; pass None for all layers or a list of layer indices")
    if len(set(out)) != len(out):
        raise ValueError(f"layers {list(layers)} name the same layer twice")
    return out
