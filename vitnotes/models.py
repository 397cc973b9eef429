"""Load a model by zoo name, hub id or local folder; its geometry.

Introduced in notebook 00 (attention math); every later notebook starts with ``vn.load``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .images import Preprocessing

__all__ = [
    "Geometry",
    "Model",
    "geometry",
    "load",
    "zoo_names",
    "ZOO_DIR",
    "card",
    "randomized",
]

# the offline zoo; VITNOTES_ZOO points elsewhere (e.g. a zoo being retrained, before it replaces this one)
ZOO_DIR = Path(os.environ.get("VITNOTES_ZOO") or Path(__file__).parent / "zoo").expanduser()
_PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.pth", "model.ckpt")
_SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")


# --------------------------------------------------------------------------- geometry
@dataclass(frozen=True)
class Geometry:
    """What a notebook needs to know about a model's shape.

    ``kind`` is ``"vit"`` (ViT, DeiT) or ``"cnn"`` (ResNet). For a ViT, ``prefix`` counts the
    tokens before the patches (1 for ViT's CLS, 2 for DeiT's CLS + distillation token) and
    ``grid`` is the patch grid at the model's native ``image_size``. For a CNN, ``layers``
    counts its stages and the attention fields are 0 / None.
    """

    kind: str
    layers: int
    heads: int
    head_dim: int
    hidden: int
    patch_size: int | None
    image_size: int
    channels: int
    prefix: int = 0

    @property
    def grid(self) -> tuple[int, int]:
        """Patch grid (rows, cols) at the native image size."""
        if self.patch_size is None:
            raise ValueError("a CNN has no patch grid; use vn.gradcam for its spatial maps")
        return (self.image_size // self.patch_size,) * 2

    @property
    def tokens(self) -> int:
        """Tokens per image at the native size: prefix tokens + patches."""
        gh, gw = self.grid
        return self.prefix + gh * gw

    def grid_for(self, height: int, width: int) -> tuple[int, int]:
        """Patch grid for an input of ``height x width`` pixels (interpolated positions)."""
        self.require_vit("a patch grid")
        p = self.patch_size
        if height % p or width % p:
            raise ValueError(
                f"image size {height}x{width} is not a multiple of the patch size {p}; "
                f"resize to a multiple of {p} (model.preprocess does this for you)"
            )
        return height // p, width // p

    def require_vit(self, what: str) -> None:
        if self.kind != "vit":
            raise TypeError(
                f"{what} needs a ViT-family model (ViT, DeiT), but this model is a {self.kind.upper()}; "
                "for CNNs use vn.gradcam(model, pixel_values, stage=...)"
            )

    def layer(self, layer: int) -> int:
        """Normalise a layer index (negative counts from the end) and check its range."""
        return _index(layer, self.layers, "layer", "layers" if self.kind == "vit" else "stages")

    def head(self, head: int) -> int:
        """Check a head index (negative counts from the end)."""
        self.require_vit("a head index")
        return _index(head, self.heads, "head", "heads per layer")


def _index(value: int, n: int, what: str, unit: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be an int, got {type(value).__name__}")
    if not -n <= value < n:
        raise IndexError(f"{what} {value} is out of range: this model has {n} {unit}, use 0..{n - 1} or -1..-{n}")
    return int(value) % n


def _vit_layers(net: torch.nn.Module):
    """The list of transformer blocks of a ViT-family model, or None."""
    base = getattr(net, "base_model", net)
    layers = getattr(base, "layers", None)
    if layers is None:
        encoder = getattr(base, "encoder", None)
        layers = getattr(encoder, "layer", None) or getattr(encoder, "layers", None)
    if layers is None or len(layers) == 0:
        return None
    attn = getattr(layers[0], "attention", None)
    if attn is None or not all(hasattr(attn, n) for n in ("q_proj", "k_proj", "o_proj")):
        return None
    return layers


def _cnn_stages(net: torch.nn.Module):
    base = getattr(net, "base_model", net)
    encoder = getattr(base, "encoder", None)
    return getattr(encoder, "stages", None)


def _square(value: Any, what: str) -> int:
    """An int from a config entry that may be a (height, width) pair; vitnotes needs square ones."""
    if isinstance(value, (list, tuple)):
        if len(set(value)) != 1:
            raise ValueError(f"{what} {tuple(value)} is not square; vitnotes supports square images and patches")
        value = value[0]
    return int(value)


def geometry(net: torch.nn.Module) -> Geometry:
    """Geometry of a transformers image model (ViT / DeiT / ResNet family)."""
    if isinstance(net, Model):
        return net.geometry
    cfg = getattr(net, "config", None)
    if cfg is None:
        raise TypeError(
            f"expected a transformers model or a vn.Model, got {type(net).__name__}; load one with vn.load(...)"
        )
    layers = _vit_layers(net)
    if layers is not None:
        heads = cfg.num_attention_heads
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
        prefix = 2 if cfg.model_type == "deit" else 1
        return Geometry(
            kind="vit",
            layers=len(layers),
            heads=heads,
            head_dim=head_dim,
            hidden=cfg.hidden_size,
            patch_size=_square(cfg.patch_size, "patch_size"),
            image_size=_square(cfg.image_size, "image_size"),
            channels=int(cfg.num_channels),
            prefix=prefix,
        )
    stages = _cnn_stages(net)
    if stages is not None:
        return Geometry(
            kind="cnn",
            layers=len(stages),
            heads=0,
            head_dim=0,
            hidden=int(cfg.hidden_sizes[-1]),
            patch_size=None,
            image_size=_square(getattr(cfg, "image_size", 224) or 224, "image_size"),
            channels=int(cfg.num_channels),
        )
    raise TypeError(
        f"{type(net).__name__} (model_type={cfg.model_type!r}) is neither a ViT-family model with "
        "q/k/o projections (ViT, DeiT) nor a CNN with encoder stages (ResNet); vitnotes supports those"
    )


# --------------------------------------------------------------------------- the bundle
@dataclass
class Model:
    """A loaded model: the transformers module, its geometry, labels and preprocessing.

    Every vitnotes function takes either a ``Model`` or a bare transformers model.
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
        raise ValueError(f"pixel_values of shape {tuple(x.shape)} has no batch dimension; use x[None] or x.unsqueeze(0)")
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


