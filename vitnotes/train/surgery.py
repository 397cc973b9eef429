"""Weight surgery: how one zoo model starts from another. A patch-2 ViT from the patch-4 one
(kernel sum-pooled, positions interpolated), the spectrogram ViT from the Fashion-MNIST one (1 -> 3
channels, 7x7 -> 14x14 positions, a new regression head). Introduced in notebook 07.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from .. import data as vdata
from ..core.images import Preprocessing
from ..core.model import Model, geometry
from ..zoo import load
from .recipes import FMNIST_MEAN, FMNIST_STD, RECIPES, SPECTRO_RECIPES, SPECTRO_SIZE, spectro_recipe


def new_net(name: str, seed: int = 0, init: str | Path | None = None) -> torch.nn.Module:
    """A recipe's network before training: random weights from ``seed`` (a ViT or a ResNet), with every
    block copied from the recipe's ``init`` model when it has one (for the spectrogram ViT: see
    ``spectro_net``)."""
    from transformers import ResNetConfig, ResNetForImageClassification, ViTConfig, ViTForImageClassification

    r = RECIPES[name]
    regress = r.get("task") == "regress"
    init = init or r.get("init")
    if regress and r["arch"] == "vit":
        return spectro_net(init, seed, r["input_size"])
    torch.manual_seed(seed)
    names = vdata.TARGET_NAMES if regress else vdata.FASHION_MNIST_CLASSES
    labels = dict(id2label=dict(enumerate(names)), label2id={c: i for i, c in enumerate(names)})
    if r["arch"] == "resnet":
        cfg = ResNetConfig(num_channels=3 if regress else 1, num_labels=len(names), **labels, **r["config"])
        cfg.image_size = r["input_size"]
        cfg.problem_type = "regression" if regress else None
        return ResNetForImageClassification(cfg)
    net = ViTForImageClassification(ViTConfig(num_labels=10, **labels, **r["config"]))
    if init:
        transfer(load(init).net, net)
    return net


def resize_positions(pos: torch.Tensor, grid: int) -> torch.Tensor:
    """(1, 1 + g*g, D) position embeddings -> (1, 1 + grid*grid, D), bicubic on the patch grid."""
    cls, patches = pos[:, :1], pos[:, 1:]
    g = int(math.isqrt(patches.shape[1]))
    patches = patches.reshape(1, g, g, -1).permute(0, 3, 1, 2)
    patches = F.interpolate(patches, size=(grid, grid), mode="bicubic", align_corners=False)
    return torch.cat([cls, patches.permute(0, 2, 3, 1).reshape(1, grid * grid, -1)], dim=1)


@torch.no_grad()
def transfer(src: torch.nn.Module, dst: torch.nn.Module) -> None:
    """Start ``dst`` from ``src`` (same width/depth): copy every block, resize the patch embedding so a
    patch of the new size gives the same token as the old patch size on a nearest-upsampled image
    (sum-pooling the kernel), expand 1 -> C input channels (weights / C), interpolate positions."""
    s, d = src.state_dict(), dst.state_dict()
    for k, v in s.items():
        if k not in d:
            continue
        if k.endswith("patch_embeddings.projection.weight"):
            w, (p_new, c_new) = v, (d[k].shape[-1], d[k].shape[1])
            if w.shape[-1] != p_new:
                f = w.shape[-1] // p_new
                w = w.reshape(*w.shape[:2], p_new, f, p_new, f).sum(dim=(3, 5))
            v = w.repeat(1, c_new, 1, 1) / c_new if w.shape[1] != c_new else w
        elif k.endswith("position_embeddings"):
            v = resize_positions(v, int(math.isqrt(d[k].shape[1] - 1)))
        if v.shape == d[k].shape:
            d[k] = v
    dst.load_state_dict(d)


def preprocessing(name: str) -> Preprocessing:
    """The preprocessing a recipe's model ships (and trains with)."""
    r = RECIPES[name]
    if name in SPECTRO_RECIPES:  # spectrograms are rendered at the model's size: a plain rescale to [-1, 1]
        return Preprocessing(r["input_size"], (0.5,) * 3, (0.5,) * 3, 3, ("square", r["input_size"]))
    return Preprocessing(r["input_size"], (FMNIST_MEAN,), (FMNIST_STD,), 1, ("square", r["input_size"]))


def spectro_net(init: str | Path, seed: int, size: int = SPECTRO_SIZE) -> torch.nn.Module:
    """The network ``train_spectro`` starts from: a ``size`` px, 3-channel regression ViT with every
    block of ``init`` copied in (for ``fmnist-vit-p4``: patch kernel 1 -> 3 channels, positions 7x7 ->
    14x14; a hub ViT-B/16 at 224 px is copied as it is); the 3-output regression head is new
    (initialised from ``seed``)."""
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(seed)
    base = load(init).net
    names = dict(
        id2label=dict(enumerate(vdata.TARGET_NAMES)), label2id={n: i for i, n in enumerate(vdata.TARGET_NAMES)}
    )
    cfg = ViTConfig(**{**base.config.to_dict(), "image_size": size, "num_channels": 3, **names})
    cfg.problem_type = "regression"
    net = ViTForImageClassification(cfg)
    transfer(base, net)
    return net


def starting_point(init: str | Path | None = None, seed: int = 0, recipe: str = "spectro-vit") -> Model:
    """``spectro-vit`` before fine-tuning: ``fmnist-vit-p4`` (or ``init``) moved onto the spectrogram
    geometry exactly as ``python -m vitnotes.train spectro-vit`` starts it (56 px RGB, patch 4, a
    14x14 grid with positions interpolated from 7x7, the patch kernel spread over 3 channels, a new
    3-output regression head), as a ``vn.core.Model`` in evaluation mode with spectro-vit's preprocessing.

    Its attention is the Fashion-MNIST model's attention applied to spectrograms; its outputs are
    meaningless (the head is untrained). ``recipe="spectro-vit-b16"`` gives the hub recipe's start:
    ``google/vit-base-patch16-224`` at 224 px with the same new head. Introduced in notebook 07.
    """
    r = spectro_recipe(recipe)
    init = r["init"] if init is None else init
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int (the recipe uses 0), got {seed!r}")
    net = spectro_net(init, seed, r["input_size"]).eval()
    return Model(
        net=net,
        geometry=geometry(net),
        labels=list(vdata.TARGET_NAMES),
        preprocessing=preprocessing(recipe),
        name=f"{Path(str(init)).name} -> spectro (start)",
        source="train.starting_point",
    )
