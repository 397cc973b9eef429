"""Attention capture that works under any attention implementation (SDPA, eager, ...).

The model keeps running its own attention kernel. Hooks on each block's query and key
projections keep Q and K, and vitnotes recomputes ``softmax(Q K^T * scale)`` itself: the full
matrices, or only the CLS query rows when that is all that is asked for. Introduced in
notebook 01 (attention across layers); notebook 00 checks it against the formula by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch

from . import arch
from .geometry import Geometry, layer_indices
from .hooks import hooks
from .model import check_pixel_values, forward, unwrap, vit_input

__all__ = ["Attention", "attention_io", "capture", "patch_grid", "stream"]


class _Stop(Exception):
    """Raised inside a hook once the last requested layer is captured: later layers are skipped."""


@dataclass
class Attention:
    """Captured attention for a batch.

    ``probs`` is ``[layer, batch, head, query, key]`` (full) or, with ``cls_only``,
    ``[layer, batch, head, key]``: the CLS query's row over all tokens (prefix tokens first).
    ``layers`` holds the absolute layer index of each slice; ``grid`` the patch grid.
    Introduced in notebook 01 (layers).
    """

    probs: torch.Tensor
    layers: list[int]
    geometry: Geometry
    grid: tuple[int, int]
    cls_only: bool

    def _slot(self, layer: int) -> int:
        layer = self.geometry.layer(layer)
        if layer not in self.layers:
            raise IndexError(f"layer {layer} was not captured (captured: {self.layers}); capture it with layers=None")
        return self.layers.index(layer)

    def get(self, layer: int, head: int | None = None) -> torch.Tensor:
        """Layer ``layer``, head ``head`` (None = all heads): ``[batch, (head), query, key]`` or,
        for CLS-only captures, ``[batch, (head), key]``. Negative indices count from the end."""
        a = self.probs[self._slot(layer)]
        return a if head is None else a[:, self.geometry.head(head)]

    def cls(self, layer: int, head: int | None = None) -> torch.Tensor:
        """CLS -> token attention ``[batch, (head), tokens]`` (rows sum to 1, prefix tokens included)."""
        a = self.get(layer, head)
        return a if self.cls_only else a[..., 0, :]

    def cls_grid(self, layer: int, head: int | None = None) -> torch.Tensor:
        """CLS -> patch attention on the patch grid ``[batch, (head), rows, cols]``, with the prefix
        tokens dropped and the rest renormalised to sum to 1 (the book's metric definitions, ``book/intro.md``)."""
        return patch_grid(self.cls(layer, head), self.geometry.prefix, self.grid)

    def cls_grids(self) -> torch.Tensor:
        """All captured layers: ``[layer, batch, head, rows, cols]`` (renormalised CLS -> patch)."""
        rows = self.probs if self.cls_only else self.probs[..., 0, :]
        return patch_grid(rows, self.geometry.prefix, self.grid)

    def __repr__(self) -> str:
        kind = "cls rows" if self.cls_only else "full"
        return f"Attention({kind}, shape={tuple(self.probs.shape)}, layers={self.layers})"


def patch_grid(rows: torch.Tensor, prefix: int, grid: tuple[int, int]) -> torch.Tensor:
    """``[..., tokens]`` rows -> ``[..., rows, cols]`` over patches, prefix dropped, renormalised."""
    p = rows[..., prefix:]
    if p.shape[-1] != grid[0] * grid[1]:
        raise ValueError(f"{p.shape[-1]} patch tokens do not fill a {grid[0]}x{grid[1]} grid")
    p = p / p.sum(-1, keepdim=True).clamp_min(torch.finfo(p.dtype).tiny)
    return p.reshape(*p.shape[:-1], *grid)


def stream(
    model: Any,
    pixel_values: torch.Tensor,
    layers: list[int],
    on_layer: Callable[[int, torch.Tensor], None],
    *,
    cls_only: bool = False,
    batch_size: int = 64,
    to_end: bool = False,
    progress: bool = False,
) -> list[torch.Tensor]:
    """The shared mechanism under ``capture``, ``capture_rollout`` and ``predict_with_attention``:
    for each chunk of ``batch_size`` images, in order, call ``on_layer(layer, probs)`` for each
    requested layer, with ``probs`` of shape (chunk, head, query, key) in float32, or (chunk, head,
    key) for ``cls_only``.

    Q and K are taken from the projections (whatever attention implementation the model runs)
    and ``softmax(Q K^T * scale)`` is recomputed; only one layer's probabilities exist at a time.
    Layers after the last requested one are not run, unless ``to_end=True``: then the forward pass
    runs through the classifier and the list of each chunk's logits (float32, CPU) is returned.
    """
    net, geom = unwrap(model)
    regs = _qk_hooks(arch.vit_layers(net), layers, geom, on_layer, cls_only, stop=None if to_end else max(layers))
    chunks = pixel_values.split(batch_size)
    if progress:
        from tqdm.auto import tqdm

        chunks = tqdm(chunks, desc="forward")
    logits = []
    with hooks(regs), torch.no_grad():
        for chunk in chunks:
            try:
                out = forward(net, chunk)
            except _Stop:
                continue
            logits.append(out.logits.float().cpu())
    return logits


def _qk_hooks(
    blocks: Any,
    layers: list[int],
    geom: Geometry,
    on_layer: Callable[[int, torch.Tensor], None],
    cls_only: bool,
    stop: int | None,
) -> list:
    """Forward hooks on each layer's query and key projections that recompute its attention
    probabilities and hand them to ``on_layer``; after layer ``stop`` the forward pass stops."""
    queries: dict[int, torch.Tensor] = {}

    def split_heads(t: torch.Tensor) -> torch.Tensor:  # (B, T, H*d) -> (B, H, T, d)
        b, n, _ = t.shape
        return t.reshape(b, n, geom.heads, -1).transpose(1, 2).float()

    def on_q(layer: int):
        def hook(_module, _inputs, out):
            queries[layer] = split_heads(out[:, :1] if cls_only else out)

        return hook

    def on_k(layer: int):
        def hook(_module, _inputs, out):
            scale = arch.attention_scale(blocks[layer], geom.head_dim)
            scores = queries.pop(layer) @ split_heads(out).transpose(-1, -2) * scale  # (B, H, Q, T)
            probs = scores.softmax(-1)
            on_layer(layer, probs[:, :, 0] if cls_only else probs)
            if layer == stop:
                raise _Stop

        return hook

    regs = []
    for layer in layers:
        q_proj, k_proj = arch.queries_keys(blocks[layer])
        regs += [(q_proj, "forward", on_q(layer)), (k_proj, "forward", on_k(layer))]
    return regs


def capture(
    model: Any,
    pixel_values: torch.Tensor,
    layers: int | Iterable[int] | None = None,
    *,
    cls_only: bool = False,
    batch_size: int = 64,
) -> Attention:
    """Capture attention probabilities for ``pixel_values`` (batch, C, H, W).

    Works whatever attention implementation the model was loaded with (SDPA by default): Q and
    K are taken from the projections and ``softmax(Q K^T * scale)`` is recomputed in float32,
    which equals what eager attention returns. ``cls_only=True`` computes only the CLS query rows
    (``[layer, batch, head, key]``), which costs a fraction of the full matrices. Layers after
    the last requested one are not run. Introduced in notebook 00 (attention math).
    """
    net, geom, pixel_values = vit_input(model, pixel_values, batch_size, "attention capture")
    wanted = layer_indices(geom, layers)
    grid = geom.grid_for(*pixel_values.shape[-2:])
    store: dict[int, list[torch.Tensor]] = {}  # layer -> per-chunk probabilities
    stream(
        model,
        pixel_values,
        wanted,
        lambda layer, p: store.setdefault(layer, []).append(p),
        cls_only=cls_only,
        batch_size=batch_size,
    )
    probs = torch.stack([torch.cat(store[layer]) for layer in wanted])
    return Attention(probs=probs, layers=wanted, geometry=geom, grid=grid, cls_only=cls_only)


def attention_io(model: Any, pixel_values: torch.Tensor, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
    """What block ``layer``'s attention reads and writes: the normalised tokens entering it
    (``layernorm_before``'s output, ``[batch, T, hidden]``) and its output after ``o_proj``
    (``[batch, T, hidden]``, before the residual add). Notebook 00 recomputes the second from the
    first by hand."""
    net, geom = unwrap(model)
    geom.require_vit("attention_io")
    pixel_values = check_pixel_values(pixel_values, geom)
    block = arch.vit_layers(net)[geom.layer(layer)]
    kept: dict[str, torch.Tensor] = {}

    def keep_in(_module, inputs):
        kept["in"] = inputs[0].detach().float()

    def keep_out(_module, _inputs, out):
        kept["out"] = out.detach().float()
        raise _Stop

    with (
        hooks(
            [(arch.queries_keys(block)[0], "forward_pre", keep_in), (arch.attention_output(block), "forward", keep_out)]
        ),
        torch.no_grad(),
    ):
        try:
            forward(net, pixel_values)
        except _Stop:
            pass
    return kept["in"], kept["out"]
