"""Raw CLS attention: one layer's CLS -> patch attention, averaged over heads (the map the
seed papers show). Introduced in notebook 01 (layers); a method of the sanity check in 06.
"""

from __future__ import annotations

from typing import Any

import torch

from ..core.capture import Attention, capture, no_cls, patch_grid, pooling_rows
from ..core.model import unwrap
from .base import method

__all__ = ["cls_attention"]


def _from_pass(maps: list[torch.Tensor], grads: list[torch.Tensor], prefix: int, grid: tuple[int, int]) -> torch.Tensor:
    no_cls(prefix, "'last layer' from one pass's attention")
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
    layer's CLS output is never read (README, model families). A model without a CLS token (SigLIP):
    its attention-pooling query's attention over the last block's tokens, mean over heads (the
    last layer only). Introduced in notebook 01."""
    if not isinstance(model, Attention) and unwrap(model)[1].prefix == 0:
        geom = unwrap(model)[1]
        if geom.layer(layer) != geom.layers - 1:
            raise ValueError(
                "on a model without a CLS token, 'last layer' reads the attention-pooling query, which reads the "
                f"last block's tokens only: layer={layer} is not the last layer ({geom.layers - 1})"
            )
        rows = pooling_rows(model, pixel_values, batch_size).mean(1)  # [batch, T]
        return patch_grid(rows, 0, geom.grid_for(*pixel_values.shape[-2:]))
    attn = (
        model
        if isinstance(model, Attention)
        else capture(model, pixel_values, layers=[layer], cls_only=True, batch_size=batch_size)
    )
    return attn.cls_grid(layer).mean(1)
