"""The bundle a notebook works with (``Model``), its geometry, and the checks every analysis
starts with. Introduced in notebook 00 (attention math); ``vn.load`` (``zoo.py``) returns a ``Model``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from . import arch
from .geometry import Geometry, as_int, is_scalar
from .images import Preprocessing

__all__ = [
    "Model", "TargetError", "class_indices", "class_labels", "geometry", "unwrap", "check_pixel_values", "vit_input",
    "evaluation", "forward", "resolve_targets", "targets_for", "score", "chunked", "chunk_size", "check_batch_size",
    "per_image",
]  # fmt: skip


def _square(value: Any, what: str) -> int:
    """An int from a config entry that may be a (height, width) pair; vitnotes needs square ones."""
    if isinstance(value, (list, tuple)):
        if len(set(value)) != 1:
            raise ValueError(f"{what} {tuple(value)} is not square; vitnotes supports square images and patches")
        value = value[0]
    return int(value)


def geometry(net: torch.nn.Module) -> Geometry:
    """Geometry of a transformers image model (ViT / DeiT / DINOv2 / BEiT / Swin / ResNet / ConvNeXt family;
    the README's family table). Introduced in notebook 00 (attention math)."""
    if isinstance(net, Model):
        return net.geometry
    cfg = getattr(net, "config", None)
    if cfg is None:
        raise TypeError(
            f"expected a transformers model or a vn.core.Model, got {type(net).__name__}; load one with vn.load(...)"
        )
    if arch.is_image_text(net):
        raise TypeError(
            f"{type(net).__name__} (CLIP / SigLIP) is explained through text prompts: wrap it with "
            "vn.prompts(model, ['a photo of a cat', 'a photo of a dog']) or load it with vn.load(folder, prompts=[...])"
        )
    refused = arch.unsupported(net)
    if refused:
        raise TypeError(refused)
    swin = arch.swin_stages(net)
    if swin is not None:
        return _swin_geometry(cfg, len(swin))
    layers = arch.vit_layers(net)
    if layers is not None:
        return _vit_geometry(cfg, len(layers))
    stages = arch.cnn_stages(net)
    if stages is not None:
        return _cnn_geometry(cfg, len(stages))
    raise TypeError(
        f"{type(net).__name__} (model_type={arch.family_of(net)!r}) is neither a ViT-family model with "
        "q/k/o projections (ViT, DeiT, DINOv2, BEiT) nor a Swin nor a CNN with encoder stages (ResNet, ConvNeXt); "
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


def _swin_geometry(cfg: Any, stages: int) -> Geometry:
    """A Swin: ``layers`` counts its stages, the grid is its first stage's (the patch grid), no prefix
    token; its heads differ by stage, so the attention fields are 0 (``vn.core.window_attention`` reads them)."""
    return Geometry(
        kind="swin",
        layers=stages,
        heads=0,
        head_dim=0,
        hidden=int(cfg.hidden_size),
        patch_size=_square(cfg.patch_size, "patch_size"),
        image_size=_square(cfg.image_size, "image_size"),
        channels=int(cfg.num_channels),
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
        chunks = pixel_values.split(check_batch_size(batch_size))
        return torch.cat([forward(self.net, chunk).logits for chunk in chunks])

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
    raise TypeError(f"expected a vn.core.Model or a transformers model, got {type(model).__name__}; use vn.load(...)")


def check_pixel_values(pixel_values: Any, geom: Geometry) -> torch.Tensor:
    """Validate a ``pixel_values`` batch (batch, C, H, W) against a model's geometry."""
    if not isinstance(pixel_values, torch.Tensor):
        raise TypeError(
            f"pixel_values must be a torch tensor (batch, C, H, W), got {type(pixel_values).__name__}; "
            "turn images into one with model.preprocess(images)"
        )
    x = pixel_values
    if x.ndim == 3:
        raise ValueError(f"pixel_values of shape {tuple(x.shape)} is not a batch (batch, C, H, W); {_three_d(x, geom)}")
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
    if geom.kind in ("vit", "swin"):
        geom.grid_for(x.shape[2], x.shape[3])
    if not torch.isfinite(x).all():
        raise ValueError("pixel_values contains NaN or inf; check the images and their normalisation")
    return x


def _three_d(x: torch.Tensor, geom: Geometry) -> str:
    """The fix for a 3-D ``pixel_values``, by what it can be for this model."""
    n, c = x.shape[0], geom.channels
    if n == c:
        return f"for one image of {c} channel{'s' * (c > 1)} use x[None] or x.unsqueeze(0)"
    if c == 1:
        return f"for {n} grey images use x[:, None] or x.unsqueeze(1)"
    return (
        f"it has no channel axis and this model takes {c} channels: make pixel_values from the raw images "
        "with model.preprocess(list(x)), which turns grey images into colour"
    )


def vit_input(
    model: Any, pixel_values: Any, batch_size: int, what: str
) -> tuple[torch.nn.Module, Geometry, torch.Tensor]:
    """The checks every ViT analysis starts with: a ViT-family model (``what`` names the analysis in
    the error), a valid ``pixel_values`` batch and ``batch_size >= 1``. Returns (module, geometry,
    pixel_values)."""
    net, geom = unwrap(model)
    geom.require_vit(what)
    pixel_values = check_pixel_values(pixel_values, geom)
    check_batch_size(batch_size, optional=True)
    return net, geom, pixel_values


def check_batch_size(batch_size: Any, optional: bool = False) -> int | None:
    """``batch_size`` as an int >= 1 (``as_int``: a numpy integer or a whole float is taken as that int),
    or None where ``optional`` (the caller sizes chunks for the device); anything else refused in one line."""
    if batch_size is None and optional:
        return None
    return as_int(batch_size, "batch_size", least=1)


# What one image costs in a chunk, in bytes, by what the method keeps (T tokens, D hidden, H heads,
# L layers, b bytes per element of the model's dtype): an inference forward's activations; plus one
# layer's full attention (scores in the model's dtype, float32 probabilities, their cast for P V, a
# float32 [T, T] running product); or a training-style graph of every layer (activations, the
# probabilities and their gradients).
_PER_IMAGE = {
    "forward": lambda t, d, h, n, b: 16 * t * d * b,
    "attention": lambda t, d, h, n, b: 16 * t * d * b + h * t * t * (8 + 2 * b) + 8 * t * t,
    "graph": lambda t, d, h, n, b: n * (24 * t * d * b + h * t * t * (8 + 2 * b)),
}
GPU_MEMORY_SHARE = 0.3  # of the free memory one chunk may take
MAX_CHUNK = 512  # beyond this a GPU's throughput no longer grows (launches are amortised)


def chunk_size(model: Any, pixel_values: torch.Tensor, batch_size: int | None, *, cpu: int, keeps: str) -> int:
    """Images per chunk: ``batch_size`` when given; otherwise ``cpu`` when the model is on the CPU
    (sized for two cores' cache and memory, what the book's numbers were computed with), and on a GPU
    as many images as ``GPU_MEMORY_SHARE`` of its free memory holds (at most ``MAX_CHUNK``), an image
    costing what ``keeps`` says (``"forward"``, ``"attention"``: one layer's full matrices, ``"graph"``:
    a forward with autograd). Introduced in notebook 01; ``benchmarks/RESULTS.md`` has the GPU figures."""
    if batch_size is not None:
        return check_batch_size(batch_size)
    net, geom = unwrap(model)
    param = next(net.parameters())
    if param.device.type != "cuda":
        return cpu
    free, _ = torch.cuda.mem_get_info(param.device)
    if geom.kind == "vit":
        rows, cols = geom.grid_for(*pixel_values.shape[-2:])
        t, h, n = rows * cols + geom.prefix, geom.heads, geom.layers
    elif geom.kind == "swin":  # its first stage's tokens in every block (an over-estimate later); windows are small
        rows, cols = geom.grid_for(*pixel_values.shape[-2:])
        t, h, n = rows * cols, 0, len(arch.swin_blocks(net))
    else:  # a CNN: count its pixels as tokens of its widest stage
        t, h, n = pixel_values.shape[-2] * pixel_values.shape[-1] // 16, 0, geom.layers
    each = _PER_IMAGE[keeps](t, geom.hidden, h, n, param.element_size())
    return int(max(1, min(MAX_CHUNK, GPU_MEMORY_SHARE * free // each)))


@contextmanager
def evaluation(net: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Evaluation mode for the duration (dropout off, batch norm on its running statistics), then every
    submodule back in the mode it was in, even on error: a model the user left in training mode gives
    the same results as in evaluation mode, and stays in training mode. Introduced in notebook 00."""
    training = [m for m in net.modules() if m.training]
    if not training:
        yield net
        return
    net.eval()
    try:
        yield net
    finally:
        for m in training:
            m.training = True


def forward(net: torch.nn.Module, pixel_values: torch.Tensor, **kwargs):
    """Run ``net`` on a batch in evaluation mode (``evaluation``); a ViT given another image size uses
    interpolated positions."""
    cfg = net.config
    if getattr(cfg, "patch_size", None) is not None and tuple(pixel_values.shape[-2:]) != (cfg.image_size,) * 2:
        kwargs.setdefault("interpolate_pos_encoding", True)
    param = next(net.parameters())
    with evaluation(net):
        return net(pixel_values.to(device=param.device, dtype=param.dtype), **kwargs)


class TargetError(IndexError, ValueError):
    """A class index that is negative or out of range: an ``IndexError``, as layer and head indices
    raise, that ``except ValueError`` catches too."""


def class_labels(net: Any) -> list[str] | None:
    """A model's class names by index (``config.id2label``; a ``vn.core.Model``'s ``labels``), or None."""
    if isinstance(net, Model):
        return list(net.labels)
    id2label = getattr(getattr(net, "config", None), "id2label", None) or {}
    n = int(getattr(net.config, "num_labels", 0) or 0) if id2label else 0
    return [str(id2label.get(i, id2label.get(str(i), f"class {i}"))) for i in range(n)] or None


def per_image(values: Any) -> Any:
    """Per-image values held in another sequence than a list, tuple, array or tensor (a ``datasets``
    ``Column`` such as ``ds["label"]``, a pandas ``Series``, a ``range``) as a list, so they are taken
    as every other sequence is; anything else (one value, a list, an array, a tensor) as it is."""
    kept = (str, bytes, list, tuple, set, frozenset, Mapping, torch.Tensor, np.ndarray)  # a set has no order
    if is_scalar(values) or isinstance(values, kept):
        return values
    return list(values) if hasattr(values, "__len__") and hasattr(values, "__iter__") else values


def class_indices(target: Any, n: int | None = None, labels: list[str] | None = None, what: str = "target") -> list:
    """Class indices from a target in whatever form a user holds it: an int, a numpy integer, a 0-d or
    1-D tensor or array of integers, a class name (``labels``: ``config.id2label``; case-insensitive,
    or one of a label's comma-separated names, e.g. ``"tabby cat"``), or a list of any of these (one
    per image). Checked against ``n`` classes: floats, bools, negative and out-of-range indices and
    unknown names are refused with an error naming the fix. Introduced in notebook 03 (CNN vs ViT)."""
    target = per_image(target)
    if isinstance(target, (torch.Tensor, np.ndarray)) and target.ndim > 0:
        target = target.reshape(-1).tolist()
    entries = list(target) if isinstance(target, (list, tuple)) else [target]
    return [_class_index(v, n, labels, what) for v in entries]


def _class_index(value: Any, n: int | None, labels: list[str] | None, what: str) -> int:
    if isinstance(value, (torch.Tensor, np.ndarray)):
        if value.ndim != 0:
            raise ValueError(f"{what} has a nested entry of shape {tuple(value.shape)}; give one class per image")
        value = value.item()
    if isinstance(value, str):
        return _label_index(value, n, labels, what)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        kind = "a float" if isinstance(value, (float, np.floating)) else f"a {type(value).__name__}"
        raise TypeError(
            f"{what} {value!r} is {kind}; give a class index (an int, e.g. 3) or a class name "
            "(model.labels), or one per image"
        )
    idx = int(value)
    span = "" if n is None else f": the model has {n} classes (0..{n - 1})"
    if idx < 0:
        raise TargetError(
            f"{what} {idx} is negative{span}; class indices count from 0 (a label of -1 or -100 usually "
            "marks an image to skip: leave such images out)"
        )
    if n is not None and idx >= n:
        raise TargetError(f"{what} {idx} is out of range{span}; give an index 0..{n - 1} or a class name")
    return idx


def _label_index(name: str, n: int | None, labels: list[str] | None, what: str) -> int:
    """A class name's index: exact, then case-insensitive, then one of a label's comma-separated names;
    a string of digits that names no class is taken as an index."""
    if labels is not None:
        key = name.strip().lower()
        for match in (
            lambda label: label == name,
            lambda label: label.strip().lower() == key,
            lambda label: key in (part.strip().lower() for part in label.split(",")),
        ):
            hits = [i for i, label in enumerate(labels) if match(label)]
            if len(hits) == 1:
                return hits[0]
            if hits:
                raise ValueError(f"{what} {name!r} names several classes {hits}; give the class index")
    if name.strip().lstrip("-").isdigit():
        return _class_index(int(name), n, labels, what)
    if labels is None:
        raise TypeError(
            f"{what} {name!r} is a class name, and no class names are known here; give its index "
            f"(e.g. model.labels.index({name!r}))"
        )
    shown = ", ".join(repr(label) for label in labels[:10]) + (", ..." if len(labels) > 10 else "")
    raise ValueError(
        f"{what} {name!r} is not a class of this model; give an index 0..{len(labels) - 1} or one of its "
        f"names (model.labels: {shown})"
    )


def resolve_targets(target: Any, logits: torch.Tensor, labels: list[str] | None = None) -> torch.Tensor:
    """Class indices to explain, one per image: None -> the predicted class; one class (``class_indices``:
    an int, a numpy integer, a 0-d tensor, a name in ``labels``) -> that class for every image; a list,
    array or tensor -> one per image. Used by every class-specific method."""
    b, n = logits.shape
    if target is None:
        return logits.argmax(-1)
    t = torch.tensor(class_indices(target, n, labels), dtype=torch.long)
    if t.numel() == 1:
        t = t.expand(b)
    if t.numel() != b:
        raise ValueError(f"target has {t.numel()} entries for a batch of {b}; give one class or one per image")
    return t.to(logits.device)


def targets_for(net: torch.nn.Module, target: Any, logits: torch.Tensor) -> torch.Tensor:
    """Output indices to explain, one per image (``resolve_targets``, class names from the model's
    ``id2label``), for classifiers and regression models alike: a regression model has no predicted
    class, so None is allowed only for a single-output one (output 0); otherwise pass an output index,
    or one per image."""
    if target is None and arch.is_regression(net):
        if logits.shape[1] != 1:
            raise ValueError(
                f"this regression model has {logits.shape[1]} outputs and no predicted class: pass target=<output "
                f"index> (0..{logits.shape[1] - 1}), or one per image"
            )
        target = 0
    return resolve_targets(target, logits, class_labels(net))


def score(logits: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The explained score per image: the target logit, or the target output of a regression model."""
    return logits.gather(1, t[:, None].to(logits.device))[:, 0]


def chunked(pixel_values: torch.Tensor, target: Any, batch_size: int) -> Iterator[tuple[torch.Tensor, Any]]:
    """(chunk, its slice of ``target``) for chunks of ``batch_size`` images: a per-image target list
    is split with the images, a single class (or None) goes with every chunk."""
    if batch_size is None:
        raise ValueError("chunked needs a batch size: resolve it with chunk_size first")
    batch_size, target = check_batch_size(batch_size), per_image(target)
    n = pixel_values.shape[0]
    several = target is not None and _entries(target) > 1
    if several:
        target = target.reshape(-1) if isinstance(target, (torch.Tensor, np.ndarray)) else list(target)
        if len(target) != n:
            raise ValueError(f"target has {len(target)} entries for a batch of {n}; give one class or one per image")
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        yield pixel_values[start:stop], (target[start:stop] if several else target)


def _entries(target: Any) -> int:
    """How many classes ``target`` gives: 1 for a single one (an int, a name, a 0-d tensor)."""
    if isinstance(target, (torch.Tensor, np.ndarray)):
        return int(np.prod(target.shape))
    return len(target) if isinstance(target, (list, tuple)) else 1
