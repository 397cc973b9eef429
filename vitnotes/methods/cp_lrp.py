"""Efficient attention-aware LRP in its CP-LRP form (Ali et al. 2022; Achtibat et al., ICML 2024):
input x gradient through a network whose softmax probabilities and layer-norm scales are held
constant in the backward pass. For chapter 09 ("Which explanation can you trust?")."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import torch

from ..core import arch
from ..core.hooks import hooks
from ..core.model import chunk_size, chunked, forward, score, targets_for, vit_input
from ._common import attention_probs
from .base import method

__all__ = ["cp_lrp", "lrp_rules"]


def detached_softmax_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **_):
    """Eager attention whose probabilities are constants for autograd: out = stopgrad(softmax(QK^T s)) V."""
    w = attention_probs(query, key, attention_mask, scaling).detach()
    return (w @ value).transpose(1, 2).contiguous(), w


def _layer_norm_detached_std(module, inputs, _out):
    x = inputs[0]
    mean = x.mean(-1, keepdim=True)
    std = (x.var(-1, unbiased=False, keepdim=True) + module.eps).sqrt()
    y = (x - mean) / std.detach()
    if module.weight is not None:
        y = y * module.weight
    if module.bias is not None:
        y = y + module.bias
    return y


def _activation_identity_rule(_module, inputs, out):
    """Forward value unchanged, gradient = f(x)/x (LRP's identity rule for GELU-like f, f(0)=0)."""
    x = inputs[0]
    safe = torch.where(x == 0, torch.ones_like(x), x)
    ratio = torch.where(x == 0, torch.full_like(x, 0.5), out / safe)
    return x * ratio.detach()


@contextmanager
def lrp_rules(net: torch.nn.Module, *, activation: str = "gradient") -> Iterator[None]:
    """For the duration of a ``with`` block, the backward pass of ``net`` follows CP-LRP: every
    attention's softmax probabilities are detached (a custom attention function registered with
    transformers' AttentionInterface) and every LayerNorm's 1/std is detached (a forward hook that
    recomputes the norm with the std as a constant). ``activation="identity"`` also passes the MLP
    activation's gradient as ``f(x)/x`` (AttnLRP's identity rule), which makes the whole network
    linear in (input, biases) for the backward pass. Forward values are unchanged (to rounding)."""
    if activation not in ("gradient", "identity"):
        raise ValueError(f"activation must be 'gradient' or 'identity', got {activation!r}")
    regs = [(m, "forward", _layer_norm_detached_std) for m in arch.layer_norms(net)]
    if any(len(m.normalized_shape) != 1 for m in arch.layer_norms(net)):
        raise TypeError("CP-LRP supports layer norms over the last dimension only")
    if activation == "identity":
        regs += [(arch.mlp_activation(b), "forward", _activation_identity_rule) for b in arch.blocks(net)]
    with ExitStack() as stack:
        stack.enter_context(arch.use_attention_function(net, detached_softmax_attention))
        stack.enter_context(hooks(regs))
        yield


@method(
    "cp-lrp",
    class_specific=True,
    default=False,
    what=(
        "Input times gradient with the softmax and the layer-norm scale held constant (a fast AttnLRP), "
        "pooled per patch; signed."
    ),
)
def cp_lrp(
    model: Any,
    pixel_values: torch.Tensor,
    target: Any = None,
    *,
    activation: str = "gradient",
    level: str = "grid",
    batch_size: int | None = None,
) -> torch.Tensor:
    """CP-LRP relevance, signed and not normalised: ``[batch, rows, cols]`` on the patch grid
    (``level="grid"``, the default: each patch's pixels summed) or ``[batch, H, W]`` per pixel
    (``level="pixels"``).

    Relevance of a pixel = sum over channels of ``x * dS/dx`` where ``x`` is ``pixel_values`` (the
    patch embedding's input) and the gradient of the target score ``S`` is taken with softmax
    probabilities and layer-norm 1/std treated as constants (``lrp_rules``). ``activation``:
    ``"gradient"`` (CP-LRP: GELU's ordinary gradient) or ``"identity"`` (AttnLRP's identity rule
    for GELU). What is conserved (measured in tests/test_methods_new.py): with
    ``activation="identity"`` the relevance of the pixels plus that of every bias-like parameter
    (conv/linear/LN biases, CLS token, position embeddings; ``p * dS/dp``) equals the score to
    float rounding, so the map's sum = score - bias contributions. With ``"gradient"`` that sum is
    off by GELU's non-linearity (sum over MLP units of ``(x GELU'(x) - GELU(x)) * dS/dGELU``).

    ``target``: None = predicted class, an int, or one per image; for a regression model an output
    index. One forward and one backward per chunk of ``batch_size`` images (None: 32 on the CPU,
    sized from the free memory on a GPU); peak memory per image
    is one training-style forward's autograd graph: measured 7.3 MiB per image on ``fmnist-vit-p4``
    (50 tokens, hidden 192, 12 x 12; CPU fp32, ``benchmarks/bench_memory.py``), growing as
    ``layers * tokens * (hidden + heads * tokens)``.
    """
    net, geom, pixel_values = vit_input(model, pixel_values, batch_size, "CP-LRP")
    if level not in ("grid", "pixels"):
        raise ValueError(f"level must be 'grid' or 'pixels', got {level!r}")
    batch_size = chunk_size(model, pixel_values, batch_size, cpu=32, keeps="graph")
    rows, cols = geom.grid_for(*pixel_values.shape[-2:])
    p = geom.patch_size
    out = []
    with lrp_rules(net, activation=activation), torch.enable_grad():
        for x, tgt in chunked(pixel_values, target, batch_size):
            x = x.detach().clone().requires_grad_(True)
            logits = forward(net, x).logits
            t = targets_for(net, tgt, logits)
            (g,) = torch.autograd.grad(score(logits, t).sum(), x)
            r = (x.detach() * g).sum(1).float().cpu()  # [chunk, H, W]
            if level == "grid":
                r = r.reshape(r.shape[0], rows, p, cols, p).sum((2, 4))
            out.append(r)
    return torch.cat(out)
