"""Head ablation: zero a head's output before the output projection, and sweep every head.

transformers 5.x removed ``head_mask``, and passing it is silently ignored; vitnotes zeros the
head's slice of the ``o_proj`` input with a forward pre-hook instead (heads are concatenated in
order, head h owns features ``h*d : (h+1)*d``). Introduced in notebook 08 (head ablation).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..core import arch
from ..core.geometry import Geometry
from ..core.hooks import hooks
from ..core.model import TargetError, check_pixel_values, class_indices, forward, unwrap

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
    Introduced in notebook 08 (head ablation).

    >>> with vn.ablate(model, [(0, 3), (-1, 0)]):
    ...     logits = model.predict(x)
    """
    net, geom = unwrap(model)
    geom.require_vit("head ablation")
    blocks = arch.vit_layers(net)
    chosen = _head_pairs(geom, heads)
    d = geom.head_dim

    def zero(hs: list[int]):
        def hook(_module, args):
            x = args[0].clone()
            for h in hs:
                x[..., h * d : (h + 1) * d] = 0
            return (x, *args[1:])

        return hook

    with hooks((arch.attention_output(blocks[layer]), "forward_pre", zero(hs)) for layer, hs in chosen.items()):
        yield model


_LOSSES = ("ce", "mse")


def _loss_kind(net: torch.nn.Module, loss: str | None) -> str:
    if loss is None:
        return "mse" if getattr(net.config, "problem_type", None) == "regression" else "ce"
    if loss not in _LOSSES:
        raise ValueError(f"loss must be one of {_LOSSES} (or None: from the model's problem_type), got {loss!r}")
    return loss


def _check_targets(targets: Any, n: int, kind: str) -> torch.Tensor:
    """One target per image: class indices for cross-entropy (``class_indices``: ints, numpy
    integers, tensors; floats, negative indices and names refused with the fix), numbers for MSE."""
    t = _class_targets(targets) if kind == "ce" else _numbers(targets)
    if t.ndim == 0 or t.shape[0] != n:
        raise ValueError(f"{1 if t.ndim == 0 else t.shape[0]} targets for {n} images; give one target per image")
    return t


def _class_targets(targets: Any) -> torch.Tensor:
    floating = targets.is_floating_point() if torch.is_tensor(targets) else np.asarray(targets).dtype.kind == "f"
    if floating:
        raise TypeError("cross-entropy targets must be integer class indices; for regression pass loss='mse'")
    return torch.tensor(class_indices(targets, what="label"), dtype=torch.long)


def _numbers(targets: Any) -> torch.Tensor:
    if torch.is_tensor(targets):
        return targets.float()
    try:
        return torch.as_tensor(np.asarray(targets, np.float32))
    except (TypeError, ValueError):
        raise TypeError("regression targets must be numbers, one row of outputs per image") from None


@torch.no_grad()
def evaluate_loss(
    model: Any, pixel_values: torch.Tensor, targets: Any, *, loss: str | None = None, batch_size: int = 64
) -> float:
    """Mean loss over a data set: cross-entropy for classifiers, MSE (over all outputs) for
    regression models (``problem_type == "regression"``). Introduced in notebook 08 (head ablation)."""
    net, geom = unwrap(model)
    pixel_values = check_pixel_values(pixel_values, geom)
    kind = _loss_kind(net, loss)
    t = _check_targets(targets, pixel_values.shape[0], kind)
    total = 0.0
    for x, y in zip(pixel_values.split(batch_size), t.split(batch_size), strict=True):
        total += _losses(forward(net, x).logits, y, kind).sum().item()
    return total / pixel_values.shape[0]


