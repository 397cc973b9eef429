"""LeGrad (Bousselham et al., ICCV 2025): how sensitive each layer's own class readout is to that
layer's attention. For chapter 09 ("Which explanation can you trust?")."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from ..core import arch
from ..core.geometry import layer_indices
from ..core.hooks import hooks
from ..core.model import chunked, forward, score, targets_for, vit_input
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
    batch_size: int = 16,
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
    output index. One forward pass per chunk of ``batch_size`` images, with the model's attention
    swapped (through transformers' AttentionInterface) for an eager one that keeps each layer's
    probabilities in the autograd graph, then one short backward per layer (from ``s_l`` to
    ``A_l`` only crosses block l's upper half). Works whatever attention implementation the model
    was loaded with; the model is restored afterwards.

    Peak memory per image: the autograd graph of one forward (every layer's activations and
    attention probabilities), measured 9.0 MiB per image on ``fmnist-vit-p4`` (50 tokens, hidden
    192, 12 layers x 12 heads; peak resident memory over the start, CPU fp32,
    ``benchmarks/bench_memory.py``); it grows as ``layers * tokens * (hidden + heads * tokens)``.
    """
    net, geom, pixel_values = vit_input(model, pixel_values, batch_size, "LeGrad")
    grid = geom.grid_for(*pixel_values.shape[-2:])
    all_blocks = arch.blocks(net)
    wanted = sorted(layer_indices(geom, layers))
    if normalise_to not in ("sum", "max", None):
        raise ValueError(f"normalise_to must be 'sum', 'max' or None, got {normalise_to!r}")
    probs: dict[int, torch.Tensor] = {}  # layer -> attention probabilities [batch, head, query, key]
    states: dict[int, torch.Tensor] = {}  # layer -> its output's token states [batch, T, hidden]
    layer_of = {id(arch.attention_module(b)): i for i, b in enumerate(all_blocks)}

    def keep_probs(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **_):
        w = attention_probs(query, key, attention_mask, scaling)
        if layer_of[id(module)] in wanted:
            probs[layer_of[id(module)]] = w
        return (w @ value).transpose(1, 2).contiguous(), w

    def keep_state(layer):
        def hook(_module, _inputs, out):
            states[layer] = out[0] if isinstance(out, tuple) else out

        return hook

    maps = []
    with (
        arch.use_attention_function(net, keep_probs),
        hooks((all_blocks[i], "forward", keep_state(i)) for i in wanted),
        torch.enable_grad(),
    ):
        for x, tgt in chunked(pixel_values, target, batch_size):
            out = forward(net, x)
            total = _mean_relu_grads(net, probs, states, wanted, targets_for(net, tgt, out.logits))  # [batch, keys]
            maps.append(normalise(total[:, geom.prefix :].reshape(-1, *grid), normalise_to).float())
            probs.clear()
            states.clear()
    return torch.cat(maps)


def _mean_relu_grads(
    net: torch.nn.Module, probs: dict, states: dict, wanted: list[int], t: torch.Tensor
) -> torch.Tensor:
    """``mean_l mean_{head, query} relu(d s_l / d A_l)`` ``[batch, keys]`` (float64): one short backward
    per layer, from its CLS readout ``s_l`` to its attention ``A_l``."""
    total = torch.zeros(t.shape[0], probs[wanted[-1]].shape[-1], dtype=torch.float64)
    for i in wanted:
        s = score(arch.readout(net, states[i]), t).sum()
        (g,) = torch.autograd.grad(s, probs[i], retain_graph=i != wanted[-1])
        total += g.float().clamp_min(0).mean((1, 2)).double().cpu()
    return total / len(wanted)
