"""Attention capture that works under any attention implementation (SDPA, eager, ...).

While capturing, the model's attention function is swapped for one that computes
``softmax(Q K^T * scale)`` once and uses it both for the block's output and for what is kept: the
full matrices, or only the CLS query rows (then SDPA computes the output beside them). Introduced in
notebook 01 (attention across layers); notebook 00 checks it against the formula by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from . import arch
from .geometry import Geometry, layer_indices
from .hooks import hooks
from .model import check_batch_size, check_pixel_values, chunk_size, forward, unwrap, vit_input

__all__ = ["Attention", "attention_io", "block_images", "capture", "no_cls", "patch_grid", "pooling_rows", "stream"]


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
        no_cls(self.geometry.prefix, "the CLS row of a vn.capture result")
        a = self.get(layer, head)
        return a if self.cls_only else a[..., 0, :]

    def cls_grid(self, layer: int, head: int | None = None) -> torch.Tensor:
        """CLS -> patch attention on the patch grid ``[batch, (head), rows, cols]``, with the prefix
        tokens dropped and the rest renormalised to sum to 1 (the book's metric definitions, ``book/intro.md``)."""
        return patch_grid(self.cls(layer, head), self.geometry.prefix, self.grid)

    def cls_grids(self) -> torch.Tensor:
        """All captured layers: ``[layer, batch, head, rows, cols]`` (renormalised CLS -> patch)."""
        no_cls(self.geometry.prefix, "the CLS rows of a vn.capture result")
        rows = self.probs if self.cls_only else self.probs[..., 0, :]
        return patch_grid(rows, self.geometry.prefix, self.grid)

    def __repr__(self) -> str:
        kind = "cls rows" if self.cls_only else "full"
        return f"Attention({kind}, shape={tuple(self.probs.shape)}, layers={self.layers})"


def no_cls(prefix: int, what: str) -> None:
    """Refuse ``what`` (something that reads the CLS token's attention row) on a model without a CLS
    token (``prefix == 0``: SigLIP), naming what to use instead."""
    if prefix == 0:
        raise TypeError(
            f"{what} reads the CLS token's attention row, and this model has no CLS token (SigLIP: an "
            "attention-pooling head reads the patch tokens through one learnt query). Given the model itself, "
            "'rollout' and 'last layer' read that query's attention instead; the gradient methods (grad-cam, "
            "legrad, cp-lrp, integrated gradients) and occlusion need no CLS token"
        )


def pooling_rows(model: Any, pixel_values: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """The attention-pooling query's attention over the last block's tokens, ``[batch, head, T]``
    (float32): what a model without a CLS token (SigLIP) reads where a ViT reads its CLS token
    (``arch.pooling_attention``). One inference forward per chunk of ``batch_size`` images."""
    net, geom, pixel_values = vit_input(model, pixel_values, batch_size, "the pooling attention")
    batch_size = chunk_size(model, pixel_values, batch_size, cpu=64, keeps="forward")
    last = arch.blocks(net)[-1]
    kept: dict[str, torch.Tensor] = {}

    def keep(_module, _inputs, out):
        kept["tokens"] = out[0] if isinstance(out, tuple) else out

    rows = []
    with hooks([(last, "forward", keep)]), torch.no_grad():
        for chunk in pixel_values.split(batch_size):
            forward(net, chunk)
            rows.append(arch.pooling_attention(net, kept["tokens"]).cpu())
    return torch.cat(rows)


def patch_grid(rows: torch.Tensor, prefix: int, grid: tuple[int, int]) -> torch.Tensor:
    """``[..., tokens]`` rows -> ``[..., rows, cols]`` over patches, prefix dropped, renormalised."""
    p = rows[..., prefix:]
    if p.shape[-1] != grid[0] * grid[1]:
        raise ValueError(f"{p.shape[-1]} patch tokens do not fill a {grid[0]}x{grid[1]} grid")
    p = p / p.sum(-1, keepdim=True).clamp_min(torch.finfo(p.dtype).tiny)
    return p.reshape(*p.shape[:-1], *grid)


_BLOCK_BYTES = 2**21  # one block's probabilities: about a core's L2 cache (ViT-B/16: one image, 12 x 197^2 x 4 B)
# Bytes of probabilities per block, by device type: on the CPU, blocks that stay in a core's cache
# make the products ~1.5x faster than one product over the chunk (fmnist-vit-p2, 2 threads: rollout
# 1.03x against 0.70x the plain forward, measured); any other device (a GPU) takes the whole chunk in
# one product, where a loop over blocks would be all kernel launches. A device type missing here
# gets the whole chunk.
BLOCK_BYTES: dict[str, int] = {"cpu": _BLOCK_BYTES}


def block_images(device: torch.device, per_image_bytes: int, chunk: int) -> int:
    """Images per block of the attention products on ``device`` (``BLOCK_BYTES``): a cache-sized
    block on the CPU, the whole ``chunk`` elsewhere."""
    budget = BLOCK_BYTES.get(device.type)
    return chunk if budget is None else max(1, min(chunk, budget // per_image_bytes))


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
    blocks: bool = False,
    float32: bool = True,
) -> list[torch.Tensor]:
    """The shared mechanism under ``capture``, ``capture_rollout`` and ``predict_with_attention``:
    for each chunk of ``batch_size`` images, in order, call ``on_layer(layer, probs)`` for each
    requested layer, with ``probs`` of shape (chunk, head, query, key) in float32 (``float32=False``:
    full matrices in the model's dtype, e.g. bf16, for a consumer that sums them in float32 itself),
    or (chunk, head, key) for ``cls_only``. ``blocks=True`` (full matrices) calls ``on_layer`` once per block of
    consecutive images instead: the blocks tile each chunk in order, are the same in every layer and
    hold about ``BLOCK_BYTES[device]`` of probabilities on the CPU (the whole chunk on a GPU), so a
    consumer that folds them away (rollout) never holds more than one block's matrices.

    While it runs, the model's attention function is swapped (``arch.use_attention_function``) for
    one that computes each requested layer's probabilities once, ``softmax(Q K^T * scale)`` (the
    products in the model's dtype, the softmax accumulating in float32: what eager attention
    returns), and uses them both for the block's output and for what is captured, a block of images
    at a time (cache-sized on the CPU, the whole chunk on a GPU: ``block_images``); ``cls_only`` keeps the SDPA
    kernel for the output and computes only the CLS query's row beside it; other layers run SDPA.
    Layers after the last requested one are not run, unless ``to_end=True``: then the forward pass
    runs through the classifier and the list of each chunk's logits (float32, CPU) is returned.
    The model's attention implementation is restored on exit, even on error.
    """
    net, _ = unwrap(model)
    chunks = pixel_values.split(check_batch_size(batch_size))
    if progress:
        from tqdm.auto import tqdm

        chunks = tqdm(chunks, desc="forward")
    layer_of: dict[int, int] = {}  # id(attention module) -> layer, filled once the function is in place
    emit = on_layer if not float32 else (lambda layer, probs: on_layer(layer, probs.float()))
    attend = _capturing(layer_of, set(layers), emit, cls_only, blocks, None if to_end else max(layers))
    logits = []
    with arch.use_attention_function(net, attend) as mapping, torch.no_grad():
        layer_of.update(mapping)
        for chunk in chunks:
            try:
                out = forward(net, chunk)
            except _Stop:
                continue
            logits.append(out.logits.float().cpu())
    return logits


def _capturing(
    layer_of: dict[int, int],
    wanted: set[int],
    on_layer: Callable[[int, torch.Tensor], None],
    cls_only: bool,
    blocks: bool,
    stop: int | None,
) -> Callable:
    """The attention function ``stream`` installs (transformers' attention-function signature:
    query/key/value ``[batch, head, T, head_dim]`` in, ``([batch, T, head, head_dim], None)`` out)."""

    def attend(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **_kwargs):
        layer = layer_of[id(module)]
        scale = query.shape[-1] ** -0.5 if scaling is None else scaling
        if layer not in wanted or cls_only:
            out = F.scaled_dot_product_attention(query, key, value, attention_mask, dropout, scale=scale).transpose(
                1, 2
            )
            if layer in wanted:
                on_layer(layer, _cls_rows(query, key, attention_mask, scale))
        else:
            out = _attend_in_blocks(
                query, key, value, attention_mask, scale, dropout, lambda p: on_layer(layer, p), blocks
            )
        if layer == stop:
            raise _Stop
        return out, None

    return attend


def _scores_mask(mask: torch.Tensor | None, lo: int, hi: int) -> torch.Tensor | None:
    """Images ``lo:hi`` of an additive attention mask (one broadcast over the batch stays whole)."""
    return mask if mask is None or mask.shape[0] == 1 else mask[lo:hi]


def _cls_rows(query: torch.Tensor, key: torch.Tensor, mask: torch.Tensor | None, scale: float) -> torch.Tensor:
    """The CLS query's attention row ``[batch, head, key]``: the product in the model's dtype (as eager
    attention computes it), the softmax in float32."""
    scores = query[:, :, :1] @ key.transpose(-1, -2) * scale  # [batch, head, 1, T]
    if mask is not None:
        scores = scores + mask[..., :1, :]
    return scores.softmax(-1, dtype=torch.float32)[:, :, 0]


def _attend_in_blocks(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None,
    scale: float,
    dropout: float,
    emit: Callable[[torch.Tensor], None],
    blocks: bool,
) -> torch.Tensor:
    """Attention output ``[batch, T, head, head_dim]`` from probabilities computed once, a block of
    images at a time (``block_images``: cache-sized blocks on the CPU, the whole batch on a GPU);
    ``emit`` gets each block's probabilities ``[block, head, T, T]`` (``blocks``) or, at the end, the
    whole batch's, in the model's dtype (``stream`` makes them float32 unless asked not to). The
    products and the softmax run in the model's dtype (a bf16 softmax accumulates in float32 and
    rounds once, as eager attention's float32 softmax cast back to bf16 does)."""
    b, h, t, d = query.shape
    n = key.shape[2]
    step = block_images(query.device, h * t * n * 4, b)
    # contiguous operands, made once for the batch: the per-block products then run on dense
    # [block * head, ...] matrices (strided operands cost the bmm about a quarter more)
    q = (query.contiguous() * scale).view(b * h, t, d)
    k_t = key.transpose(-1, -2).contiguous().view(b * h, d, n)
    v = value.contiguous().view(b * h, n, d)
    out = value.new_empty(b, t, h, d)
    whole = None if blocks else query.new_empty(b, h, t, n)
    for lo in range(0, b, step):
        hi = min(b, lo + step)
        rows = slice(lo * h, hi * h)
        scores = torch.bmm(q[rows], k_t[rows]).view(hi - lo, h, t, n)  # [block, head, T, T]
        if mask is not None:
            scores = scores + _scores_mask(mask, lo, hi)
        probs = scores.softmax(-1)
        used = F.dropout(probs, dropout) if dropout else probs
        mixed = torch.bmm(used.view(-1, t, n), v[rows])  # [block * head, T, head_dim]
        out[lo:hi] = mixed.view(hi - lo, h, t, d).transpose(1, 2)
        if blocks:
            emit(probs)
        else:
            whole[lo:hi] = probs
    if whole is not None:
        emit(whole)
    return out


def capture(
    model: Any,
    pixel_values: torch.Tensor,
    layers: int | Iterable[int] | None = None,
    *,
    cls_only: bool = False,
    batch_size: int | None = None,
) -> Attention:
    """Capture attention probabilities for ``pixel_values`` (batch, C, H, W).

    Works whatever attention implementation the model was loaded with (SDPA by default): while it
    runs, attention is computed by vitnotes' own function (``stream``), whose ``softmax(Q K^T *
    scale)`` in float32 equals what eager attention returns. ``cls_only=True`` computes only the CLS query rows
    (``[layer, batch, head, key]``), which costs a fraction of the full matrices. Layers after
    the last requested one are not run. ``batch_size``: images per chunk (None: 64 on the CPU, sized
    from the free memory on a GPU, ``chunk_size``). Introduced in notebook 00 (attention math).
    """
    net, geom, pixel_values = vit_input(model, pixel_values, batch_size, "attention capture")
    if cls_only:
        no_cls(geom.prefix, "capture(cls_only=True)")
    batch_size = chunk_size(model, pixel_values, batch_size, cpu=64, keeps="forward" if cls_only else "attention")
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
    first by hand. Introduced in notebook 00."""
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
