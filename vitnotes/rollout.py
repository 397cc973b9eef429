"""Attention rollout and attention flow (Abnar & Zuidema 2020), and gradient-weighted rollout
for one class (Chefer, Gur & Wolf 2021, "Generic attention-model explainability").

Introduced in notebook 06 (rollout).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import torch

from .attention import Attention, layer_indices, patch_grid, stream
from .models import check_pixel_values, forward, resolve_targets, unwrap, vit_input

__all__ = [
    "rollout", "rollout_grid", "capture_rollout", "fuse_heads", "attention_flow", "attention_flow_grid",
    "gradient_rollout", "eager_attention", "rollout_by_depth",
]  # fmt: skip

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
    """``[..., head, T, T]`` -> ``[..., T, T]`` by mean, max or min over heads."""
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
    """
    a = _full(attn)
    if not 0.0 <= residual <= 1.0:
        raise ValueError(f"residual must lie in [0, 1], got {residual}")
    n_layers = a.shape[0]
    for name, value in (("start_layer", start_layer), ("end_layer", end_layer)):
        if not -n_layers <= value < n_layers:
            raise IndexError(f"{name} {value} out of range for {n_layers} captured layers")
    start_layer %= n_layers
    end_layer %= n_layers
    if end_layer < start_layer:
        raise ValueError(f"end_layer {end_layer} comes before start_layer {start_layer}; rollout needs start <= end")
    r = None
    for layer in range(start_layer, end_layer + 1):
        w = _discard(fuse_heads(a[layer], head_fusion).double(), discard_ratio)  # [batch, T, T]; products in float64
        step = _augmented(w, residual)
        r = step if r is None else step @ r
    return r.float()


def rollout_grid(attn: Attention, **kwargs: Any) -> torch.Tensor:
    """Rollout's CLS row over patches on the grid, ``[batch, rows, cols]`` (sums to 1)."""
    r = rollout(attn, **kwargs)
    return patch_grid(r[:, 0], attn.geometry.prefix, attn.grid)


def capture_rollout(
    model: Any,
    pixel_values: torch.Tensor,
    *,
    head_fusion: str = "mean",
    discard_ratio: float = 0.0,
    start_layer: int = 0,
    residual: float = 0.5,
    batch_size: int = 64,
) -> torch.Tensor:
    """Rollout straight from the model, ``[batch, T, T]``: equal to ``rollout(capture(model, x), ...)``
    but each layer's head-fused matrix is folded into the running product as soon as it is
    computed, so only one layer's attention (one chunk of ``batch_size`` images) exists at a
    time instead of every layer's ``[batch, head, T, T]``. ``start_layer`` indexes model layers.
    Introduced in notebook 06.
    """
    net, geom, pixel_values = vit_input(model, pixel_values, batch_size, "attention rollout")
    if not 0.0 <= residual <= 1.0:
        raise ValueError(f"residual must lie in [0, 1], got {residual}")
    fuse_heads(torch.zeros(1, 1, 1), head_fusion)  # validate the arguments before any work
    _discard(torch.zeros(1, 1), discard_ratio)
    layers = layer_indices(geom, None)[geom.layer(start_layer) :]
    done: list[torch.Tensor] = []
    running: list[torch.Tensor] = []

    def fold(layer: int, probs: torch.Tensor) -> None:
        step = _augmented(_discard(fuse_heads(probs, head_fusion), discard_ratio), residual)
        r = step if layer == layers[0] else step @ running.pop()
        (done if layer == layers[-1] else running).append(r)

    stream(model, pixel_values, layers, fold, batch_size=batch_size)
    return torch.cat(done)


# --------------------------------------------------------------------------- attention flow
MAX_FLOW_EDGES = 2_000_000


