"""Attention rollout (Abnar & Zuidema 2020): the product of the layers' head-fused attention
with the residual added, and its CLS row on the patch grid. Introduced in notebook 06 (rollout).
"""

from __future__ import annotations

from typing import Any

import torch

from ..core.capture import Attention, layer_indices, no_cls, patch_grid, pooling_rows, stream
from ..core.geometry import as_int
from ..core.model import chunk_size, vit_input
from .base import method

__all__ = ["capture_rollout", "fuse_heads", "rollout", "rollout_grid", "rollout_grids", "rollout_map"]

_FUSIONS = ("mean", "max", "min")


def _full(attn: Attention | torch.Tensor) -> torch.Tensor:
    """Full attention ``[layer, batch, head, T, T]`` from an Attention or a tensor."""
    if isinstance(attn, Attention):
        if attn.cls_only:
            raise ValueError("rollout needs full attention matrices; capture with cls_only=False")
        if attn.layers != list(range(attn.layers[0], attn.layers[-1] + 1)):
            raise ValueError(f"rollout needs consecutive layers, captured {attn.layers}; capture with layers=None")
        a = attn.probs
    else:
        a = attn
    if not isinstance(a, torch.Tensor) or a.ndim != 5 or a.shape[-1] != a.shape[-2]:
        shape = tuple(a.shape) if isinstance(a, torch.Tensor) else type(a).__name__
        raise ValueError(f"expected attention of shape [layer, batch, head, T, T], got {shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"attention of shape {tuple(a.shape)} is empty (no layers or no images)")
    return a


def fuse_heads(a: torch.Tensor, head_fusion: str = "mean") -> torch.Tensor:
    """``[..., head, T, T]`` -> ``[..., T, T]`` by mean, max or min over heads. Introduced in notebook 06 (rollout)."""
    if head_fusion == "mean":
        return a.mean(-3)
    if head_fusion == "max":
        return a.amax(-3)
    if head_fusion == "min":
        return a.amin(-3)
    raise ValueError(f"head_fusion must be one of {_FUSIONS}, got {head_fusion!r}")


def _discard(w: torch.Tensor, ratio: float) -> torch.Tensor:
    """Zero the ``ratio`` fraction of smallest entries of each ``[T, T]`` matrix."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"discard_ratio must lie in [0, 1), got {ratio}")
    n = int(w.shape[-1] * w.shape[-2] * ratio)
    if n == 0:
        return w
    flat = w.flatten(-2)
    keep = flat.shape[-1] - n
    if keep < n:  # cheaper to find the few entries that stay
        idx = flat.topk(keep, dim=-1).indices
        return torch.zeros_like(flat).scatter_(-1, idx, flat.gather(-1, idx)).view_as(w)
    idx = flat.topk(n, dim=-1, largest=False).indices
    return flat.clone().scatter_(-1, idx, 0.0).view_as(w)


def _augmented(w: torch.Tensor, residual: float) -> torch.Tensor:
    """A = (1 - residual) W + residual I with rows renormalised: the residual stream's share."""
    eye = torch.eye(w.shape[-1], dtype=w.dtype, device=w.device)
    a = (1.0 - residual) * w + residual * eye
    return a / a.sum(-1, keepdim=True).clamp_min(torch.finfo(a.dtype).tiny)  # a row discarded whole stays 0


def rollout(
    attn: Attention | torch.Tensor,
    *,
    head_fusion: str = "mean",
    discard_ratio: float = 0.0,
    start_layer: int = 0,
    end_layer: int = -1,
    residual: float = 0.5,
) -> torch.Tensor:
    """Attention rollout ``R = A_end ... A_start`` per image, ``[batch, T, T]``.

    Each layer's heads are fused (mean / max / min), optionally the smallest ``discard_ratio``
    of the fused weights are zeroed, then ``A_l = 0.5 W_l + 0.5 I`` with rows renormalised
    (the residual connection), and the matrices are multiplied from the left.
    ``start_layer`` and ``end_layer`` (inclusive, default the last) index the captured layers;
    ``residual`` is the identity's weight (0 = the bare attention product). Row ``R[b, 0]`` says
    how much each input token contributes to the CLS token after ``end_layer``.
    Introduced in notebook 06 (rollout).
    """
    a = _full(attn)
    if not 0.0 <= residual <= 1.0:
        raise ValueError(f"residual must lie in [0, 1], got {residual}")
    n_layers = a.shape[0]
    start_layer, end_layer = as_int(start_layer, "start_layer"), as_int(end_layer, "end_layer")
    for name, value in (("start_layer", start_layer), ("end_layer", end_layer)):
        if not -n_layers <= value < n_layers:
            raise IndexError(f"{name} {value} out of range for {n_layers} captured layers")
    start_layer %= n_layers
    end_layer %= n_layers
    if end_layer < start_layer:
        raise ValueError(f"end_layer {end_layer} comes before start_layer {start_layer}; rollout needs start <= end")
    *_, r = _products(a, range(start_layer, end_layer + 1), head_fusion, discard_ratio, residual)
    return r.float()


def _products(a: torch.Tensor, layers: range, head_fusion: str, discard_ratio: float, residual: float):
    """Rollout's running product after each of ``layers`` in turn (float64, ``[batch, T, T]``)."""
    r = None
    for layer in layers:
        w = _discard(fuse_heads(a[layer], head_fusion).double(), discard_ratio)  # [batch, T, T]; products in float64
        step = _augmented(w, residual)
        r = step if r is None else step @ r
        yield r


def rollout_grids(attn: Attention, *, residual: float = 0.5) -> torch.Tensor:
    """Rollout's CLS row on the grid after every captured layer, ``[layer, batch, rows, cols]``: entry
    ``l`` equals ``rollout_grid(attn, end_layer=l, residual=residual)`` (mean fusion), from one running
    product instead of one product per layer. Introduced in notebook 07 (the training probes)."""
    no_cls(attn.geometry.prefix, "rollout of a vn.capture result")
    a = _full(attn)
    steps = _products(a, range(a.shape[0]), "mean", 0.0, residual)
    return torch.stack([patch_grid(r.float()[:, 0], attn.geometry.prefix, attn.grid) for r in steps])


def rollout_grid(attn: Attention, **kwargs: Any) -> torch.Tensor:
    """Rollout's CLS row over patches on the grid, ``[batch, rows, cols]`` (sums to 1).
    Introduced in notebook 05 (patch size)."""
    r = rollout(attn, **kwargs)
    no_cls(attn.geometry.prefix, "rollout of a vn.capture result")
    return patch_grid(r[:, 0], attn.geometry.prefix, attn.grid)


def capture_rollout(
    model: Any,
    pixel_values: torch.Tensor,
    *,
    head_fusion: str = "mean",
    discard_ratio: float = 0.0,
    start_layer: int = 0,
    residual: float = 0.5,
    batch_size: int | None = None,
) -> torch.Tensor:
    """Rollout straight from the model, ``[batch, T, T]``: equal to ``rollout(capture(model, x), ...)``
    but each layer's head-fused matrix is folded into the running product as soon as it is
    computed (``stream(blocks=True)``: a few images at a time on the CPU, the whole chunk on a GPU),
    so only one block's attention and one chunk's running product exist at a time instead of every
    layer's ``[batch, head, T, T]``. ``batch_size``: images per chunk (None: 64 on the CPU, sized from
    the free memory on a GPU). The product accumulates in float32 whatever the model's dtype.
    The probabilities are computed once, for the block's output and the product alike; with mean
    fusion and no discarding the step is one fused ``R <- residual R + (1 - residual) mean_h(A) R``.
    ``start_layer`` indexes model layers. Peak memory per image: one inference forward's
    activations for ``batch_size`` images plus the ``[T, T]`` product; the result itself is
    ``4 T^2`` bytes per image (155 kB at 197 tokens). Introduced in notebook 03 (CNN vs ViT).
    """
    return torch.cat(
        _rollout_chunks(
            model,
            pixel_values,
            head_fusion=head_fusion,
            discard_ratio=discard_ratio,
            start_layer=start_layer,
            residual=residual,
            batch_size=batch_size,
        )
    )


def _rollout_chunks(
    model: Any,
    pixel_values: torch.Tensor,
    *,
    head_fusion: str = "mean",
    discard_ratio: float = 0.0,
    start_layer: int = 0,
    residual: float = 0.5,
    batch_size: int | None = None,
    row: int | None = None,
) -> list[torch.Tensor]:
    """Each block's rollout ``[block, T, T]`` (or its row ``row``, ``[block, T]``), in image order."""
    net, geom, pixel_values = vit_input(model, pixel_values, batch_size, "attention rollout")
    batch_size = chunk_size(model, pixel_values, batch_size, cpu=64, keeps="attention")
    if not 0.0 <= residual <= 1.0:
        raise ValueError(f"residual must lie in [0, 1], got {residual}")
    fuse_heads(torch.zeros(1, 1, 1), head_fusion)  # validate the arguments before any work
    _discard(torch.zeros(1, 1), discard_ratio)
    layers = layer_indices(geom, None)[geom.layer(start_layer) :]
    seen: dict[int, int] = {}  # layer -> images folded so far
    running: dict[int, torch.Tensor] = {}  # first image of a block -> its product so far [block, T, T]
    done: list[torch.Tensor] = []

    def fold(layer: int, probs: torch.Tensor) -> None:
        lo = seen.get(layer, 0)
        seen[layer] = lo + probs.shape[0]
        r = _rollout_step(probs, running.pop(lo, None), head_fusion, discard_ratio, residual)
        if layer == layers[-1]:
            done.append(r if row is None else r[:, row].clone())
        else:
            running[lo] = r

    stream(model, pixel_values, layers, fold, batch_size=batch_size, blocks=True, float32=False)
    return done


def _rollout_step(
    probs: torch.Tensor, r: torch.Tensor | None, head_fusion: str, discard_ratio: float, residual: float
) -> torch.Tensor:
    """``A r`` (or ``A`` when ``r`` is None) for ``probs`` ``[block, head, T, T]``, ``A`` the augmented
    head-fused step. With mean fusion and no discarding A's rows already sum to 1, and the step is
    one ``baddbmm``: ``residual r + (1 - residual) / heads * sum_h(probs) r``. ``probs`` may be in the
    model's dtype (bf16); the step and the product are float32."""
    if head_fusion != "mean" or discard_ratio:
        step = _augmented(_discard(fuse_heads(probs.float(), head_fusion), discard_ratio), residual)
        return step if r is None else step @ r
    summed = probs.sum(1, dtype=torch.float32)  # [block, T, T]
    weight = (1.0 - residual) / probs.shape[1]
    if r is None:
        summed.mul_(weight).diagonal(dim1=-2, dim2=-1).add_(residual)
        return summed
    return torch.baddbmm(r, summed, r, beta=residual, alpha=weight)


def _from_pass(maps: list[torch.Tensor], grads: list[torch.Tensor], prefix: int, grid: tuple[int, int]) -> torch.Tensor:
    no_cls(prefix, "rollout from one pass's attention")
    return patch_grid(rollout(torch.stack(maps).float())[:, 0], prefix, grid)


@method(
    "rollout",
    from_pass=_from_pass,
    what=(
        "The CLS row of the product of every layer's head-averaged attention, each mixed half-and-half with "
        "the residual."
    ),
)
def rollout_map(
    model: Any, pixel_values: torch.Tensor | None = None, target: Any = None, **options: Any
) -> torch.Tensor:
    """Rollout's CLS row over the patches on the grid, ``[batch, rows, cols]``: every prefix token
    dropped, renormalised to sum to 1. ``model`` may be a ``vn.capture`` result (then ``options`` go
    to ``rollout``) or a model (``capture_rollout``'s options; only each image's CLS row of the
    product is kept: peak memory per image is one inference forward plus the ``[T, T]`` product,
    measured 0.41 MiB on ``fmnist-vit-p4``, CPU fp32, ``benchmarks/bench_memory.py``); ``target``
    is ignored. The CLS row for every family: on BEiT, whose classifier reads the patch mean, it says
    what CLS gathers, not what the classifier reads (README, model families). A model without a CLS
    token (SigLIP): the attention-pooling query's attention (mean over heads) times the rollout
    product, ``a R``: the query reads the last block's tokens, and ``R`` says where each came from.
    Introduced in notebook 06."""
    if isinstance(model, Attention):
        return rollout_grid(model, **options)
    _, geom, pixel_values = vit_input(model, pixel_values, options.get("batch_size"), "attention rollout")
    if geom.prefix == 0:
        query = pooling_rows(model, pixel_values, options.get("batch_size")).mean(1)  # [batch, T]
        rows = torch.bmm(query[:, None], torch.cat(_rollout_chunks(model, pixel_values, **options)))[:, 0]
        return patch_grid(rows, 0, geom.grid_for(*pixel_values.shape[-2:]))
    rows = _rollout_chunks(model, pixel_values, row=0, **options)  # only the CLS row of each [T, T] is kept
    return patch_grid(torch.cat(rows), geom.prefix, geom.grid_for(*pixel_values.shape[-2:]))
