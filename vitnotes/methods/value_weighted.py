"""Value-weighted attention (Kobayashi et al. 2020, "Attention is not only a weight"): CLS attention
times the norm of what each key actually writes. Chapter 09."""

from __future__ import annotations

from typing import Any

import torch

from ..core import arch
from ..core.capture import no_cls, patch_grid
from ..core.hooks import hooks
from ..core.model import chunk_size, chunked, forward, vit_input
from .base import method

__all__ = ["value_weighted"]


class _Stop(Exception):
    pass


@method(
    "value-weighted",
    default=False,
    what=(
        "The last layer's CLS attention times the norm of what each patch's value writes through the output "
        "projection, averaged over heads."
    ),
)
def value_weighted(
    model: Any,
    pixel_values: torch.Tensor,
    target: Any = None,
    *,
    layer: int = -1,
    batch_size: int | None = None,
) -> torch.Tensor:
    """``[batch, rows, cols]`` on the patch grid, non-negative, each map summing to 1.

    For block ``layer`` (the last by default; negatives count from the end):
    ``w_j = mean_h alpha^h_{CLS, j} * || v^h_j W_O^h ||`` where ``alpha^h`` is head h's attention
    probabilities, ``v^h_j`` token j's value vector for head h (bias included) and ``W_O^h`` head
    h's slice of the output projection (its columns ``h*d:(h+1)*d``; the projection's bias, added
    once after the heads are summed, is left out; DINOv2's and BEiT's layer scale on the attention
    output is folded into ``W_O^h``, so the norm is that of what the head writes to the residual
    stream). BEiT's relative position bias is added to the scores before the softmax, as its
    attention adds it (``core.arch.attention_bias``). BEiT's classifier reads the patch mean, not
    CLS: the map says what CLS gathers, not what the classifier reads (README, model families).
    Prefix tokens are dropped and the patch weights renormalised to sum 1. ``target`` is ignored
    (the map is class-agnostic).

    Works under any attention implementation: q, k and v are read from the projections with hooks
    and the blocks after ``layer`` are not run. No gradients. Peak memory per image: one inference
    forward up to block ``layer`` plus q, k, v of that block, ``batch_size`` images at a time (None:
    64 on the CPU, sized from the free memory on a GPU) (measured 0.44 MiB per image on
    ``fmnist-vit-p4``, CPU fp32, ``benchmarks/bench_memory.py``).
    """
    net, geom, pixel_values = vit_input(model, pixel_values, batch_size, "value-weighted attention")
    no_cls(geom.prefix, "value-weighted")
    batch_size = chunk_size(model, pixel_values, batch_size, cpu=64, keeps="forward")
    grid = geom.grid_for(*pixel_values.shape[-2:])
    block = arch.blocks(net)[geom.layer(layer)]
    gram = _head_grams(block, geom.heads, geom.head_dim)  # [head, d, d]
    scale = arch.attention_scale(block, geom.head_dim)
    bias = arch.attention_bias(net, block, *pixel_values.shape[-2:])  # BEiT's relative position bias, or None
    cls_bias = None if bias is None else bias[:, :, 0].detach().float()  # [1, H, T]: the CLS query's row
    maps = []
    for x, _ in chunked(pixel_values, None, batch_size):
        q, k, v = _queries_keys_values(net, block, x, geom.heads)  # [B, T, H, d]
        scores = torch.einsum("bhd,bthd->bht", q[:, 0], k) * scale  # [B, H, T] CLS row
        alpha = (scores if cls_bias is None else scores + cls_bias.to(scores.device)).softmax(-1)
        norms = torch.einsum("bthd,hdf,bthf->bht", v, gram.to(v.device), v).clamp_min(0).sqrt()  # [B, H, T]
        maps.append(patch_grid((alpha * norms).mean(1).cpu(), geom.prefix, grid))
    return torch.cat(maps)


def _head_grams(block: torch.nn.Module, heads: int, d: int) -> torch.Tensor:
    """``W_O^h^T W_O^h`` per head ``[head, d, d]``, the layer scale (DINOv2, BEiT) folded into ``W_O``."""
    w_o = arch.projections(block)[3].weight.detach().float()  # [hidden, head * d]
    layer_scale = arch.attention_layer_scale(block)  # DINOv2 and BEiT scale what attention writes, per channel
    if layer_scale is not None:
        w_o = w_o * layer_scale.detach().float()[:, None]
    w_o = w_o.reshape(-1, heads, d)  # [hidden, head, d]
    return torch.einsum("ehd,ehf->hdf", w_o, w_o)


def _queries_keys_values(
    net: torch.nn.Module, block: torch.nn.Module, x: torch.Tensor, heads: int
) -> tuple[torch.Tensor, ...]:
    """Block ``block``'s q, k, v ``[B, T, head, d]`` (float32) for images ``x``; later blocks do not run."""
    kept: dict[str, torch.Tensor] = {}

    def keep(name: str):
        def hook(_module, _inputs, out):
            kept[name] = out.float().reshape(out.shape[0], out.shape[1], heads, -1)
            if name == "v":
                raise _Stop

        return hook

    q_proj, k_proj, v_proj, _ = arch.projections(block)
    regs = [(q_proj, "forward", keep("q")), (k_proj, "forward", keep("k")), (v_proj, "forward", keep("v"))]
    with hooks(regs), torch.no_grad():
        try:
            forward(net, x)
        except _Stop:
            pass
    return kept["q"], kept["k"], kept["v"]