def attention_flow(
    attn: Attention | torch.Tensor,
    *,
    head_fusion: str = "mean",
    residual: float = 0.5,
    query: int = 0,
    scale: float = 1e6,
) -> torch.Tensor:
    """Attention flow: the max-flow from each input token to output token ``query`` (the CLS)
    through the layered graph whose edge ``j (layer l-1) -> i (layer l)`` has capacity
    ``A_l[i, j]`` (the residual-augmented, head-fused attention). Returns ``[batch, T]``.

    Uses scipy's max-flow on integer capacities (weights times ``scale``), one max-flow per input
    token. Measured on 2 CPU cores, 12 layers, per image: 50 tokens (7x7 grid) 0.1 s, 197 tokens
    (14x14) 2.6 s. Graphs over ``MAX_FLOW_EDGES`` edges raise with a pointer to rollout.
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_flow

    a = _full(attn)
    n_layers, batch, _, t, _ = a.shape
    if n_layers * t * t > MAX_FLOW_EDGES:
        raise ValueError(
            f"attention flow over {n_layers} layers x {t} tokens has {n_layers * t * t:,} edges per max-flow, "
            f"too many to be tractable (limit {MAX_FLOW_EDGES:,}); use vn.rollout, or capture fewer layers"
        )
    if not 0 <= query < t:
        raise IndexError(f"query token {query} out of range 0..{t - 1}")
    weights = _augmented(fuse_heads(a.double(), head_fusion), residual).cpu().numpy()  # [layer, batch, T, T]
    n_nodes = (n_layers + 1) * t
    out = np.zeros((batch, t))
    for b in range(batch):
        rows, cols, caps = [], [], []
        for layer in range(n_layers):
            cap = np.round(weights[layer, b] * scale).astype(np.int64)  # cap[i, j]: j (below) -> i (above)
            i, j = np.nonzero(cap)
            rows.append(layer * t + j)
            cols.append((layer + 1) * t + i)
            caps.append(cap[i, j])
        graph = csr_matrix(
            (np.concatenate(caps).astype(np.int32), (np.concatenate(rows), np.concatenate(cols))),
            shape=(n_nodes, n_nodes),
        )
        sink = n_layers * t + query
        for src in range(t):
            out[b, src] = maximum_flow(graph, src, sink).flow_value / scale
    return torch.from_numpy(out).float()


# --------------------------------------------------------------------------- gradient rollout
@contextmanager
def eager_attention(net: torch.nn.Module):
    """Temporarily switch a transformers model to eager attention (restored on exit, even on error).

    Eager attention returns the probability matrices as part of the autograd graph, which
    gradient-weighted methods need. Capture itself (``vn.capture``) does not need this.
    """
    before = net.config._attn_implementation
    if before == "eager":
        yield net
        return
    net.set_attn_implementation("eager")
    try:
        yield net
    finally:
        net.set_attn_implementation(before)


def gradient_rollout(
    model: Any,
    pixel_values: torch.Tensor,
    target: int | list[int] | None = None,
    *,
    start_layer: int = 0,
) -> torch.Tensor:
    """Class-specific relevance ``[batch, rows, cols]`` by gradient-weighted rollout.

    For each layer, ``Abar = mean_h( relu(dy_c/dA * A) )`` and ``R <- R + Abar R`` starting from
    ``R = I`` (Chefer et al. 2021); the CLS row over the patches is returned, renormalised.
    ``target`` is a class index (or one per image); None explains the predicted class.
    """
    net, geom = unwrap(model)
    geom.require_vit("gradient rollout")
    pixel_values = check_pixel_values(pixel_values, geom)
    grid = geom.grid_for(*pixel_values.shape[-2:])
    start = geom.layer(start_layer)
    _, maps, grads = attention_with_grads(net, pixel_values, target)
    return _gradient_rollout_from(maps, grads, start, geom.prefix, grid)


def attention_with_grads(
    net: torch.nn.Module, pixel_values: torch.Tensor, target: int | list[int] | None
) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """One eager forward and backward pass: the logits ``[batch, classes]``, every layer's
    attention ``[batch, head, T, T]`` and the gradient of the target class score with respect to
    it (same shape). Parameters' ``.grad`` stay untouched."""
    with eager_attention(net), torch.enable_grad():
        out = forward(net, pixel_values, output_attentions=True)
        maps = out.attentions
        t = resolve_targets(target, out.logits)
        score = out.logits.gather(1, t[:, None]).sum()
        grads = torch.autograd.grad(score, maps)
    return out.logits.detach(), [m.detach() for m in maps], list(grads)


