"""The transformers-internal names the incoming methods touch, in one place.

When the library moves to its new layout these helpers fold into ``core/arch.py`` (the one
adapter) in one step. Supported: ViT-family classifiers whose head reads the CLS token through
the final layer norm (``ViTForImageClassification``, ``DeiTForImageClassification``).
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

__all__ = [
    "activation", "attention", "attention_scale", "blocks", "classifier", "final_norm", "is_regression",
    "layer_norms", "num_outputs", "projections", "readout", "use_attention_function",
]


def _base(net: torch.nn.Module) -> torch.nn.Module:
    return getattr(net, "base_model", net)


def blocks(net: torch.nn.Module) -> list[torch.nn.Module]:
    """The transformer blocks, in order (``vit.layers``)."""
    base = _base(net)
    layers = getattr(base, "layers", None)
    if layers is None:
        encoder = getattr(base, "encoder", None)
        layers = getattr(encoder, "layer", None) or getattr(encoder, "layers", None)
    if not layers:
        raise TypeError(f"{type(net).__name__} has no transformer blocks that vitnotes knows (vit.layers)")
    return list(layers)


def attention(block: torch.nn.Module) -> torch.nn.Module:
    """A block's self-attention module (the one an attention function receives as ``module``)."""
    return block.attention


def projections(block: torch.nn.Module) -> tuple[torch.nn.Linear, torch.nn.Linear, torch.nn.Linear, torch.nn.Linear]:
    """(q, k, v, o) projections of a block. Heads are concatenated in order: head h owns
    features ``h*d:(h+1)*d`` of q/k/v's output and of o's input."""
    a = attention(block)
    return a.q_proj, a.k_proj, a.v_proj, a.o_proj


def attention_scale(block: torch.nn.Module, head_dim: int) -> float:
    return float(getattr(attention(block), "scaling", head_dim**-0.5))


def activation(block: torch.nn.Module) -> torch.nn.Module:
    """The MLP's activation module (GELU for ViT)."""
    return block.mlp.activation_fn


def final_norm(net: torch.nn.Module) -> torch.nn.Module:
    """The layer norm after the last block (``vit.layernorm``)."""
    return _base(net).layernorm


def classifier(net: torch.nn.Module) -> torch.nn.Module:
    """The linear head (``classifier``). Models with two heads (DeiT with teacher) are refused."""
    if type(net).__name__.endswith("WithTeacher"):
        raise TypeError(f"{type(net).__name__} averages two heads; use a model with one classifier")
    head = getattr(net, "classifier", None)
    if head is None:
        raise TypeError(f"{type(net).__name__} has no classifier head; the methods explain an image classifier")
    return head


def readout(net: torch.nn.Module, cls: torch.Tensor) -> torch.Tensor:
    """Outputs ``[batch, outputs]`` read from CLS-token states ``[batch, hidden]`` the way the model
    reads its last one: final layer norm, then the classifier."""
    return classifier(net)(final_norm(net)(cls))


def layer_norms(net: torch.nn.Module) -> list[torch.nn.LayerNorm]:
    """Every LayerNorm in the model (pre-attention, pre-MLP and the final one)."""
    return [m for m in net.modules() if isinstance(m, torch.nn.LayerNorm)]


def is_regression(net: torch.nn.Module) -> bool:
    return getattr(net.config, "problem_type", None) == "regression"


def num_outputs(net: torch.nn.Module) -> int:
    return int(getattr(net.config, "num_labels", 0) or classifier(net).out_features)


_names = itertools.count()


@contextmanager
def use_attention_function(net: torch.nn.Module, fn: Callable) -> Iterator[dict[int, int]]:
    """Run ``net`` with ``fn`` as its attention function for the duration of a ``with`` block.

    ``fn(module, query, key, value, attention_mask, scaling=..., dropout=..., **kwargs)`` gets
    query/key/value as ``[batch, head, tokens, head_dim]`` and returns ``(output [batch, tokens,
    head, head_dim], weights)``, like transformers' eager attention. It is registered with
    ``transformers.AttentionInterface`` under a fresh name and selected with
    ``set_attn_implementation``; the previous implementation is restored on exit, even on error.
    Yields ``{id(attention module): layer index}`` so ``fn`` can tell the layers apart.
    """
    from transformers import AttentionInterface

    name = f"vitnotes_{getattr(fn, '__name__', 'attention')}_{next(_names)}"
    AttentionInterface.register(name, fn)
    before = net.config._attn_implementation
    net.set_attn_implementation(name)
    try:
        yield {id(attention(b)): i for i, b in enumerate(blocks(net))}
    finally:
        net.set_attn_implementation(before)
        AttentionInterface._global_mapping.pop(name, None)
