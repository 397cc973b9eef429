"""Grad-CAM (Selvaraju et al. 2017) for CNN stages, ViT blocks and Swin stages, with hooks: no torchvision.

CAM = relu( sum_c  mean_{x,y}(d y_target / d A_c) * A_c ) on the chosen activation A:
a CNN stage's feature map, a ViT block's normalised input tokens laid out on the patch
grid, or a Swin stage's output tokens (before patch merging) laid out on that stage's grid.
Introduced in notebook 03 (ViT vs CNN).
"""

from __future__ import annotations

from typing import Any

import torch

from ..core import arch
from ..core.hooks import hooks
from ..core.model import check_pixel_values, chunk_size, chunked, forward, targets_for, unwrap
from .base import method

__all__ = ["gradcam"]


@method(
    "grad-cam",
    kinds=("vit", "cnn", "swin"),
    class_specific=True,
    what=(
        "A layer's activations weighted by the class score's mean gradient per channel, summed, negatives set to zero."
    ),
)
def gradcam(
    model: Any,
    pixel_values: torch.Tensor,
    target: int | list[int] | None = None,
    *,
    stage: int = -1,
    layer: int = -1,
    batch_size: int | None = None,
) -> torch.Tensor:
    """Grad-CAM maps ``[batch, rows, cols]`` (non-negative, not normalised).

    CNN: the output of encoder stage ``stage`` (negative counts from the end). ViT: the
    normalised tokens entering block ``layer``'s attention (``layernorm_before``'s output),
    prefix tokens dropped, on the patch grid; ``layer=-1`` is the usual choice, as only the
    last block mixes the patches into the CLS token. Swin: the tokens stage ``stage`` puts out
    (its last block's output, before patch merging), on that stage's grid (``Geometry.stage_grid``:
    the patch grid halved once per stage before it; ``stage=-1``, the default, is the grid the classifier's
    mean reads, e.g. 7x7 for a 224-pixel Swin-T); like a CNN's map, not upsampled (``vn.evaluate.resize_maps``
    does that). ``target``: class index, one per image, or None for the predicted class.

    One forward and backward per chunk of ``batch_size`` images (None: 32 on the CPU, sized from the
    free memory on a GPU). The forward runs without autograd up to the chosen activation, which the
    hook hands on as a fresh leaf with autograd switched on: only the layers after it are recorded
    and differentiated (for the last ViT block, one block's graph). Peak memory per image: at most
    one training-style forward's autograd graph (measured 7.2 MiB per image on ``fmnist-vit-p4``
    when every layer was recorded; peak resident memory over the start, ``benchmarks/bench_memory.py``).
    Introduced in notebook 03 (CNN vs ViT).
    """
    net, geom = unwrap(model)
    pixel_values = check_pixel_values(pixel_values, geom)
    if geom.kind == "cnn":
        module = arch.cnn_stages(net)[geom.layer(stage)]
        grid = None  # a stage's output is already [batch, C, h, w]
    elif geom.kind == "swin":  # tokens [batch, h*w, C] on the stage's grid, no prefix
        module = arch.swin_stage_output(net, geom.layer(stage))
        grid = geom.stage_grid(*pixel_values.shape[-2:], stage)
    else:
        module = arch.attention_input(arch.vit_layers(net)[geom.layer(layer)])
        grid = geom.grid_for(*pixel_values.shape[-2:])

    def to_map(act: torch.Tensor) -> torch.Tensor:  # ViT tokens [batch, T, C] -> [batch, C, rows, cols]
        if grid is None:
            return act
        return act[:, geom.prefix :].transpose(1, 2).reshape(act.shape[0], -1, *grid)

    kept = {}

    def keep(_module, _inputs, out):  # the graph starts here: the layers before it need none
        torch.set_grad_enabled(True)  # until the no_grad block around the forward ends
        rest = out[1:] if isinstance(out, tuple) else None  # a Swin block: (tokens, attention)
        kept["act"] = (out[0] if rest is not None else out).detach().requires_grad_(True)
        return kept["act"] if rest is None else (kept["act"], *rest)

    maps = []
    batch_size = chunk_size(model, pixel_values, batch_size, cpu=32, keeps="graph")
    with hooks([(module, "forward", keep)]), torch.enable_grad():
        for x, tgt in chunked(pixel_values, target, batch_size):
            with torch.no_grad():
                out = forward(net, x)
            t = targets_for(net, tgt, out.logits)
            (grad,) = torch.autograd.grad(out.logits.gather(1, t[:, None]).sum(), kept["act"])
            act, grad = to_map(kept.pop("act").detach()).float(), to_map(grad).float()
            weights = grad.mean((-2, -1), keepdim=True)  # [chunk, C, 1, 1]
            maps.append((weights * act).sum(1).clamp_min(0).cpu())
            del out, act, grad
    return torch.cat(maps)
