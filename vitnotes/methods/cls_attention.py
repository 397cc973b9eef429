"""Raw CLS attention: one layer's CLS -> patch attention, averaged over heads (the map the
seed papers show). Introduced in notebook 01 (layers); a method of the sanity check in 06.
"""

from __future__ import annotations

from typing import Any

import torch

from ..core.capture import Attention, capture, patch_grid
from .base import method

__all__ = ["cls_attention"]


def _from_pass(maps: list[torch.Tensor], grads: list[torch.Tensor], prefix: int, grid: tuple[int, int]) -> torch.Tensor:
    return patch_grid(maps[-1][:, :, 0].float(), prefix, grid).mean(1)


@method(
    "last layer",
    from_pass=_from_pass,
    what="The last layer's attention from the CLS token to each patch, averaged over heads.",
)
def cls_attention(
    model: Any,
    pixel_values: torch.Tensor | None = None,
    target: Any = None,
    *,
    layer: int = -1,
    batch_size: int | None = None,
) -> torch.Tensor:
    """CLS -> patch attention of ``layer`` (default the last), mean over heads, ``[batch, rows, cols]``
    (prefix tokens dropped, each head's row renormalised). ``model`` may be a ``vn.capture`` result;
    ``target`` is ignored (attention never looks at the class). Chunks of ``batch_size`` images (None:
    64 on the CPU, sized from the free memory on a GPU); peak
    memory per image: one inference forward up to ``layer``, measured 0.44 MiB on ``fmnist-vit-p4``
    (CPU fp32, ``benchmarks/bench_memory.py``). On BEiT, whose classifier reads the patch mean, the last
    layer's CLS output is never read (README, model families). Introduced in notebook 01."""
    attn = (
        model
        if isinstance(model, Attention)
        else capture(model, pixel_values, layers=[layer], cls_only=True, batch_size=batch_size)
    )
    return attn.cls_grid(layer).mean(1)
