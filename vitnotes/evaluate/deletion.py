"""Deletion curves (Petsiuk et al. 2018, "RISE"): delete the most-attributed pixels first (set
them to the background value), follow the probability of the class the model predicted on the
intact image, and take the area under that curve; lower = the map found pixels the model needs.
A random order is the control. Introduced in notebook 03 (CNN vs ViT).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..core.batches import Part, gather, is_dataset, part
from ..core.geometry import as_int
from ..core.images import image_stack
from ..core.model import Model, check_batch_size, resolve_targets
from ..stats import as_maps
from .agreement import resize_maps

__all__ = ["delete_pixels", "deletion_auc", "deletion_curve", "deletion_order", "deletion_study", "deletion_summary"]


def deletion_order(maps: Any, seed: int = 0, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Pixel indices (raster order) from most to least attributed, ``[batch, pixels]``.

    Ties (e.g. the zeros of a Grad-CAM after its ReLU, or the pixels of one patch) are broken at
    random with ``seed``, so a tie never favours the top of the image: one random permutation per
    image, drawn in order. ``generator`` (instead of ``seed``) continues a sequence, so images
    ordered batch by batch with one generator get the orders of one call on all of them.
    Introduced in notebook 03 (CNN vs ViT).
    """
    m = as_maps(maps).flatten(1)
    g = generator if generator is not None else torch.Generator().manual_seed(seed)
    perm = torch.stack([torch.randperm(m.shape[1], generator=g) for _ in range(m.shape[0])])  # random tie order
    ranked = torch.argsort(-m.gather(1, perm), dim=1, stable=True)
    return perm.gather(1, ranked)


def delete_pixels(images: Any, order: torch.Tensor, k: int, background: float = 0) -> np.ndarray:
    """Copies of raw ``images`` ``[batch, H, W(, C)]`` with the first ``k`` pixels of each image's
    ``order`` (from ``deletion_order``) set to ``background`` (all channels). Introduced in notebook 03 (CNN vs ViT)."""
    imgs = image_stack(images)
    b, h, w = imgs.shape[:3]
    order = torch.as_tensor(order)
    if tuple(order.shape) != (b, h * w):
        raise ValueError(f"order must be [batch, pixels] = ({b}, {h * w}), got {tuple(order.shape)}")
    if not 0 <= k <= h * w:
        raise ValueError(f"k must lie in 0..{h * w}, got {k}")
    out = imgs.copy().reshape(b, h * w, -1)
    rows = np.repeat(np.arange(b), k)
    out[rows, order[:, :k].numpy().reshape(-1)] = background
    return out.reshape(imgs.shape)


def _check_model(model: Any) -> Model:
    if not isinstance(model, Model):
        raise TypeError(
            f"deletion curves need a vn.core.Model (it preprocesses the edited images), got "
            f"{type(model).__name__}; load it with vn.load(...)"
        )
    return model


def _probs(model: Model, edited: np.ndarray, batch_size: int) -> torch.Tensor:
    """Softmax probabilities ``[n, classes]`` of raw images through the model's own preprocessing."""
    return model.predict(model.preprocess(edited), batch_size=batch_size).float().softmax(-1).cpu()


def _deletion(
    model: Model,
    imgs: np.ndarray,
    order: torch.Tensor,
    steps: int,
    background: float,
    target: Any,
    batch_size: int,
    ends: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, np.ndarray]:
    """Curves ``[batch, steps + 1]`` of raw images ``imgs`` deleted in ``order``, and the fractions;
    ``ends``: the probabilities of the intact and the fully deleted images when already known."""
    b, h, w = imgs.shape[:3]
    fractions = np.linspace(0.0, 1.0, steps + 1)
    ks = [int(round(f * h * w)) for f in fractions]
    if ends is None:  # the intact and the fully deleted images do not depend on the order
        ends = (
            _probs(model, imgs, batch_size),
            _probs(model, delete_pixels(imgs, order, h * w, background), batch_size),
        )
    inner = np.concatenate([delete_pixels(imgs, order, k, background) for k in ks[1:-1]]) if steps > 1 else None
    probs = [ends[0]]
    if inner is not None:
        probs += list(_probs(model, inner, batch_size).split(b))
    probs.append(ends[1])
    probs = torch.stack(probs)  # [steps + 1, batch, classes]
    t = resolve_targets(target, probs[0])
    curves = probs.gather(2, t[None, :, None].expand(len(fractions), b, 1))[..., 0].T  # [batch, steps + 1]
    return curves.contiguous(), fractions


def _order(imgs: np.ndarray, maps: Any, seed: int = 0, generator: torch.Generator | None = None) -> torch.Tensor:
    """The deletion order of each image from its map, resized to the image's pixels."""
    m = as_maps(maps)
    if m.shape[0] != imgs.shape[0]:
        raise ValueError(f"{m.shape[0]} maps for {imgs.shape[0]} images; pass one map per image")
    return deletion_order(resize_maps(m, tuple(imgs.shape[1:3])), seed, generator=generator)


