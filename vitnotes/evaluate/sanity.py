"""Sanity checks for attention maps: do they change when the model's weights are randomised?

A model-randomisation test in the spirit of Adebayo et al. 2018 ("Sanity checks for saliency
maps"): re-initialise the network from the top down (``vn.interventions.randomized``) and measure how much
each kind of map changes. A map that barely changes when the weights it should explain are
destroyed cannot be explaining them.

**The comparison** (Adebayo et al.'s): per image, the map on the trained model against the map on
the randomised one, by the *absolute* Spearman rank correlation over the map's cells (a map whose
ranking survives inverted has kept the structure as much as one that survives upright) and by the
SSIM of the two maps, each first scaled to [0, 1] (``map_ssim``). Each is averaged over images
with its 95 % percentile-bootstrap interval (``vn.bootstrap``).

**The rule** (``SANITY_RULE``, applied by ``sanity_verdict`` in chapters 06 and 09): a map *passes*
when the upper ends of both intervals lie below ``SANITY_THRESHOLD`` (0.2), *fails* when the lower
end of either lies above it, and *cannot tell* otherwise. 0.2 is the conventional upper end of a
"very weak" correlation (at most 4 % of the rank variance shared), and sits well above what two
independent maps reach by chance on a grid of 49 or more cells (mean |Spearman| about
``sqrt(2 / (pi (cells - 1)))``: 0.12 on 7x7, 0.06 on 14x14; ``chance_abs_spearman``), so an
unrelated map can pass given enough images. On grids of fewer than about 30 cells chance alone
comes close to 0.2 and nothing can pass.

Introduced in notebook 06 (rollout).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..core.geometry import as_int
from ..core.model import check_batch_size, check_pixel_values, class_labels, forward, resolve_targets, unwrap, vit_input
from ..interventions.randomisation import randomized
from ..methods.base import methods, registered
from ..methods.gradient_rollout import attention_with_grads
from ..stats import as_maps, rank_correlation, topk_overlap
from .intervals import bootstrap

__all__ = [
    "SANITY_RULE", "SANITY_THRESHOLD", "cascade_intervals", "cascading_randomization", "chance_abs_spearman",
    "explanation_maps", "map_ssim", "sanity_verdict", "unit_maps",
]  # fmt: skip

SANITY_THRESHOLD = 0.2
SANITY_RULE = (
    "A map passes the randomisation check when the upper ends of the 95 % intervals of both its mean absolute "
    f"Spearman and its mean SSIM with its map on the randomised model lie below {SANITY_THRESHOLD:g}, fails when "
    f"the lower end of either lies above {SANITY_THRESHOLD:g}, and cannot tell otherwise."
)


def sanity_verdict(
    abs_spearman: tuple[float, float], ssim: tuple[float, float], *, threshold: float = SANITY_THRESHOLD
) -> str:
    """``"passes"``, ``"fails"`` or ``"cannot tell"`` by the rule in this module's docstring, from the
    ``(low, high)`` intervals of the mean absolute Spearman and the mean SSIM between the trained and
    the randomised maps (NaN ends: "cannot tell"). Introduced in notebook 06, used in 09."""
    (a_low, a_high), (s_low, s_high) = (tuple(map(float, iv)) for iv in (abs_spearman, ssim))
    if a_high < threshold and s_high < threshold:
        return "passes"
    if a_low > threshold or s_low > threshold:
        return "fails"
    return "cannot tell"


def chance_abs_spearman(cells: int) -> float:
    """About the mean |Spearman| of two independent maps of ``cells`` cells, ``sqrt(2 / (pi (cells - 1)))``
    (the mean absolute value of a normal with the null variance ``1 / (cells - 1)``)."""
    return math.sqrt(2.0 / (math.pi * (int(cells) - 1))) if cells > 1 else float("nan")


def unit_maps(maps: Any) -> torch.Tensor:
    """Each map ``[batch, rows, cols]`` scaled to [0, 1] by its own minimum and maximum (float64); a
    constant map becomes 0 everywhere."""
    m = as_maps(maps).double()
    lo = m.flatten(1).min(1).values[:, None, None]
    span = m.flatten(1).max(1).values[:, None, None] - lo
    return torch.where(span > 0, (m - lo) / torch.where(span > 0, span, 1.0), torch.zeros_like(m))


def map_ssim(a: Any, b: Any) -> torch.Tensor:
    """SSIM (``skimage.metrics.structural_similarity``, ``data_range=1``) between two sets of maps,
    one value per image ``[batch]``, each map scaled to [0, 1] first (``unit_maps``). The window is
    7x7 (skimage's default), or the largest odd size that fits a smaller grid (at least 3x3): on a
    7x7 grid one window covers the map."""
    from skimage.metrics import structural_similarity

    a, b = as_maps(a, "map a"), as_maps(b, "map b")
    if a.shape != b.shape:
        raise ValueError(f"maps of shape {tuple(a.shape)} and {tuple(b.shape)} differ")
    side = min(a.shape[-2:])
    if side < 3:
        raise ValueError(f"SSIM needs maps of at least 3x3 cells, got {tuple(a.shape[-2:])}")
    win = min(7, side if side % 2 else side - 1)
    ua, ub = unit_maps(a).numpy(), unit_maps(b).numpy()
    return torch.tensor([structural_similarity(x, y, data_range=1.0, win_size=win) for x, y in zip(ua, ub)])


def _one_pass_methods() -> list[str]:
    """The registered ViT methods in the studies' default set that one eager forward and backward
    pass determines (in registration order: rollout, last layer, gradient rollout, then any added
    since with a ``from_pass`` and without ``default=False``)."""
    return [n for n in methods("vit") if registered(n).from_pass is not None and registered(n).default]


def explanation_maps(
    model: Any, pixel_values: torch.Tensor, target: int | list[int] | None = None, *, batch_size: int = 32
) -> dict[str, torch.Tensor]:
    """Three maps per image, each ``[batch, rows, cols]`` summing to 1 over the patches:

    - ``"rollout"``: attention rollout's CLS row (mean head fusion, no discard);
    - ``"last layer"``: the last layer's CLS -> patch attention, averaged over heads;
    - ``"gradient rollout"``: gradient-weighted rollout for class ``target`` (None = predicted).

    The first two never look at the class; the third does. All three come from one eager forward
    and backward pass per chunk of ``batch_size`` images. Introduced in notebook 06.
    """
    return _maps_and_logits(model, pixel_values, target, batch_size)[0]


def _maps_and_logits(
    model: Any, pixel_values: torch.Tensor, target: Any, batch_size: int
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    net, geom, pixel_values = vit_input(model, pixel_values, batch_size, "explanation maps")
    batch_size = check_batch_size(batch_size)
    grid = geom.grid_for(*pixel_values.shape[-2:])
    n_classes = int(getattr(net.config, "num_labels", 0) or 1)
    labels = class_labels(net)
    targets = None if target is None else resolve_targets(target, torch.zeros(len(pixel_values), n_classes), labels)
    out: dict[str, list[torch.Tensor]] = {m: [] for m in _one_pass_methods()}
    logits = []
    for i, chunk in enumerate(pixel_values.split(batch_size)):
        t = None if targets is None else targets[i * batch_size : i * batch_size + len(chunk)].tolist()
        lg, maps, grads = attention_with_grads(net, chunk, t)
        logits.append(lg)
        for name, maps_of in out.items():
            maps_of.append(registered(name).from_pass(maps, grads, geom.prefix, grid))
    return {m: torch.cat(v) for m, v in out.items()}, torch.cat(logits)


def cascading_randomization(
    model: Any,
    pixel_values: torch.Tensor,
    target: int | list[int] | None = None,
    *,
    from_layers: list[int] | None = None,
    seed: int = 0,
    fully_random: bool = True,
    topk_frac: float = 0.1,
    batch_size: int = 32,
    progress: bool = False,
) -> tuple[pd.DataFrame, dict[str, dict[str, torch.Tensor]]]:
    """Model-randomisation test (Adebayo et al. 2018, "Sanity checks for saliency maps").

    The trained model's ``explanation_maps`` are the reference. Then, for each ``from_layer``
    in ``from_layers`` (default: the head alone, then blocks 11, 9, 6, 3, 0 and up), a copy of the
    model with blocks ``>= from_layer`` and the head re-initialised (``vn.interventions.randomized``, same
    ``seed``: a cascade from the top down), and with ``fully_random`` also a copy with every
    weight, embeddings included, re-initialised. Each map is compared with the trained one
    of the same image by Spearman rank correlation over the patches.

    ``target`` (a class, one per image, or None = the trained model's prediction) stays fixed
    across the cascade. Returns a long table (one row per step and method: ``step``,
    ``from_layer`` (-1 for the fully random copy, ``layers + 1`` for the trained model),
    ``method``, ``spearman`` (mean over images), ``spearman_min``, ``topk_overlap`` (share of the
    top ``topk_frac`` of patches the two maps have in common; ``topk_frac`` is what unrelated maps share
    by chance), ``accuracy`` = share of images whose prediction equals ``target``) and the maps
    ``{step: {method: [batch, rows, cols]}}``.
    Introduced in notebook 06.
    """
    net, geom = unwrap(model)
    geom.require_vit("cascading randomisation")
    pixel_values = check_pixel_values(pixel_values, geom)
    batch_size = check_batch_size(batch_size)
    if not 0.0 < topk_frac <= 1.0:
        raise ValueError(f"topk_frac must lie in (0, 1], got {topk_frac}")
    targets = _fixed_targets(net, pixel_values, target, batch_size)
    steps = _cascade(model, geom.layers, from_layers, fully_random)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc="randomisation cascade")
    rows, maps = [], {}
    for label, f, m in steps:
        if m is None:
            m = randomized(model, 0 if f == -1 else f, seed, embeddings=f == -1)
        maps[label], step_logits = _maps_and_logits(m, pixel_values, targets.tolist(), batch_size)
        acc = float((step_logits.argmax(-1) == targets.to(step_logits.device)).double().mean())
        rows += [
            {
                "step": label,
                "from_layer": f,
                **_compare(maps[label][k], maps["trained"][k], k, topk_frac),
                "accuracy": acc,
            }
            for k in maps[label]
        ]
    df = pd.DataFrame(rows)
    df.attrs.update(images=len(pixel_values), seed=seed)
    return df, maps


def _fixed_targets(net: torch.nn.Module, pixel_values: torch.Tensor, target: Any, batch_size: int) -> torch.Tensor:
    """The class each image is explained for on every step: ``target``, or the trained model's prediction."""
    if target is None:
        with torch.no_grad():
            logits = torch.cat([forward(net, c).logits for c in pixel_values.split(batch_size)])
    else:
        logits = torch.zeros(len(pixel_values), int(getattr(net.config, "num_labels", 0) or 1))
    return resolve_targets(target, logits, class_labels(net))


def _cascade(model: Any, layers: int, from_layers: Any, fully_random: bool) -> list[tuple[str, int, Any]]:
    """The steps ``(label, from_layer, model or None = randomise)``: the trained model first."""
    from_layers = [layers, layers - 1, 9, 6, 3, 0] if from_layers is None else list(from_layers)
    from_layers = [as_int(f, "a from_layers entry") for f in from_layers]
    for f in from_layers:
        if not 0 <= f <= layers:
            raise ValueError(f"from_layers must hold ints in 0..{layers} ({layers} = the head alone), got {f!r}")
    steps: list[tuple[str, int, Any]] = [("trained", layers + 1, model)]
    for f in from_layers:
        label = "head" if f == layers else f"head + block {f}" if f == layers - 1 else f"head + blocks {f}-{layers - 1}"
        steps.append((label, f, None))
    if fully_random:
        steps.append(("all + embeddings", -1, None))
    return steps


def _compare(maps: torch.Tensor, trained: torch.Tensor, method: str, topk_frac: float) -> dict:
    """One method's maps against the trained model's: Spearman (mean, min) and top-k overlap."""
    rho = rank_correlation(maps, trained).numpy()
    return {
        "method": method,
        "spearman": float(np.nanmean(rho)),
        "spearman_min": float(np.nanmin(rho)),
        "topk_overlap": float(topk_overlap(maps, trained, topk_frac).mean()),
    }


def cascade_intervals(
    model: Any,
    pixel_values: torch.Tensor,
    target: int | list[int] | None = None,
    *,
    from_layers: list[int] | None = None,
    seeds: tuple[int, ...] | list[int] = (0, 1, 2),
    fully_random: bool = True,
    topk_frac: float = 0.1,
    n_boot: int = 1000,
    level: float = 0.95,
    batch_size: int = 32,
    progress: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, dict[str, torch.Tensor]]]:
    """The cascading randomisation of ``cascading_randomization`` repeated for several random
    draws (``seeds``), with intervals: how sure is the verdict, over images and over draws?

    For each step and method, every image's Spearman with its trained map is averaged over the
    seeds; the table gives the mean over images (``spearman``) with its percentile-bootstrap
    ``level`` interval over the images (``low``, ``high``; ``vn.bootstrap``, resampling seed 0),
    ``seed_min`` and ``seed_max`` (the lowest and highest of the per-seed means: the spread over
    random draws), the mean ``topk_overlap`` and ``accuracy`` (over seeds), and ``n`` (images).
    Adebayo et al.'s comparison (module docstring) the same way: ``abs_spearman`` with ``abs_low``,
    ``abs_high`` and ``ssim`` with ``ssim_low``, ``ssim_high`` (each image's value averaged over the
    seeds, then bootstrapped), and ``sanity``, the verdict of ``sanity_verdict`` on those intervals.
    A last step per method, ``"trained, another image"``, is the reference: the trained maps of
    two different images (each image against the next; no verdict). Returns ``(table, per_image, maps)``:
    ``per_image`` has one row per (seed, step, method, image) with ``spearman``, ``abs_spearman``,
    ``ssim`` and ``topk_overlap``;
    ``maps`` are those of the first seed, as ``cascading_randomization`` returns them.
    Introduced in notebook 06 (rollout).
    """
    seeds = _check_seeds(seeds)
    net, geom = unwrap(model)
    geom.require_vit("cascading randomisation")
    pixel_values = check_pixel_values(pixel_values, geom)
    batch_size = check_batch_size(batch_size)
    if not 0.0 < topk_frac <= 1.0:
        raise ValueError(f"topk_frac must lie in (0, 1], got {topk_frac}")
    fixed = _fixed_targets(net, pixel_values, target, batch_size).tolist()
    steps = _cascade(model, geom.layers, from_layers, fully_random)[1:]
    trained = _maps_and_logits(model, pixel_values, fixed, batch_size)[0]
    jobs = _progress([(seed, step) for seed in seeds for step in steps], progress, "randomisation cascades")
    rows, first = [], {"trained": trained}
    for seed, (label, f, _) in jobs:
        rand = randomized(model, 0 if f == -1 else f, seed, embeddings=f == -1)
        maps, logits = _maps_and_logits(rand, pixel_values, fixed, batch_size)
        correct = (logits.argmax(-1).cpu() == torch.as_tensor(fixed)).double().numpy()
        rows += [_per_image_rows(seed, label, k, maps[k], trained[k], topk_frac, correct) for k in maps]
        if seed == seeds[0]:
            first[label] = maps
    rows += [
        _per_image_rows(-1, "trained, another image", k, m.roll(1, 0), m, topk_frac, None) for k, m in trained.items()
    ]
    per_image = pd.concat(rows, ignore_index=True)
    table = _seed_summary(per_image, n_boot, level)
    table.attrs.update(images=len(pixel_values), seeds=list(seeds))
    return table, per_image, first


def _progress(items: list, show: bool, desc: str) -> Any:
    """``items``, under a tqdm progress bar when ``show``."""
    if not show:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc)


