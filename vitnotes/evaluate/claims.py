"""What the seeds claimed, and what we found: per-image measurements, intervals over images or over
fine-tuning runs, the seeds' claims and one table of verdicts.

Conventions (stated once, used everywhere here):

- **Per image, then resampled.** ``image_profile`` keeps every statistic per image (``[layer, image,
  head]``), ``head_losses`` every ablated head's loss per image, so a claim's number can be
  recomputed on resampled images.
- **Intervals: over images, or over runs.** A claim measured on one model (or on the shared starting
  point alone) gets a percentile-bootstrap interval over images (``crossed_bootstrap`` with one
  model, i.e. ``vn.bootstrap``'s resamples). A claim measured on several fine-tuning runs of one
  recipe (seeds) gets chapter 07's interval over runs (``vn.evaluate.run_interval``): the claim's number is
  computed for each run from that run's means over images (with the shared "before" means), and the
  mean over runs gets a Student-t interval over runs. With two or three runs a bootstrap over runs
  cannot make an interval; the t interval is wide, as it should be.
- **The verdict rule.** A claim is a comparison of one number with a threshold (``"<"`` or ``">"``,
  e.g. "the change in entropy is below 0"). It is *reproduced* when our whole 95 % interval lies on
  the claimed side of the threshold, *not reproduced* otherwise, with the reason: the interval lies
  on the other side, or it contains the threshold (these images cannot tell). A claim the zoo cannot
  measure is *not testable here*, with the reason.
- **"Of the seed's size"** (``seed_size``, one rule for every claim whose seed gives a number, in our
  unit; effects are measured from the claim's threshold, "no effect": 0 for a change, 1 for an error
  ratio): our effect is *of the seed's size* when the seed's number lies inside our 95 % interval
  and the threshold does not; *smaller* (*larger*) when the whole interval lies between the threshold
  and the seed's number (beyond it); *opposite* when it lies on the other side of the threshold;
  *cannot tell* when it holds the threshold. ``ours / seed's`` is the ratio of the two effects.
- **A head attends exclusively to a region** when more than ``EXCLUSIVE`` (a half) of its CLS
  attention mass, mean over images, lies on the region.

Introduced in notebook 10 (what the seeds claimed, and what we found).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..core.capture import patch_grid, stream
from ..core.geometry import as_int, layer_indices
from ..core.model import check_batch_size, check_pixel_values, unwrap
from ..data.chirps import REGIONS
from ..interventions.ablation import sweep
from ..methods.rollout import fuse_heads
from ..profile import _chunk_stats as _profile_chunk
from ..stats import entropy, mask_coverage, normalized_entropy
from .finetune import run_interval
from .intervals import Interval

__all__ = [
    "ABLATED_LAYERS", "EXCLUSIVE", "SEED_CLAIMS", "RunInterval", "claims_table", "crossed_bootstrap", "head_losses",
    "image_profile", "measure_claims", "seed_size", "stack_profiles", "verdict",
]  # fmt: skip


@dataclass(frozen=True)
class RunInterval(Interval):
    """A claim's mean over fine-tuning runs with its Student-t interval over the runs (``vn.evaluate.run_interval``):
    ``n`` images per run, ``runs`` runs, ``per_run`` each run's number; ``n_boot`` is 0 (no resampling)."""

    runs: int = 0
    per_run: tuple = ()