def vit_input(model: Any, pixel_values: Any, batch_size: int, what: str) -> tuple[torch.nn.Module, Geometry, torch.Tensor]:
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


# --------------------------------------------------------------------------- loading
def zoo_names() -> list[str]:
    """Names of the models in the offline zoo (folders under ``vitnotes/zoo``)."""
    if not ZOO_DIR.is_dir():
        return []
    return sorted(p.name for p in ZOO_DIR.iterdir() if (p / "config.json").is_file())


def _resolve(name: str | Path) -> tuple[str, str]:
    """-> (kind, where): kind is 'zoo', 'folder' or 'hub'."""
    name = str(name)
    if "/" not in name and "\\" not in name and name not in (".", "..") and (ZOO_DIR / name / "config.json").is_file():
        return "zoo", str(ZOO_DIR / name)
    path = Path(name).expanduser()
    if path.is_dir():
        return "folder", str(path)
    if path.exists():
        raise ValueError(f"{name!r} is a file; vn.load wants a folder with config.json and model.safetensors")
    parts = name.split("/")
    if len(parts) == 2 and all(parts) and not name.startswith((".", "~")):
        return "hub", name
    zoo = ", ".join(zoo_names()) or "none installed yet"
    raise ValueError(
        f"unknown model {name!r}: not a zoo model (available: {zoo}), not an existing folder, "
        "and not a hub id of the form 'owner/name' (e.g. 'google/vit-base-patch16-224')"
    )


