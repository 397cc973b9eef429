"""Head ablation: zero a head's output before the output projection, and sweep every head.

transformers 5.x removed ``head_mask``, and passing it is silently ignored; vitnotes zeros the
head's slice of the ``o_proj`` input with a forward pre-hook instead (heads are concatenated in
order, head h owns features ``h*d : (h+1)*d``). Introduced in notebook 08 (head ablation).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Mapping

import pandas as pd
import torch
import torch.nn.functional as F

from .hooks import hooks
from .models import Geometry, _vit_layers, check_pixel_values, forward, unwrap

__all__ = ["ablate", "evaluate_loss", "sweep"]


def _head_pairs(geom: Geometry, heads: Any) -> dict[int, list[int]]:
    """{layer: [heads]} from (layer, head) pairs or a {layer: head(s)} mapping."""
    if isinstance(heads, Mapping):
        pairs = [(layer, h) for layer, hs in heads.items() for h in ([hs] if isinstance(hs, int) else hs)]
    else:
        heads = list(heads)
        if len(heads) == 2 and all(isinstance(x, int) for x in heads):
            heads = [tuple(heads)]  # a single (layer, head) pair
        pairs = []
        for item in heads:
            if not (isinstance(item, (tuple, list)) and len(item) == 2):
                raise TypeError(f"heads must be (layer, head) pairs or a {{layer: [heads]}} dict, got item {item!r}")
            pairs.append(tuple(item))
    out: dict[int, list[int]] = {}
    for layer, h in pairs:
        out.setdefault(geom.layer(layer), []).append(geom.head(h))
    return out


@contextmanager
def ablate(model: Any, heads: Iterable | Mapping) -> Iterator[Any]:
    """Zero the chosen heads for the duration of a ``with`` block.

    ``heads``: ``[(layer, head), ...]``, one ``(layer, head)`` pair, or ``{layer: [heads]}``;
    negative indices count from the end. Every hook is removed on exit, even on error.

    >>> with vn.ablate(model, [(0, 3), (-1, 0)]):
    ...     logits = model.predict(x)
    """
    net, geom = unwrap(model)
    geom.require_vit("head ablation")
    blocks = _vit_layers(net)
    chosen = _head_pairs(geom, heads)
    d = geom.head_dim

    def zero(hs: list[int]):
        def hook(_module, args):
            x = args[0].clone()
            for h in hs:
                x[..., h * d : (h + 1) * d] = 0
            return (x, *args[1:])
        return hook

    with hooks((blocks[layer].attention.o_proj, "forward_pre", zero(hs)) for layer, hs in chosen.items()):
        yield model


_LOSSES = ("ce", "mse")


def _loss_kind(net: torch.nn.Module, loss: str | None) -> str:
    if loss is None:
        return "mse" if getattr(net.config, "problem_type", None) == "regression" else "ce"
    if loss not in _LOSSES:
        raise ValueError(f"loss must be one of {_LOSSES} (or None: from the model's problem_type), got {loss!r}")
    return loss


def _check_targets(targets: Any, n: int, kind: str) -> torch.Tensor:
    t = torch.as_tensor(targets)
    if t.shape[0] != n:
        raise ValueError(f"{t.shape[0]} targets for {n} images; give one target per image")
    if kind == "ce" and t.is_floating_point():
        raise TypeError("cross-entropy targets must be integer class indices; for regression pass loss='mse'")
    return t.long() if kind == "ce" else t.float()


@torch.no_grad()
def evaluate_loss(model: Any, pixel_values: torch.Tensor, targets: Any, *, loss: str | None = None,
                  batch_size: int = 64) -> float:
    """Mean loss over a data set: cross-entropy for classifiers, MSE (over all outputs) for
    regression models (``problem_type == "regression"``)."""
    net, geom = unwrap(model)
    pixel_values = check_pixel_values(pixel_values, geom)
    kind = _loss_kind(net, loss)
    t = _check_targets(targets, pixel_values.shape[0], kind)
    total = 0.0
    for x, y in zip(pixel_values.split(batch_size), t.split(batch_size), strict=True):
        logits = forward(net, x).logits.double().cpu()
        if kind == "ce":
            total += F.cross_entropy(logits, y, reduction="sum").item()
        else:
            total += F.mse_loss(logits, y.double().reshape(logits.shape), reduction="sum").item() / logits.shape[-1]
    return total / pixel_values.shape[0]


def sweep(model: Any, pixel_values: torch.Tensor, targets: Any, *, heads: Iterable | None = None,
          loss: str | None = None, batch_size: int = 64, progress: bool = False) -> pd.DataFrame:
    """Ablate each head alone and measure the loss: one row per (layer, head) with ``loss`` and
    ``rel_increase`` (loss / intact loss - 1). ``df.attrs`` holds ``baseline`` (intact loss),
    ``n`` (images) and ``loss`` (kind). ``heads`` defaults to every head of every layer.
    """
    net, geom = unwrap(model)
    geom.require_vit("a head-ablation sweep")
    kind = _loss_kind(net, loss)
    base = evaluate_loss(model, pixel_values, targets, loss=kind, batch_size=batch_size)
    if heads is None:
        pairs = [(layer, h) for layer in range(geom.layers) for h in range(geom.heads)]
    else:
        pairs = [(layer, h) for layer, hs in _head_pairs(geom, heads).items() for h in hs]
    if progress:
        from tqdm.auto import tqdm

        pairs = tqdm(pairs, desc="ablation sweep")
    rows = []
    for layer, h in pairs:
        with ablate(model, [(layer, h)]):
            value = evaluate_loss(model, pixel_values, targets, loss=kind, batch_size=batch_size)
        rows.append({"layer": layer, "head": h, "loss": value, "rel_increase": value / base - 1.0})
    df = pd.DataFrame(rows)
    df.attrs.update(baseline=base, n=int(pixel_values.shape[0]), loss=kind)
    return df
