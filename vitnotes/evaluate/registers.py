"""High-norm patch tokens and the CLS attention they draw: the register test of Darcet et al. (2023).

Large ViTs trained long enough turn a few background patch tokens into scratch space: their norm
grows far above the other tokens' and attention concentrates on them ("registers"). Three things
must hold at once for that reading: high-norm tokens exist, they sit on background patches, and the
CLS token gives them much more attention than their share of the tokens.

- ``token_norms``: the norm of every patch token entering every block (the residual stream the
  block's attention reads, before its layer norm), ``[layer, batch, patches]``;
- ``register_table``: per layer, the norms (largest, median), how many tokens are outliers by the
  rule of ``stats.high_norm_tokens`` (norm above ``factor`` times the median of the same image and
  layer), where they sit, and the CLS attention mass on them against their share of the tokens, with
  percentile-bootstrap 95 % intervals over images (``evaluate.intervals``).

Introduced in notebook 01 (layers).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from ..core.model import check_batch_size, check_pixel_values, forward, unwrap
from ..stats import high_norm_tokens
from .intervals import bootstrap

__all__ = ["token_norms", "register_table"]


@torch.no_grad()
def token_norms(model: Any, pixel_values: torch.Tensor, *, batch_size: int = 64) -> torch.Tensor:
    """L2 norm of every patch token entering each block, ``[layer, batch, patches]`` (float32): row ``l``
    is the residual stream that block ``l``'s attention reads (``l = 0``: the embeddings), before its layer
    norm; prefix tokens (CLS, distillation, registers) are dropped. Introduced in notebook 01 (layers)."""
    net, geom = unwrap(model)
    geom.require_vit("token_norms")
    x = check_pixel_values(pixel_values, geom)
    out = []
    for chunk in x.split(check_batch_size(batch_size)):
        states = forward(net, chunk, output_hidden_states=True).hidden_states[: geom.layers]
        out.append(torch.stack([h[:, geom.prefix :].float().norm(dim=-1) for h in states]))
    return torch.cat(out, 1)


def _per_image(norms: torch.Tensor, cls_maps: torch.Tensor, background: torch.Tensor | None, factor: float):
    """Per layer and image: outlier count, CLS mass on the outliers, their share of the tokens, and how
    many of them lie on background patches (NaN without a background)."""
    high = high_norm_tokens(norms, factor)  # [layer, batch, patches]
    count = high.sum(-1).double()
    mass = (cls_maps.flatten(-2).double() * high).sum(-1)
    share = count / high.shape[-1]
    if background is None:
        on_bg = torch.full_like(count, float("nan"))
    else:
        on_bg = (high & (background.flatten(-2) > 0.5)[None]).sum(-1).double()
    return count, mass, share, on_bg


def _norm_row(norms: torch.Tensor, med: torch.Tensor, count: torch.Tensor, on_bg: torch.Tensor) -> dict:
    """One layer's norms and outlier counts (``norms`` ``[batch, patches]``, the rest ``[batch]``)."""
    found = float(count.sum())
    return {
        "median_norm": float(norms.median()),
        "max_norm": float(norms.max()),
        "max_over_median": float((norms.double().max(-1).values / med).max()),
        "outliers": float(count.mean()),
        "images_with": float((count > 0).double().mean()),
        "on_background": float(on_bg.sum()) / found if found > 0 else float("nan"),
    }


def register_table(
    norms: torch.Tensor,
    cls_maps: torch.Tensor,
    background: torch.Tensor | None = None,
    *,
    factor: float = 2.0,
    layers: list | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """The register test per layer: ``norms`` ``[layer, batch, patches]`` (``token_norms``), ``cls_maps``
    ``[layer, batch, rows, cols]`` (the CLS -> patch attention of the same layers and images, e.g. the mean
    over heads), ``background`` ``[batch, rows, cols]`` (each patch's background fraction, e.g.
    ``vn.stats.mask_coverage``; a patch with more than half its pixels in it counts as background).

    Columns: ``median_norm`` and ``max_norm`` (over every image and token), ``max_over_median`` (the
    largest ratio of an image's top norm to its median), ``outliers`` (mean count per image),
    ``images_with`` (share of images with at least one), ``on_background`` (share of the outlier tokens on
    background patches), ``cls_mass`` / ``token_share`` (mean over images of the CLS mass on the outliers
    and of their share of the tokens, each with ``_low`` / ``_high``), and ``enrichment`` (mean over the
    images that have outliers of mass / share; 1 = what uniform attention gives) with its interval and
    ``n_enrichment``. Introduced in notebook 01 (layers).
    """
    norms, cls_maps = torch.as_tensor(norms), torch.as_tensor(cls_maps)
    if norms.ndim != 3 or cls_maps.shape[:2] != norms.shape[:2] or cls_maps[0, 0].numel() != norms.shape[-1]:
        raise ValueError(
            f"norms [layer, batch, patches] {tuple(norms.shape)} and cls_maps [layer, batch, rows, cols] "
            f"{tuple(cls_maps.shape)} must cover the same layers, images and patches"
        )
    count, mass, share, on_bg = _per_image(norms, cls_maps, background, factor)
    med = norms.double().median(-1).values
    rows = []
    for i in range(norms.shape[0]):
        row = _norm_row(norms[i], med[i], count[i], on_bg[i])
        ratio = torch.where(count[i] > 0, mass[i] / share[i].clamp_min(1e-300), torch.nan)
        for name, v in (("cls_mass", mass[i]), ("token_share", share[i]), ("enrichment", ratio)):
            iv = bootstrap(v.numpy(), n_boot=n_boot, seed=seed)
            row.update({name: iv.value, f"{name}_low": iv.low, f"{name}_high": iv.high})
        row["n_enrichment"] = iv.n
        rows.append(row)
    index = pd.Index(layers if layers is not None else range(norms.shape[0]), name="layer")
    out = pd.DataFrame(rows, index=index)
    out.attrs.update(images=int(norms.shape[1]), factor=factor, patches=int(norms.shape[-1]))
    return out.replace({np.inf: np.nan})
