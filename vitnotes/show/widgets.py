"""A layer + head picker that works live in Jupyter and in the static HTML book (no kernel).

Every (layer, head) view is rendered once to a small PNG and held in an ipywidgets ``Stack``;
two ``Dropdown`` s are ``jslink`` ed to the stacks' ``selected_index`` so the browser switches
views by itself. Weight: ``layers x (heads + 1)`` PNGs of ``size`` pixels with a 64-colour
palette (24-bit PNGs would be about 3.5x larger). Measured for a 12 x 12 model at the default
144 px: about 0.8-0.9 MB of page per picker on a 28 px Fashion-MNIST-sized image, 1.7 MB on a
224 px photo (``state_bytes``, base64 included); ``size=112`` cuts that by about a third.
Introduced in notebook 02 (heads).
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from matplotlib import colormaps
from PIL import Image

from .export import save_html
from .figures import display_image, upsample

__all__ = ["head_picker", "render_png", "state_bytes"]


def render_png(
    image: Any,
    heat: torch.Tensor | None,
    *,
    size: int = 144,
    alpha: float = 0.55,
    cmap: str = "inferno",
    colors: int | None = 64,
) -> bytes:
    """A map over its image as PNG bytes, ``size`` pixels square (nearest upsampling), with an
    adaptive palette of ``colors`` colours (None: full 24-bit colour). Introduced in notebook 02 (heads)."""
    img = display_image(image)
    rgb = np.repeat(img[..., None], 3, -1) if img.ndim == 2 else img[..., :3]
    pil = Image.fromarray((rgb * 255).astype(np.uint8)).resize((size, size), Image.BILINEAR)
    rgb = np.asarray(pil, dtype=np.float32) / 255.0
    if heat is not None:
        h = upsample(heat, (size, size))
        lo, hi = float(h.min()), float(h.max())
        h = (h - lo) / (hi - lo) if hi > lo else np.zeros_like(h)
        rgb = (1 - alpha) * rgb + alpha * colormaps[cmap](h)[..., :3]
    buf = io.BytesIO()
    out = Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8))
    if colors:  # an adaptive palette: a few times smaller than 24-bit PNG, hard to tell apart
        out = out.quantize(colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    out.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def head_picker(
    image: Any,
    maps: torch.Tensor,
    *,
    layers: Sequence[int] | None = None,
    size: int = 144,
    alpha: float = 0.55,
    cmap: str = "inferno",
    mean: bool = True,
):
    """A widget to browse ``maps`` ``[layer, head, rows, cols]`` of one image by layer and head.

    The head menu offers each head and, with ``mean=True``, the mean over heads. Returns an
    ``ipywidgets.VBox``; its ``links`` attribute holds the client-side ``jslink`` s, and
    ``picker.save(path)`` writes it as one offline HTML file (``vn.save_html``). Each view is
    min-max scaled on its own (colours compare places within a view, not across views).
    Introduced in notebook 02 (heads).
    """
    import ipywidgets as W

    maps, layers = _picker_maps(maps, layers)
    head_names = [f"head {h}" for h in range(maps.shape[1])] + (["mean of heads"] if mean else [])
    inner = [W.Stack(_view_images(image, m, mean, size, alpha, cmap), selected_index=0) for m in maps]
    outer = W.Stack(inner, selected_index=0)
    layer_menu = _menu([f"layer {layer}" for layer in layers], "layer", "180px")
    head_menu = _menu(head_names, "head", "220px")
    links = [W.jslink((layer_menu, "index"), (outer, "selected_index"))]
    links += [W.jslink((head_menu, "index"), (stack, "selected_index")) for stack in inner]
    box = W.VBox([W.HBox([layer_menu, head_menu]), outer])
    box.links = links

    def save(path: Any, **options: Any) -> Any:
        """Write this picker as one self-contained, offline HTML file (``vn.save_html``); returns the path."""
        return save_html(box, path, **options)

    box.save = save
    return box


def _picker_maps(maps: Any, layers: Sequence[int] | None) -> tuple[torch.Tensor, list]:
    """``maps`` as float32 ``[layer, head, rows, cols]`` (checked) and one label per layer."""
    maps = torch.as_tensor(maps, dtype=torch.float32)
    if maps.ndim != 4:
        raise ValueError(f"head_picker expects maps [layer, head, rows, cols] for one image, got {tuple(maps.shape)}")
    n_l, n_h = maps.shape[:2]
    if n_l == 0 or n_h == 0:
        raise ValueError("head_picker got no layers or no heads to show")
    layers = list(layers) if layers is not None else list(range(n_l))
    if len(layers) != n_l:
        raise ValueError(f"{len(layers)} layer labels for {n_l} layers of maps")
    return maps, layers


def _view_images(image: Any, layer_maps: torch.Tensor, mean: bool, size: int, alpha: float, cmap: str) -> list:
    """One ``ipywidgets.Image`` per head of one layer (``[head, rows, cols]``), then the mean over heads."""
    import ipywidgets as W

    views = list(layer_maps) + ([layer_maps.mean(0)] if mean else [])
    return [
        W.Image(value=render_png(image, v, size=size, alpha=alpha, cmap=cmap), format="png", width=size, height=size)
        for v in views
    ]


def _menu(names: list[str], description: str, width: str):
    """A dropdown whose ``index`` picks one of ``names`` (linked to a Stack's ``selected_index``)."""
    import ipywidgets as W

    return W.Dropdown(
        options=[(name, k) for k, name in enumerate(names)],
        value=0,
        description=description,
        layout=W.Layout(width=width),
    )


def state_bytes(widget) -> int:
    """Bytes of embedded widget state this widget adds to a page (its views and its links).
    Introduced in notebook 02 (heads)."""
    from ipywidgets.embed import dependency_state

    state = dependency_state([widget, *getattr(widget, "links", [])])
    return len(json.dumps(state, default=_bytes_len))


def _bytes_len(obj):
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return "x" * int(len(obj) * 4 / 3)  # base64 size in the saved notebook
    raise TypeError(type(obj).__name__)