def _check_seeds(seeds: Any) -> list[int]:
    seeds = list(seeds) if isinstance(seeds, (list, tuple)) else None
    if not seeds or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0 for s in seeds):
        raise ValueError("seeds must be a non-empty list of non-negative ints, e.g. (0, 1, 2)")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds repeat: {seeds}; each seed is one random draw")
    return [int(s) for s in seeds]


def _per_image_rows(seed, step, method, maps, trained, topk_frac, correct) -> pd.DataFrame:
    """One method's per-image agreement with the trained maps at one (seed, step)."""
    rho = rank_correlation(maps, trained).numpy()
    return pd.DataFrame(
        {
            "seed": seed,
            "step": step,
            "method": method,
            "image": np.arange(len(rho)),
            "spearman": rho,
            "abs_spearman": np.abs(rho),
            "ssim": map_ssim(maps, trained).numpy(),
            "topk_overlap": topk_overlap(maps, trained, topk_frac).numpy(),
            "correct": np.nan if correct is None else correct,
        }
    )


def _seed_summary(per_image: pd.DataFrame, n_boot: int, level: float) -> pd.DataFrame:
    """Per (step, method): the seed-averaged per-image Spearman's mean and bootstrap interval, the
    spread of the per-seed means, |Spearman| and SSIM with their intervals and the sanity verdict."""
    rows = []
    for (step, method), g in per_image.groupby(["step", "method"], sort=False):
        per_seed = g.groupby("seed")["spearman"].mean()
        by_image = g.groupby("image")
        iv, ab, ss = (
            bootstrap(by_image[c].mean().to_numpy(), n_boot=n_boot, level=level)
            for c in ("spearman", "abs_spearman", "ssim")
        )
        word = "" if g["seed"].iloc[0] < 0 else sanity_verdict((ab.low, ab.high), (ss.low, ss.high))
        rows.append(
            {
                "step": step,
                "method": method,
                "spearman": iv.value,
                "low": iv.low,
                "high": iv.high,
                "seed_min": float(per_seed.min()),
                "seed_max": float(per_seed.max()),
                "abs_spearman": ab.value,
                "abs_low": ab.low,
                "abs_high": ab.high,
                "ssim": ss.value,
                "ssim_low": ss.low,
                "ssim_high": ss.high,
                "sanity": word,
                "topk_overlap": float(g["topk_overlap"].mean()),
                "accuracy": float(g["correct"].mean()),
                "n": iv.n,
            }
        )
    return pd.DataFrame(rows)
