"""The bundle a notebook works with (``Model``), its geometry, and the checks every analysis
starts with. Introduced in notebook 00 (attention math); ``vn.load`` (``zoo.py``) returns a ``Model``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from . import arch
from .geometry import Geometry
from .images import Preprocessing

__all__ = [
    "Model", "geometry", "unwrap", "check_pixel_values", "vit_input", "forward", "resolve_targets", "targets_for",
    "score", "chunked",
]  # fmt: skip


def _square(value: Any, what: str) -> int:
    """An int from a config entry that may be a (height, width) pair; vitnotes needs square ones."""
    if isinstance(value, (list, tuple)):
        if len(set(value)) != 1:
            raise ValueError(f"{what} {tuple(value)} is not square; vitnotes supports square images and patches")
        value = value[0]
    return int(value)


def geometry(net: torch.nn.Module) -> Geometry:
    """Geometry of a transformers image model (ViT / DeiT / DINOv2 / ResNet / ConvNeXt family).
    Introduced in notebook 00 (attention math)."""
    if isinstance(net, Model):
        return net.geometry
    cfg = getattr(net, "config", None)
    if cfg is None:
        raise TypeError(
            f"expected a transformers model or a vn.Model, got {type(net).__name__}; load one with vn.load(...)"
        )
    layers = arch.vit_layers(net)
    if layers is not None:
        return _vit_geometry(cfg, len(layers))
    stages = arch.cnn_stages(net)
    if stages is not None:
        return _cnn_geometry(cfg, len(stages))
    raise TypeError(
        f"{type(net).__name__} (model_type={arch.family_of(net)!r}) is neither a ViT-family model with "
        "q/k/o projections (ViT, DeiT, DINOv2) nor a CNN with encoder stages (ResNet, ConvNeXt); "
        "vitnotes supports those"
    )


def _vit_geometry(cfg: Any, layers: int) -> Geometry:
    heads = cfg.num_attention_heads
    return Geometry(
        kind="vit",
        layers=layers,
        heads=heads,
        head_dim=getattr(cfg, "head_dim", None) or cfg.hidden_size // heads,
        hidden=cfg.hidden_size,
        patch_size=_square(cfg.patch_size, "patch_size"),
        image_size=_square(cfg.image_size, "image_size"),
        channels=int(cfg.num_channels),
        prefix=arch.prefix_tokens(cfg),
    )


def _cnn_geometry(cfg: Any, stages: int) -> Geometry:
    return Geometry(
        kind="cnn",
        layers=stages,
        heads=0,
        head_dim=0,
        hidden=int(cfg.hidden_sizes[-1]),
        patch_size=None,
        image_size=_square(getattr(cfg, "image_size", 224) or 224, "image_size"),
        channels=int(cfg.num_channels),
    )


@dataclass
class Model:
    """A loaded model: the transformers module, its geometry, labels and preprocessing.

    Every vitnotes function takes either a ``Model`` or a bare transformers model.
    Introduced in notebook 00 (attention math).
    """

    net: torch.nn.Module
    geometry: Geometry
    labels: list[str]
    preprocessing: Preprocessing
    name: str = ""
    source: str = ""

    def preprocess(self, images: Any) -> torch.Tensor:
        """Images (PIL / numpy, one or a list) -> ``pixel_values`` (batch, C, H, W)."""
        return self.preprocessing(images)

    @torch.no_grad()
    def predict(self, pixel_values: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """Logits (batch, classes) in evaluation mode, in chunks of ``batch_size``."""
        pixel_values = check_pixel_values(pixel_values, self.geometry)
        return torch.cat([forward(self.net, chunk).logits for chunk in pixel_values.split(batch_size)])

    def __repr__(self) -> str:
        g = self.geometry
        shape = (
            f"{g.layers} layers x {g.heads} heads, patch {g.patch_size}, grid {g.grid[0]}x{g.grid[1]}"
            if g.kind == "vit"
            else f"{g.layers} stages"
        )
        return f"Model({self.name!r}, {g.kind}, {shape}, {g.image_size}px x {g.channels}ch, {len(self.labels)} labels)"


def unwrap(model: Any) -> tuple[torch.nn.Module, Geometry]:
    """(transformers module, geometry) from a ``Model`` or a bare transformers model."""
    if isinstance(model, Model):
        return model.net, model.geometry
    if isinstance(model, torch.nn.Module):
        return model, geometry(model)
    raise TypeError(f"expected a vn.Model or a transformers model, got {type(model).__name__}; use vn.load(...)")


def check_pixel_values(pixel_values: Any, geom: Geometry) -> torch.Tensor:
    """Validate a ``pixel_values`` batch (batch, C, H, W) against a model's geometry."""
    if not isinstance(pixel_values, torch.Tensor):
        raise TypeError(
            f"pixel_values must be a torch tensor (batch, C, H, W), got {type(pixel_values).__name__}; "
            "turn images into one with model.preprocess(images)"
        )
    x = pixel_values
    if x.ndim == 3:
        raise ValueError(
            f"pixel_values of shape {tuple(x.shape)} has no batch dimension; use x[None] or x.unsqueeze(0)"
        )
    if x.ndim != 4:
        raise ValueError(f"pixel_values must have 4 dimensions (batch, C, H, W), got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError("empty batch: pixel_values has 0 images; pass at least one")
    if not x.is_floating_point():
        raise TypeError(
            f"pixel_values must be floating point, got {x.dtype}; use model.preprocess(images), "
            "which scales and normalises them"
        )
    if x.shape[1] != geom.channels:
        raise ValueError(
            f"pixel_values has {x.shape[1]} channels but the model expects {geom.channels}; "
            "use model.preprocess(images), which converts colour modes"
        )
    if geom.kind == "vit":
        geom.grid_for(x.shape[2], x.shape[3])
    if not torch.isfinite(x).all():
        raise ValueError("pixel_values contains NaN or inf; check the images and their normalisation")
    return x


def vit_input(
    model: Any, pixel_values: Any, batch_size: int, what: str
) -> tuple[torch.nn.Module, Geometry, torch.Tensor]:
    """The checks every ViT analysis starts with: a ViT-family model (``what`` names the analysis in
    the error), a valid ``pixel_values`` batch and ``batch_size >= 1``. Returns (module, geometry,
    pixel_values)."""
    net, geom = unwrap(model)
    geom.require_vit(what)
    pixel_values = check_pixel_values(pixel_values, geom)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return net, geom, pixel_values


def forward(net: torch.nn.Module, pixel_values: torch.Tensor, **kwargs):
    """Run ``net`` on a batch; a ViT given another image size uses interpolated positions."""
    cfg = net.config
    if getattr(cfg, "patch_size", None) is not None and tuple(pixel_values.shape[-2:]) != (cfg.image_size,) * 2:
        kwargs.setdefault("interpolate_pos_encoding", True)
    param = next(net.parameters())
    return net(pixel_values.to(device=param.device, dtype=param.dtype), **kwargs)


def resolve_targets(target: Any, logits: torch.Tensor) -> torch.Tensor:
    """Class indices to explain, one per image: None -> the predicted class; an int -> that
    class for every image; a list -> one per image. Used by gradient rollout and Grad-CAM."""
    b, n = logits.shape
    if target is None:
        return logits.argmax(-1)
    t = torch.as_tensor(target, dtype=torch.long).flatten()
    if t.numel() == 1:
        t = t.expand(b)
    if t.numel() != b:
        raise ValueError(f"target has {t.numel()} entries for a batch of {b}; give one class or one per image")
    if ((t < 0) | (t >= n)).any():
        raise IndexError(f"target class {t.tolist()} out of range: the model has {n} classes (0..{n - 1})")
    return t.to(logits.device)


def targets_for(net: torch.nn.Module, target: Any, logits: torch.Tensor) -> torch.Tensor:
    """Output indices to explain, one per image (``resolve_targets``), for classifiers and regression
    models alike: a regression model has no predicted class, so None is allowed only for a
    single-output one (output 0); otherwise pass an output index, or one per image."""
    if target is None and arch.is_regression(net):
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
    """(chunk, its slice of ``target``) for chunks of ``batch_size`` images: a per-image target list
    is split with the images, a single class (or None) goes with every chunk."""
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
