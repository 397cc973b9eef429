"""A Swin block's window attention, captured with hooks, and a map of it on the image.

A Swin has no CLS token and no attention over the whole image: each block attends inside local
windows of ``window x window`` patches, every second block on the grid rolled by half a window (so the
windows straddle the previous block's borders; a mask keeps the wrapped-around pieces apart), and patch
merging halves the grid between stages. So rollout and the CLS-row methods are refused; what can be
read is each block's attention inside its windows (``window_attention``). The model's output is left
as it is: the hooks read the attention module's inputs and recompute ``softmax(Q K^T * scale +
relative position bias + shift mask)`` beside it (eager attention's own probabilities are used where it
returns them). Every Swin module name is in ``core/arch.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from . import arch
from .geometry import Geometry, as_int
from .hooks import hooks
from .model import check_batch_size, check_pixel_values, chunk_size, forward, unwrap

__all__ = ["WindowAttention", "window_attention", "window_map"]


class _Stop(Exception):
    """Raised in a hook once the requested block's attention is kept: the blocks after it are not run."""


@dataclass
class WindowAttention:
    """One Swin block's window attention for a batch.

    ``probs``: ``[batch, windows, head, window_tokens, window_tokens]`` (float32; rows sum to 1), each
    window's query -> key probabilities exactly as the block computes them: windows row-major over the
    stage's grid padded to whole windows and, in a shifted block, rolled by ``-shift`` patches in both
    directions; tokens row-major within a window. ``map``: ``[batch, rows, cols]`` on the stage's grid
    (``grid``), lined up with the image (the shift rolled back, the padding cut off): for each patch, the
    attention it receives from the queries of its own window, averaged over the heads and over the
    window's queries; a window's entries sum to 1, so uniform attention gives ``1 / window**2``
    everywhere. ``layer`` counts blocks over all stages; ``stage`` and ``block`` (within the stage) name
    the same block; ``window`` and ``shift`` are in patches of the stage's grid.
    """

    probs: torch.Tensor
    map: torch.Tensor
    layer: int
    stage: int
    block: int
    window: int
    shift: int
    grid: tuple[int, int]
    geometry: Geometry

    @property
    def patch_pixels(self) -> int:
        """Pixels per patch of the stage's grid (its side): the patch size times 2 per stage before it."""
        return self.geometry.patch_size * 2**self.stage

    def __repr__(self) -> str:
        return (
            f"WindowAttention(layer {self.layer} = stage {self.stage} block {self.block}, window {self.window}, "
            f"shift {self.shift}, grid {self.grid[0]}x{self.grid[1]}, probs {tuple(self.probs.shape)})"
        )


def _block(net: torch.nn.Module, layer: Any) -> tuple[int, int, int, torch.nn.Module]:
    """(layer over all stages, stage, block within it, module) from ``layer``: an int over all blocks
    (negative from the end) or a ``(stage, block)`` pair (each may be negative)."""
    blocks = arch.swin_blocks(net)
    if isinstance(layer, (tuple, list)):
        if len(layer) != 2:
            raise ValueError(f"layer {layer!r} must be one int over all blocks or a (stage, block) pair")
        depths = [sum(1 for s, _, _ in blocks if s == stage) for stage in range(blocks[-1][0] + 1)]
        stage = as_int(layer[0], "stage")
        if not -len(depths) <= stage < len(depths):
            raise IndexError(f"stage {stage} is out of range: this Swin has {len(depths)} stages")
        stage %= len(depths)
        block = as_int(layer[1], "block")
        if not -depths[stage] <= block < depths[stage]:
            raise IndexError(f"block {block} is out of range: stage {stage} has {depths[stage]} blocks")
        layer = sum(depths[:stage]) + block % depths[stage]
    layer = as_int(layer, "layer")
    if not -len(blocks) <= layer < len(blocks):
        raise IndexError(
            f"layer {layer} is out of range: this Swin has {len(blocks)} blocks over all stages, "
            f"use 0..{len(blocks) - 1} or -1..-{len(blocks)}, or a (stage, block) pair"
        )
    layer %= len(blocks)
    stage, block, module = blocks[layer]
    return layer, stage, block, module


