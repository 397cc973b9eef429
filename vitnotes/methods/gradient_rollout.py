"""Gradient-weighted rollout for one class (Chefer, Gur & Wolf 2021, "Generic attention-model
explainability"). Introduced in notebook 03 (CNN vs ViT); used by 04 and 06.
"""

from __future__ import annotations

from typing import Any

import torch

from ..core import arch
from ..core.capture import patch_grid
from ..core.model import chunked, class_labels, forward, resolve_targets, vit_input
from .base import method

__all__ = ["attention_with_grads", "gradient_rollout"]


def _from_pass(maps: list[torch.Tensor], grads: list[torch.Tensor], prefix: int, grid: tuple[int, int]) -> torch.Tensor:
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
    batch_size: int = 16,
) -> torch.Tensor:
    """Class-specific relevance ``[batch, rows, cols]`` by gradient-weighted rollout.

    For each layer, ``Abar = mean_h( relu(dy_c/dA * A) )`` and ``R <- R + Abar R`` starting from
    ``R = I`` (Chefer et al. 2021); the CLS row over the patches is returned, renormalised.
    ``target`` is a class index (or one per image); None explains the predicted class. The
    gradients come from the model's own logits, whatever its classifier reads (DINOv2 reads CLS and
    the patch mean); the map is the CLS row, as Chefer et al. define it, every prefix token dropped.

    One eager forward and backward per chunk of ``batch_size`` images. Peak memory per image: one
    training-style forward's autograd graph with every layer's ``[head, T, T]`` attention and its
    gradient kept: measured 8.6 MiB per image on ``fmnist-vit-p4`` (50 tokens; peak resident memory
    over the start, ``benchmarks/bench_memory.py``), so ~140 MiB for the default chunk of 16,
    whatever the batch.
    Introduced in notebook 03 (CNN vs ViT).
    """
    net, geom, pixel_values = vit_input(model, pixel_values, batch_size, "gradient rollout")
    grid = geom.grid_for(*pixel_values.shape[-2:])
    start = geom.layer(start_layer)
    out = []
    for x, tgt in chunked(pixel_values, target, batch_size):
        _, maps, grads = attention_with_grads(net, x, tgt)
        out.append(_gradient_rollout_from(maps, grads, start, geom.prefix, grid))
        del maps, grads
    return torch.cat(out)


def attention_with_grads(
    net: torch.nn.Module, pixel_values: torch.Tensor, target: int | list[int] | None
) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """One eager forward and backward pass: the logits ``[batch, classes]``, every layer's
    attention ``[batch, head, T, T]`` and the gradient of the target class score with respect to
    it (same shape). Parameters' ``.grad`` stay untouched."""
    with arch.eager_attention(net), torch.enable_grad():
        out = forward(net, pixel_values, output_attentions=True)
        maps = out.attentions
        t = resolve_targets(target, out.logits, class_labels(net))
        score = out.logits.gather(1, t[:, None]).sum()
        grads = torch.autograd.grad(score, maps)
    return out.logits.detach(), [m.detach() for m in maps], list(grads)


def _gradient_rollout_from(
    maps: list[torch.Tensor], grads: list[torch.Tensor], start: int, prefix: int, grid: tuple[int, int]
) -> torch.Tensor:
    b, _, n, _ = maps[0].shape
    r = torch.eye(n, dtype=torch.float64).expand(b, n, n).clone()
    for layer in range(start, len(maps)):
        cam = (grads[layer].double().cpu() * maps[layer].double().cpu()).clamp_min(0).mean(1)  # [batch, T, T]
        r = r + cam @ r
    return patch_grid(r[:, 0].float(), prefix, grid)
