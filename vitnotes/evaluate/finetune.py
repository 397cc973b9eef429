"""Before and after fine-tuning: per-image attention statistics and a table with intervals over
images (one fine-tuning run) or over runs (several seeds of the same recipe).

Conventions (stated once, used everywhere here):

- **Per image.** ``finetune_stats`` gives one value per image and statistic: the last layer's CLS
  entropy (nats, over the patches, renormalised without CLS -> CLS) and top-``k`` share, each the mean
  over heads; the entropy of attention rollout's CLS row (``vn.explain(model, x, "rollout")``); and,
  with region masks, the CLS attention mass on the chirp in layer ``chirp_layer`` (mean over heads)
  divided by the chirp's mean pixel share over the images, so the mean over images is
  ``vn.profile.attention_profile``'s mass over area (1 = what a uniform map gives).
- **One run.** ``before`` and ``after`` are means over images with a percentile-bootstrap interval
  over images (``vn.bootstrap``), ``change`` the mean of the per-image differences after - before with
  the same resamples (paired: the models saw the same images).
- **Several runs** (fine-tuned models from the same starting point with different seeds):
  ``after`` is the mean over runs of each run's mean over images, ``change`` the mean over runs of
  (run mean - before mean), each with a Student-t interval over runs: mean +- t(level, runs - 1) x
  sd / sqrt(runs) (sd with ddof = 1). With two or three runs the bootstrap over runs cannot make an
  interval; the t interval is wide, as it should be. ``before`` keeps its interval over images.
- **Three states, layer by layer** (``transplant_table``): the original model on the same images in
  its own preprocessing (for ``fmnist-vit-p4``: 28 px grey, a 7x7 grid), the transplant (the
  original moved onto the fine-tuning geometry, no fine-tuning step: ``train.starting_point``) and
  the fine-tuned runs; per layer the CLS entropy over log N (mean over heads; 1 = uniform), every map
  read on the transplant's grid (the original's coarser patches split evenly), and the chirp's mass
  over its area (1 = uniform). The transplant effect (transplant - original) is paired over images;
  the fine-tuning effect (fine-tuned - transplant) follows the one-run / several-runs rule above.
- **A linear head on frozen features** (``linear_head``): ridge regression of the targets on the
  classifier's input, the penalty chosen by leave-one-out error (one-standard-error rule); attention
  is untouched (the head reads the last layer's output). ``head_r2`` scores a regression head as R^2
  per target.

Introduced in notebook 07 (fine-tuning).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..core.arch import classifier
from ..core.capture import capture
from ..core.hooks import hooks
from ..core.model import Model, check_batch_size, forward, unwrap
from ..data.chirps import REGIONS
from ..methods.base import explain
from ..stats import entropy, mask_coverage, topk_share
from .intervals import bootstrap

__all__ = [
    "LAYER_STATISTICS",
    "STATISTICS",
    "TRANSPLANT_METRICS",
    "finetune_stats",
    "finetune_table",
    "head_r2",
    "layer_stats",
    "linear_head",
    "run_interval",
    "transplant_table",
]

STATISTICS = (
    "last-layer CLS entropy (nats)",
    "last-layer top-10 share",
    "rollout CLS entropy (nats)",
    "chirp mass / area",
)
LAYER_STATISTICS = ("CLS entropy / log N", "chirp mass / area")
# transplant_table's rows: three states and the two effects between them
TRANSPLANT_METRICS = ("original, own data", "original", "transplant", "fine-tuned", "transplant effect",
                      "fine-tuning effect")  # fmt: skip
_CHIRP = REGIONS.index("chirp")  # the chirp's code in the region masks


def _chirp_cover(masks: Any, n: int, grid: tuple[int, int]) -> tuple[torch.Tensor, float]:
    """Each patch's share of chirp pixels ``[batch, rows, cols]`` and the chirp's mean share (its area)."""
    m = np.asarray(masks)
    if m.ndim != 3 or m.shape[0] != n:
        raise ValueError(f"masks must be region codes [batch={n}, H, W], got shape {m.shape}")
    cover = mask_coverage(torch.from_numpy(m == _CHIRP), grid)  # [batch, rows, cols]
    area = float(cover.double().mean())
    if area == 0:
        raise ValueError(f"no chirp pixels in the masks (code {_CHIRP}): pass the spectrograms' region masks")
    return cover, area


def finetune_stats(
    model: Any, pixel_values: torch.Tensor, masks: Any = None, *, k: int = 10, chirp_layer: int = 0
) -> pd.DataFrame:
    """One row per image, one column per statistic of ``STATISTICS`` (module docstring; the chirp's
    column only with ``masks``, region codes ``[batch, H, W]``). ``k`` is the top-k (the column keeps
    its name "top-10" only for k = 10). Introduced in notebook 07."""
    _, geom = unwrap(model)
    geom.require_vit("fine-tuning statistics")
    att = capture(model, pixel_values, cls_only=True)
    last = att.cls_grid(-1).flatten(-2)  # [batch, head, patches]
    roll = explain(model, pixel_values, "rollout").flatten(1)  # [batch, patches]
    out = {
        STATISTICS[0]: entropy(last).mean(1),
        STATISTICS[1] if k == 10 else f"last-layer top-{k} share": topk_share(last, k).mean(1),
        STATISTICS[2]: entropy(roll),
    }
    if masks is not None:
        cover, area = _chirp_cover(masks, len(pixel_values), att.grid)
        mass = (att.cls_grid(chirp_layer).double() * cover[:, None]).sum((-2, -1)).mean(1)  # [batch]
        out[STATISTICS[3]] = mass / area
    return pd.DataFrame({name: torch.as_tensor(v).double().numpy() for name, v in out.items()})


def run_interval(values: Any, level: float = 0.95) -> tuple[float, float, float]:
    """Mean of per-run ``values`` and its Student-t ``level`` interval (module docstring): (mean, low,
    high). Needs at least two runs. Introduced in notebook 07."""
    from scipy.stats import t

    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size < 2:
        raise ValueError(f"an interval over runs needs at least 2 runs, got {v.size}")
    half = float(t.ppf((1 + level) / 2, v.size - 1)) * float(v.std(ddof=1)) / np.sqrt(v.size)
    return float(v.mean()), float(v.mean() - half), float(v.mean() + half)


def finetune_table(
    before: Any, after: Any | Sequence[Any], pixel_values: torch.Tensor, masks: Any = None, *,
    k: int = 10, chirp_layer: int = 0, n_boot: int = 1000, seed: int = 0, level: float = 0.95,
) -> pd.DataFrame:  # fmt: skip
    """Before and after fine-tuning, one row per (statistic, ``metric``) with ``metric`` one of
    ``before``, ``after`` and ``change`` (after - before): ``value``, ``low``, ``high``, ``n`` (images),
    ``runs`` and ``over`` (``"images"`` or ``"runs"``: what the interval is over; module docstring).
    ``after``: one fine-tuned model, or a list of runs of the same recipe. ``vn.evaluate.interval_table(t,
    index=("statistic",))`` shows it as "value [low, high]". Introduced in notebook 07."""
    runs = list(after) if isinstance(after, (list, tuple)) else [after]
    if not runs:
        raise ValueError("after must be a fine-tuned model or a non-empty list of them")
    base = finetune_stats(before, pixel_values, masks, k=k, chirp_layer=chirp_layer)
    tuned = [finetune_stats(m, pixel_values, masks, k=k, chirp_layer=chirp_layer) for m in runs]
    boot = {"n_boot": n_boot, "seed": seed, "level": level}
    rows = []
    for name in base.columns:
        b = base[name].to_numpy()
        rows.append(_row(name, "before", bootstrap(b, **boot), len(runs), "images"))
        (a, a_runs, over), (c, *_) = _after_and_change(b, [t[name].to_numpy() for t in tuned], boot)
        rows.append(_row(name, "after", a, a_runs, over))
        rows.append(_row(name, "change", c, a_runs, over))
    df = pd.DataFrame(rows)
    df.attrs.update(images=len(base), runs=len(runs), level=level, n_boot=n_boot, seed=seed)
    return df


def _row(statistic: str, metric: str, iv: Any, runs: int, over: str) -> dict:
    """One row from an ``Interval`` or a (value, low, high, n) tuple."""
    value, low, high, n = (iv.value, iv.low, iv.high, iv.n) if hasattr(iv, "value") else iv
    return dict(statistic=statistic, metric=metric, baseline="", value=value, low=low, high=high, n=n, runs=runs,
                over=over)  # fmt: skip


def _after_and_change(b: np.ndarray, tuned: Sequence[np.ndarray], boot: dict) -> list[tuple[Any, int, str]]:
    """(fine-tuned, fine-tuned - ``b``) against per-image values ``b``, each as (interval, runs, over):
    one run, bootstraps over images (the change paired); several, Student-t over the runs' means
    (module docstring)."""
    if len(tuned) == 1:
        a = np.asarray(tuned[0])
        return [(bootstrap(a, **boot), 1, "images"), (bootstrap(a - b, **boot), 1, "images")]
    means = np.array([np.mean(t) for t in tuned])
    level, runs = boot["level"], len(tuned)
    return [((*run_interval(means, level), len(b)), runs, "runs"),
            ((*run_interval(means - b.mean(), level), len(b)), runs, "runs")]  # fmt: skip


def layer_stats(
    model: Any, pixel_values: torch.Tensor, masks: Any = None, *, grid: tuple[int, int] | None = None
) -> dict[str, np.ndarray]:
    """Per image and layer (``[batch, layers]`` arrays, float64): ``"CLS entropy / log N"``, the CLS ->
    patch entropy (renormalised without CLS -> CLS) over log N, the mean over heads; and with region
    ``masks`` (``[batch, H, W]``), ``"chirp mass / area"``, the CLS mass on the chirp (mean over heads)
    over the chirp's mean pixel share (1 = a uniform map). The masks may have another resolution than
    the input (56-px masks for a 28-px model): only their division into the patch grid counts.

    ``grid``: read the maps on a finer grid whose sides are multiples of the model's (each patch's
    weight split evenly over the finer patches it covers), so that N is the same for models with
    different grids: a map spread over the same part of the image has a larger H / log N on a finer
    grid, so H / log N on two grids is not one scale. The chirp's ratio is the same on either grid.
    Introduced in notebook 07."""
    _, geom = unwrap(model)
    geom.require_vit("per-layer fine-tuning statistics")
    att = capture(model, pixel_values, cls_only=True)
    grids = att.cls_grids().double()  # [layer, batch, head, rows, cols]
    rows, cols = att.grid if grid is None else (int(grid[0]), int(grid[1]))
    if rows % att.grid[0] or cols % att.grid[1]:
        raise ValueError(f"grid {rows}x{cols} is not a multiple of the model's {att.grid[0]}x{att.grid[1]} patch grid")
    fr, fc = rows // att.grid[0], cols // att.grid[1]
    if fr * fc > 1:  # each patch's weight split evenly over the fr x fc finer patches it covers
        grids = grids.repeat_interleave(fr, -2).repeat_interleave(fc, -1) / (fr * fc)
    ent = entropy(grids.flatten(-2), check=False).double().mean(-1) / np.log(rows * cols)  # [layer, batch]
    out = {LAYER_STATISTICS[0]: ent.T.numpy()}
    if masks is not None:
        cover, area = _chirp_cover(masks, len(pixel_values), (rows, cols))
        mass = (grids * cover[None, :, None]).sum((-2, -1)).mean(-1)  # [layer, batch]
        out[LAYER_STATISTICS[1]] = (mass / area).T.numpy()
    return out


def transplant_table(
    original: Any, transplant: Any, tuned: Any | Sequence[Any], pixel_values: torch.Tensor, masks: Any,
    original_pixel_values: torch.Tensor, *, own_pixel_values: torch.Tensor | None = None,
    n_boot: int = 1000, seed: int = 0, level: float = 0.95,
) -> pd.DataFrame:  # fmt: skip
    """The transplant and the fine-tuning separated, layer by layer: one row per (``statistic`` of
    ``LAYER_STATISTICS``, ``layer``, ``metric`` of ``TRANSPLANT_METRICS``) with ``value``, ``low``,
    ``high``, ``n`` (images), ``runs`` and ``over`` (what the interval is over).

    ``original`` reads the test images as ``original_pixel_values`` (its own preprocessing of the same
    images), ``transplant`` and every fine-tuning run of ``tuned`` (a model or a list of runs) as
    ``pixel_values``; ``masks`` are the images' region codes. ``own_pixel_values``: images of the
    original's own data set, for ``"original, own data"`` (entropy only: they have no chirp). Every map
    is read on the transplant's patch grid (``layer_stats(grid=...)``: the original's coarser maps
    spread evenly onto it), so all entropies are over the same N.
    ``"transplant effect"`` = transplant - original, per image, with a paired bootstrap over images;
    ``"fine-tuning effect"`` = fine-tuned - transplant, and ``"fine-tuned"``, as in ``finetune_table``
    (over images for one run, Student-t over runs for several). Introduced in notebook 07."""
    runs = list(tuned) if isinstance(tuned, (list, tuple)) else [tuned]
    if not runs:
        raise ValueError("tuned must be a fine-tuned model or a non-empty list of them")
    if len(original_pixel_values) != len(pixel_values):
        raise ValueError(f"original_pixel_values must be the same {len(pixel_values)} images in the original's "
                         f"preprocessing, got {len(original_pixel_values)}")  # fmt: skip
    depth = {unwrap(m)[1].layers for m in (original, transplant, *runs)}
    if len(depth) != 1:
        raise ValueError(f"the models must have the same number of layers, got {sorted(depth)}")
    grid = unwrap(transplant)[1].grid_for(*pixel_values.shape[-2:])
    orig = layer_stats(original, original_pixel_values, masks, grid=grid)
    start = layer_stats(transplant, pixel_values, masks)
    after = [layer_stats(m, pixel_values, masks) for m in runs]
    own = layer_stats(original, own_pixel_values, grid=grid) if own_pixel_values is not None else {}
    boot = {"n_boot": n_boot, "seed": seed, "level": level}
    rows = []
    for name in LAYER_STATISTICS:
        for layer in range(start[name].shape[1]):
            o, b = orig[name][:, layer], start[name][:, layer]
            (a, a_runs, over), (c, *_) = _after_and_change(b, [t[name][:, layer] for t in after], boot)
            found = [("original", bootstrap(o, **boot), 1, "images"), ("transplant", bootstrap(b, **boot), 1, "images"),
                     ("fine-tuned", a, a_runs, over), ("transplant effect", bootstrap(b - o, **boot), 1, "images"),
                     ("fine-tuning effect", c, a_runs, over)]  # fmt: skip
            if name in own:
                found.insert(0, ("original, own data", bootstrap(own[name][:, layer], **boot), 1, "images"))
            rows += [dict(_row(name, metric, iv, r, ov), layer=layer) for metric, iv, r, ov in found]
    cols = ["statistic", "layer", "metric", "baseline", "value", "low", "high", "n", "runs", "over"]
    df = pd.DataFrame(rows)[cols]
    df.attrs.update(images=len(pixel_values), runs=len(runs), level=level, n_boot=n_boot, seed=seed, grid=grid,
                    own_images=0 if own_pixel_values is None else len(own_pixel_values))  # fmt: skip
    return df


def _head_inputs(net: torch.nn.Module, pixel_values: torch.Tensor, batch_size: int) -> torch.Tensor:
    """What the classifier reads, ``[batch, features]`` float64 (for a ViT: the final-normed CLS token)."""
    head, kept = classifier(net), []
    with hooks([(head, "forward_pre", lambda _m, args: kept.append(args[0].detach().double().cpu()))]):
        for chunk in pixel_values.split(batch_size):
            forward(net, chunk)
    return torch.cat(kept)


@torch.no_grad()
def linear_head(
    model: Any, pixel_values: torch.Tensor, targets: Any, *, alphas: Sequence[float] | None = None,
    batch_size: int = 64,
) -> Any:  # fmt: skip
    """A copy of ``model`` whose linear head is refitted on frozen features: ridge regression (with an
    intercept) of ``targets`` ``[batch, outputs]`` on what the classifier reads from ``pixel_values``,
    every other weight untouched, so attention is the same as ``model``'s. The penalty, one for all
    outputs, is chosen from ``alphas`` (default ``10 ** -2 .. 10 ** 4``) by leave-one-out squared error
    (closed form from the SVD of the centred features) with the one-standard-error rule: the largest
    penalty whose mean error is within one standard error (over images) of the least; near-ties
    then do not flip with rounding, and the head is as simple as the data allow. Returns a
    ``Model`` for a ``Model`` (its ``source`` names the penalty and the images), a module otherwise.
    Introduced in notebook 07."""
    import copy

    net, geom = unwrap(model)
    y = torch.as_tensor(np.asarray(targets), dtype=torch.float64).reshape(len(pixel_values), -1)
    head = classifier(net)
    if y.shape[1] != head.out_features:
        raise ValueError(f"targets have {y.shape[1]} outputs, the head {head.out_features}")
    if len(y) < 3:
        raise ValueError(f"a ridge head with leave-one-out needs at least 3 images, got {len(y)}")
    feats = _head_inputs(net, pixel_values, check_batch_size(batch_size))  # [batch, features]
    alphas = np.logspace(-2, 4, 13) if alphas is None else np.asarray(alphas, dtype=np.float64).reshape(-1)
    if alphas.size == 0 or (alphas <= 0).any():
        raise ValueError(f"alphas must be positive penalties, got {alphas!r}")
    fm, ym = feats.mean(0), y.mean(0)
    u, s, vt = torch.linalg.svd(feats - fm, full_matrices=False)
    uty = u.T @ (y - ym)  # [rank, outputs]
    loo = []  # per penalty: each image's leave-one-out squared error, mean over outputs
    for alpha in alphas:
        shrink = s**2 / (s**2 + alpha)
        fitted = u @ (shrink[:, None] * uty) + ym
        leverage = (u**2 * shrink).sum(1) + 1 / len(y)  # the hat matrix's diagonal, the intercept included
        loo.append((((y - fitted) / (1 - leverage)[:, None]) ** 2).mean(1))
    means = torch.stack([e.mean() for e in loo])
    best = int(means.argmin())
    bound = means[best] + loo[best].std() / np.sqrt(len(y))  # the one-standard-error rule
    alpha = float(max(a for a, m in zip(alphas, means) if m <= bound))
    coef = vt.T @ ((s / (s**2 + alpha))[:, None] * uty)  # [features, outputs]
    new = copy.deepcopy(net).eval()
    new_head = classifier(new)
    new_head.weight.copy_(coef.T.to(new_head.weight.dtype))
    new_head.bias.copy_((ym - fm @ coef).to(new_head.bias.dtype))
    if not isinstance(model, Model):
        return new
    return Model(
        net=new,
        geometry=geom,
        labels=list(model.labels),
        preprocessing=model.preprocessing,
        name=f"{model.name} + linear head",
        source=f"linear_head(alpha={alpha:g}, images={len(y)})",
    )


@torch.no_grad()
def head_r2(
    model: Any, pixel_values: torch.Tensor, targets: Any, names: Sequence[str] | None = None, *,
    batch_size: int = 64, n_boot: int = 1000, seed: int = 0, level: float = 0.95,
) -> pd.DataFrame:  # fmt: skip
    """R^2 of a regression model's outputs against ``targets`` ``[batch, outputs]``, one row per target
    (``names``, default the model's labels) with ``value``, ``low``, ``high`` and ``n``. R^2 = 1 -
    MSE / variance of the targets over these images, i.e. the mean over images of 1 - (prediction -
    target)^2 / variance, whose percentile-bootstrap interval over images (``vn.bootstrap``, the
    variance held fixed) is the interval given. Introduced in notebook 07."""
    net, _ = unwrap(model)
    y = np.asarray(targets, dtype=np.float64).reshape(len(pixel_values), -1)
    pred = torch.cat([forward(net, c).logits.double().cpu() for c in pixel_values.split(check_batch_size(batch_size))])
    if pred.shape[1] != y.shape[1]:
        raise ValueError(f"targets have {y.shape[1]} outputs, the model {pred.shape[1]}")
    names = list(names or getattr(model, "labels", None) or range(y.shape[1]))
    var = y.var(0)
    per_image = 1 - (pred.numpy() - y) ** 2 / var  # [batch, outputs]: their mean is R^2
    rows = []
    for j, name in enumerate(names):
        iv = bootstrap(per_image[:, j], n_boot=n_boot, seed=seed, level=level)
        rows.append(dict(target=name, value=iv.value, low=iv.low, high=iv.high, n=iv.n))
    return pd.DataFrame(rows)
