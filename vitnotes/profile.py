"""Per-(layer, head) tables of CLS attention: statistics, region masses, head types.

Introduced in notebook 01 (layers: ``cls_summary``); notebook 07 (fine-tuning:
``attention_profile``, ``head_types``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from .core import arch
from .core.batches import Part, add_up, gather, is_dataset, part
from .core.capture import Attention, no_cls, patch_grid, stream
from .core.geometry import Geometry, as_int, layer_indices
from .core.model import check_batch_size, check_pixel_values, unwrap
from .data.chirps import REGIONS
from .stats import attention_distance, entropy, mask_coverage, normalized_entropy, topk_share

__all__ = [
    "attention_profile", "by_layer", "cls_summary", "head_types", "mean_attention_distance", "attention_distances",
    "query_grids", "position_embeddings",
]  # fmt: skip


def mean_attention_distance(
    full: torch.Tensor | Attention, geometry: Geometry | None = None, grid: tuple[int, int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean attention distance in pixels and the prefix (CLS) share, from full attention
    ``[..., T, T]`` (an ``Attention``, or a tensor with the model's ``geometry``). Returns two
    tensors of shape ``[...]`` (e.g. ``[layer, batch, head]``).

    Distance: for each query patch, the prefix columns are dropped and the row renormalised;
    ``sum_j a_ij d_ij`` is averaged over query patches. CLS share: the weight each query patch
    gives to the prefix tokens, averaged over query patches. Introduced in notebook 01.
    """
    if isinstance(full, Attention):
        if full.cls_only:
            raise ValueError("mean attention distance needs full attention; capture with cls_only=False")
        geometry, grid, full = full.geometry, full.grid, full.probs
    if geometry is None:
        raise ValueError("pass the model's geometry (model.geometry) with a bare attention tensor")
    return attention_distance(full, geometry.prefix, grid or geometry.grid, geometry.patch_size)


