"""Before and after fine-tuning: per-image attention statistics and a table with intervals over
images (one fine-tuning run) or over runs (several seeds of the same recipe).

Conventions (stated once, used everywhere here):

- **Per image.** ``finetune_stats`` gives one value per image and statistic: the last layer's CLS
  entropy (nats, over the patches, renormalised without CLS -> CLS) and top-``k`` share, each the mean
  over heads; the entropy of attention rollout's CLS row (``vn.explain(model, x, "rollout")``); and,
  with region masks, the CLS attention mass on the chirp in layer ``chirp_layer`` (mean over heads)
  divided by the chirp's mean pixel share over the images, so the mean over images is
  ``vn.attention_profile``'s mass over area (1 = what a uniform map gives).
- **One run.** ``before`` and ``after`` are means over images with a percentile-bootstrap interval
  over images (``vn.bootstrap``), ``change`` the mean of the per-image differences after - before with
  the same resamples (paired: the models saw the same images).
- **Several runs** (fine-tuned models from the same starting point with different seeds):
  ``after`` is the mean over runs of each run's mean over images, ``change`` the mean over runs of
  (run mean - before mean), each with a Student-t interval over runs: mean +- t(level, runs - 1) x
  sd / sqrt(runs) (sd with ddof = 1). With two or three runs the bootstrap over runs cannot make an
  interval; the t interval is wide, as it should be. ``before`` keeps its interval over images.

Introduced in notebook 07 (fine-tuning).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..core.capture import capture
from ..core.model import unwrap
from ..data.chirps import REGIONS
from ..methods.base import explain
from ..stats import entropy, mask_coverage, topk_share
from .intervals import bootstrap

__all__ = ["STATISTICS", "finetune_stats", "finetune_table", "run_interval"]

STATISTICS = (
    "last-layer CLS entropy (nats)",
    "last-layer top-10 share",
    "rollout CLS entropy (nats)",
    "chirp mass / area",
)
_CHIRP = REGIONS.index("chirp")  # the chirp's code in the region masks


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
        m = np.asarray(masks)
        if m.ndim != 3 or m.shape[0] != len(pixel_values):
            raise ValueError(f"masks must be region codes [batch={len(pixel_values)}, H, W], got shape {m.shape}")
        cover = mask_coverage(torch.from_numpy(m == _CHIRP), att.grid)  # [batch, rows, cols]
        area = float(cover.double().mean())
        if area == 0:
            raise ValueError(f"no chirp pixels in the masks (code {_CHIRP}): pass the spectrograms' region masks")
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
    ``after``: one fine-tuned model, or a list of runs of the same recipe. ``vn.interval_table(t,
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
        if len(runs) == 1:
            a = tuned[0][name].to_numpy()
            rows.append(_row(name, "after", bootstrap(a, **boot), 1, "images"))
            rows.append(_row(name, "change", bootstrap(a - b, **boot), 1, "images"))
            continue
        means = np.array([t[name].mean() for t in tuned])
        rows.append(_row(name, "after", (*run_interval(means, level), len(b)), len(runs), "runs"))
        rows.append(_row(name, "change", (*run_interval(means - b.mean(), level), len(b)), len(runs), "runs"))
    df = pd.DataFrame(rows)
    df.attrs.update(images=len(base), runs=len(runs), level=level, n_boot=n_boot, seed=seed)
    return df


def _row(statistic: str, metric: str, iv: Any, runs: int, over: str) -> dict:
    """One row from an ``Interval`` or a (value, low, high, n) tuple."""
    value, low, high, n = (iv.value, iv.low, iv.high, iv.n) if hasattr(iv, "value") else iv
    return dict(statistic=statistic, metric=metric, baseline="", value=value, low=low, high=high, n=n, runs=runs,
                over=over)  # fmt: skip