def window_map(probs: torch.Tensor, padded: tuple[int, int], grid: tuple[int, int], shift: int) -> torch.Tensor:
    """``[batch, rows, cols]`` from window probabilities ``[batch, windows, head, N, N]``: each key's
    column mean over heads and queries, put back where its window sits on the ``padded`` grid, rolled by
    ``+shift`` (undoing the block's ``-shift``) and cut to ``grid``."""
    b, _, _, n, _ = probs.shape
    side = int(round(n**0.5))
    received = probs.mean((2, 3))  # [batch, windows, N]: mean over heads, then over the window's queries
    wr, wc = padded[0] // side, padded[1] // side
    full = received.view(b, wr, wc, side, side).permute(0, 1, 3, 2, 4).reshape(b, *padded)
    if shift:
        full = torch.roll(full, shifts=(shift, shift), dims=(1, 2))
    return full[:, : grid[0], : grid[1]]


def window_attention(
    model: Any, pixel_values: torch.Tensor, layer: Any = -1, *, batch_size: int | None = None
) -> WindowAttention:
    """A Swin block's per-window attention probabilities and a map of them on the image (``WindowAttention``).

    ``layer``: the block, counted over all stages (``-1``, the default, is the last), or a ``(stage,
    block)`` pair. Blocks at an odd index within a stage are the shifted ones. The model's output is
    unchanged (hooks read the attention module's inputs; its probabilities are recomputed beside it,
    or taken from eager attention where it returns them), and the blocks after ``layer`` are not run.
    The map is on the block's stage grid (``WindowAttention.grid``; ``patch_pixels`` pixels per
    patch): draw it on the image with ``vn.show.overlay`` (it is resized to the image). ``batch_size``:
    images per forward (None: 64 on the CPU, sized from the free memory on a GPU).
    """
    net, geom = unwrap(model)
    if geom.kind != "swin":
        raise TypeError(
            f"window_attention reads a Swin's windowed attention, and this model is a {geom.kind.upper()}; "
            "for a ViT use vn.capture(model, pixel_values)"
        )
    pixel_values = check_pixel_values(pixel_values, geom)
    check_batch_size(batch_size, optional=True)
    layer, stage, index, block = _block(net, layer)
    attention = arch.swin_attention(block)
    seen: dict[str, Any] = {}

    def keep_grid(_module, args, kwargs):
        seen["grid"] = arch.swin_block_grid(args, kwargs)

    def keep_probs(module, args, output):
        probs = arch.swin_attention_weights(output)
        if probs is None:
            probs = arch.swin_window_probs(module, *arch.swin_attention_inputs(args))
        seen["probs"] = probs.detach().float()
        raise _Stop

    batch_size = chunk_size(model, pixel_values, batch_size, cpu=64, keeps="forward")
    kept = []
    with hooks([(block, "forward_pre_kwargs", keep_grid), (attention, "forward", keep_probs)]), torch.no_grad():
        for chunk in pixel_values.split(batch_size):
            try:
                forward(net, chunk)
            except _Stop:
                pass
            kept.append(seen.pop("probs").cpu())
    window, shift = arch.swin_window(block)  # as the forward used them (transformers may shrink them)
    grid = seen["grid"]
    padded = (-(-grid[0] // window) * window, -(-grid[1] // window) * window)
    windows = (padded[0] // window) * (padded[1] // window)
    probs = torch.cat(kept)
    probs = probs.view(pixel_values.shape[0], windows, *probs.shape[1:])
    return WindowAttention(
        probs=probs,
        map=window_map(probs, padded, grid, shift),
        layer=layer,
        stage=stage,
        block=index,
        window=window,
        shift=shift,
        grid=grid,
        geometry=geom,
    )
