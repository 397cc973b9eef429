"""Numbers that describe attention maps (definitions in DESIGN.md and the book's intro).

- entropy: ``H = -sum p log p`` in nats over a distribution, and ``H / log N``;
- top-k share: the sum of the ``k`` largest weights;
- mean attention distance: per head, mean over query patches of ``sum_j a_ij d_ij``, with
  ``d`` in pixels between patch centres (ViT paper, Fig. 11), prefix tokens dropped and rows
  renormalised; the prefix (CLS) share is reported separately;
- mask mass: the attention that falls inside a pixel mask.

Introduced in notebook 01 (layers); used by 02, 04, 05 and 07.
"""
from __future__ import annotations

import math

import pandas as pd
import torch

from .attention import Attention
from .models import Geometry

__all__ = [
    "entropy",
    "normalized_entropy",
    "topk_share",
    "patch_distances",
    "mean_attention_distance",
    "mask_coverage",
    "mask_mass",
    "cls_summary",
    "by_layer",
    "map_consistency",
]


def _dist(p: torch.Tensor, what: str) -> torch.Tensor:
    if not isinstance(p, torch.Tensor):
        raise TypeError(f"{what} expects a torch tensor of probabilities, got {type(p).__name__}")
    if p.ndim == 0 or p.shape[-1] == 0:
        raise ValueError(f"{what} expects distributions along the last axis, got shape {tuple(p.shape)}")
    if (p < 0).any() or not torch.isfinite(p).all():
        raise ValueError(f"{what}: probabilities must be finite and non-negative")
    return p.double()


