"""Attribution patching (Nanda 2023; AtP, Kramar et al. 2024): every head's zero-ablation effect,
estimated to first order from one forward and one backward pass. Chapters 08 and 09."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from ..core import arch
from ..core.hooks import hooks
from ..core.model import check_batch_size, check_pixel_values, chunked, forward, score, targets_for, unwrap
from .ablation import ImageLosses, _check_targets, _loss_kind, _losses

__all__ = ["attribution_patching", "attribution_sweep"]


def attribution_patching(
    model: Any,
    pixel_values: torch.Tensor,
    target: Any = None,
    *,
    metric: str = "loss",
    loss: str | None = None,
    batch_size: int = 32,
    per_image: bool = False,
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

    ``per_image=True`` returns every image's estimate, ``[image, layer, head]`` (float64; its mean
    over images is the default's value): a ViT treats images independently, so the gradient of the
    summed metric with respect to one image's head outputs is that image's own gradient.

    Peak memory per image: one training-style forward's autograd graph (the head outputs it keeps
    are part of it): measured ~8.5 MB per image on ``fmnist-vit-p4`` (CPU fp32).
    """
    each, _ = _estimates(model, pixel_values, target, metric, loss, batch_size)
    return each if per_image else each.sum(0) / each.shape[0]


def attribution_sweep(
    model: Any, pixel_values: torch.Tensor, targets: Any, *, loss: str | None = None, batch_size: int = 32
) -> pd.DataFrame:
    """Attribution patching laid out as ``vn.sweep(model, pixel_values, targets, per_image=True)``'s
    table: one row per (layer, head) with ``loss`` (the intact loss plus the estimated change) and
    ``rel_increase`` (``loss`` / intact loss - 1); ``attrs`` hold ``baseline`` (the intact loss, mean
    over images), ``n``, ``loss`` (kind), ``method`` (``"attribution patching"``), ``ablation``
    (``"zero"``) and ``per_image``, an ``ImageLosses`` whose ``losses[row, i]`` is image ``i``'s intact
    loss plus its estimate. So ``vn.evaluate.sweep_subset``, ``vn.evaluate.sweep_agreement``,
    ``vn.evaluate.head_intervals`` and ``vn.evaluate.sweep_agreement_intervals`` read it as they read a
    sweep, at the cost of one forward and one backward per image instead of one forward per head. The
    estimate's limits are ``attribution_patching``'s: check it against ``vn.sweep`` on some of the
    images first.
    Introduced in notebook 08 (head ablation)."""
    each, base = _estimates(model, pixel_values, targets, "loss", loss, batch_size)
    n, layers, heads = each.shape
    losses = base.numpy()[None, :] + each.reshape(n, layers * heads).T.numpy()  # [heads (rows), image]
    df = pd.DataFrame({"layer": np.repeat(np.arange(layers), heads), "head": np.tile(np.arange(heads), layers)})
    df["loss"] = losses.mean(1)
    baseline = float(base.mean())
    df["rel_increase"] = df["loss"] / baseline - 1.0
    kind = _loss_kind(unwrap(model)[0], loss)
    df.attrs.update(baseline=baseline, n=int(n), loss=kind, method="attribution patching", ablation="zero")
    df.attrs["per_image"] = ImageLosses(losses, base.numpy().copy())
    return df


def _estimates(model: Any, pixel_values: Any, target: Any, metric: str, loss: str | None, batch_size: int):
    """Every image's first-order estimate ``[image, layer, head]`` and its metric ``[image]`` (float64,
    CPU): one forward and one backward per chunk of ``batch_size`` images."""
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

    estimates, metrics = [], []
    regs = [(arch.projections(b)[3], "forward_pre", keep(i)) for i, b in enumerate(blocks)]
    with hooks(regs), torch.enable_grad():
        start = 0
        for x, tgt in chunked(pixel_values, None if metric == "loss" else target, batch_size):
            kept.clear()
            logits = forward(net, x).logits
            if metric == "loss":
                m = _losses(logits, labels[start : start + x.shape[0]], kind)
            else:
                m = score(logits, targets_for(net, tgt, logits))
            zs = [kept[i] for i in range(geom.layers)]
            estimates.append(_first_order(zs, torch.autograd.grad(m.sum(), zs), geom.heads))
            metrics.append(m.detach().double().cpu())
            start += x.shape[0]
            kept.clear()
    return torch.cat(estimates), torch.cat(metrics)


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
    """``-(dM/dz . z)`` per image and head of every layer, ``[image, layer, head]`` float64, summed over
    tokens (``z``: the output projection's input ``[B, T, H*d]``)."""
    out = []
    for z, g in zip(zs, grads):
        prod = (g.detach().double() * z.detach().double()).reshape(*z.shape[:-1], heads, -1)  # [B, T, H, d]
        out.append(-prod.sum(dim=tuple(range(1, prod.ndim - 2)) + (prod.ndim - 1,)))  # [B, H]
    return torch.stack(out, 1).cpu()
