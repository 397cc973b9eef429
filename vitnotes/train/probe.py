"""Attention measured while a model trains: the statistics the zoo's cards log at fixed points, so
the book can tell what ViT attention does from what a ViT part-way through training does.
Definitions are the book's (intro, "How to read an attention map"). Introduced in notebook 01.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..core.capture import capture
from ..core.model import forward, unwrap
from ..methods.rollout import rollout_grids
from ..profile import mean_attention_distance
from ..stats import mask_mass, normalized_entropy, topk_share

# the statistics whose change over the last quarter of training decides "trained" (all in [0, 1])
PLATEAU_STATS = ("entropy_norm", "top10", "rollout_entropy_norm")
PLATEAU_TOLERANCE = 0.02


@torch.no_grad()
def layer_statistics(
    model: Any, pixel_values: torch.Tensor, masks: dict[str, Any] | None = None, batch_size: int = 16
) -> dict[str, list[float]]:
    """Per-layer attention statistics of a ViT on a probe batch, each a list with one value per layer,
    averaged over images (and heads where a statistic is per head):

    - ``entropy_norm``: CLS -> patch entropy / log N (prefix dropped, renormalised);
    - ``top10``: the share of the 10 largest CLS -> patch weights;
    - ``distance_px``: mean attention distance over all query patches (ViT paper, Fig. 11);
    - ``rollout_entropy_norm``: entropy / log N of rollout's CLS row up to that layer;
    - ``norm_max`` and ``norm_median``: the largest and the median L2 norm of the patch tokens that
      layer writes to the residual stream (high-norm outliers are what Darcet et al. call artefacts);
    - ``mass_<region>`` for each boolean mask ``[batch, H, W]`` in ``masks``: CLS attention mass in it.

    The images are taken ``batch_size`` at a time and only one chunk's attention is held: peak
    memory is about ``12 * layers * heads * T^2`` bytes per image of a chunk (the probabilities, their
    distance-weighted copy and rollout's product; 72 MiB per image at 197 tokens, 12 x 12 heads).
    """
    net, geom = unwrap(model)
    was_training = net.training
    net.eval()
    try:
        n = pixel_values.shape[0]
        masks = {region: torch.as_tensor(np.asarray(mask)) for region, mask in (masks or {}).items()}
        sums: dict[str, torch.Tensor] = {}
        for lo in range(0, n, batch_size):
            part = _chunk_statistics(
                model, pixel_values[lo : lo + batch_size], {r: m[lo : lo + batch_size] for r, m in masks.items()}
            )
            for key, mean in part.items():  # chunk means, weighted by the chunk's images
                sums[key] = sums.get(key, 0.0) + mean * min(batch_size, n - lo)
        out = {key: total / n for key, total in sums.items() if not key.startswith("mass_")}
        norms = _token_norms(net, pixel_values, geom.prefix, batch_size)  # [layer, batch * patches]
        out["norm_max"] = norms.amax(-1)
        out["norm_median"] = norms.median(-1).values
        out.update({key: total / n for key, total in sums.items() if key.startswith("mass_")})
    finally:
        net.train(was_training)
    return {k: [round(float(v), 5) for v in vals] for k, vals in out.items()}


def _chunk_statistics(
    model: Any, pixel_values: torch.Tensor, masks: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """``layer_statistics``' attention statistics of one chunk, each ``[layer]``, averaged over the
    chunk's images (and heads)."""
    att = capture(model, pixel_values, batch_size=pixel_values.shape[0])  # probs [layer, batch, head, T, T]
    grids = att.cls_grids()  # [layer, batch, head, rows, cols]
    p = grids.flatten(-2)
    dist, _ = mean_attention_distance(att)  # [layer, batch, head]
    out = {
        "entropy_norm": normalized_entropy(p).mean((1, 2)),
        "top10": topk_share(p, min(10, p.shape[-1])).mean((1, 2)),
        "distance_px": dist.mean((1, 2)),
        "rollout_entropy_norm": normalized_entropy(rollout_grids(att).flatten(-2)).mean(-1),
    }  # fmt: skip
    for region, mask in masks.items():
        out[f"mass_{region}"] = mask_mass(grids, mask).mean((1, 2))
    return out


def _token_norms(net: torch.nn.Module, pixel_values: torch.Tensor, prefix: int, batch_size: int) -> torch.Tensor:
    """L2 norms of the patch tokens after each block: ``[layer, images * patches]``."""
    per_chunk = []
    for chunk in pixel_values.split(batch_size):
        hidden = forward(net, chunk, output_hidden_states=True).hidden_states[1:]  # one per block
        per_chunk.append(torch.stack([h[:, prefix:].float().norm(dim=-1).flatten() for h in hidden]))
    return torch.cat(per_chunk, dim=1)


def plateau(log: list[dict], tolerance: float = PLATEAU_TOLERANCE) -> dict:
    """Whether attention stopped changing: the largest per-layer change of each statistic in
    ``PLATEAU_STATS`` between the first probe in the last quarter of training and the last probe.
    ``held`` is True when every change is within ``tolerance``."""
    probes = [e for e in log if "layers" in e]
    if len(probes) < 2:
        return {"held": None, "why": "fewer than two probes"}
    end = probes[-1]
    quarter = 0.75 * end["epoch"]
    start = next(e for e in probes if e["epoch"] >= quarter - 1e-9)
    if start is end:
        return {"held": None, "why": "no probe in the last quarter before the end"}
    change = {s: max(abs(a - b) for a, b in zip(start["layers"][s], end["layers"][s])) for s in PLATEAU_STATS}
    return {
        "from_epoch": start["epoch"],
        "to_epoch": end["epoch"],
        "tolerance": tolerance,
        "max_change": {k: round(v, 4) for k, v in change.items()},
        "held": all(v <= tolerance for v in change.values()),
    }
