"""Head ablation: zero a head's output before the output projection (or replace it by its mean
over a reference set), and sweep every head.

transformers 5.x removed ``head_mask``, and passing it is silently ignored; vitnotes zeros the
head's slice of the ``o_proj`` input with a forward pre-hook instead (heads are concatenated in
order, head h owns features ``h*d : (h+1)*d``). Introduced in notebook 08 (head ablation).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..core import arch
from ..core.batches import Part, add_up, gather, is_dataset, part, processes
from ..core.geometry import Geometry, is_scalar
from ..core.hooks import hooks
from ..core.model import (
    check_batch_size,
    check_pixel_values,
    class_indices,
    class_labels,
    evaluation,
    forward,
    per_image,
    unwrap,
)

__all__ = ["ImageLosses", "ablate", "evaluate_loss", "head_means", "sweep"]


def _head_pairs(geom: Geometry, heads: Any) -> dict[int, list[int]]:
    """{layer: [heads]} from (layer, head) pairs or a {layer: head(s)} mapping."""
    if isinstance(heads, Mapping):
        pairs = [(layer, h) for layer, hs in heads.items() for h in ([hs] if is_scalar(hs) else hs)]
    else:
        heads = list(heads)
        if len(heads) == 2 and all(is_scalar(x) for x in heads):
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
def ablate(model: Any, heads: Iterable | Mapping, *, means: Mapping[int, torch.Tensor] | None = None) -> Iterator[Any]:
    """Ablate the chosen heads for the duration of a ``with`` block: zero their output (default), or
    with ``means`` (from ``vn.interventions.head_means``) replace it by its mean over a reference set
    (mean-ablation), token by token.

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
    means = _check_means(means, geom, chosen)

    def replace(layer: int, hs: list[int]):
        def hook(_module, args):
            x = args[0].clone()
            for h in hs:
                x[..., h * d : (h + 1) * d] = 0 if means is None else _fill(means[layer], x, h, d)
            return (x, *args[1:])

        return hook

    registrations = [(arch.attention_output(blocks[i]), "forward_pre", replace(i, hs)) for i, hs in chosen.items()]
    with hooks(registrations):
        yield model


def _fill(mean: torch.Tensor, x: torch.Tensor, h: int, d: int) -> torch.Tensor:
    """Head ``h``'s slice of the reference mean ``[T, H*d]`` for the tokens of ``x`` ``[B, Q, H*d]``."""
    if mean.shape[0] < x.shape[-2]:
        raise ValueError(
            f"the reference means cover {mean.shape[0]} tokens, the input has {x.shape[-2]}: compute "
            "vn.interventions.head_means on images of the size you ablate"
        )
    return mean[: x.shape[-2], h * d : (h + 1) * d].to(device=x.device, dtype=x.dtype)


def _check_means(means: Any, geom: Geometry, chosen: Mapping[int, list[int]]) -> dict[int, torch.Tensor] | None:
    """``means`` keyed by layer (negative counted from the end), covering every ablated layer."""
    if means is None:
        return None
    if not isinstance(means, Mapping):
        raise TypeError(
            "means must be the dict vn.interventions.head_means returns ({layer: [tokens, hidden]}), "
            f"got {type(means).__name__}"
        )
    out = {geom.layer(k): torch.as_tensor(v) for k, v in means.items()}
    missing = sorted(set(chosen) - set(out))
    if missing:
        raise ValueError(
            f"means has no entry for layer(s) {missing}; compute vn.interventions.head_means for every layer you ablate"
        )
    return out


@torch.no_grad()
def head_means(model: Any, pixel_values: torch.Tensor, *, batch_size: int = 64) -> dict[int, torch.Tensor]:
    """Every head's mean output over a reference set, for mean-ablation (``vn.ablate`` and
    ``vn.sweep`` with ``means=``): ``{layer: [tokens, heads * head_dim]}``, the input of the layer's
    output projection averaged over the images, token by token (heads concatenated in order).
    Use images other than those you evaluate on. Introduced in notebook 08 (head ablation)."""
    net, geom = unwrap(model)
    geom.require_vit("head means")
    pixel_values = check_pixel_values(pixel_values, geom)
    batch_size = check_batch_size(batch_size)
    if len(pixel_values) == 0:
        raise ValueError("head_means needs at least one reference image")
    blocks = arch.vit_layers(net)
    sums: dict[int, torch.Tensor] = {}

    def keep(layer: int):
        def hook(_module, args):
            s = args[0].detach().double().sum(0).cpu()
            sums[layer] = s if layer not in sums else sums[layer] + s

        return hook

    with hooks((arch.attention_output(b), "forward_pre", keep(i)) for i, b in enumerate(blocks)):
        for chunk in pixel_values.split(batch_size):
            forward(net, chunk)
    return {layer: (s / len(pixel_values)).float() for layer, s in sorted(sums.items())}