def _gradient_rollout_from(maps: list[torch.Tensor], grads: list[torch.Tensor], start: int, prefix: int,
                           grid: tuple[int, int]) -> torch.Tensor:
    b, _, n, _ = maps[0].shape
    r = torch.eye(n, dtype=torch.float64).expand(b, n, n).clone()
    for layer in range(start, len(maps)):
        cam = (grads[layer].double().cpu() * maps[layer].double().cpu()).clamp_min(0).mean(1)  # [batch, T, T]
        r = r + cam @ r
    return patch_grid(r[:, 0].float(), prefix, grid)


def attention_flow_grid(attn: Attention, **kwargs: Any) -> torch.Tensor:
    """Attention flow into the CLS token over the patches on the grid, ``[batch, rows, cols]``
    (prefix tokens dropped, renormalised to sum to 1). Keywords go to ``attention_flow``.
    Introduced in notebook 06."""
    if not isinstance(attn, Attention):
        raise TypeError(f"attention_flow_grid needs a vn.capture result (an Attention), got {type(attn).__name__}")
    return patch_grid(attention_flow(attn, **kwargs), attn.geometry.prefix, attn.grid)


def rollout_by_depth(
    attn: Attention, *, head_fusion: str = "mean", discard_ratio: float = 0.0, residual: float = 0.5
) -> pd.DataFrame:
    """How the rollout builds up layer by layer: one row per ``end_layer`` (rollout of the captured
    layers from the first through ``end_layer``), averaged over images.

    Columns: ``agreement`` = Spearman rank correlation of its CLS map with the full rollout's;
    ``row_spread`` = mean total-variation distance between each patch token's rollout row and
    the CLS token's row (both over the patches, renormalised; 0 = every token's row is the same
    map); ``identity_share`` = mean diagonal weight ``R[j, j]`` of the patch tokens (what the
    residual path keeps of a token's own input); ``entropy_norm`` of the CLS map.
    ``head_fusion``, ``discard_ratio`` and ``residual`` as in ``rollout``.
    Introduced in notebook 06.
    """
    from .faithfulness import rank_correlation
    from .metrics import normalized_entropy

    if not isinstance(attn, Attention):
        raise TypeError(f"rollout_by_depth needs a vn.capture result (an Attention), got {type(attn).__name__}")
    if not 0.0 <= residual <= 1.0:
        raise ValueError(f"residual must lie in [0, 1], got {residual}")
    a = _full(attn)
    pre = attn.geometry.prefix
    partial = []  # the running product after each layer, [batch, T, N] over the patches
    r = None
    for layer in range(a.shape[0]):  # the same product as rollout(), kept after every layer
        step = _augmented(_discard(fuse_heads(a[layer], head_fusion).double(), discard_ratio), residual)
        r = step if r is None else step @ r
        p = r[:, :, pre:]
        partial.append(p / p.sum(-1, keepdim=True).clamp_min(1e-300))
    full = partial[-1][:, 0]
    rows = []
    for end, p in enumerate(partial):
        cls, patches = p[:, 0], p[:, pre:]
        rows.append({
            "end_layer": attn.layers[end],
            "agreement": float(rank_correlation(cls, full).mean()),
            "row_spread": float(0.5 * (patches - cls[:, None]).abs().sum(-1).mean()),
            "identity_share": float(torch.diagonal(patches, dim1=-2, dim2=-1).mean()),
            "entropy_norm": float(normalized_entropy(cls).mean()),
        })
    df = pd.DataFrame(rows)
    df.attrs.update(images=int(full.shape[0]), head_fusion=head_fusion, discard_ratio=discard_ratio, residual=residual)
    return df