def attention_distances(
    model: Any, pixel_values: torch.Tensor, *, batch_size: int = 16
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean attention distance (pixels) and CLS share of every layer, image and head, ``[layer, batch,
    head]`` twice, with the definitions of ``mean_attention_distance``, streamed a few images at a time so
    that the full matrices of many images never sit in memory (for intervals over images).
    Introduced in notebook 01 (layers)."""
    net, geom = unwrap(model)
    geom.require_vit("attention_distances")
    x = check_pixel_values(pixel_values, geom)
    batch_size = check_batch_size(batch_size)
    grid = geom.grid_for(*x.shape[-2:])
    kept: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {}

    def on_layer(layer: int, probs: torch.Tensor) -> None:
        kept.setdefault(layer, []).append(attention_distance(probs, geom.prefix, grid, geom.patch_size))

    layers = list(range(geom.layers))
    stream(model, x, layers, on_layer, batch_size=batch_size, blocks=True)
    dist = torch.stack([torch.cat([d for d, _ in kept[layer]]) for layer in layers])
    share = torch.stack([torch.cat([s for _, s in kept[layer]]) for layer in layers])
    return dist, share


def position_embeddings(model: Any) -> torch.Tensor:
    """A ViT's learnt position embeddings, ``[tokens, hidden]`` (the patches' rows last; for
    ``vn.stats.position_similarity``). Introduced in notebook 01 (layers)."""
    net, geom = unwrap(model)
    geom.require_vit("position_embeddings")
    table = arch.position_embeddings(net)
    if table is None:
        raise TypeError(f"{type(net).__name__} has no learnt table of position embeddings that vitnotes can read")
    return table


def query_grids(attn: Attention, layer: int, image: int = 0) -> torch.Tensor:
    """Where each patch looks: the attention rows of every query patch of one image and layer, prefix columns
    dropped and renormalised, on the grid: ``[head, query patch, rows, cols]`` (query patches in raster
    order). Needs a full capture. Introduced in notebook 02 (heads)."""
    if attn.cls_only:
        raise ValueError("query_grids needs the full matrices; capture with cls_only=False")
    a = attn.get(layer)[as_int(image, "image")]  # [head, query, key]
    return patch_grid(a[:, attn.geometry.prefix :], attn.geometry.prefix, attn.grid)


def cls_summary(
    attn: Attention | Any, data: Any = None, *, k: int = 10, full: bool = True, batch_size: int = 16
) -> pd.DataFrame:
    """Per (layer, head) CLS-attention statistics averaged over the images, one row each.

    Columns: ``entropy`` (nats), ``entropy_norm`` (/ log N), ``top{k}`` share, ``top5pct``
    (share of the top 5 % of patches, at least one), and, for full captures,
    ``distance_px`` (mean attention distance) and ``cls_share``.

    ``vn.cls_summary(vn.capture(model, x))`` summarises a capture held in memory;
    ``vn.cls_summary(model, data)`` streams ``data`` (a tensor, or a ``datasets.Dataset`` /
    ``IterableDataset`` with a ``pixel_values`` or ``image`` column) through the capture
    ``batch_size`` images at a time and returns the same table (``vn.profile.attention_profile`` without
    masks; ``full=False`` captures only the CLS rows: no distance). Under ``accelerate launch`` each
    process takes a part of the images and the sums are added over processes (``book/scale.md``).
    Introduced in notebook 01 (layers).
    """
    check_batch_size(batch_size)
    if not isinstance(attn, Attention):
        if data is None:
            raise TypeError("pass a vn.capture result, or a model and its images: vn.cls_summary(model, data)")
        df = attention_profile(attn, data, full=full, k=k, batch_size=batch_size)
        order = ["layer", "head", "entropy", "entropy_norm", f"top{k}", "top5pct", "distance_px", "cls_share"]
        out = df[[c for c in order if c in df.columns]].copy()
        out.attrs = {key: v for key, v in df.attrs.items() if key != "area"}
        return out
    if data is not None:
        raise TypeError("a vn.capture result already holds its images: call vn.cls_summary(attn) without data")
    grids = attn.cls_grids()  # [layer, batch, head, rows, cols]
    p = grids.flatten(-2)
    n = p.shape[-1]
    k5 = max(1, round(0.05 * n))
    cols = {
        "entropy": entropy(p),
        "entropy_norm": normalized_entropy(p),
        f"top{k}": topk_share(p, min(k, n)),
        "top5pct": topk_share(p, k5),
    }
    if not attn.cls_only:
        cols["distance_px"], cols["cls_share"] = mean_attention_distance(attn)
    rows = []
    for i, layer in enumerate(attn.layers):
        for head in range(grids.shape[2]):
            rows.append({"layer": layer, "head": head, **{c: float(v[i, :, head].mean()) for c, v in cols.items()}})
    df = pd.DataFrame(rows)
    df.attrs.update(images=int(grids.shape[1]), patches=n, k=k, k5=k5)
    return df


def by_layer(df: pd.DataFrame) -> pd.DataFrame:
    """Mean over heads of a per-(layer, head) table: one row per layer. Introduced in notebook 01 (layers)."""
    if "layer" not in df.columns:
        raise ValueError("by_layer expects a table with a 'layer' column (from vn.cls_summary or vn.sweep)")
    out = df.drop(columns=[c for c in ("head",) if c in df.columns]).groupby("layer").mean()
    out.attrs.update(df.attrs)
    return out


def attention_profile(
    model: Any, pixel_values: Any, masks: Any = None, *, full: bool = True, k: int = 10, batch_size: int = 16
) -> pd.DataFrame:
    """Per (layer, head) CLS-attention statistics, averaged over images, and the CLS attention mass in
    each ground-truth region: one row per (layer, head).

    Columns: ``entropy`` (nats), ``entropy_norm``, ``top{k}``, ``top5pct`` and, with ``full=True``,
    ``distance_px`` and ``cls_share`` (the definitions of ``vn.cls_summary``), then ``mass_<region>``
    for every region in ``REGIONS`` when ``masks`` (``[batch, H, W]`` region codes, a dataset's
    ``mask`` column stacked) is given: the share of the CLS -> patch attention that falls inside the
    region, a patch counting by the fraction of its pixels inside. ``df.attrs["area"]`` holds each
    region's mean pixel share: the mass a uniform map would put there.

    ``pixel_values`` may be a tensor or a ``datasets.Dataset`` / ``IterableDataset`` (its
    ``pixel_values`` column, or its ``image`` column through the model's preprocessing); ``masks`` is
    then the name of its mask column (e.g. ``"mask"``). Streams the attention chunk by chunk
    (``batch_size`` images), so memory holds one layer's matrices for one chunk, not ``[layer, batch,
    head, T, T]``; ``full=False`` computes only the CLS rows (faster, no distance). Every statistic is
    summed over images (float64) and divided by the image count at the end; under ``accelerate
    launch`` each process sums its part of the images and the sums are added over processes
    (``book/scale.md``). Introduced in notebook 07.
    """
    _, geom = unwrap(model)
    geom.require_vit("an attention profile")
    no_cls(geom.prefix, "vn.profile.attention_profile (CLS-attention statistics per head)")
    batch_size = check_batch_size(batch_size)
    data = _masked(model, geom, pixel_values, masks, batch_size)
    layers = layer_indices(geom, None)
    sums: dict[Any, Any] = {"n": 0}
    grid = None
    for b in data.batches:
        x = check_pixel_values(b["pixel_values"], geom)
        grid = _same_grid(grid, geom.grid_for(*x.shape[-2:]), k)
        cover = _region_cover(b["masks"], x.shape[0], grid) if masks is not None else {}
        _profile_batch(model, geom, x, cover, layers, sums, full=full, k=k, batch_size=batch_size)
    sums = {key: v.cpu().numpy() if isinstance(v, torch.Tensor) else v for key, v in sums.items()}
    parts = gather((sums, grid))
    total, grid = add_up([s for s, _ in parts]), next((g for _, g in parts if g is not None), None)
    n = total.pop("n")
    if n == 0:
        raise ValueError("the data set has no images; pass at least one")
    npatch = grid[0] * grid[1]
    rows = [
        {"layer": layer, "head": h, **{c: float(total[layer, c][h]) / n for c in _stat_names(total, layer)}}
        for layer in layers
        for h in range(geom.heads)
    ]
    area = {name[5:]: float(v) / (n * npatch) for name, v in total.items() if isinstance(name, str)}
    df = pd.DataFrame(rows)
    df.attrs.update(images=n, patches=npatch, k=k, k5=max(1, round(0.05 * npatch)), area=area, processes=len(parts))
    return df


def _stat_names(total: dict, layer: int) -> list[str]:
    """The statistics summed for ``layer``, in the order they were first added."""
    return [c for key, c in (k for k in total if isinstance(k, tuple)) if key == layer]


def _same_grid(grid: tuple[int, int] | None, new: tuple[int, int], k: int) -> tuple[int, int]:
    """The patch grid of a batch; every batch must have the first one's, and ``k`` must fit in it."""
    if grid is not None and new != grid:
        raise ValueError(f"images of two sizes (grids {grid} and {new}); give pixel_values of one size")
    if not 1 <= k <= new[0] * new[1]:
        raise ValueError(f"k must lie in 1..{new[0] * new[1]} (the number of patches), got {k}")
    return new


