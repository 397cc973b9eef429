"""Gradient-weighted rollout for one class (Chefer, Gur & Wolf 2021, "Generic attention-model
explainability"). Introduced in notebook 03 (CNN vs ViT); used by 04 and 06.
"""

from __future__ import annotations

from typing import Any

import torch

from ..core import arch
from ..core.capture import no_cls, patch_grid
from ..core.model import chunk_size, chunked, forward, targets_for, vit_input
from ._common import attention_probs
from .base import method

__all__ = ["attention_with_grads", "gradient_rollout"]


def _from_pass(maps: list[torch.Tensor], grads: list[torch.Tensor], prefix: int, grid: tuple[int, int]) -> torch.Tensor:
    no_cls(prefix, "gradient rollout")
    return _gradient_rollout_from(maps, grads, 0, prefix, grid)


@method(
    "gradient rollout",
    class_specific=True,
    from_pass=_from_pass,
    what="Rollout of each layer's attention times its gradient for the class (negatives dropped, heads averaged).",
)
def gradient_rollout(
    model: Any,
    pixel_values: torch.Tensor,
    target: int | list[int] | None = None,
    *,
    start_layer: int = 0,
    batch_size: int | None = None,
) -> torch.Tensor:
    """Class-specific relevance ``[batch, rows, cols]`` by gradient-weighted rollout.

    For each layer, ``Abar = mean_h( relu(dy_c/dA * A) )`` and ``R <- R + Abar R`` starting from
    ``R = I`` (Chefer et al. 2021); the CLS row over the patches is returned, renormalised.
    ``target`` is a class index (or one per image); None explains the predicted class. The
    gradients come from the model's own logits, whatever its classifier reads (DINOv2 reads CLS and
    the patch mean, BEiT the patch mean alone); the map is the CLS row, as Chefer et al. define it,
    every prefix token dropped (on BEiT the last layer's CLS row gets no gradient, as its output is
    never read: README, model families).

    One forward and one backward per chunk of ``batch_size`` images (None: 16 on the CPU, sized from
    the free memory on a GPU), in the model's dtype: while the backward pass runs, a hook on each
    layer's attention probabilities turns their gradient into that layer's ``Abar`` ``[batch, T, T]``
    at once (float64 on the CPU, float32 elsewhere), so no layer's gradient is kept; only CLS's row of
    the product is needed, so it is folded from the left, ``r <- r + r Abar_l`` from the last layer
    down (matrix-vector products). Peak memory per image: one training-style forward's autograd graph
    plus every layer's ``[T, T]`` ``Abar``: measured 8.6 MiB per image on ``fmnist-vit-p4`` before the
    hooks kept gradients out (50 tokens; ``benchmarks/bench_memory.py``).
    Introduced in notebook 03 (CNN vs ViT).
    """
    net, geom, pixel_values = vit_input(model, pixel_values, batch_size, "gradient rollout")
    no_cls(geom.prefix, "gradient rollout")
    batch_size = chunk_size(model, pixel_values, batch_size, cpu=16, keeps="graph")
    grid = geom.grid_for(*pixel_values.shape[-2:])
    start = geom.layer(start_layer)
    layer_of = {id(arch.attention_module(b)): i for i, b in enumerate(arch.blocks(net))}
    cams: dict[int, torch.Tensor] = {}  # layer -> mean_h relu(grad * A) [batch, T, T], filled in the backward pass
    probs: dict[int, torch.Tensor] = {}

    def attend(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **_):
        w = attention_probs(query, key, attention_mask, scaling)  # [batch, head, T, T], what eager computes
        layer = layer_of[id(module)]
        if layer >= start and w.requires_grad:
            probs[layer] = w  # the hook reads it from here: a closure over w would keep w, its graph, alive
            w.register_hook(lambda g, layer=layer: cams.__setitem__(layer, _cam(g, probs[layer])))
        return (w @ value).transpose(1, 2).contiguous(), None

    out = []
    with arch.use_attention_function(net, attend), torch.enable_grad():
        for x, tgt in chunked(pixel_values, target, batch_size):
            logits = forward(net, x.detach().requires_grad_(True)).logits  # a graph even if the weights are frozen
            t = targets_for(net, tgt, logits)
            torch.autograd.grad(logits.gather(1, t[:, None]).sum(), probs[start])
            out.append(_fold_cls_row([cams[i] for i in range(start, len(layer_of))], geom.prefix, grid))
            cams.clear()
            probs.clear()
    return torch.cat(out)


def _accumulate(device: torch.device) -> torch.dtype:
    """The dtype the rollout product accumulates in: float64 on the CPU (cheap there, and the book's
    numbers were computed so), float32 on a GPU (where float64 is slow)."""
    return torch.float64 if device.type == "cpu" else torch.float32


def _cam(grad: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """``mean_h relu(grad * A)`` ``[batch, T, T]`` in the accumulation dtype; a bf16 / fp16 model's
    product stays in its dtype (no float32 copy of the ``[batch, head, T, T]`` operands) and only the
    mean over heads accumulates in float32."""
    acc = _accumulate(grad.device)
    if grad.element_size() >= 4:
        return (grad.to(acc) * probs.detach().to(acc)).clamp_min(0).mean(1)
    return (grad * probs.detach()).clamp_min(0).mean(1, dtype=acc)


def _fold_cls_row(cams: list[torch.Tensor], prefix: int, grid: tuple[int, int]) -> torch.Tensor:
    """CLS's row of ``(I + Abar_last) ... (I + Abar_first)`` on the patch grid, ``[batch, rows, cols]``
    (float32, CPU): ``r <- r + r Abar`` from the last layer down, ``r`` starting as CLS's unit row."""
    b, n, _ = cams[0].shape
    r = torch.zeros(b, 1, n, dtype=cams[0].dtype, device=cams[0].device)
    r[:, 0, 0] = 1.0
    for cam in reversed(cams):
        r = torch.baddbmm(r, r, cam)
    return patch_grid(r[:, 0].float().cpu(), prefix, grid)


def attention_with_grads(
    net: torch.nn.Module, pixel_values: torch.Tensor, target: int | list[int] | None
) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """One eager forward and backward pass: the logits ``[batch, classes]``, every layer's
    attention ``[batch, head, T, T]`` and the gradient of the target class score with respect to
    it (same shape). Parameters' ``.grad`` stay untouched."""
    with arch.eager_attention(net), torch.enable_grad():
        out = forward(net, pixel_values, output_attentions=True)
        maps = out.attentions
        t = targets_for(net, target, out.logits)
        score = out.logits.gather(1, t[:, None]).sum()
        grads = torch.autograd.grad(score, maps)
    return out.logits.detach(), [m.detach() for m in maps], list(grads)


def _gradient_rollout_from(
    maps: list[torch.Tensor], grads: list[torch.Tensor], start: int, prefix: int, grid: tuple[int, int]
) -> torch.Tensor:
    return _fold_cls_row([_cam(g, m) for g, m in zip(grads[start:], maps[start:], strict=True)], prefix, grid)