def deletion_curve(
    model: Model,
    images: Any,
    maps: Any,
    *,
    steps: int = 10,
    background: float = 0,
    target: Any = None,
    seed: int = 0,
    batch_size: int = 128,
) -> tuple[torch.Tensor, np.ndarray]:
    """Deletion curve: the probability of the target class as the most-attributed pixels go.

    ``images``: raw images ``[batch, H, W(, C)]`` (uint8 as loaded); ``maps``: ``[batch, rows, cols]``
    attributions, resized to ``H x W`` bilinearly when on another grid. At each of ``steps + 1``
    fractions ``0, 1/steps, ..., 1`` of the pixels, the most-attributed ones (``deletion_order``)
    are set to ``background`` (0: black, Fashion-MNIST's background) in the raw image, which
    then goes through ``model.preprocess`` (so a 56-pixel CNN sees the same deletions as a
    28-pixel ViT). ``target``: None = the class the model predicts on the intact image.
    Returns (probabilities ``[batch, steps + 1]``, fractions). Introduced in notebook 03.
    """
    model = _check_model(model)
    steps, batch_size = as_int(steps, "steps", least=1), check_batch_size(batch_size)
    imgs = image_stack(images)
    return _deletion(model, imgs, _order(imgs, maps, seed), steps, background, target, batch_size)


def deletion_auc(curves: torch.Tensor, fractions: Sequence[float]) -> torch.Tensor:
    """Area under each deletion curve ``[batch, points]`` over ``fractions`` (trapezoid), ``[batch]``.
    Introduced in notebook 03 (CNN vs ViT)."""
    c = torch.as_tensor(curves, dtype=torch.float64)
    x = torch.as_tensor(np.asarray(fractions), dtype=torch.float64)
    if c.ndim != 2 or c.shape[1] != x.numel() or x.numel() < 2:
        raise ValueError(
            f"curves must be [batch, {x.numel()}] for {x.numel()} fractions (at least 2), got {tuple(c.shape)}"
        )
    return torch.trapezoid(c, x, dim=1).float()


