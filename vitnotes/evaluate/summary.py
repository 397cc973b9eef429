"""One table for chapter 09: every method x every metric, with bootstrap 95 % intervals over images.

Introduced in notebook 09 (which explanation can you trust?).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..core.geometry import as_int
from ..core.model import check_batch_size
from .ground_truth import DISTRACTORS, ground_truth
from .intervals import bootstrap
from .perturbation import control_maps, perturbation_curves_all

__all__ = ["evaluation_table", "interval_rows", "wide"]

COLUMNS = ["method", "family", "metric", "baseline", "value", "low", "high", "n"]
_CURVE_METRICS = {
    "deletion": "deletion_auc",
    "deletion_lif": "deletion_lif_auc",
    "insertion": "insertion_auc",
    "srg": "srg",
}


def evaluation_table(
    maps: Mapping[str, Any], model: Any = None, images: Any = None, masks: Any = None, *,
    baselines: Sequence[Any] = ("black", "mean", "blur"), restrict: Any = None, restrict_name: str = "object",
    restrict_baselines: Sequence[Any] | None = None, controls: bool = True,
    steps: int = 20, score: str | None = None, target: Any = None, truth: Any = None, sigma: float = 5.0,
    mean: Any = None, chunk: int = 16, batch_size: int = 128,
    negative: str = "clip", min_cover: float = 0.0,
    n_boot: int = 1000, seed: int = 0, level: float = 0.95, progress: bool = False, per_image: bool = False,
) -> pd.DataFrame:  # fmt: skip
    """A tidy table, one row per (method, metric, baseline): ``value`` (mean over images), ``low``
    and ``high`` (percentile-bootstrap ``level`` interval over images, ``n_boot`` resamples,
    ``seed``; every method resampled identically) and ``n`` (images with a defined value).

    ``maps``: ``{method name: [batch, rows, cols] or [batch, H, W] maps}`` of the same images.

    - With ``model`` and ``images`` (raw, ``[batch, H, W(, C)]``): family ``"faithfulness"``,
      metrics ``deletion_auc`` (most relevant first), ``deletion_lif_auc``, ``insertion_auc`` and
      ``srg`` for each of ``baselines`` (see ``perturbation_curves`` for every convention), and
      again with ``baseline = "<baseline>, <restrict_name>"`` for each of ``restrict_baselines``
      (default: all) when ``restrict`` (``[batch, H, W]`` bool, e.g. ``object_masks(images)``)
      is given. ``controls=True`` adds the ``random`` and ``brightness`` maps as methods.
    - With ``masks`` (region codes ``[batch, H, W]``): family ``"ground truth"``, metrics
      ``mass_chirp``, ``area_chirp`` (the uniform reference), ``ratio``, ``pointing``,
      ``pointing_chance`` and ``mass_<distractor>`` for text, colorbar and axes (``negative``
      and ``min_cover`` as in ``ground_truth``).

    ``per_image=True`` adds a column ``values``: each row's per-image values (a tuple in image order,
    NaN where undefined), which ``vn.paired_verdicts`` compares image by image.

    ``df.attrs``: ``images_per_s`` and ``seconds`` per (method, baseline), ``curves`` (per (method,
    baseline): ``fractions`` and the mean ``deletion``, ``deletion_lif`` and ``insertion`` curves
    over images, for the figures), ``images``, and the settings. ``wide(df)`` pivots it to method x
    metric. Introduced in notebook 03.
    """
    _check_inputs(maps, model, images, masks)
    steps, batch_size = as_int(steps, "steps", least=1), check_batch_size(batch_size)
    methods = dict(maps)
    if controls and images is not None:
        for k, v in control_maps(images, seed).items():
            methods.setdefault(k, v)
    boot = {"n_boot": n_boot, "seed": seed, "level": level}
    t_all = time.perf_counter()
    rows: list[dict] = []
    timing: dict[str, dict] = {"images_per_s": {}, "seconds": {}, "curves": {}}
    if model is not None:
        jobs = _jobs(baselines, restrict, restrict_name, restrict_baselines)
        curve_options = dict(sigma=sigma, mean=mean, steps=steps, score=score, target=target, truth=truth, seed=seed)
        curve_options.update(chunk=chunk, batch_size=batch_size)
        rows += _faithfulness_rows(methods, model, images, jobs, curve_options, boot, timing, progress)
    if masks is not None:
        rows += _ground_truth_rows(methods, masks, negative, min_cover, boot)
    df = pd.DataFrame(rows, columns=[*COLUMNS, "values"])
    if not per_image:
        df = df[COLUMNS]
    n_img = int(np.asarray(images).shape[0]) if images is not None else int(np.asarray(masks).shape[0])
    settings = dict(steps=steps, n_boot=n_boot, seed=seed, level=level, negative=negative, min_cover=min_cover)
    df.attrs.update(images=n_img, **timing, total_seconds=time.perf_counter() - t_all, **settings)
    df.attrs.update(sigma=sigma, controls=controls)
    return df


def _check_inputs(maps: Any, model: Any, images: Any, masks: Any) -> None:
    """Refuse empty maps, nothing to evaluate, and a model without the raw images."""
    if not isinstance(maps, Mapping) or not maps:
        raise ValueError("maps must be a non-empty {method name: maps} mapping")
    if model is None and masks is None:
        raise ValueError("nothing to evaluate: pass model and images (faithfulness), masks (ground truth), or both")
    if model is not None and images is None:
        raise ValueError("faithfulness needs the raw images the maps explain: pass images=")


def _row(method: str, family: str, metric: str, base: str, values: Any, boot: dict) -> dict:
    """One row of the table: the mean of ``values`` over images and its bootstrap interval."""
    iv = bootstrap(values, **boot)
    return dict(
        method=method, family=family, metric=metric, baseline=base, value=iv.value, low=iv.low, high=iv.high, n=iv.n,
        values=tuple(float(v) for v in np.asarray(values, dtype=np.float64).reshape(-1)),
    )  # fmt: skip


def _jobs(baselines: Sequence[Any], restrict: Any, restrict_name: str, restrict_baselines: Any) -> list[tuple]:
    """(baseline, restriction mask or None, label) for every curve each method gets."""
    label = lambda bl: bl if isinstance(bl, str) else "custom"
    jobs = [(bl, None, label(bl)) for bl in baselines]
    if restrict is not None:
        chosen = baselines if restrict_baselines is None else restrict_baselines
        jobs += [(bl, restrict, f"{label(bl)}, {restrict_name}") for bl in chosen]
    return jobs


def _faithfulness_rows(
    methods: dict, model: Any, images: Any, jobs: list, options: dict, boot: dict, timing: dict, progress: bool
) -> list[dict]:
    """The perturbation curves' AUC rows per (method, job); fills ``timing`` (rates, seconds, mean curves)."""
    todo = jobs
    if progress:
        from tqdm.auto import tqdm

        todo = tqdm(todo, desc="perturbation curves")
    rows = []
    for bl, rs, label in todo:  # every map of one job in one batched run: the shared forwards once
        curves = perturbation_curves_all(model, images, methods, baseline=bl, restrict=rs, **options)
        for name, c in curves.items():
            rows += [_row(name, "faithfulness", _CURVE_METRICS[k], label, v, boot) for k, v in c.aucs().items()]
            timing["curves"][(name, label)] = {
                "fractions": c.fractions.tolist(),
                **{k: getattr(c, k).mean(0).tolist() for k in ("deletion", "deletion_lif", "insertion")},
            }
            timing["images_per_s"][(name, label)] = c.images_per_s
            timing["seconds"][(name, label)] = c.seconds
    order = {name: i for i, name in enumerate(methods)}
    return sorted(rows, key=lambda r: order[r["method"]])  # method by method, as before


