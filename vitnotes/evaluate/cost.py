"""What a ViT costs per image: tokens, attention entries, FLOPs counted from the shapes, and
measured inference time.

FLOPs count the matrix products only (a multiply-add is 2 FLOPs); softmax, layer norms, GELU
and additions are left out (they are a few per cent at these sizes). Introduced in notebook 05
(patch size).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from ..core import arch
from ..core.model import check_batch_size, check_pixel_values, forward, unwrap

__all__ = ["timed_predict", "vit_cost"]


def vit_cost(model: Any, image_size: int | None = None) -> dict[str, int]:
    """Per-image cost of a ViT from its configuration, counted analytically.

    Returns a dict: ``patches`` N, ``tokens`` T (N + prefix), ``attention_entries`` per layer
    (heads x T x T: the probabilities one layer computes), and FLOPs (2 per multiply-add) for
    ``flops_embed`` (patch projection), per layer ``flops_qkvo`` (4 projections, 8 T D^2),
    ``flops_attention`` (Q K^T and A V, 4 T^2 D), ``flops_mlp`` (4 T D I), ``flops_head``
    (the classifier on one token), and ``flops`` for the whole forward pass.
    ``image_size`` defaults to the model's native size.
    Introduced in notebook 05 (patch size).
    """
    net, geom = unwrap(model)
    geom.require_vit("vit_cost")
    cfg = net.config
    size = geom.image_size if image_size is None else int(image_size)
    rows, cols = geom.grid_for(size, size)
    n = rows * cols
    t = n + geom.prefix
    d = geom.hidden
    inner = int(cfg.intermediate_size)
    classes = int(getattr(cfg, "num_labels", 0) or 0)
    qkvo = 2 * t * d * (3 * geom.heads * geom.head_dim) + 2 * t * (geom.heads * geom.head_dim) * d
    attention = 2 * 2 * geom.heads * t * t * geom.head_dim
    mlp = 2 * 2 * t * d * inner
    embed = 2 * n * geom.patch_size**2 * geom.channels * d
    head = 2 * d * classes * arch.readout_tokens(cfg)
    return {
        "patches": n,
        "tokens": t,
        "attention_entries": geom.heads * t * t,
        "flops_embed": embed,
        "flops_qkvo": qkvo,
        "flops_attention": attention,
        "flops_mlp": mlp,
        "flops_head": head,
        "flops": embed + geom.layers * (qkvo + attention + mlp) + head,
    }


@torch.no_grad()
def timed_predict(
    model: Any, pixel_values: torch.Tensor, *, batch_size: int = 64, warmup: int = 1
) -> tuple[torch.Tensor, float]:
    """Logits for ``pixel_values`` and the wall-clock seconds per image of the forward passes.

    ``warmup`` chunks are run first and not timed (the first call pays for allocations). The
    time depends on the machine and on what else runs on it: print it only in a cell whose
    output is not compared. Introduced in notebook 05.
    """
    net, geom = unwrap(model)
    pixel_values = check_pixel_values(pixel_values, geom)
    chunks = pixel_values.split(check_batch_size(batch_size))
    for chunk in chunks[:warmup]:
        forward(net, chunk)
    logits, seconds = [], []
    for chunk in chunks:
        start = time.perf_counter()
        logits.append(forward(net, chunk).logits)
        seconds.append(time.perf_counter() - start)
    return torch.cat(logits), float(np.sum(seconds)) / len(pixel_values)
