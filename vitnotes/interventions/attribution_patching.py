"""Attribution patching (Nanda 2023; AtP, Kramar et al. 2024): every head's zero-ablation effect,
estimated to first order from one forward and one backward pass. Chapter 09."""

from __future__ import annotations

from typing import Any

import torch

from ..core import arch
from ..core.hooks import hooks
from ..core.model import check_batch_size, check_pixel_values, chunked, forward, score, targets_for, unwrap
from .ablation import _check_targets, _loss_kind, _losses

__all__ = ["attribution_patching"]


def attribution_patching(
    model: Any,
    pixel_values: torch.Tensor,
    target: Any = None,
    *,
    metric: str = "loss",
    loss: str | None = None,
    batch_size: int = 32,
) -> torch.Tensor:
    """Estimated change of a metric when each head is zero-ablated: ``[layer, head]`` (float64).

    Head h of layer l writes ``z = `` the slice ``h*d:(h+1)*d`` of the output projection's input
    (every token). Zeroing it changes the metric by about ``dM/dz . (0 - z)``; this returns that
    first-order estimate, averaged over images, for every head from one forward and one backward
    per chunk of ``batch_size`` images. The exact value is what ``vn.sweep`` measures (its
    ``loss - baseline``); the estimate is exact where the metric is linear in the head's output
    and is known to fail where an ablation's effect is large or saturates (Kramar et al. 2024).

    ``metric="loss"`` (default): the per-image loss, cross-entropy for a classifier and MSE
    averaged over outputs for a regression model (``loss="ce"``/``"mse"`` overrides); ``target``
    is then required: the labels / regression targets, one per image. ``metric="score"``: the
    target score as the map methods define it (``target`` None = predicted class, an int or one
    per image; for a regression model an output index).

    Peak memory per image: one training-style forward's autograd graph (the head outputs it keeps
    are part of it): measured ~8.5 MB per image on ``fmnist-vit-p4`` (CPU fp32).
    """
    net, geom = unwrap(model)
    geom.require_vit("attribution patching")
    pixel_values = check_pixel_values(pixel_values, geom)
    batch_size = check_batch_size(batch_size)
    kind, labels = _loss_targets(net, metric, loss, target, pixel_values.shape[0])
    blocks = arch.blocks(net)
    kept: dict[int, torch.Tensor] = {}

    def keep(layer: int):
        def hook(_module, args):
            kept[layer] = args[0]

        return hook

    total = torch.zeros(geom.layers, geom.heads, dtype=torch.float64)
    regs = [(arch.projections(b)[3], "forward_pre", keep(i)) for i, b in enumerate(blocks)]
    with hooks(regs), torch.enable_grad():
        start = 0
        for x, tgt in chunked(pixel_values, None if metric == "loss" else target, batch_size):
            kept.clear()
            logits = forward(net, x).logits
            if metric == "loss":
                m = _losses(logits, labels[start : start + x.shape[0]], kind).sum()
            else:
                m = score(logits, targets_for(net, tgt, logits)).sum()
            zs = [kept[i] for i in range(geom.layers)]
            total += _first_order(zs, torch.autograd.grad(m, zs), geom.heads)
            start += x.shape[0]
            kept.clear()
    return total / pixel_values.shape[0]


def _loss_targets(net: torch.nn.Module, metric: str, loss: str | None, target: Any, n: int):
    """(loss kind, labels one per image) for ``metric="loss"``; (None, None) for ``metric="score"``."""
    if metric not in ("loss", "score"):
        raise ValueError(f"metric must be 'loss' or 'score', got {metric!r}")
    if metric == "score":
        return None, None
    kind = _loss_kind(net, loss)
    if target is None:
        raise ValueError("metric='loss' needs the targets (labels, or regression targets), one per image")
    return kind, _check_targets(target, n, kind, net)


def _first_order(zs: list[torch.Tensor], grads: tuple[torch.Tensor, ...], heads: int) -> torch.Tensor:
    """``-(dM/dz . z)`` per head of every layer, ``[layer, head]`` float64, summed over images and tokens
    (``z``: the output projection's input ``[B, T, H*d]``)."""
    out = torch.zeros(len(zs), heads, dtype=torch.float64)
    for i, (z, g) in enumerate(zip(zs, grads)):
        prod = (g.detach().double() * z.detach().double()).reshape(*z.shape[:-1], heads, -1)  # [B, T, H, d]
        out[i] = -prod.sum(dim=tuple(range(prod.ndim - 2)) + (prod.ndim - 1,)).cpu()
    return out