def sweep(
    model: Any,
    pixel_values: torch.Tensor,
    targets: Any,
    *,
    heads: Iterable | None = None,
    loss: str | None = None,
    batch_size: int = 64,
    method: str = "fast",
    progress: bool = False,
) -> pd.DataFrame:
    """Ablate each head alone and measure the loss: one row per (layer, head) with ``loss`` and
    ``rel_increase`` (loss / intact loss - 1). ``df.attrs`` holds ``baseline`` (intact loss),
    ``n`` (images) and ``loss`` (kind). ``heads`` defaults to every head of every layer.

    ``method="fast"`` (default) gives the same losses as ``"naive"`` (one full forward per head)
    at under half the cost: the residual stream entering layer l is computed once and shared by
    all of l's heads; layer l's attention context is computed once and only the output projection
    onwards runs per head (several heads per forward when an image chunk is smaller than
    ``batch_size``); the last layer runs for the CLS token
    only (the classifier reads nothing else). Models whose head reads other tokens use the naive
    path. Introduced in notebook 08.
    """
    net, geom = unwrap(model)
    geom.require_vit("a head-ablation sweep")
    if method not in ("fast", "naive"):
        raise ValueError(f"method must be 'fast' or 'naive', got {method!r}")
    kind = _loss_kind(net, loss)
    pixel_values = check_pixel_values(pixel_values, geom)
    t = _check_targets(targets, pixel_values.shape[0], kind)
    if heads is None:
        chosen = {layer: list(range(geom.heads)) for layer in range(geom.layers)}
    else:
        chosen = _head_pairs(geom, heads)
    pairs = [(layer, h) for layer, hs in chosen.items() for h in hs]
    if method == "fast" and arch.cls_head(net) is None:
        method = "naive"  # the classifier reads more than the CLS token: no shortcut is exact
    if method == "fast":
        base, losses = _fast_sweep(net, geom, pixel_values, t, kind, chosen, batch_size, progress)
    else:
        base = evaluate_loss(model, pixel_values, t, loss=kind, batch_size=batch_size)
        losses = {}
        it = pairs
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(pairs, desc="ablation sweep")
        for layer, h in it:
            with ablate(model, [(layer, h)]):
                losses[layer, h] = evaluate_loss(model, pixel_values, t, loss=kind, batch_size=batch_size)
    rows = [
        {"layer": layer, "head": h, "loss": losses[layer, h], "rel_increase": losses[layer, h] / base - 1.0}
        for layer, h in pairs
    ]
    df = pd.DataFrame(rows)
    df.attrs.update(baseline=base, n=int(pixel_values.shape[0]), loss=kind, method=method)
    return df


def _losses(logits: torch.Tensor, y: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-image loss in float64: cross-entropy, or MSE averaged over outputs."""
    logits = logits.double().cpu()
    if kind == "ce":
        if y.numel() and int(y.max()) >= logits.shape[1]:
            raise TargetError(
                f"label {int(y.max())} is out of range: the model has {logits.shape[1]} classes "
                f"(0..{logits.shape[1] - 1}); give one class index per image"
            )
        return F.cross_entropy(logits, y, reduction="none")
    return F.mse_loss(logits, y.double().reshape(logits.shape), reduction="none").mean(-1)


@torch.no_grad()
def _fast_sweep(
    net,
    geom: Geometry,
    pixel_values: torch.Tensor,
    t: torch.Tensor,
    kind: str,
    chosen: dict[int, list[int]],
    batch_size: int,
    progress: bool,
):
    embeddings, blocks, norm, classifier = arch.cls_head(net)
    d, last = geom.head_dim, len(blocks) - 1
    param = next(net.parameters())
    interpolate = tuple(pixel_values.shape[-2:]) != (geom.image_size,) * 2
    totals = {(layer, h): 0.0 for layer, hs in chosen.items() for h in hs}
    base_total = 0.0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(totals) * -(-pixel_values.shape[0] // batch_size), desc="ablation sweep")
    for x, y in zip(pixel_values.split(batch_size), t.split(batch_size), strict=True):
        b = x.shape[0]
        group = max(1, batch_size // b)  # several heads per forward when the image chunk is small
        h = embeddings(x.to(device=param.device, dtype=param.dtype), interpolate_pos_encoding=interpolate)
        for layer, block in enumerate(blocks):
            for start in range(0, len(chosen.get(layer, [])), group):
                hs = chosen[layer][start : start + group]
                k = len(hs)
                # the layer's context once, then one copy per ablated head: (k*B, Q, H*d)
                queries = 1 if layer == last else None
                ctx = arch.context(block, arch.attention_input(block)(h), queries).repeat(k, 1, 1)
                for i, head in enumerate(hs):
                    ctx[i * b : (i + 1) * b, :, head * d : (head + 1) * d] = 0
                resid = h[:, : ctx.shape[1]].repeat(k, 1, 1)
                out = arch.finish_block(block, resid, ctx)
                for later in blocks[layer + 1 : last]:
                    out = later(out)
                if layer < last:
                    out = arch.cls_block(blocks[last], out)
                per = (
                    _losses(classifier(norm(out)[:, 0]), y.repeat(k, *([1] * (y.dim() - 1))), kind)
                    .reshape(k, b)
                    .sum(-1)
                )
                for head, value in zip(hs, per.tolist()):
                    totals[layer, head] += value
                if bar is not None:
                    bar.update(k)
            if layer < last:
                h = block(h)
        base_total += _losses(classifier(norm(arch.cls_block(blocks[last], h))[:, 0]), y, kind).sum().item()
    if bar is not None:
        bar.close()
    n = pixel_values.shape[0]
    return base_total / n, {key: v / n for key, v in totals.items()}