def image_profile(
    model: Any, pixel_values: torch.Tensor, masks: Any = None, *, k: int = 10, batch_size: int = 16
) -> dict[str, np.ndarray]:
    """Per-image CLS statistics of every (layer, head), the rollout's CLS entropy and the outputs,
    from one streamed forward pass (full attention, ``batch_size`` images at a time).

    Returns arrays: ``entropy``, ``entropy_norm``, ``top{k}``, ``distance_px`` and, with ``masks``
    (``[image, H, W]`` region codes), ``mass_<region>`` for every region: each ``[layer, image, head]``
    with the definitions of ``vn.profile.attention_profile`` (which averages them over images);
    ``rollout_entropy`` and ``rollout_entropy_norm`` ``[image]`` (rollout as ``vn.explain(..., "rollout")``: mean over
    heads, half identity, the CLS row over the patches); ``outputs`` ``[image, outputs]``; and
    ``area_<region>`` ``[image]``, each region's pixel share.
    """
    net, geom = unwrap(model)
    geom.require_vit("a per-image profile")
    x = check_pixel_values(pixel_values, geom)
    batch_size = check_batch_size(batch_size)
    grid = geom.grid_for(*x.shape[-2:])
    if not 1 <= k <= grid[0] * grid[1]:
        raise ValueError(f"k must lie in 1..{grid[0] * grid[1]} (the number of patches), got {k}")
    cover = _cover(masks, x.shape[0], grid)
    layers = layer_indices(geom, None)
    out: dict[str, list] = {}
    state: dict[str, Any] = {"lo": 0}

    def on_layer(layer: int, probs: torch.Tensor) -> None:
        maps = patch_grid(probs[:, :, 0], geom.prefix, grid)  # [chunk, head, rows, cols]
        stats = _chunk_stats(maps, probs, geom, grid, k, cover, state, layer == layers[0])
        for name, v in stats.items():
            out.setdefault(name, [[] for _ in layers])[layers.index(layer)].append(v)
        _rollout_step(probs, layer, layers, geom, grid, state, out)

    logits = stream(model, x, layers, on_layer, batch_size=batch_size, to_end=True)
    result = {n: np.stack([np.concatenate(v, 0) for v in per]) for n, per in out.items() if n not in _FLAT}
    result.update({n: np.concatenate(out[n][0]) for n in _FLAT if n in out})
    result["outputs"] = torch.cat(logits).numpy()
    result.update({f"area_{r}": c.double().mean((-2, -1)).numpy() for r, c in cover.items()})
    return result


_FLAT = ("rollout_entropy", "rollout_entropy_norm")


def _cover(masks: Any, n: int, grid: tuple[int, int]) -> dict[str, torch.Tensor]:
    """Each region's pixel share per patch, ``{region: [image, rows, cols]}`` ({} without masks)."""
    if masks is None:
        return {}
    m = np.asarray(masks)
    if m.ndim != 3 or m.shape[0] != n or not np.issubdtype(m.dtype, np.integer):
        raise ValueError(f"masks must be integer region codes [image={n}, H, W] (np.stack(ds['mask'])), got {m.shape}")
    return {name: mask_coverage(torch.from_numpy(m == code), grid) for code, name in enumerate(REGIONS)}


def _chunk_stats(maps, probs, geom, grid, k, cover, state, first: bool) -> dict[str, np.ndarray]:
    """One chunk's statistics, each ``[chunk, head]`` (``vn.profile.attention_profile``'s own per-chunk function,
    kept per image); ``first`` (the first layer) moves the chunk's start."""
    if first:
        state["lo"] = state.get("hi", 0)
        state["hi"] = state["lo"] + maps.shape[0]
    k5 = max(1, round(0.05 * grid[0] * grid[1]))
    stats = _profile_chunk(maps, probs, (geom.prefix, grid, geom.patch_size), k, k5)
    lo, hi = state["lo"], state["hi"]
    for name, cov in cover.items():
        stats[f"mass_{name}"] = (maps.double() * cov[lo:hi, None].to(maps.device)).sum((-2, -1))
    return {n: v.double().cpu().numpy() for n, v in stats.items()}