def _ground_truth_rows(methods: dict, masks: Any, negative: str, min_cover: float, boot: dict) -> list[dict]:
    """The ground-truth rows per method: mass on the chirp vs its area, pointing game, distractor masses."""
    metrics = ("mass_chirp", "area_chirp", "ratio", "pointing", "pointing_chance", *(f"mass_{d}" for d in DISTRACTORS))
    rows = []
    for name, mp in methods.items():
        gt = ground_truth(mp, masks, negative=negative, min_cover=min_cover)
        rows += [_row(name, "ground truth", m, "", gt[m].to_numpy(), boot) for m in metrics if m in gt]
    return rows


def interval_rows(
    values: Mapping[str, Any], metric: str, *, family: str = "", baseline: str = "",
    n_boot: int = 1000, seed: int = 0, level: float = 0.95, per_image: bool = False,
) -> pd.DataFrame:  # fmt: skip
    """Per-image values of any measurement as rows of ``evaluation_table``'s long table: one row per
    ``{method: [images] values}`` entry with the mean over images and its percentile-bootstrap
    interval (``vn.bootstrap``; every method resampled identically), so that ``vn.evaluate.interval_table``,
    ``vn.evaluate.verdicts`` and ``vn.show.interval_plot`` take them (``per_image=True``: with the ``values`` column
    that ``vn.paired_verdicts`` reads). Introduced in notebook 03 (CNN vs ViT)."""
    if not isinstance(values, Mapping) or not values:
        raise ValueError("values must be a non-empty {method name: per-image values} mapping")
    boot = {"n_boot": n_boot, "seed": seed, "level": level}
    rows = [_row(name, family, metric, baseline, np.asarray(v, dtype=np.float64), boot) for name, v in values.items()]
    return pd.DataFrame(rows, columns=[*COLUMNS, "values"] if per_image else COLUMNS)


def wide(table: pd.DataFrame) -> pd.DataFrame:
    """``evaluation_table``'s long table as method x (metric [baseline]) with ``value``, ``low`` and
    ``high`` under each column (a two-level column index), methods in their original order."""
    t = table.copy()
    t["column"] = np.where(t["baseline"] == "", t["metric"], t["metric"] + " [" + t["baseline"] + "]")
    order = list(dict.fromkeys(t["method"]))
    cols = list(dict.fromkeys(t["column"]))
    out = t.pivot(index="method", columns="column", values=["value", "low", "high"])
    out = out.swaplevel(0, 1, axis=1).reindex(columns=pd.MultiIndex.from_product([cols, ["value", "low", "high"]]))
    out = out.reindex(order)
    out.attrs.update(table.attrs)
    return out