def entropy(p: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of distributions along the last axis (renormalised to sum to 1).

    For a map on the patch grid ``[..., rows, cols]`` pass ``grid.flatten(-2)``.
    Uniform over N -> log N; one-hot -> 0.
    """
    p = _dist(p, "entropy")
    p = p / p.sum(-1, keepdim=True)
    return -torch.special.xlogy(p, p).sum(-1).float()


def normalized_entropy(p: torch.Tensor) -> torch.Tensor:
    """Entropy divided by log N (N = length of the last axis): 1 = uniform, 0 = one token.
    Compares grids of different sizes (7x7 vs 14x14)."""
    n = p.shape[-1]
    if n < 2:
        raise ValueError("normalised entropy needs at least 2 outcomes")
    return entropy(p) / math.log(n)


def topk_share(p: torch.Tensor, k: int) -> torch.Tensor:
    """Sum of the ``k`` largest weights of each (renormalised) distribution along the last axis."""
    p = _dist(p, "topk_share")
    if not 1 <= k <= p.shape[-1]:
        raise ValueError(f"k must lie in 1..{p.shape[-1]} (the number of weights), got {k}")
    p = p / p.sum(-1, keepdim=True)
    return p.topk(k, dim=-1).values.sum(-1).float()


def patch_distances(grid: tuple[int, int], patch_size: int) -> torch.Tensor:
    """Euclidean distance in pixels between the centres of every pair of patches, ``[N, N]``."""
    rows, cols = torch.meshgrid(torch.arange(grid[0]), torch.arange(grid[1]), indexing="ij")
    centres = torch.stack([rows.flatten(), cols.flatten()], -1).double() * patch_size
    return torch.cdist(centres, centres)


def mean_attention_distance(
    full: torch.Tensor | Attention, geometry: Geometry | None = None, grid: tuple[int, int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean attention distance in pixels and the prefix (CLS) share, from full attention
    ``[..., T, T]`` (an ``Attention``, or a tensor with the model's ``geometry``). Returns two tensors of shape ``[...]`` (e.g. ``[layer, batch, head]``).

    Distance: for each query patch, the prefix columns are dropped and the row renormalised;
    ``sum_j a_ij d_ij`` is averaged over query patches. CLS share: the weight each query patch
    gives to the prefix tokens, averaged over query patches.
    """
    if isinstance(full, Attention):
        if full.cls_only:
            raise ValueError("mean attention distance needs full attention; capture with cls_only=False")
        geometry, grid, full = full.geometry, full.grid, full.probs
    if geometry is None:
        raise ValueError("pass the model's geometry (model.geometry) with a bare attention tensor")
    grid = grid or geometry.grid
    pre = geometry.prefix
    n = grid[0] * grid[1]
    if full.ndim < 2 or full.shape[-1] != full.shape[-2] or full.shape[-1] != pre + n:
        raise ValueError(
            f"expected full attention [..., {pre + n}, {pre + n}] for a {grid[0]}x{grid[1]} grid "
            f"with {pre} prefix token(s), got shape {tuple(full.shape)}"
        )
    a = full.double()[..., pre:, :]  # query patches only
    cls_share = a[..., :pre].sum(-1).mean(-1)
    patches = a[..., pre:]
    patches = patches / patches.sum(-1, keepdim=True).clamp_min(1e-300)
    d = patch_distances(grid, geometry.patch_size).to(patches.device)
    dist = (patches * d).sum(-1).mean(-1)
    return dist.float(), cls_share.float()


def mask_coverage(mask: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Fraction of each patch's pixels inside a mask: ``[..., H, W]`` (bool or 0..1) -> ``[..., rows, cols]``."""
    m = torch.as_tensor(mask)
    if m.ndim < 2:
        raise ValueError(f"mask must be [..., H, W], got shape {tuple(m.shape)}")
    h, w = m.shape[-2:]
    if h % grid[0] or w % grid[1]:
        raise ValueError(f"mask of {h}x{w} pixels does not divide into a {grid[0]}x{grid[1]} grid; resize it first")
    m = m.double()
    if (m < 0).any() or (m > 1).any():
        raise ValueError("mask values must lie in [0, 1] (a bool or fractional mask)")
    m = m.reshape(*m.shape[:-2], grid[0], h // grid[0], grid[1], w // grid[1])
    return m.mean((-3, -1))


def mask_mass(probs: torch.Tensor, mask: torch.Tensor, batch_axis: int | None = None) -> torch.Tensor:
    """Attention mass inside a mask: ``sum_patches p * coverage``.

    ``probs`` is a map on the patch grid ``[..., rows, cols]`` that sums to 1 (e.g.
    ``attn.cls_grid(layer)``); ``mask`` is ``[H, W]`` (one mask for all) or ``[batch, H, W]``
    (one per image, matched to ``probs``' axis ``batch_axis``: by default axis 0, or axis 1 for
    5-dimensional ``[layer, batch, head, rows, cols]`` maps). 1.0 = all attention inside.
    """
    grid = tuple(probs.shape[-2:])
    cov = mask_coverage(mask, grid)
    if cov.ndim == 3:
        axis = (1 if probs.ndim == 5 else 0) if batch_axis is None else batch_axis
        if probs.shape[axis] != cov.shape[0]:
            raise ValueError(
                f"{cov.shape[0]} masks for {probs.shape[axis]} images on axis {axis} of probs {tuple(probs.shape)}; "
                "pass one mask per image or set batch_axis"
            )
        shape = [1] * (probs.ndim - 2)
        shape[axis] = cov.shape[0]
        cov = cov.reshape(*shape, *grid)
    return (probs.double() * cov).sum((-2, -1)).float()


def cls_summary(attn: Attention, k: int = 10) -> pd.DataFrame:
    """Per (layer, head) CLS-attention statistics averaged over the batch, one row each.

    Columns: ``entropy`` (nats), ``entropy_norm`` (/ log N), ``top{k}`` share, ``top5pct``
    (share of the top 5 % of patches, at least one), and, for full captures,
    ``distance_px`` (mean attention distance) and ``cls_share``.
    """
    grids = attn.cls_grids()  # [layer, batch, head, rows, cols]
    p = grids.flatten(-2)
    n = p.shape[-1]
    k5 = max(1, round(0.05 * n))
    cols = {
        "entropy": entropy(p),
        "entropy_norm": normalized_entropy(p),
        f"top{k}": topk_share(p, min(k, n)),
        "top5pct": topk_share(p, k5),
    }
    if not attn.cls_only:
        cols["distance_px"], cols["cls_share"] = mean_attention_distance(attn)
    rows = []
    for i, layer in enumerate(attn.layers):
        for head in range(grids.shape[2]):
            rows.append({"layer": layer, "head": head, **{c: float(v[i, :, head].mean()) for c, v in cols.items()}})
    df = pd.DataFrame(rows)
    df.attrs.update(images=int(grids.shape[1]), patches=n, k=k, k5=k5)
    return df


def by_layer(df: pd.DataFrame) -> pd.DataFrame:
    """Mean over heads of a per-(layer, head) table: one row per layer."""
    if "layer" not in df.columns:
        raise ValueError("by_layer expects a table with a 'layer' column (from vn.cls_summary or vn.sweep)")
    out = df.drop(columns=[c for c in ("head",) if c in df.columns]).groupby("layer").mean()
    out.attrs.update(df.attrs)
    return out


def map_consistency(grids: torch.Tensor) -> torch.Tensor:
    """How much a head's map stays the same from image to image: the mean, over images, of the
    Pearson correlation between an image's map and the head's mean map over all images.

    ``grids`` is ``[layer, batch, head, rows, cols]`` (e.g. ``attn.cls_grids()``); returns
    ``[layer, head]``. Near 1: a *positional* head that looks at the same places whatever the
    image; near 0: a head whose map follows the content. Needs at least two images.
    Introduced in notebook 02 (heads).
    """
    g = torch.as_tensor(grids)
    if g.ndim != 5:
        raise ValueError(f"map_consistency expects maps [layer, batch, head, rows, cols], got shape {tuple(g.shape)}")
    if g.shape[1] < 2:
        raise ValueError("map_consistency needs maps of at least two images")
    x = g.double().flatten(-2)  # [layer, batch, head, N]
    mean = x.mean(1, keepdim=True)
    xc, mc = x - x.mean(-1, keepdim=True), mean - mean.mean(-1, keepdim=True)
    num = (xc * mc).sum(-1)
    den = (xc.norm(dim=-1) * mc.norm(dim=-1)).clamp_min(1e-300)
    return (num / den).mean(1).float()
