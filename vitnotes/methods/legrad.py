"""LeGrad (Bousselham et al., ICCV 2025): how sensitive each layer's own class readout is to that
layer's attention. For chapter 09 ("Which explanation can you trust?")."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from ..core import arch
from ..core.geometry import layer_indices
from ..core.hooks import hooks
from ..core.model import chunk_size, chunked, forward, score, targets_for, vit_input
from ._common import attention_probs, normalise
from .base import method

__all__ = ["legrad"]


@method(
    "legrad",
    class_specific=True,
    default=False,
    what=(
        "The gradient of the class score with respect to each layer's attention, negatives dropped, averaged "
        "over heads, queries and layers."
    ),
)
def legrad(
    model: Any,
    pixel_values: torch.Tensor,
    target: Any = None,
    *,
    layers: int | Iterable[int] | None = None,
    normalise_to: str | None = "sum",
    batch_size: int | None = None,
) -> torch.Tensor:
    """LeGrad map on the patch grid, ``[batch, rows, cols]``, non-negative.

    For each layer l (all by default, or ``layers``; negatives count from the end):
    ``s_l`` = the target score read from layer l's tokens the way the model reads its last ones
    (final layer norm, then the classifier on CLS, or on CLS and the patch mean for DINOv2);
    ``E_l = mean_{head, query} relu(d s_l / d A_l)`` with
    ``A_l`` layer l's attention probabilities ``[batch, head, query, key]`` (all queries, CLS
    included); prefix keys dropped. The map is the mean of ``E_l`` over layers, normalised per map
    (``normalise_to="sum"``: sums to 1, the default; ``"max"``: largest patch 1; None: raw
    mean). Attention itself is not multiplied in. The last layer's readout is the model's output.

    ``target``: None = predicted class, an int, or one per image; for a regression model an
    output index. One forward and one backward pass per chunk of ``batch_size`` images (None: 16 on
    the CPU, sized from the free memory on a GPU), with the model's attention swapped (through
    transformers' AttentionInterface) for an eager one that keeps each layer's probabilities in the
    autograd graph. Each wanted block reads its input as a fresh leaf (values unchanged), so the
    gradient of ``sum_l s_l`` reaching ``A_l`` is exactly ``d s_l / d A_l``: one backward gives every
    layer's, and a hook on ``A_l`` reduces it to ``[batch, keys]`` as it arrives. Works whatever
    attention implementation the model was loaded with; the model is restored afterwards.

    Peak memory per image: the autograd graph of one forward (every layer's activations and
    attention probabilities), measured 9.0 MiB per image on ``fmnist-vit-p4`` (50 tokens, hidden
    192, 12 layers x 12 heads; peak resident memory over the start, CPU fp32,
    ``benchmarks/bench_memory.py``); it grows as ``layers * tokens * (hidden + heads * tokens)``.
    """
    net, geom, pixel_values = vit_input(model, pixel_values, batch_size, "LeGrad")
    batch_size = chunk_size(model, pixel_values, batch_size, cpu=16, keeps="graph")
    grid = geom.grid_for(*pixel_values.shape[-2:])
    all_blocks = arch.blocks(net)
    wanted = sorted(layer_indices(geom, layers))
    if normalise_to not in ("sum", "max", None):
        raise ValueError(f"normalise_to must be 'sum', 'max' or None, got {normalise_to!r}")
    sens: dict[int, torch.Tensor] = {}  # layer -> mean_{head, query} relu(d s_l / d A_l) [batch, keys], float32
    inputs: dict[int, torch.Tensor] = {}  # layer -> the fresh leaf its block reads [batch, T, hidden]
    states: dict[int, torch.Tensor] = {}  # layer -> its output's token states [batch, T, hidden]
    layer_of = {id(arch.attention_module(b)): i for i, b in enumerate(all_blocks)}

    def keep_probs(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **_):
        w = attention_probs(query, key, attention_mask, scaling)
        layer = layer_of[id(module)]
        if layer in wanted:
            w.register_hook(
                lambda g, layer=layer: sens.__setitem__(layer, g.clamp_min(0).mean((1, 2), dtype=torch.float32))
            )
        return (w @ value).transpose(1, 2).contiguous(), None

    def cut(layer):  # block ``layer`` reads a fresh leaf: s_l's gradient never leaves block l
        def hook(_module, args, kwargs):
            if args:
                h = inputs[layer] = args[0].detach().requires_grad_(True)
                return (h, *args[1:]), kwargs
            h = inputs[layer] = kwargs["hidden_states"].detach().requires_grad_(True)
            return args, {**kwargs, "hidden_states": h}

        return hook

    def keep_state(layer):
        def hook(_module, _inputs, out):
            states[layer] = out[0] if isinstance(out, tuple) else out

        return hook

    maps = []
    regs = [(all_blocks[i], "forward_pre_kwargs", cut(i)) for i in wanted]
    regs += [(all_blocks[i], "forward", keep_state(i)) for i in wanted]
    with arch.use_attention_function(net, keep_probs), hooks(regs), torch.enable_grad():
        for x, tgt in chunked(pixel_values, target, batch_size):
            out = forward(net, x)
            t = targets_for(net, tgt, out.logits)
            readouts = sum(score(arch.readout(net, states[i]), t).sum() for i in wanted)
            torch.autograd.grad(readouts, [inputs[i] for i in wanted])  # the hooks fill ``sens``
            total = torch.stack([sens[i] for i in wanted]).double().mean(0)  # [batch, keys]
            maps.append(normalise(total[:, geom.prefix :].reshape(-1, *grid), normalise_to).float().cpu())
            for kept in (sens, inputs, states):
                kept.clear()
    return torch.cat(maps)