_LOSSES = ("ce", "mse")


def _loss_kind(net: torch.nn.Module, loss: str | None) -> str:
    if loss is None:
        return "mse" if getattr(net.config, "problem_type", None) == "regression" else "ce"
    if loss not in _LOSSES:
        raise ValueError(f"loss must be one of {_LOSSES} (or None: from the model's problem_type), got {loss!r}")
    return loss


def _check_targets(targets: Any, n: int, kind: str, model: Any) -> torch.Tensor:
    """One target per image, in any sequence (a list, an array, a tensor, a ``datasets`` Column): for
    cross-entropy the model's classes (``class_indices``, as ``vn.explain`` takes them: ints, numpy
    integers, tensors, class names from ``config.id2label``; floats, negative or out-of-range indices
    and unknown names refused with the fix), numbers for MSE. Checked once per batch, on the host,
    before any head is ablated."""
    targets = per_image(targets)
    t = _class_targets(targets, unwrap(model)[0]) if kind == "ce" else _numbers(targets)
    if t.ndim == 0 or t.shape[0] != n:
        raise ValueError(f"{1 if t.ndim == 0 else t.shape[0]} targets for {n} images; give one target per image")
    return t


def _class_targets(targets: Any, net: torch.nn.Module) -> torch.Tensor:
    floating = targets.is_floating_point() if torch.is_tensor(targets) else np.asarray(targets).dtype.kind == "f"
    if floating:
        raise TypeError("cross-entropy targets must be integer class indices; for regression pass loss='mse'")
    n = int(net.config.num_labels)
    return torch.tensor(class_indices(targets, n, class_labels(net), what="label"), dtype=torch.long)


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
    batch_size, kind = check_batch_size(batch_size), _loss_kind(net, loss)
    t = _check_targets(targets, pixel_values.shape[0], kind, model)
    total = 0.0
    for x, y in zip(pixel_values.split(batch_size), t.split(batch_size), strict=True):
        total += _losses(forward(net, x).logits, y, kind).sum().item()
    return total / pixel_values.shape[0]