def deletion_study(
    models: Mapping[str, Model],
    images: Any,
    maps: Mapping[str, Any],
    *,
    steps: int = 10,
    background: float = 0,
    seed: int = 0,
    batch_size: int = 128,
    progress: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every map kind deleted on every model: (curves, per-image AUCs), both long tables.

    ``curves``: one row per (model, map, fraction) with the mean and standard error over images
    of the probability of the model's originally predicted class. ``aucs``: one row per (model,
    map, image) with ``auc``. Each map kind's deletion order is tie-broken with the same ``seed``.
    Add ``vn.evaluate.random_maps`` as a map kind for the random control. Introduced in notebook 03.

    ``images``: raw images ``[batch, H, W(, C)]``, or a ``datasets.Dataset`` whose ``image`` column
    holds them (all of one size). Images go ``batch_size`` at a time, so memory holds ``steps``
    edited copies of one batch. Each map kind is per-image maps ``[images, rows, cols]`` in the
    images' order, a function of a batch of raw images returning its maps (e.g. ``lambda imgs:
    vn.explain(vit, vit.preprocess(imgs), "rollout")``), or, with a dataset, the name of a column
    holding them. Under ``accelerate launch`` each process deletes its part of the images; the
    per-image curves are gathered in image order, so every process returns one process's tables
    (``book/scale.md``).
    """
    steps, batch_size = as_int(steps, "steps", least=1), check_batch_size(batch_size)
    for m in models.values():
        _check_model(m)
    data = _deletion_input(images, maps, batch_size)
    curves, size = _study_curves(models, data, maps, steps, background, seed, batch_size, progress)
    parts = gather((curves, size))
    if len({s for _, s in parts if s is not None}) > 1:
        raise ValueError(f"images of several sizes {sorted({s for _, s in parts if s})}; resize them to one")
    fr = np.linspace(0.0, 1.0, steps + 1)
    whole = {job: torch.cat([c[job] for c, _ in parts]) for job in parts[0][0]}
    n = next(iter(whole.values())).shape[0]
    if n == 0:
        raise ValueError("the data set has no images; pass at least one")
    tables = _study_tables(whole, fr)
    for df in tables:
        df.attrs.update(images=int(n), steps=steps, background=background, processes=len(parts))
    return tables


def _deletion_input(images: Any, maps: Mapping[str, Any], batch_size: int) -> Part:
    """This process's part of a deletion study's raw images (and the map columns of a dataset)."""
    stream = is_dataset(images)
    if not stream:
        images = image_stack(images)
    roles = {f"map {k}": v for k, v in maps.items() if isinstance(v, str)}
    if roles and not stream:
        raise TypeError(f"map kinds {sorted(roles)} name columns; that needs a datasets.Dataset of images")
    data = part(images, None, roles, batch_size=batch_size, what="vn.evaluate.deletion_study", raw=True)
    if data.start is None:
        raise ValueError(
            "the deletion study breaks ties by each image's position, which a stream split over processes "
            "does not know: pass a map-style datasets.Dataset (not streaming), or run it in one process"
        )
    for kind, v in maps.items():
        if not (isinstance(v, str) or callable(v)) and data.total is not None and as_maps(v).shape[0] != data.total:
            raise ValueError(f"{as_maps(v).shape[0]} {kind!r} maps for {data.total} images; pass one map per image")
    return data


def _study_curves(models, data: Part, maps, steps, background, seed, batch_size, progress):
    """Each (model, map kind)'s curves on this process's images, ``{(model, map): [images, steps + 1]}``,
    and the images' (height, width) (None without images)."""
    gens = {kind: torch.Generator().manual_seed(seed) for kind in maps}
    curves: dict[tuple[str, str], list[torch.Tensor]] = {(mn, kind): [] for mn in models for kind in maps}
    size = None
    batches = data.batches
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, total=None if data.size is None else -(-data.size // batch_size), desc="deletion")
    for b in batches:
        imgs = b["images"]
        if size is None:  # one random tie order per image, in image order: skip the earlier processes' images
            size = tuple(imgs.shape[1:3])
            for g in gens.values():
                for _ in range(data.start):
                    torch.randperm(size[0] * size[1], generator=g)
        if tuple(imgs.shape[1:3]) != size:
            raise ValueError(f"images of two sizes ({size} and {tuple(imgs.shape[1:3])}); resize them to one")
        orders = {kind: _order(imgs, _batch_maps(v, b, kind), generator=gens[kind]) for kind, v in maps.items()}
        blank = np.full_like(imgs, background)
        for mn, model in models.items():
            ends = (_probs(model, imgs, batch_size), _probs(model, blank, batch_size))
            for kind, order in orders.items():
                curves[mn, kind].append(_deletion(model, imgs, order, steps, background, None, batch_size, ends)[0])
    empty = torch.zeros(0, steps + 1)
    return {job: torch.cat(c) if c else empty for job, c in curves.items()}, size


def _batch_maps(spec: Any, batch: dict, kind: str) -> torch.Tensor:
    """One batch's maps of one kind: from a function of the raw images, a dataset column, or the
    per-image maps at the batch's position."""
    if callable(spec):
        return as_maps(spec(batch["images"]))
    if isinstance(spec, str):
        return as_maps(np.stack([np.asarray(m, dtype=np.float32) for m in batch[f"map {kind}"]]))
    lo = batch["index"]
    return as_maps(spec)[lo : lo + len(batch["images"])]


def _study_tables(curves: dict[tuple[str, str], torch.Tensor], fr: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The curve table (mean and standard error per fraction) and the per-image AUC table."""
    curve_rows, auc_rows = [], []
    for (mn, kn), c in curves.items():
        for j, f in enumerate(fr):
            col = c[:, j].double()
            sem = float(col.std(unbiased=True) / np.sqrt(len(col))) if len(col) > 1 else float("nan")
            curve_rows.append({"model": mn, "map": kn, "fraction": float(f), "prob": float(col.mean()), "sem": sem})
        for i, a in enumerate(deletion_auc(c, fr).tolist()):
            auc_rows.append({"model": mn, "map": kn, "image": i, "auc": a})
    return pd.DataFrame(curve_rows), pd.DataFrame(auc_rows)


def deletion_summary(aucs: pd.DataFrame, control: str = "random") -> pd.DataFrame:
    """Per (model, map) from ``deletion_study``'s AUCs: the mean AUC and its standard error, and,
    against the ``control`` map kind on the same images, the share of images where the map's AUC
    is lower (better) and a two-sided Wilcoxon signed-rank p-value. Introduced in notebook 03.
    """
    from scipy.stats import wilcoxon

    need = {"model", "map", "image", "auc"}
    if not need <= set(aucs.columns):
        raise ValueError(f"expected deletion_study's AUC table with columns {sorted(need)}, got {list(aucs.columns)}")
    if control not in set(aucs["map"]):
        raise ValueError(f"control map {control!r} not in the table (maps: {sorted(set(aucs['map']))})")
    rows = []
    for (mn, kn), g in aucs.groupby(["model", "map"], sort=False):
        ref = aucs[(aucs["model"] == mn) & (aucs["map"] == control)].set_index("image")["auc"]
        a = g.set_index("image")["auc"]
        d = (a - ref.loc[a.index]).to_numpy()
        p = float("nan") if kn == control or not np.any(d) else float(wilcoxon(d).pvalue)
        rows.append(
            {
                "model": mn,
                "map": kn,
                "auc": a.mean(),
                "sem": a.std(ddof=1) / np.sqrt(len(a)),
                f"below_{control}": float(np.mean(d < 0)) if kn != control else float("nan"),
                "p_wilcoxon": p,
            }
        )
    return pd.DataFrame(rows).set_index(["model", "map"])