def _rollout_step(probs, layer, layers, geom, grid, state, out) -> None:
    """Rollout ``R = A_l ... A_0`` folded in layer by layer (``A = W / 2 + I / 2``, W the head mean);
    after the last layer, the CLS row's entropy over the patches is appended to ``out``."""
    a = 0.5 * fuse_heads(probs) + 0.5 * torch.eye(probs.shape[-1], dtype=probs.dtype, device=probs.device)
    a = a / a.sum(-1, keepdim=True)  # float32 (rollout multiplies in float64: equal to ~1e-6)
    state["r"] = a if layer == layers[0] else torch.bmm(a, state["r"])
    if layer == layers[-1]:
        cls = patch_grid(state["r"][:, 0], geom.prefix, grid).flatten(-2)
        out.setdefault("rollout_entropy", [[]])[0].append(entropy(cls).double().cpu().numpy())
        out.setdefault("rollout_entropy_norm", [[]])[0].append(normalized_entropy(cls).double().cpu().numpy())


def stack_profiles(prefix: str, profiles: Sequence[Mapping[str, np.ndarray]], targets: Any = None) -> dict:
    """``image_profile`` results of several models (fine-tuning seeds) on the same images, as the
    arrays ``crossed_bootstrap`` takes: ``{f"{prefix}/{name}": [model, image, ...]}``, per-(layer, head)
    statistics as ``[model, image, layer, head]``. With ``targets`` (``[image, outputs]``) also
    ``mse`` (each image's squared error, mean over outputs) and ``mse_mean`` (the same for always
    predicting 0, the training mean of z-scored targets)."""
    if not profiles:
        raise ValueError("pass at least one profile (vn.evaluate.image_profile(model, x))")
    out = {}
    for name in profiles[0]:
        arrays = [np.moveaxis(p[name], 0, 1) if p[name].ndim == 3 else p[name] for p in profiles]
        out[f"{prefix}/{name}"] = np.stack(arrays)
    if targets is not None:
        y = np.asarray(targets, dtype=np.float64)
        if y.shape != profiles[0]["outputs"].shape:
            raise ValueError(f"targets {y.shape} do not match the outputs {profiles[0]['outputs'].shape}")
        out[f"{prefix}/mse"] = np.stack([((p["outputs"] - y) ** 2).mean(-1) for p in profiles])
        out[f"{prefix}/mse_mean"] = (y**2).mean(-1)[None]
    return out