def sweep(
    model: Any,
    pixel_values: Any,
    targets: Any = None,
    *,
    heads: Iterable | None = None,
    loss: str | None = None,
    batch_size: int = 64,
    method: str = "fast",
    means: Mapping[int, torch.Tensor] | None = None,
    per_image: bool = False,
    progress: bool = False,
) -> pd.DataFrame:
    """Ablate each head alone and measure the loss: one row per (layer, head) with ``loss`` and
    ``rel_increase`` (loss / intact loss - 1). ``df.attrs`` holds ``baseline`` (intact loss),
    ``n`` (images), ``loss`` (kind), ``method``, ``ablation`` (``"zero"`` or ``"mean"``) and
    ``processes``. ``heads`` defaults to every head of every layer.

    ``means`` (from ``vn.interventions.head_means`` on reference images): mean-ablation, each head's output
    replaced by its reference mean instead of zero. ``per_image=True`` also keeps every image's
    loss in ``df.attrs["per_image"]``, an ``ImageLosses`` (``losses`` ``[heads (the table's rows),
    images]``, ``baseline`` ``[images]``, float64): what ``vn.evaluate.sweep_subset`` and
    ``vn.evaluate.head_intervals`` resample.

    ``pixel_values``: a tensor (batch, C, H, W) with ``targets`` one per image (class indices or the
    model's class names, as ``vn.explain`` takes them, in a list, array, tensor or ``datasets`` column
    such as ``ds["label"]``), or a ``datasets.Dataset`` / ``IterableDataset`` read ``batch_size`` rows
    at a time (never whole): its ``pixel_values`` column, or its ``image`` column through the model's
    preprocessing, and the targets from the column ``targets`` names (default ``label`` or ``labels``).
    Under ``accelerate launch`` each process sweeps its part of the images and the per-head loss sums
    (over images, in float64) are added over processes before dividing by the image count: every
    process returns the table of one process (``book/scale.md``).

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
    batch_size, kind = check_batch_size(batch_size), _loss_kind(net, loss)
    chosen = (
        {layer: list(range(geom.heads)) for layer in range(geom.layers)} if heads is None else _head_pairs(geom, heads)
    )
    pairs = [(layer, h) for layer, hs in chosen.items() for h in hs]
    if method == "fast" and arch.cls_head(net) is None:
        method = "naive"  # the classifier reads more than the CLS token: no shortcut is exact
    run = _Run(kind, chosen, batch_size, _check_means(means, geom, chosen), per_image)
    data = _labelled(model, geom, pixel_values, targets, kind, batch_size)
    parts = gather(_sums(model, geom, data, run, method, progress))
    total = add_up([p[0] for p in parts])
    if total["n"] == 0:
        raise ValueError("the data set has no images; pass at least one")
    n, base = total["n"], total["base"] / total["n"]
    rows = [{"layer": layer, "head": h, "loss": total[layer, h] / n} for layer, h in pairs]
    df = pd.DataFrame(rows).assign(rel_increase=lambda d: d["loss"] / base - 1.0)
    ablation = "zero" if means is None else "mean"
    df.attrs.update(baseline=base, n=int(n), loss=kind, method=method, ablation=ablation, processes=processes()[1])
    if per_image:
        image = [np.concatenate([np.concatenate(p[1][k]) for p in parts if p[1].get(k)]) for k in [*pairs, "base"]]
        df.attrs["per_image"] = ImageLosses(np.stack(image[:-1]), image[-1])
    return df


@dataclass(frozen=True, eq=False)
class ImageLosses:
    """Every image's loss in a sweep: ``losses`` ``[heads (the table's rows), images]`` with the head
    ablated, ``baseline`` ``[images]`` intact (float64). Compares by value, so tables that carry it
    in their ``attrs`` can still be concatenated. Introduced in notebook 08 (head ablation)."""

    losses: np.ndarray
    baseline: np.ndarray

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ImageLosses)
            and np.array_equal(self.losses, other.losses)
            and np.array_equal(self.baseline, other.baseline)
        )

    __hash__ = None  # mutable arrays inside: not hashable


@dataclass
class _Run:
    """What one sweep ablates and how, and where it adds up the losses of each batch."""

    kind: str
    chosen: dict[int, list[int]]
    batch_size: int
    means: dict[int, torch.Tensor] | None
    per_image: bool
    sums: dict = field(default_factory=dict)
    images: dict = field(default_factory=dict)
    bar: Any = None

    def add(self, key: Any, per: torch.Tensor) -> None:
        """Add one batch's per-image losses ``per`` ``[b]`` under ``key`` ((layer, head) or "base"),
        where they were computed: nothing waits for the device until ``results``."""
        self.sums[key] = self.sums.get(key, 0.0) + per.sum()
        if self.per_image:
            self.images.setdefault(key, []).append(per)
        if self.bar is not None and key != "base":
            self.bar.update(1)

    def results(self) -> tuple[dict, dict]:
        """The sums as Python floats and the per-image losses as numpy arrays: one transfer each."""
        keys = [k for k, v in self.sums.items() if isinstance(v, torch.Tensor)]
        values = torch.stack([self.sums[k] for k in keys]).cpu().tolist() if keys else []
        sums = {**self.sums, **dict(zip(keys, values, strict=True))}
        images = {k: [p.cpu().numpy() for p in parts] for k, parts in self.images.items()}
        return sums, images


def _sums(model, geom: Geometry, data: Part, run: _Run, method: str, progress: bool) -> tuple[dict, dict]:
    """This process's loss sums over its images: per ablated head, ``base`` (intact) and ``n``
    (images); and, with ``per_image``, the per-image losses of each batch."""
    pairs = [(layer, h) for layer, hs in run.chosen.items() for h in hs]
    if progress:
        from tqdm.auto import tqdm

        size = None if data.size is None else len(pairs) * -(-data.size // run.batch_size)
        run.bar = tqdm(total=size, desc="ablation sweep")
    run.sums = {**dict.fromkeys(pairs, 0.0), "base": 0.0, "n": 0}
    batch = _fast_batch if method == "fast" else _naive_batch
    with evaluation(unwrap(model)[0]):  # the fast path runs the blocks itself, outside core.model.forward
        for b in data.batches:
            x = check_pixel_values(b["pixel_values"], geom)
            y = _check_targets(b["targets"], x.shape[0], run.kind, model)
            batch(model, geom, x, y, run)
            run.sums["n"] += x.shape[0]
    if run.bar is not None:
        run.bar.close()
    return run.results()


def _labelled(model: Any, geom: Geometry, data: Any, targets: Any, kind: str, batch_size: int) -> Part:
    """This process's part of a sweep's images and targets (a tensor and its targets, or a dataset)."""
    if is_dataset(data):
        if targets is not None and not isinstance(targets, str):
            raise TypeError(
                f"with a dataset, targets names its column (a str, default 'label'), got {type(targets).__name__}"
            )
        roles = {"targets": targets or ("label", "labels")}
        return part(data, model, roles, batch_size=batch_size, what="vn.sweep")
    x = check_pixel_values(data, geom)
    if targets is None:
        raise TypeError("pass targets, one per image (class indices; outputs for a regression model)")
    roles = {"targets": _check_targets(targets, x.shape[0], kind, model)}
    return part(x, model, roles, batch_size=batch_size, what="vn.sweep")


def _losses(logits: torch.Tensor, y: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-image loss in float64, on the logits' device: cross-entropy, or MSE averaged over outputs."""
    logits = logits.double()
    if kind == "ce":  # labels were checked against the classes with the batch (_check_targets)
        return F.cross_entropy(logits, y.to(logits.device), reduction="none")
    return F.mse_loss(logits, y.double().to(logits.device).reshape(logits.shape), reduction="none").mean(-1)


