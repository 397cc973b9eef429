"""What every incoming map method shares: targets and scores, chunks, pixel baselines, normalisation."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F

from ..models import resolve_targets
from . import _arch

__all__ = ["chunked", "losses", "normalise", "pixel_baseline", "score", "targets_for"]


def targets_for(net: torch.nn.Module, target: Any, logits: torch.Tensor) -> torch.Tensor:
    """Output indices to explain, one per image.

    Classifier: None = the predicted class, an int = that class for every image, a list = one per
    image. Regression model (``config.problem_type == "regression"``): the target is an output
    index (int or one per image); None is allowed only for a single-output model (output 0).
    """
    if target is None and _arch.is_regression(net):
        if logits.shape[1] != 1:
            raise ValueError(
                f"this regression model has {logits.shape[1]} outputs and no predicted class: pass target=<output "
                f"index> (0..{logits.shape[1] - 1}), or one per image"
            )
        target = 0
    return resolve_targets(target, logits)


def score(logits: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The explained score per image: the target logit, or the target output of a regression model."""
    return logits.gather(1, t[:, None].to(logits.device))[:, 0]


def chunked(pixel_values: torch.Tensor, target: Any, batch_size: int) -> Iterator[tuple[torch.Tensor, Any]]:
    """(chunk, its slice of ``target``): a per-image target list is split with the images."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = pixel_values.shape[0]
    per_image = target is not None and torch.as_tensor(target).numel() > 1
    if per_image:
        target = torch.as_tensor(target).flatten()
        if target.numel() != n:
            raise ValueError(f"target has {target.numel()} entries for a batch of {n}; give one class or one per image")
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        yield pixel_values[start:stop], (target[start:stop] if per_image else target)


def normalise(maps: torch.Tensor, how: str | None) -> torch.Tensor:
    """``"sum"``: each map sums to 1; ``"max"``: each map's largest entry is 1; None: as computed.
    An all-zero map stays zero."""
    if how is None:
        return maps
    flat = maps.flatten(1)
    if how == "sum":
        d = flat.sum(1)
    elif how == "max":
        d = flat.abs().amax(1)
    else:
        raise ValueError(f"normalise must be 'sum', 'max' or None, got {how!r}")
    d = torch.where(d == 0, torch.ones_like(d), d)
    return maps / d.reshape(-1, *([1] * (maps.ndim - 1)))


def pixel_baseline(model: Any, pixel_values: torch.Tensor, baseline: Any) -> torch.Tensor:
    """A baseline the shape of ``pixel_values`` (in the model's normalised input space).

    ``"black"`` / ``"grey"``: pixel value 0 / 0.5 in every channel, normalised with the model's
    preprocessing (needs a ``vn.Model``); ``"zero"``: 0 after normalisation (the normalisation
    mean colour); ``"mean"``: each image's own per-channel mean; a number: that normalised value;
    a tensor broadcastable to ``pixel_values``.
    """
    x = pixel_values
    if isinstance(baseline, torch.Tensor):
        return baseline.to(dtype=x.dtype, device=x.device).expand_as(x).clone()
    if isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        return torch.full_like(x, float(baseline))
    if baseline == "zero":
        return torch.zeros_like(x)
    if baseline == "mean":
        return x.mean((-2, -1), keepdim=True).expand_as(x).clone()
    if baseline in ("black", "grey", "gray"):
        pre = getattr(model, "preprocessing", None)
        if pre is None:
            raise ValueError(
                f"baseline={baseline!r} needs the model's normalisation (mean, std): pass a vn.Model, "
                "or give the normalised value as a number or a tensor"
            )
        level = 0.0 if baseline == "black" else 0.5
        mean = torch.as_tensor(pre.mean, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1)
        std = torch.as_tensor(pre.std, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1)
        return ((level - mean) / std).expand_as(x).clone()
    raise ValueError(
        f"baseline must be 'black', 'grey', 'zero', 'mean', a number or a tensor, got {baseline!r}"
    )


def losses(logits: torch.Tensor, y: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-image loss: cross-entropy, or MSE averaged over outputs (as ``vn.sweep`` defines them)."""
    if kind == "ce":
        return F.cross_entropy(logits.float(), y.long().to(logits.device), reduction="none")
    y = y.float().to(logits.device).reshape(logits.shape)
    return F.mse_loss(logits.float(), y, reduction="none").mean(-1)