def head_losses(
    model: Any, pixel_values: torch.Tensor, targets: Any, heads: Sequence[tuple[int, int]], *, loss: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Each image's loss with each of ``heads`` zeroed alone, ``[image, head]``, and its intact loss
    ``[image]``: one ``vn.sweep`` (same ablation, same loss) over the batch that keeps every image's
    loss (``per_image=True``), so the relative increase of any group of heads can be bootstrapped
    over images."""
    heads = [(as_int(a, "layer"), as_int(b, "head")) for a, b in heads]
    if not heads:
        raise ValueError("pass at least one (layer, head) pair")
    df = sweep(model, pixel_values, targets, heads=heads, loss=loss, per_image=True)
    each = df.attrs["per_image"]  # losses [the table's rows, image], baseline [image]
    row = {(int(layer), int(head)): i for i, (layer, head) in enumerate(zip(df["layer"], df["head"]))}
    return each.losses[[row[h] for h in heads]].T.copy(), each.baseline.copy()


def crossed_bootstrap(
    values: Mapping[str, Any],
    statistic: Callable[[dict[str, np.ndarray]], float],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> Interval:
    """A statistic of means over models and images, with its percentile-bootstrap interval.

    ``values[name]`` is ``[model, image, ...]``: one row per fine-tuning seed (or 1, e.g. the shared
    starting point), the same images in every row. Resample ``b`` draws the models
    ``rng.integers(0, m, size=m)`` (m the largest model count) and then the images
    ``rng.integers(0, n, size=n)`` of ``rng = numpy.random.default_rng(seed)``; an array with one
    model keeps it. ``statistic`` gets each array's mean over (model, image) and returns a number;
    the value is the statistic of the plain means. With one model this is ``vn.bootstrap``'s
    resampling of the images (the same draws). ``measure_claims`` uses it for one-model claims only:
    with two or three models, resampling the models cannot make an interval (module docstring).
    """
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in values.items()}
    if not arrays or any(a.ndim < 2 for a in arrays.values()):
        raise ValueError("values must map names to arrays [model, image, ...]")
    n = {a.shape[1] for a in arrays.values()}
    m = max(a.shape[0] for a in arrays.values())
    if len(n) != 1 or any(a.shape[0] not in (1, m) for a in arrays.values()):
        raise ValueError(
            f"every array needs the same images and 1 or {m} models, got {[a.shape for a in arrays.values()]}"
        )
    n = n.pop()
    if not 0.0 < level < 1.0 or n_boot < 1:
        raise ValueError(f"need 0 < level < 1 and n_boot >= 1, got {level}, {n_boot}")
    rng = np.random.default_rng(seed)
    stats = np.empty(n_boot)
    for b in range(n_boot):
        models = rng.integers(0, m, size=m) if m > 1 else np.zeros(1, int)
        images = rng.integers(0, n, size=n)
        means = {k: a[models if a.shape[0] > 1 else [0]][:, images].mean((0, 1)) for k, a in arrays.items()}
        stats[b] = statistic(means)
    value = statistic({k: a.mean((0, 1)) for k, a in arrays.items()})
    low, high = np.percentile(stats, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return Interval(float(value), float(low), float(high), int(n), int(n_boot), level, seed)


def verdict(interval: Interval | str, side: str, threshold: float) -> tuple[str, str]:
    """(verdict, reason) by the rule in this module's docstring. ``side``: ``"<"`` or ``">"``: the
    claim is that our number lies below (above) ``threshold``. A string ``interval`` is the reason the
    claim is not testable here."""
    if isinstance(interval, str):
        return "not testable here", interval
    if side not in ("<", ">"):
        raise ValueError(f"side must be '<' or '>', got {side!r}")
    low, high = interval.low, interval.high
    if not (math.isfinite(low) and math.isfinite(high)):
        return "not testable here", "no finite interval (no image had a value)"
    below, above = high < threshold, low > threshold
    if (side == "<" and below) or (side == ">" and above):
        return "reproduced", f"the whole interval lies {'below' if side == '<' else 'above'} {threshold:g}"
    if below or above:
        return "not reproduced", f"the whole interval lies on the other side of {threshold:g}"
    data = "these runs" if isinstance(interval, RunInterval) else "these images"
    return "not reproduced", f"the interval contains {threshold:g}: {data} cannot tell"


def seed_size(interval: Interval | str, seed: float | None, threshold: float = 0.0) -> str:
    """Our effect against the seed's number ``seed`` (in our unit), both measured from the claim's
    ``threshold``, by the one rule of this module's docstring: "of the seed's size", "smaller",
    "larger", "opposite" or "cannot tell"; "" when the seed gives no number or we have no interval."""
    if isinstance(interval, str) or seed is None or not math.isfinite(seed) or seed == threshold:
        return ""
    seed = seed - threshold
    sign = 1.0 if seed > 0 else -1.0
    low, high = sorted((sign * (interval.low - threshold), sign * (interval.high - threshold)))  # seed's effect > 0
    if not (math.isfinite(low) and math.isfinite(high)):
        return ""
    s, has_zero = abs(seed), low <= 0.0 <= high
    if low <= s <= high:
        return "cannot tell" if has_zero else "of the seed's size"
    if has_zero:
        return "cannot tell"
    if high < 0.0:
        return "opposite"
    return "smaller" if high < s else "larger"


# ------------------------------------------------------------------ the seeds' claims, as comparisons
ABLATED_LAYERS = (0, 1, 2, 3, 5, 6)  # the paper's layers 1-3 and 6 read 1-based (0-2, 5) and 0-based (1-3, 6)
_LOG196 = math.log(196)  # the galaxy seed's ViT-B/16 grid: 14 x 14 patches


def _change(m: dict, stat: str) -> np.ndarray:
    """After minus before, per layer (mean over heads): ``[layer]``."""
    return m[f"after/{stat}"].mean(-1) - m[f"before/{stat}"].mean(-1)


def _increase(m: dict, layers: Sequence[int]) -> float:
    """Mean relative MSE increase (%) of the heads of ``layers`` (each head: mean loss / mean intact - 1)."""
    rel = m["ablation/loss"] / m["ablation/base"] - 1.0  # [ablated layer, head]
    return 100 * float(rel[[ABLATED_LAYERS.index(layer) for layer in layers]].mean())


EXCLUSIVE = 0.5  # a head attends exclusively to a region above this share of its CLS mass (mean over images)


def _exclusive_share(m: dict, region: str, layers: slice) -> float:
    """The share of the heads of ``layers`` whose CLS mass on ``region`` (mean over images) exceeds
    ``EXCLUSIVE``."""
    return float((m[f"after/mass_{region}"][layers] > EXCLUSIVE).mean())


def _enrichment(m: dict, region: str, layers: slice) -> float:
    """The largest enrichment (CLS mass / area share) of ``region`` over the heads of ``layers``."""
    return float((m[f"after/mass_{region}"][layers] / m[f"after/area_{region}"]).max())


def _late_minus_early_change(m: dict) -> float:
    c = np.abs(_change(m, "entropy_norm"))
    return float(c[:4].mean() - c[-4:].mean())


def _last_minus_others(m: dict) -> float:
    c = np.abs(_change(m, "entropy_norm"))
    return float(c[-1] - c[:-1].max())


def _roll_change(m: dict) -> float:
    return float(m[f"after/{_ROLL}"] - m[f"before/{_ROLL}"])


def _deep_minus_early(m: dict, name: str) -> float:
    """Mean over the last four layers minus the first four (heads averaged) of ``m[name]`` ``[layer, head]``."""
    per_layer = m[name].mean(-1)
    return float(per_layer[-4:].mean() - per_layer[:4].mean())


def _claim(source, claim, stated, number, side, threshold, unit, statistic, needs):
    return dict(source=source, claim=claim, stated=stated, number=number, side=side, threshold=threshold, unit=unit,
                statistic=statistic, needs=needs)  # fmt: skip


_G, _P, _L = "galaxy fine-tuning (README)", "spectrogram head ablation (paper)", "course lab"
_ROLL = "rollout_entropy_norm"
SEED_CLAIMS: dict[str, dict] = {
    "focus": _claim(_G, "fine-tuning lowers the last layer's CLS entropy", "4.81 -> 3.09 nats",
                    (3.09 - 4.81) / _LOG196, "<", 0.0, "change in H / log N",
                    lambda m: float(_change(m, "entropy_norm")[-1]), ("before/entropy_norm", "after/entropy_norm")),
    "top10": _claim(_G, "fine-tuning raises the last layer's top-10 share", "20.8 % -> 79.4 %",
                    0.794 - 0.208, ">", 0.0, "change in share",
                    lambda m: float(_change(m, "top10")[-1]), ("before/top10", "after/top10")),
    "rollout": _claim(_G, "rollout's CLS entropy falls a little", "4.85 -> 4.74 nats",
                      (4.74 - 4.85) / _LOG196, "<", 0.0, "change in H / log N",
                      _roll_change, (f"before/{_ROLL}", f"after/{_ROLL}")),
    "rollout_vs_last": _claim(_G, "rollout changes less than the last layer", "|-0.11| vs |-1.72| nats",
                              (0.11 - 1.72) / _LOG196, "<", 0.0, "|change| rollout - last layer (H / log N)",
                              lambda m: abs(_roll_change(m))
                              - abs(float(_change(m, "entropy_norm")[-1])),
                              (f"before/{_ROLL}", f"after/{_ROLL}", "before/entropy_norm", "after/entropy_norm")),
    "last_most": _claim(_G, "the last layer changes most", "layer 11 (of 0-11)", None, ">", 0.0,
                        "|change| last layer - largest other (H / log N)", _last_minus_others,
                        ("before/entropy_norm", "after/entropy_norm")),
    "early_still": _claim(_G, "early layers (0-3) barely change, late ones more", "0-3 barely change", None, "<", 0.0,
                          "mean |change| layers 0-3 - last 4 (H / log N)", _late_minus_early_change,
                          ("before/entropy_norm", "after/entropy_norm")),
    "late_local": _claim(_G, "the last two layers become more local", "layers 10-11 more local", None, "<", 0.0,
                         "change in mean attention distance (px)",
                         lambda m: float(_change(m, "distance_px")[-2:].mean()),
                         ("before/distance_px", "after/distance_px")),
    "early_global": _claim(_G, "the first two layers become slightly more global", "layers 0-1 slightly more global",
                           None, ">", 0.0, "change in mean attention distance (px)",
                           lambda m: float(_change(m, "distance_px")[:2].mean()),
                           ("before/distance_px", "after/distance_px")),
    "learned": _claim(_G, "the fine-tuned model beats the trivial baseline", "86.3 % vs 22.6 % accuracy",
                      (1 - 0.863) / (1 - 0.226), "<", 1.0, "error ratio: model / baseline (MSE; seed: error rates)",
                      lambda m: float(m["after/mse"] / m["after/mse_mean"]), ("after/mse", "after/mse_mean")),
    "ablation_depth": _claim(_P, "zeroing a layer-6 head costs more than an early (1-3) head", "0.34 % vs 0.11 %",
                             0.34 - 0.11, ">", 0.0, "MSE increase (%): layer 6 - layers 1-3 (1-based)",
                             lambda m: _increase(m, [5]) - _increase(m, [0, 1, 2]), ("ablation/loss", "ablation/base")),
    "ablation_depth_0": _claim(_P, "the same, layers read 0-based (6 vs 1-3)", "0.34 % vs 0.11 %",
                               0.34 - 0.11, ">", 0.0, "MSE increase (%): layer 6 - layers 1-3 (0-based)",
                               lambda m: _increase(m, [6]) - _increase(m, [1, 2, 3]),
                               ("ablation/loss", "ablation/base")),
    "chirp_heads": _claim(_P, "heads of layers 6-11 attend exclusively to the chirp", "exclusively chirp", None, ">",
                          0.5, f"share of layer 6-11 heads (1-based), > {EXCLUSIVE:g} of CLS mass on the chirp",
                          lambda m: _exclusive_share(m, "chirp", slice(5, 11)), ("after/mass_chirp",)),
    "text_heads": _claim(_P, "some early heads (1-4) detect text", "text detectors", None, ">", 2.0,
                         "largest text enrichment, layers 1-4 (1-based)",
                         lambda m: _enrichment(m, "text", slice(0, 4)), ("after/mass_text", "after/area_text")),
    "edge_heads": _claim(_P, "some early heads (1-4) detect edges or corners", "edge or corner detectors", None, ">",
                         2.0, "largest axes (frame, ticks) enrichment, layers 1-4",
                         lambda m: _enrichment(m, "axes", slice(0, 4)), ("after/mass_axes", "after/area_axes")),
    "distractor_loss": _claim(_P, "deeper layers lose more when irrelevant content is present", "no number", None,
                              ">", 0.0, "", None, ()),
    "polysemantic": _claim(_P, "attention maps tell monosemantic from polysemantic heads", "no number", None,
                           ">", 0.0, "", None, ()),
    "lab_focus": _claim(_L, "attention goes from broad (early) to focused (deep)", "the expected result", None, "<", 0,
                        "H / log N: last 4 layers - first 4",
                        lambda m: _deep_minus_early(m, "lab/entropy_norm"),
                        ("lab/entropy_norm",)),
    "lab_local": _claim(_L, "attention goes from global (early) to local (deep)", "the expected result", None, "<", 0.0,
                        "mean attention distance (px): last 4 layers - first 4",
                        lambda m: _deep_minus_early(m, "lab/distance_px"),
                        ("lab/distance_px",)),
}  # fmt: skip


def measure_claims(
    values: Mapping[str, Any],
    claims: Mapping[str, dict] = SEED_CLAIMS,
    *,
    untestable: Mapping[str, str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Interval | str]:
    """Each claim's number with its interval, or the reason it is not testable here: from
    ``untestable``, or the arrays the claim ``needs`` that ``values`` lacks. The interval (module
    docstring): over images (``crossed_bootstrap``) when every array the claim needs holds one model;
    over runs (a ``RunInterval``) when one holds several fine-tuning runs. Introduced in notebook 10."""
    untestable = dict(untestable or {})
    out: dict[str, Interval | str] = {}
    for key, c in claims.items():
        missing = [n for n in c["needs"] if n not in values]
        if key in untestable:
            out[key] = untestable[key]
        elif c["statistic"] is None or missing:
            out[key] = f"not measured here (missing: {', '.join(missing) or 'a statistic'})"
        else:
            arrays = {n: np.asarray(values[n], dtype=np.float64) for n in c["needs"]}
            runs = max(a.shape[0] for a in arrays.values())
            if runs == 1:
                out[key] = crossed_bootstrap(arrays, c["statistic"], n_boot=n_boot, seed=seed, level=level)
            else:
                out[key] = _over_runs(arrays, c["statistic"], runs, level)
    return out


def _over_runs(arrays: dict[str, np.ndarray], statistic: Callable, runs: int, level: float) -> RunInterval:
    """The statistic of each run's means over images (a one-model array shared by every run), and
    their mean with the Student-t interval over runs (``vn.evaluate.run_interval``)."""
    if any(a.ndim < 2 or a.shape[0] not in (1, runs) for a in arrays.values()):
        raise ValueError(f"every array needs 1 or {runs} models, got {[a.shape for a in arrays.values()]}")
    per_run = [statistic({k: a[r if a.shape[0] > 1 else 0].mean(0) for k, a in arrays.items()}) for r in range(runs)]
    value, low, high = run_interval(per_run, level)
    n = next(iter(arrays.values())).shape[1]
    return RunInterval(value, low, high, int(n), 0, level, 0, runs, tuple(float(v) for v in per_run))


def claims_table(measured: Mapping[str, Interval | str], claims: Mapping[str, dict] = SEED_CLAIMS) -> pd.DataFrame:
    """One row per claim: the seed, the claim, what the seed states, the comparison, the seed's number
    and ours in one unit with our 95 % interval, ``over`` (what the interval is over: "256 images" or
    "3 runs"), ``images``, ``runs``, ``ours / seed's`` (where the seed gives a number: the ratio of the
    effects, each measured from the claim's threshold), ``vs seed's size``
    (``seed_size``), the verdict and its reason (``verdict``). Introduced in notebook 10."""
    rows = []
    for key, c in claims.items():
        if key not in measured:
            raise KeyError(f"claim {key!r} has no measurement; pass measure_claims(...) for every claim")
        m = measured[key]
        word, reason = verdict(m, c["side"], c["threshold"])
        iv = m if isinstance(m, Interval) else None
        runs = m.runs if isinstance(m, RunInterval) else (1 if iv else 0)
        over = "" if iv is None else (f"{runs} runs" if runs > 1 else f"{iv.n} images")
        rows.append({
            "claim": key, "source": c["source"], "what the seed says": c["claim"], "stated": c["stated"],
            "measure": c["unit"], "claimed side": f"{c['side']} {c['threshold']:g}" if c["statistic"] else "",
            "seed's number": c["number"], "ours": iv.value if iv else np.nan,
            "low": iv.low if iv else np.nan, "high": iv.high if iv else np.nan, "over": over,
            "images": iv.n if iv else 0, "runs": runs,
            "ours / seed's": (iv.value - c["threshold"]) / (c["number"] - c["threshold"])
            if iv and c["number"] is not None and c["number"] != c["threshold"] else np.nan,
            "vs seed's size": seed_size(m, c["number"], c["threshold"]), "verdict": word, "reason": reason,
        })  # fmt: skip
    return pd.DataFrame(rows).set_index("claim")
