"""Cascading randomisation (Adebayo et al. 2018): a copy of a ViT with its top re-initialised.

Introduced in notebook 06 (rollout).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..core import arch
from ..core.geometry import as_int
from ..core.model import Model, unwrap

__all__ = ["randomized"]


def _reinit(modules: list[torch.nn.Module], std: float, seed: int) -> None:
    """Redraw the parameters owned directly by ``modules`` from the initial distribution:
    LayerNorm weight 1 and bias 0, other biases 0, everything else (weight matrices, convolution
    kernels, CLS token, position embeddings) normal with standard deviation ``std``."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in modules:
            norm = isinstance(module, torch.nn.LayerNorm)
            for pname, param in module.named_parameters(recurse=False):
                if norm:
                    param.fill_(1.0 if pname == "weight" else 0.0)
                elif pname == "bias":
                    param.zero_()
                else:
                    param.copy_(torch.randn(param.shape, generator=g, dtype=torch.float32) * std)


def randomized(model: Any, from_layer: int, seed: int = 0, *, embeddings: bool = False) -> Any:
    """A copy of a ViT with its top re-initialised (cascading randomisation, Adebayo et al. 2018).

    The classifier and final layer norm, and every transformer block with index ``>= from_layer``,
    are redrawn from the initial distribution (normal with ``config.initializer_range`` for
    weights, zero biases, LayerNorm at 1 and 0); the blocks below keep their trained weights.
    ``from_layer`` runs from 0 (every block random) to ``layers`` (only the classifier head random);
    negative values count from the end. ``embeddings=True`` also redraws the patch embedding, the
    CLS token and the position embeddings: with ``from_layer=0`` that is a fully random model.

    Each block draws from its own generator seeded by ``(seed, block)``, so block 11 gets the same
    random weights whatever ``from_layer`` is: a cascade only adds randomised blocks. The input
    model is left untouched. Returns a ``Model`` for a ``Model``, a bare module for a bare module.
    Introduced in notebook 06 (rollout).
    """
    import copy

    net, geom = unwrap(model)
    geom.require_vit("randomized")
    start = _start_layer(from_layer, seed, geom.layers)
    new = copy.deepcopy(net)
    _redraw(new, start, geom.layers, seed, embeddings)
    new.eval()
    if not isinstance(model, Model):
        return new
    what = f"blocks {start}..{geom.layers - 1} + head" if start < geom.layers else "head only"
    if embeddings:
        what += " + embeddings"
    return Model(
        net=new,
        geometry=geom,
        labels=list(model.labels),
        preprocessing=model.preprocessing,
        name=f"{model.name} randomised ({what}, seed {seed})",
        source="randomized",
    )


def _start_layer(from_layer: Any, seed: Any, layers: int) -> int:
    """The first randomised block (0..layers), from ``from_layer`` (negative counts from the end)."""
    from_layer = as_int(from_layer, "from_layer")
    if not -layers <= from_layer <= layers:
        raise IndexError(
            f"from_layer {from_layer} is out of range: use 0..{layers} ({layers} = only the classifier "
            f"head is randomised) or -1..-{layers}"
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return from_layer % layers if from_layer < 0 else from_layer


def _redraw(new: torch.nn.Module, start: int, layers: int, seed: int, embeddings: bool) -> None:
    """Re-initialise, in place, the head (everything outside the blocks and embeddings), blocks
    ``start..`` and, with ``embeddings``, the embeddings; block ``i`` draws from seed ``(seed, i)``."""
    std = float(getattr(new.config, "initializer_range", 0.02))
    blocks = arch.vit_layers(new)
    below = {id(m) for layer in blocks for m in layer.modules()}
    emb = arch.embeddings(new)
    emb_ids = {id(m) for m in emb.modules()} if emb is not None else set()
    head = [m for m in new.modules() if id(m) not in below and id(m) not in emb_ids]
    stride = layers + 2
    _reinit(head, std, seed * stride + layers)
    for i in range(start, layers):
        _reinit(list(blocks[i].modules()), std, seed * stride + i)
    if embeddings and emb is not None:
        _reinit(list(emb.modules()), std, seed * stride + layers + 1)