def _check_folder(folder: Path) -> None:
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} has no config.json; save models with model.save_pretrained(folder)")
    if any((folder / f).is_file() for f in _SAFE_WEIGHTS):
        return
    pickles = [f for f in _PICKLE_WEIGHTS if (folder / f).is_file()]
    if pickles:
        raise ValueError(
            f"{folder} holds only pickle weights ({', '.join(pickles)}); vitnotes loads safetensors only, "
            "because unpickling can run arbitrary code. Convert once, in a process you trust: "
            "AutoModelForImageClassification.from_pretrained(folder).save_pretrained(folder, safe_serialization=True)"
        )
    raise FileNotFoundError(f"{folder} has no model.safetensors; save the model with model.save_pretrained(folder)")


def _preprocessor_dict(kind: str, where: str) -> dict:
    if kind in ("zoo", "folder"):
        f = Path(where) / "preprocessor_config.json"
        return json.loads(f.read_text()) if f.is_file() else {}
    from transformers.image_processing_utils import ImageProcessingMixin

    try:
        d, _ = ImageProcessingMixin.get_image_processor_dict(where)
        return d
    except OSError:
        return {}


def load(
    name: str | Path,
    *,
    attn_implementation: str | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> Model:
    """Load a model by zoo name (``"fmnist-vit-p4"``), hub id (``"google/vit-base-patch16-224"``)
    or local folder, in evaluation mode. Weights load from safetensors only.

    ``attn_implementation`` (``"sdpa"``, ``"eager"``) is passed to transformers; vitnotes' attention
    capture works under either. ``dtype`` defaults to float32 (the zoo stores float16 weights; the
    analyses want float32). Introduced in notebook 00.
    """
    from transformers import AutoConfig, AutoModelForImageClassification

    kind, where = _resolve(name)
    if kind != "hub":
        _check_folder(Path(where))
    kwargs: dict[str, Any] = {"use_safetensors": True, "trust_remote_code": False}
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    kwargs["dtype"] = dtype or torch.float32  # zoo weights are stored in float16; analysis runs in float32
    try:
        config = AutoConfig.from_pretrained(where, trust_remote_code=False)
    except (OSError, ValueError) as err:
        raise _load_error(name, kind, err) from None
    try:
        net = AutoModelForImageClassification.from_pretrained(where, **kwargs)
    except (OSError, ValueError, RuntimeError) as err:
        raise _load_error(name, kind, err) from None
    except Exception as err:  # safetensors' own errors (corrupt header, truncated file)
        if "safetensor" in type(err).__module__ + type(err).__name__ + str(err).lower():
            raise _load_error(name, kind, err) from None
        raise
    net.eval().to(device)
    geom = geometry(net)
    n = int(getattr(config, "num_labels", 0) or 0)
    id2label = getattr(config, "id2label", None) or {}
    labels = [str(id2label.get(i, id2label.get(str(i), f"class {i}"))) for i in range(n)]
    pre = Preprocessing.from_dict(_preprocessor_dict(kind, where), geom)
    return Model(net=net, geometry=geom, labels=labels, preprocessing=pre, name=str(name), source=kind)


def _load_error(name: str | Path, kind: str, err: Exception) -> Exception:
    msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if "loaded with `safetensors`" in msg or "does not appear to have a file named model.safetensors" in msg:
        return ValueError(
            f"{name!r} ships no model.safetensors, only pickle weights; vitnotes loads safetensors only, because "
            "unpickling can run arbitrary code. Pick a repository or folder with safetensors weights, or convert "
            "once, in a process you trust: AutoModelForImageClassification.from_pretrained(...).save_pretrained(folder)"
        )
    if kind == "hub":
        return OSError(
            f"could not load hub model {name!r} ({msg}). Offline (HF_HUB_OFFLINE=1 or no network) only models "
            "already in the Hugging Face cache load: go online once, or pass a local folder or a zoo name "
            f"({', '.join(zoo_names()) or 'none installed yet'}); online, check the id on huggingface.co"
        )
    return ValueError(
        f"could not load the weights in {name!r} ({msg}); the checkpoint is missing or corrupt: "
        "re-save it with model.save_pretrained(folder), or re-create a zoo model with "
        "python -m vitnotes.train <name>"
    )


def save(model: Model | torch.nn.Module, folder: str | Path, preprocessing: Preprocessing | None = None) -> Path:
    """Save a model as safetensors (+ config + preprocessing) atomically: a crash leaves the old folder intact."""
    import shutil
    import tempfile

    net, geom = unwrap(model)
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    pre = preprocessing or (model.preprocessing if isinstance(model, Model) else None)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; a saved model is an ordinary folder
    try:
        net.save_pretrained(tmp, safe_serialization=True)
        if pre is not None:
            (tmp / "preprocessor_config.json").write_text(json.dumps(pre.to_dict(), indent=2))
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            folder.rename(old)
            tmp.rename(folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder



# --------------------------------------------------------------------------- cards and controls
def card(name: str | Path) -> dict:
    """The card of a zoo model (its ``card.json``): recipe, test metrics, training time, machine.

    ``card("fmnist-vit-p2")["metrics"]["test_accuracy"]`` is the accuracy on all 10,000 test
    images. A folder written by ``python -m vitnotes.train`` (e.g. a hub recipe's) has a card too:
    pass its path. Introduced in notebook 05 (patch size).
    """
    if isinstance(name, (str, Path)) and Path(name).expanduser().is_dir() and str(name) not in zoo_names():
        f = Path(name).expanduser() / "card.json"
        if not f.is_file():
            raise FileNotFoundError(f"{f} is missing: only folders written by python -m vitnotes.train have a card")
        return json.loads(f.read_text())
    if not isinstance(name, str) or name not in zoo_names():
        raise ValueError(
            f"{name!r} is not a zoo model (available: {', '.join(zoo_names()) or 'none installed yet'}) nor a "
            "folder written by python -m vitnotes.train; hub models have no vitnotes card"
        )
    f = ZOO_DIR / name / "card.json"
    if not f.is_file():
        raise FileNotFoundError(f"{f} is missing; re-create the card with python -m vitnotes.train {name}")
    return json.loads(f.read_text())


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
    if isinstance(from_layer, bool) or not isinstance(from_layer, (int, np.integer)):
        raise TypeError(f"from_layer must be an int, got {type(from_layer).__name__}")
    if not -geom.layers <= from_layer <= geom.layers:
        raise IndexError(
            f"from_layer {from_layer} is out of range: use 0..{geom.layers} ({geom.layers} = only the classifier "
            f"head is randomised) or -1..-{geom.layers}"
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    start = int(from_layer) % geom.layers if from_layer < 0 else int(from_layer)
    new = copy.deepcopy(net)
    std = float(getattr(new.config, "initializer_range", 0.02))
    blocks = _vit_layers(new)
    base = getattr(new, "base_model", new)
    below = {id(m) for layer in blocks for m in layer.modules()}
    emb = getattr(base, "embeddings", None)
    emb_ids = {id(m) for m in emb.modules()} if emb is not None else set()
    head = [m for m in new.modules() if id(m) not in below and id(m) not in emb_ids]
    stride = geom.layers + 2
    _reinit(head, std, seed * stride + geom.layers)
    for i in range(start, geom.layers):
        _reinit(list(blocks[i].modules()), std, seed * stride + i)
    if embeddings and emb is not None:
        _reinit(list(emb.modules()), std, seed * stride + geom.layers + 1)
    new.eval()
    if not isinstance(model, Model):
        return new
    what = f"blocks {start}..{geom.layers - 1} + head" if start < geom.layers else "head only"
    if embeddings:
        what += " + embeddings"
    return Model(net=new, geometry=geom, labels=list(model.labels), preprocessing=model.preprocessing,
                 name=f"{model.name} randomised ({what}, seed {seed})", source="randomized")