def _masked(model: Any, geom: Any, data: Any, masks: Any, batch_size: int) -> Part:
    """This process's part of a profile's images and masks (a tensor and a mask stack, or a dataset)."""
    if is_dataset(data):
        if masks is not None and not isinstance(masks, str):
            raise TypeError(
                f"with a dataset, masks names its mask column (a str, e.g. 'mask'), got {type(masks).__name__}"
            )
        return part(data, model, {"masks": masks}, batch_size=batch_size, what="vn.profile.attention_profile")
    x = check_pixel_values(data, geom)
    if masks is not None:
        _region_cover(masks, x.shape[0], geom.grid_for(*x.shape[-2:]))  # refuse bad masks before any work
        masks = np.asarray(masks)
    return part(x, model, {"masks": masks}, batch_size=batch_size, what="vn.profile.attention_profile")


def _profile_batch(model, geom, x, cover, layers, sums, *, full: bool, k: int, batch_size: int) -> None:
    """Add one batch's per-(layer, head) statistics, summed over its images, to ``sums``
    (``sums[layer, name]``: ``[head]`` float64), and each region's covered patch area to ``sums["area_<region>"]``."""
    grid = geom.grid_for(*x.shape[-2:])
    k5 = max(1, round(0.05 * grid[0] * grid[1]))
    device = next(unwrap(model)[0].parameters()).device  # where the captured probabilities lie
    seen = dict.fromkeys(layers, 0)
    cover = {name: cov.to(device) for name, cov in cover.items()}

    def on_layer(layer: int, probs: torch.Tensor) -> None:
        lo = seen[layer]
        seen[layer] += probs.shape[0]
        maps = patch_grid(probs[:, :, 0] if full else probs, geom.prefix, grid)  # [chunk, head, rows, cols]
        stats = _chunk_stats(maps, probs if full else None, (geom.prefix, grid, geom.patch_size), k, k5)
        for name, cov in cover.items():
            stats[f"mass_{name}"] = (maps.double() * cov[lo : lo + probs.shape[0], None]).sum((-2, -1))
        for name, value in stats.items():  # value [chunk, head] -> summed over images, on the device (no wait)
            sums[layer, name] = sums.get((layer, name), 0) + value.double().sum(0)

    stream(model, x, layers, on_layer, cls_only=not full, batch_size=batch_size)
    for name, cov in cover.items():
        sums[f"area_{name}"] = sums.get(f"area_{name}", 0) + float(cov.double().sum())
    sums["n"] += x.shape[0]


