"""What several map methods share beyond ``core.model`` (targets, scores, chunks): a map's
normalisation, pixel baselines in the model's normalised input space, and the grid of cells a
perturbation method works on. Chapter 09."""

from __future__ import annotations

from typing import Any

import torch

from ..core.geometry import Geometry, as_int

__all__ = ["attention_probs", "cell_grid", "normalise", "pixel_baseline"]


def normalise(maps: torch.Tensor, how: str | None) -> torch.Tensor:
    """``"sum"``: each map sums to 1; ``"max"``: each map's largest entry is 1; None: as computed.
    An all-zero map stays zero."""
    if how is None:
        return maps
    flat = maps.flatten(1)
    if how == "sum":
        d = flat.sum(1)
    elif how == "max":
        d = flat.abs().amax(1)
    else:
        raise ValueError(f"normalise must be 'sum', 'max' or None, got {how!r}")
    d = torch.where(d == 0, torch.ones_like(d), d)
    return maps / d.reshape(-1, *([1] * (maps.ndim - 1)))


def pixel_baseline(model: Any, pixel_values: torch.Tensor, baseline: Any) -> torch.Tensor:
    """A baseline the shape of ``pixel_values`` (in the model's normalised input space).

    ``"black"`` / ``"grey"``: pixel value 0 / 0.5 in every channel, normalised with the model's
    preprocessing (needs a ``vn.core.Model``); ``"zero"``: 0 after normalisation (the normalisation
    mean colour); ``"mean"``: each image's own per-channel mean; a number: that normalised value;
    a tensor broadcastable to ``pixel_values``.
    """
    x = pixel_values
    if isinstance(baseline, torch.Tensor):
        return baseline.to(dtype=x.dtype, device=x.device).expand_as(x).clone()
    if isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        return torch.full_like(x, float(baseline))
    if baseline == "zero":
        return torch.zeros_like(x)
    if baseline == "mean":
        return x.mean((-2, -1), keepdim=True).expand_as(x).clone()
    if baseline in ("black", "grey", "gray"):
        pre = getattr(model, "preprocessing", None)
        if pre is None:
            raise ValueError(
                f"baseline={baseline!r} needs the model's normalisation (mean, std): pass a vn.core.Model, "
                "or give the normalised value as a number or a tensor"
            )
        level = 0.0 if baseline == "black" else 0.5
        mean = torch.as_tensor(pre.mean, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1)
        std = torch.as_tensor(pre.std, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1)
        return ((level - mean) / std).expand_as(x).clone()
    raise ValueError(f"baseline must be 'black', 'grey', 'zero', 'mean', a number or a tensor, got {baseline!r}")


def cell_grid(geom: Geometry, height: int, width: int, patch: int | None, what: str) -> tuple[int, int, int]:
    """(cell size, rows, cols) of the ``patch x patch`` squares tiling a ``height x width`` image:
    ``patch`` None = the ViT's or Swin's patch size (a CNN has none: ``what`` says what to pass instead)."""
    if patch is None:
        if geom.patch_size is None:
            raise ValueError(f"a CNN has no patch grid: pass patch=<pixels per {what}>")
        patch = geom.patch_size
    patch = as_int(patch, "patch")
    if patch < 1 or height % patch or width % patch:
        raise ValueError(f"patch {patch} must be >= 1 and divide the image size {height}x{width}")
    return patch, height // patch, width // patch


def attention_probs(query: torch.Tensor, key: torch.Tensor, attention_mask: Any, scaling: float | None) -> torch.Tensor:
    """Eager attention probabilities ``softmax(Q K^T s + mask)`` ``[batch, head, query, key]`` from an
    attention function's ``query``/``key`` ``[batch, head, tokens, head_dim]``, in their dtype (a bf16
    softmax accumulates in float32 and rounds once, like eager attention's float32 softmax cast back,
    without a float32 copy of the scores)."""
    w = query @ key.transpose(-1, -2) * (query.shape[-1] ** -0.5 if scaling is None else scaling)
    if attention_mask is not None:
        w = w + attention_mask
    return w.softmax(-1)
