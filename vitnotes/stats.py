"""Numbers from plain tensors: entropy, top-k share, patch distances, mean attention distance,
mask mass, map consistency, rank agreement. No model and no ``Attention`` here: tensors in,
numbers out. The definitions are stated in the book's metric definitions (``book/intro.md``).

- entropy: ``H = -sum p log p`` in nats over a distribution, and ``H / log N``;
- top-k share: the sum of the ``k`` largest weights;
- mean attention distance: per head, mean over query patches of ``sum_j a_ij d_ij``, with
  ``d`` in pixels between patch centres (ViT paper, Fig. 11), prefix tokens dropped and rows
  renormalised; the prefix (CLS) share is reported separately;
- mask mass: the attention that falls inside a pixel mask;
- rank agreement: Spearman rank correlation and top-k overlap of two maps;
- linear CKA (Kornblith et al. 2019) between two representations of the same images, plain or
  debiased (Song et al.'s unbiased HSIC estimator).

Introduced in notebook 01 (layers); used by 02-07.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "entropy", "normalized_entropy", "topk_share", "patch_distances", "uniform_distance", "attention_distance",
    "mask_coverage", "mask_mass", "map_consistency", "as_maps", "rank_correlation", "topk_overlap",
    "linear_gram", "linear_cka", "cka_matrix", "map_correlation", "position_similarity", "high_norm_tokens",
]  # fmt: skip


def _dist(p: torch.Tensor, what: str, check: bool = True) -> torch.Tensor:
    """``p`` in float64, checked to hold distributions (``check=False``: shape only, no look at the
    values, which would make a GPU wait: for probabilities vitnotes computed itself)."""
    if not isinstance(p, torch.Tensor):
        raise TypeError(f"{what} expects a torch tensor of probabilities, got {type(p).__name__}")
    if p.ndim == 0 or p.shape[-1] == 0:
        raise ValueError(f"{what} expects distributions along the last axis, got shape {tuple(p.shape)}")
    if check and ((p < 0).any() or not torch.isfinite(p).all()):
        raise ValueError(f"{what}: probabilities must be finite and non-negative")
    return p.double()


def entropy(p: torch.Tensor, *, check: bool = True) -> torch.Tensor:
    """Entropy in nats of distributions along the last axis (renormalised to sum to 1).

    For a map on the patch grid ``[..., rows, cols]`` pass ``grid.flatten(-2)``.
    Uniform over N -> log N; one-hot -> 0. ``check=False`` skips the look at the values (negative or
    non-finite entries), for probabilities vitnotes computed itself. Introduced in notebook 00.
    """
    p = _dist(p, "entropy", check)
    p = p / p.sum(-1, keepdim=True)
    return -torch.special.xlogy(p, p).sum(-1).float()


def normalized_entropy(p: torch.Tensor, *, check: bool = True) -> torch.Tensor:
    """Entropy divided by log N (N = length of the last axis): 1 = uniform, 0 = one token.
    Compares grids of different sizes (7x7 vs 14x14). Introduced in notebook 00 (attention math)."""
    n = p.shape[-1]
    if n < 2:
        raise ValueError("normalised entropy needs at least 2 outcomes")
    return entropy(p, check=check) / math.log(n)


def topk_share(p: torch.Tensor, k: int, *, check: bool = True) -> torch.Tensor:
    """Sum of the ``k`` largest weights of each (renormalised) distribution along the last axis
    (``check`` as in ``entropy``). Introduced in notebook 01 (layers)."""
    p = _dist(p, "topk_share", check)
    if not 1 <= k <= p.shape[-1]:
        raise ValueError(f"k must lie in 1..{p.shape[-1]} (the number of weights), got {k}")
    p = p / p.sum(-1, keepdim=True)
    return p.topk(k, dim=-1).values.sum(-1).float()


def patch_distances(grid: tuple[int, int], patch_size: int) -> torch.Tensor:
    """Euclidean distance in pixels between the centres of every pair of patches, ``[N, N]``.
    Introduced in notebook 01 (layers)."""
    rows, cols = torch.meshgrid(torch.arange(grid[0]), torch.arange(grid[1]), indexing="ij")
    centres = torch.stack([rows.flatten(), cols.flatten()], -1).double() * patch_size
    return torch.cdist(centres, centres)


def uniform_distance(grid: tuple[int, int], patch_size: int) -> float:
    """Mean attention distance in pixels of uniform attention over a ``grid`` of patches: the
    reference line of notebooks 01, 02 and 05."""
    return float(patch_distances(grid, patch_size).mean())


def attention_distance(
    full: torch.Tensor, prefix: int, grid: tuple[int, int], patch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean attention distance in pixels and the prefix share from full attention ``[..., T, T]``
    (``T = prefix + rows * cols``); two tensors of shape ``[...]``. See ``vn.profile.mean_attention_distance``.

    Per query patch ``i``: ``sum_j a_ij d_ij / sum_j a_ij`` over the patch keys ``j`` (the row
    renormalised without the prefix), averaged over query patches. The products run in the
    attention's dtype (float32 for bf16), every sum in float64; on the CPU a block of
    ``DISTANCE_BLOCK_BYTES`` at a time, so that no full-size temporary leaves the cache (one pass on a GPU).
    """
    n = grid[0] * grid[1]
    if full.ndim < 2 or full.shape[-1] != full.shape[-2] or full.shape[-1] != prefix + n:
        raise ValueError(
            f"expected full attention [..., {prefix + n}, {prefix + n}] for a {grid[0]}x{grid[1]} grid "
            f"with {prefix} prefix token(s), got shape {tuple(full.shape)}"
        )
    lead, t = full.shape[:-2], prefix + n
    rows = full.reshape(-1, t, t)
    work = torch.float64 if full.dtype == torch.float64 else torch.float32
    d = patch_distances(grid, patch_size).to(full.device, work)
    dist = torch.empty(rows.shape[0], dtype=torch.float64, device=full.device)
    share = torch.empty_like(dist)
    budget = DISTANCE_BLOCK_BYTES.get(full.device.type)
    step = rows.shape[0] if budget is None else max(1, budget // (4 * t * t))
    for lo in range(0, rows.shape[0], step):
        a = rows[lo : lo + step, prefix:].to(work)  # query patches only: [block, n, T]
        share[lo : lo + step] = a[..., :prefix].sum(-1, dtype=torch.float64).mean(-1)
        keys = a[..., prefix:]
        num = (keys * d).sum(-1, dtype=torch.float64)
        dist[lo : lo + step] = (num / keys.sum(-1, dtype=torch.float64).clamp_min(1e-300)).mean(-1)
    return dist.reshape(lead).float(), share.reshape(lead).float()


# Bytes of attention per block of attention_distance, by device type: ~2 MB on the CPU (the
# products stay in its cache); a device without an entry (a GPU) takes every row in one pass.
DISTANCE_BLOCK_BYTES = {"cpu": 1 << 21}


def mask_coverage(mask: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Fraction of each patch's pixels inside a mask: ``[..., H, W]`` (bool or 0..1) -> ``[..., rows, cols]``.
    Introduced in notebook 01 (layers)."""
    m = torch.as_tensor(mask)
    if m.ndim < 2:
        raise ValueError(f"mask must be [..., H, W], got shape {tuple(m.shape)}")
    h, w = m.shape[-2:]
    if h % grid[0] or w % grid[1]:
        raise ValueError(f"mask of {h}x{w} pixels does not divide into a {grid[0]}x{grid[1]} grid; resize it first")
    m = m.double()
    if (m < 0).any() or (m > 1).any():
        raise ValueError("mask values must lie in [0, 1] (a bool or fractional mask)")
    m = m.reshape(*m.shape[:-2], grid[0], h // grid[0], grid[1], w // grid[1])
    return m.mean((-3, -1))


def mask_mass(probs: torch.Tensor, mask: torch.Tensor, batch_axis: int | None = None) -> torch.Tensor:
    """Attention mass inside a mask: ``sum_patches p * coverage``.

    ``probs`` is a map on the patch grid ``[..., rows, cols]`` that sums to 1 (e.g.
    ``attn.cls_grid(layer)``); ``mask`` is ``[H, W]`` (one mask for all) or ``[batch, H, W]``
    (one per image, matched to ``probs``' axis ``batch_axis``: by default axis 0, or axis 1 for
    5-dimensional ``[layer, batch, head, rows, cols]`` maps). 1.0 = all attention inside.
    Introduced in notebook 01 (layers).
    """
    grid = tuple(probs.shape[-2:])
    cov = mask_coverage(mask, grid)
    if cov.ndim == 3:
        axis = (1 if probs.ndim == 5 else 0) if batch_axis is None else batch_axis
        if probs.shape[axis] != cov.shape[0]:
            raise ValueError(
                f"{cov.shape[0]} masks for {probs.shape[axis]} images on axis {axis} of probs {tuple(probs.shape)}; "
                "pass one mask per image or set batch_axis"
            )
        shape = [1] * (probs.ndim - 2)
        shape[axis] = cov.shape[0]
        cov = cov.reshape(*shape, *grid)
    return (probs.double() * cov.to(probs.device)).sum((-2, -1)).float()


def map_consistency(grids: torch.Tensor, per_image: bool = False) -> torch.Tensor:
    """How much a head's map stays the same from image to image: the mean, over images, of the
    Pearson correlation between an image's map and the head's mean map over all images.

    ``grids`` is ``[layer, batch, head, rows, cols]`` (e.g. ``attn.cls_grids()``); returns
    ``[layer, head]``. Near 1: a *positional* head that looks at the same places whatever the
    image; near 0: a head whose map follows the content. Needs at least two images.
    ``per_image=True`` returns each image's correlation, ``[layer, batch, head]`` (for intervals).
    Introduced in notebook 02 (heads).
    """
    g = torch.as_tensor(grids)
    if g.ndim != 5:
        raise ValueError(f"map_consistency expects maps [layer, batch, head, rows, cols], got shape {tuple(g.shape)}")
    if g.shape[1] < 2:
        raise ValueError("map_consistency needs maps of at least two images")
    x = g.double().flatten(-2)  # [layer, batch, head, N]
    mean = x.mean(1, keepdim=True)
    xc, mc = x - x.mean(-1, keepdim=True), mean - mean.mean(-1, keepdim=True)
    num = (xc * mc).sum(-1)
    den = (xc.norm(dim=-1) * mc.norm(dim=-1)).clamp_min(1e-300)
    r = (num / den).float()
    return r if per_image else r.mean(1)


def map_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of two sets of maps over their last two axes: ``[..., rows, cols]`` twice ->
    ``[...]``. A constant map has no correlation: NaN there. Introduced in notebook 02 (heads)."""
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    if a.shape != b.shape or a.ndim < 2:
        raise ValueError(
            f"map_correlation needs two sets of maps [..., rows, cols] of one shape, got "
            f"{tuple(a.shape)} and {tuple(b.shape)}"
        )
    x, y = a.double().flatten(-2), b.double().flatten(-2)
    x, y = x - x.mean(-1, keepdim=True), y - y.mean(-1, keepdim=True)
    den = x.norm(dim=-1) * y.norm(dim=-1)
    r = (x * y).sum(-1) / den.clamp_min(1e-300)
    return torch.where(den > 1e-12, r, torch.full_like(r, float("nan"))).float()


def position_similarity(table: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Cosine similarity of every patch's position embedding with every other's (ViT paper, Fig. 7):
    ``table`` ``[tokens, hidden]`` (the patch rows last, prefix rows before them, as models store it)
    -> ``[rows, cols, rows, cols]``: entry ``[i, j]`` is patch (i, j)'s map over the grid.
    Introduced in notebook 01 (layers)."""
    t = torch.as_tensor(table).detach().double()
    n = grid[0] * grid[1]
    if t.ndim != 2 or t.shape[0] < n:
        raise ValueError(
            f"position embeddings must be [tokens, hidden] with at least {n} rows for a "
            f"{grid[0]}x{grid[1]} grid, got shape {tuple(t.shape)}"
        )
    p = t[-n:]
    p = p / p.norm(dim=-1, keepdim=True).clamp_min(1e-300)
    return (p @ p.T).reshape(*grid, *grid).float()


def high_norm_tokens(norms: torch.Tensor, factor: float = 2.0) -> torch.Tensor:
    """Which tokens are outliers by norm: ``norms`` ``[..., tokens]`` -> bool ``[..., tokens]``, True where a
    token's norm exceeds ``factor`` times the median norm of its own row (image and layer).
    Introduced in notebook 01 (layers: register tokens)."""
    n = torch.as_tensor(norms)
    if n.ndim == 0 or n.shape[-1] < 2:
        raise ValueError(f"norms must be [..., tokens] with at least two tokens, got shape {tuple(n.shape)}")
    if not factor > 1:
        raise ValueError(f"factor must exceed 1 (a token above `factor` x the median), got {factor}")
    return n > factor * n.median(-1, keepdim=True).values


def as_maps(maps: Any, what: str = "maps") -> torch.Tensor:
    """``[batch, rows, cols]`` float tensor from a tensor or array (one ``[rows, cols]`` map is batched)."""
    m = torch.as_tensor(np.asarray(maps) if not isinstance(maps, torch.Tensor) else maps).detach()
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3:
        raise ValueError(f"{what} must be [batch, rows, cols] (or one [rows, cols] map), got shape {tuple(m.shape)}")
    if m.shape[0] == 0 or m.shape[1] == 0 or m.shape[2] == 0:
        raise ValueError(f"{what} of shape {tuple(m.shape)} is empty")
    m = m.float().cpu()
    if not torch.isfinite(m).all():
        raise ValueError(f"{what} contain NaN or inf; check how the maps were computed")
    return m


def _pair(a: Any, b: Any) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = as_maps(a, "map a"), as_maps(b, "map b")
    if a.shape != b.shape:
        raise ValueError(
            f"maps of shape {tuple(a.shape)} and {tuple(b.shape)} differ; "
            "bring both to one grid with vn.evaluate.resize_maps"
        )
    return a.flatten(1).double(), b.flatten(1).double()


def rank_correlation(a: Any, b: Any) -> torch.Tensor:
    """Spearman rank correlation between two sets of maps, one value per image ``[batch]``.

    Pixels are ranked within each map (tied values get their average rank) and the ranks are
    correlated (Pearson). A constant map has no ranking: its correlation is NaN.
    Introduced in notebook 05 (patch size).
    """
    from scipy.stats import rankdata

    a, b = _pair(a, b)
    ra = torch.from_numpy(rankdata(a.numpy(), axis=1))
    rb = torch.from_numpy(rankdata(b.numpy(), axis=1))
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    den = (ra.square().sum(1) * rb.square().sum(1)).sqrt()
    r = (ra * rb).sum(1) / den
    return torch.where(den > 0, r, torch.full_like(r, float("nan"))).float()


def _top(m: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` largest entries per row; ties go to the earlier pixel (raster order)."""
    return torch.argsort(-m, dim=1, stable=True)[:, :k]


def topk_overlap(a: Any, b: Any, frac: float = 0.1) -> torch.Tensor:
    """Share of the top ``frac`` of pixels that two maps have in common, per image ``[batch]``.

    ``k = max(1, round(frac * pixels))``; 1 = the same top pixels, ``frac`` = what two random
    maps share on average. Ties are broken by raster order (first pixel first).
    Introduced in notebook 04 (misclassified images).
    """
    a, b = _pair(a, b)
    if not 0.0 < frac <= 1.0:
        raise ValueError(f"frac must lie in (0, 1], got {frac}")
    k = max(1, round(frac * a.shape[1]))
    n = a.shape[1]
    ia = torch.zeros(a.shape[0], n, dtype=torch.bool).scatter_(1, _top(a, k), True)
    ib = torch.zeros(b.shape[0], n, dtype=torch.bool).scatter_(1, _top(b, k), True)
    return ((ia & ib).sum(1).double() / k).float()


def linear_gram(x: Any) -> torch.Tensor:
    """The linear kernel of a representation: ``[n, features]`` -> ``X_c X_c^T`` ``[n, n]`` (float64),
    with ``X_c`` the features centred over the ``n`` images. Higher-dimensional inputs ``[n, ...]`` are
    flattened per image. Introduced in notebook 03 (CNN vs ViT)."""
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).detach()
    if x.ndim < 2 or x.shape[0] < 2:
        raise ValueError(f"a representation is [images, features] with at least 2 images, got shape {tuple(x.shape)}")
    x = x.reshape(x.shape[0], -1).double().cpu()
    if not torch.isfinite(x).all():
        raise ValueError("the representation contains NaN or inf; check the model's activations")
    x = x - x.mean(0, keepdim=True)
    return x @ x.T


def _hsic(grams_a: torch.Tensor, grams_b: torch.Tensor, debiased: bool) -> torch.Tensor:
    """HSIC between every pair of linear kernels ``[A, n, n]`` x ``[B, n, n]`` -> ``[A, B]``, up to a factor
    common to all pairs (it cancels in CKA). Plain: ``tr(K H L H)`` with ``H = I - 11^T / n`` (the kernels are
    already centred, so ``tr(K L)``). Debiased: Song et al. (2012)'s unbiased estimator, with the diagonals
    of ``K`` and ``L`` set to zero: ``tr(KL) + 1'K1 1'L1 / ((n-1)(n-2)) - 2 / (n-2) 1'KL1``."""
    n = grams_a.shape[-1]
    if not debiased:
        return grams_a.flatten(1) @ grams_b.flatten(1).T
    if n < 4:
        raise ValueError(f"debiased CKA needs at least 4 images (its estimator divides by n - 3), got {n}")
    eye = torch.eye(n, dtype=torch.bool)
    ka, kb = grams_a.masked_fill(eye, 0.0), grams_b.masked_fill(eye, 0.0)
    trace = ka.flatten(1) @ kb.flatten(1).T
    sums = ka.sum((1, 2))[:, None] * kb.sum((1, 2))[None, :] / ((n - 1) * (n - 2))
    cross = ka.sum(2) @ kb.sum(2).T  # 1'K L 1 = (K 1) . (L 1), K and L symmetric
    return trace + sums - 2.0 / (n - 2) * cross


def cka_matrix(reps_a: Sequence[Any], reps_b: Sequence[Any], *, debiased: bool = False) -> torch.Tensor:
    """Linear CKA between every representation in ``reps_a`` and every one in ``reps_b`` (each
    ``[n, features]``, the same ``n`` images in the same order; widths may differ): ``[A, B]``.

    ``CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))`` with linear kernels of the centred features
    (Kornblith et al. 2019). 1 = the same representation up to a rotation and a scale, 0 = unrelated.
    ``debiased=True`` uses the unbiased HSIC estimator: the plain one is biased upwards when the
    features are many for the images (two unrelated wide representations score well above 0); the
    debiased one may come out slightly below 0. Introduced in notebook 03 (CNN vs ViT).
    """
    if len(reps_a) == 0 or len(reps_b) == 0:
        raise ValueError("cka_matrix needs at least one representation on each side")
    grams_a = torch.stack([linear_gram(r) for r in reps_a])  # [A, n, n]
    grams_b = torch.stack([linear_gram(r) for r in reps_b])  # [B, n, n]
    if grams_a.shape[-1] != grams_b.shape[-1]:
        raise ValueError(
            f"{grams_a.shape[-1]} images on one side and {grams_b.shape[-1]} on the other: CKA compares two "
            "representations of the same images"
        )
    cross = _hsic(grams_a, grams_b, debiased)
    self_a = torch.stack([_hsic(g[None], g[None], debiased)[0, 0] for g in grams_a])
    self_b = torch.stack([_hsic(g[None], g[None], debiased)[0, 0] for g in grams_b])
    den = (self_a[:, None] * self_b[None, :]).sqrt()
    if (den <= 0).any() or not torch.isfinite(den).all():
        raise ValueError("a representation is constant over the images (zero variance): CKA is undefined for it")
    return (cross / den).float()


def linear_cka(x: Any, y: Any, *, debiased: bool = False) -> float:
    """Linear CKA between two representations ``[n, features]`` of the same ``n`` images (see
    ``cka_matrix``). Introduced in notebook 03 (CNN vs ViT)."""
    return float(cka_matrix([x], [y], debiased=debiased)[0, 0])