def _region_cover(masks: Any, n: int, grid: tuple[int, int]) -> dict[str, torch.Tensor]:
    """Each region's pixel share per patch, ``{region: [batch, rows, cols]}`` ({} without masks)."""
    if masks is None:
        return {}
    m = np.asarray(masks)
    if m.ndim != 3 or m.shape[0] != n or not np.issubdtype(m.dtype, np.integer):
        raise ValueError(
            f"masks must be integer region codes [batch={n}, H, W] (np.stack(ds['mask'])), "
            f"got shape {m.shape} dtype {m.dtype}"
        )
    if m.size and (m.min() < 0 or m.max() >= len(REGIONS)):
        raise ValueError(f"mask codes must lie in 0..{len(REGIONS) - 1} (REGIONS), got {m.min()}..{m.max()}")
    return {name: mask_coverage(torch.from_numpy(m == code), grid) for code, name in enumerate(REGIONS)}


def _chunk_stats(
    maps: torch.Tensor, full: torch.Tensor | None, layout: tuple[int, tuple[int, int], int], k: int, k5: int
) -> dict[str, torch.Tensor]:
    """CLS statistics of one chunk, each ``[chunk, head]``: from the CLS maps ``[chunk, head, rows, cols]``
    and, given the full attention ``[chunk, head, T, T]`` and the ``layout`` (prefix tokens, grid,
    patch size), the prefix share and mean distance (``mean_attention_distance``'s definition)."""
    p = maps.flatten(-2)
    out = {  # probabilities vitnotes computed: no look at their values (a GPU would wait for it)
        "entropy": entropy(p, check=False),
        "entropy_norm": normalized_entropy(p, check=False),
        f"top{k}": topk_share(p, k, check=False),
        "top5pct": topk_share(p, k5, check=False),
    }
    if full is not None:
        dist, out["cls_share"] = attention_distance(full, *layout)
        out["distance_px"] = dist
    return out


HEAD_REGIONS = ("chirp", "plot", "text", "colorbar", "axes")


def head_types(
    profile: pd.DataFrame, *, threshold: float = 2.0, regions: tuple[str, ...] = HEAD_REGIONS
) -> pd.DataFrame:
    """Sort heads by where their CLS attention lands, relative to each region's area.

    ``profile`` is a per-(layer, head) table with ``mass_<region>`` columns and ``attrs["area"]``
    (from ``vn.profile.attention_profile`` with masks). For each region, the enrichment is
    ``mass / area share``: 1 for a head that spreads its attention uniformly, whatever the region's
    size. A region is *enriched* for a head when its enrichment is at least ``threshold``. The type
    is the single enriched region (``"chirp"``, ``"text"``, ...), ``"polysemantic"`` when two or more
    regions are enriched, and ``"diffuse"`` when none is. Returns ``layer``, ``head``, one
    ``enrich_<region>`` column per region, ``top_region`` (highest enrichment) and ``type``.
    Introduced in notebook 08.
    """
    if not isinstance(profile, pd.DataFrame) or not {"layer", "head"} <= set(profile.columns):
        raise TypeError(
            "profile must be a per-(layer, head) DataFrame from vn.profile.attention_profile(model, x, masks)"
        )
    area = profile.attrs.get("area") or {}
    missing = [r for r in regions if f"mass_{r}" not in profile.columns or r not in area]
    if missing:
        raise ValueError(
            f"profile has no mass or area for region(s) {missing}; "
            "compute it with vn.profile.attention_profile(model, x, masks) and pass masks"
        )
    if not threshold > 1.0:
        raise ValueError(f"threshold must exceed 1 (1 = a uniform head), got {threshold}")
    out = profile[["layer", "head"]].copy()
    for r in regions:
        if area[r] <= 0:
            raise ValueError(f"region {r!r} covers no pixel of these images; drop it from regions")
        out[f"enrich_{r}"] = profile[f"mass_{r}"] / area[r]
    enrich = out[[f"enrich_{r}" for r in regions]].to_numpy()
    hits = enrich >= threshold
    names = np.asarray(regions, dtype=object)
    out["top_region"] = names[enrich.argmax(1)]
    out["type"] = np.where(
        hits.sum(1) == 0, "diffuse", np.where(hits.sum(1) == 1, names[hits.argmax(1)], "polysemantic")
    )
    out.attrs.update(profile.attrs, threshold=threshold, regions=tuple(regions))
    return out