@torch.no_grad()
def _naive_batch(model, geom, x, y, run: _Run) -> None:
    """One full forward per ablated head on batch ``x``: adds each head's losses and the intact ones to ``run``."""
    net = unwrap(model)[0]
    for layer, hs in run.chosen.items():
        for h in hs:
            with ablate(model, [(layer, h)], means=run.means):
                run.add((layer, h), _losses(forward(net, x).logits, y, run.kind))
    run.add("base", _losses(forward(net, x).logits, y, run.kind))


@torch.no_grad()
def _fast_batch(model, geom: Geometry, x, y, run: _Run) -> None:
    """The fast sweep of batch ``x`` (see ``sweep``): adds each head's losses and the intact ones to ``run``."""
    net = unwrap(model)[0]
    embeddings, blocks, norm, classifier = arch.cls_head(net)
    last, b = len(blocks) - 1, x.shape[0]
    param = next(net.parameters())
    interpolate = tuple(x.shape[-2:]) != (geom.image_size,) * 2
    group = max(1, run.batch_size // b)  # several heads per forward when the image chunk is small
    h = embeddings(x.to(device=param.device, dtype=param.dtype), interpolate_pos_encoding=interpolate)
    for layer, block in enumerate(blocks):
        for start in range(0, len(run.chosen.get(layer, [])), group):
            hs = run.chosen[layer][start : start + group]
            mean = None if run.means is None else run.means[layer]
            out = _ablated_cls(blocks, layer, h, hs, geom.head_dim, mean)
            per = _losses(classifier(norm(out)[:, 0]), y.repeat(len(hs), *([1] * (y.dim() - 1))), run.kind)
            for head, values in zip(hs, per.reshape(len(hs), b)):
                run.add((layer, head), values)
        if layer < last:
            h = block(h)
    run.add("base", _losses(classifier(norm(arch.cls_block(blocks[last], h))[:, 0]), y, run.kind))


def _ablated_cls(blocks, layer: int, h: torch.Tensor, hs: list[int], d: int, mean: torch.Tensor | None) -> torch.Tensor:
    """The tokens leaving the last block (CLS only, ``[k*B, 1, hidden]``) with each head of ``hs``
    ablated (zeroed, or set to ``mean`` ``[T, H*d]``) in block ``layer`` in turn, from the residual
    stream ``h`` entering it: the layer's context once, then one copy per ablated head."""
    last, b, k = len(blocks) - 1, h.shape[0], len(hs)
    block = blocks[layer]
    ctx = arch.context(block, arch.attention_input(block)(h), 1 if layer == last else None).repeat(k, 1, 1)
    for i, head in enumerate(hs):  # ctx: (k*B, Q, H*d)
        ctx[i * b : (i + 1) * b, :, head * d : (head + 1) * d] = 0 if mean is None else _fill(mean, ctx, head, d)
    out = arch.finish_block(block, h[:, : ctx.shape[1]].repeat(k, 1, 1), ctx)
    for later in blocks[layer + 1 : last]:
        out = later(out)
    return arch.cls_block(blocks[last], out) if layer < last else out
