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
from matplotlib.cm import ScalarMappable
from matplotlib.ticker import MaxNLocator
from PIL import Image

from ..stats import normalized_entropy
from .export import save_html
from .figures import RELATIVE_CMAP, display_image, relative_colorbar, relative_norm, relative_to_uniform, upsample

__all__ = ["head_picker", "query_picker", "render_png", "state_bytes"]


def render_png(
    image: Any,
    heat: torch.Tensor | None,
    *,
    size: int = 144,
    alpha: float = 0.55,
    cmap: str = "inferno",
    colors: int | None = 64,
    mark: tuple[int, int, int, int] | None = None,
    vmax: float | None = None,
    norm: Any = None,
    title: str | None = None,
    footer: np.ndarray | None = None,
) -> bytes:
    """A map over its image as PNG bytes, ``size`` pixels square (nearest upsampling), with an
    adaptive palette of ``colors`` colours (None: full 24-bit colour). ``mark=(row, col, rows, cols)``
    outlines that patch of a ``rows x cols`` grid in cyan. The map is scaled to its own min..max, to
    0..``vmax`` when given (a scale shared by several views), or by ``norm`` (a matplotlib ``Normalize``,
    e.g. ``relative_norm()``; values beyond it take the end colours). ``title``: one line of text drawn
    above the view; ``footer``: an RGB image ``[h, size, 3]`` (uint8) drawn under it, e.g. a colour bar.
    Introduced in notebook 02 (heads)."""
    img = display_image(image)
    rgb = np.repeat(img[..., None], 3, -1) if img.ndim == 2 else img[..., :3]
    pil = Image.fromarray((rgb * 255).astype(np.uint8)).resize((size, size), Image.BILINEAR)
    rgb = np.asarray(pil, dtype=np.float32) / 255.0
    if heat is not None:
        h = upsample(heat, (size, size))
        if norm is not None:
            h = np.clip(np.ma.filled(norm(np.clip(h, norm.vmin, norm.vmax)), 0.0), 0, 1)
        else:
            lo, hi = (float(h.min()), float(h.max())) if vmax is None else (0.0, float(vmax))
            h = np.clip((h - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(h)
        rgb = (1 - alpha) * rgb + alpha * colormaps[cmap](h)[..., :3]
    buf = io.BytesIO()
    out = Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8))
    if mark is not None:
        _outline(out, mark, size)
    if title is not None or footer is not None:
        out = _framed(out, title, footer)
    if colors:  # an adaptive palette: a few times smaller than 24-bit PNG, hard to tell apart
        out = out.quantize(colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    out.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _framed(view: Image.Image, title: str | None, footer: np.ndarray | None) -> Image.Image:
    """``view`` on a white page, with a line of ``title`` text above it and ``footer`` pixels under it."""
    from matplotlib import font_manager
    from PIL import ImageDraw, ImageFont

    width = view.width
    font = ImageFont.truetype(font_manager.findfont("DejaVu Sans"), max(9, width // 14))
    top = font.size + 6 if title else 0
    bottom = footer.shape[0] if footer is not None else 0
    page = Image.new("RGB", (width, top + view.height + bottom), "white")
    page.paste(view, (0, top))
    if title:
        ImageDraw.Draw(page).text((width / 2, top / 2), title, fill="black", font=font, anchor="mm")
    if footer is not None:
        bar = Image.fromarray(np.asarray(footer, dtype=np.uint8)[..., :3])
        page.paste(bar.resize((width, bottom)) if bar.width != width else bar, (0, top + view.height))
    return page


def _outline(pil: Image.Image, mark: tuple[int, int, int, int], size: int) -> None:
    """Draw a cyan box around patch ``(row, col)`` of a ``rows x cols`` grid on a ``size``-pixel image."""
    from PIL import ImageDraw

    row, col, rows, cols = mark
    box = (col * size / cols, row * size / rows, (col + 1) * size / cols - 1, (row + 1) * size / rows - 1)
    ImageDraw.Draw(pil).rectangle(box, outline=(0, 255, 255), width=max(1, size // 100))


def head_picker(
    image: Any,
    maps: torch.Tensor,
    *,
    layers: Sequence[int] | None = None,
    size: int = 144,
    alpha: float = 0.55,
    cmap: str | None = None,
    mean: bool = True,
    relative: float | None = None,
):
    """A widget to browse ``maps`` ``[layer, head, rows, cols]`` of one image by layer and head.

    The head menu offers each head and, with ``mean=True``, the mean over heads. Returns an
    ``ipywidgets.VBox``; its ``links`` attribute holds the client-side ``jslink`` s, and
    ``picker.save(path)`` writes it as one offline HTML file (``vn.show.save_html``). By default each view
    is min-max scaled on its own (``cmap`` inferno; colours compare places within a view, not across
    views). ``relative=limit`` (e.g. 16) draws every view relative to uniform on ONE logarithmic scale
    from ``1 / limit`` to ``limit`` (as ``head_grid(..., relative=limit)``, ``cmap`` RdBu_r), and each
    view carries its title (layer, head, the map's H / log N) and the colour bar, drawn into its PNG.
    Introduced in notebook 02 (heads).
    """
    import ipywidgets as W

    maps, layers = _picker_maps(maps, layers)
    head_names = [f"head {h}" for h in range(maps.shape[1])] + (["mean of heads"] if mean else [])
    style = dict(size=size, alpha=alpha, cmap=cmap or ("inferno" if relative is None else RELATIVE_CMAP))
    if relative is not None:
        style.update(norm=relative_norm(relative), footer=_colour_bar_rgb(style["cmap"], size, relative))
    inner = [W.Stack(_view_images(image, m, mean, style, layer), selected_index=0) for m, layer in zip(maps, layers)]
    outer = W.Stack(inner, selected_index=0)
    layer_menu = _menu([f"layer {layer}" for layer in layers], "layer", "180px")
    head_menu = _menu(head_names, "head", "220px")
    links = [W.jslink((layer_menu, "index"), (outer, "selected_index"))]
    links += [W.jslink((head_menu, "index"), (stack, "selected_index")) for stack in inner]
    return _with_save(W.VBox([W.HBox([layer_menu, head_menu]), outer]), links)


def query_picker(
    image: Any,
    maps: torch.Tensor,
    *,
    queries: Sequence[int] | None = None,
    layers: Sequence[int] | None = None,
    size: int = 144,
    alpha: float = 0.55,
    cmap: str = "inferno",
    colors: int = 32,
    shared: bool = True,
):
    """A widget to choose a query patch and a layer and see where that patch looks: ``maps`` ``[layer,
    query patch, rows, cols]`` for one image (each patch's attention over the patches, e.g. the mean over
    heads of ``vn.profile.query_grids``, or one head), ``queries`` the patches offered (raster indices; default
    every patch). The chosen patch is outlined in cyan. With ``shared=True`` every view is on one
    0..max scale, drawn as a colour bar under the views; ``shared=False`` scales each view to its own
    min..max (where, not how much). Like
    ``head_picker``, the views are PNGs in ``Stack`` s switched by ``jslink`` ed menus: it works in the
    static HTML book with no kernel; ``picker.save(path)`` writes one offline HTML file. The page
    weight grows with ``len(queries) x layers``: offer a subset of patches on a large grid.
    Introduced in notebook 02 (heads)."""
    import ipywidgets as W

    maps, layers = _picker_maps(maps, layers, "query_picker", "[layer, query, rows, cols]")
    rows, cols = maps.shape[-2:]
    if maps.shape[1] != rows * cols:
        raise ValueError(
            f"{maps.shape[1]} query maps for a {rows}x{cols} grid; give one per patch ([layer, query, ...])"
        )
    queries = list(range(rows * cols)) if queries is None else [int(q) for q in queries]
    if not queries or not all(0 <= q < rows * cols for q in queries):
        raise ValueError(f"queries must be patch indices in 0..{rows * cols - 1} (raster order), got {queries}")

    vmax = float(maps[:, queries].max()) if shared else None

    def view(q: int, layer_maps: torch.Tensor):
        png = render_png(image, layer_maps[q], size=size, alpha=alpha, cmap=cmap, colors=colors,
                         mark=(q // cols, q % cols, rows, cols), vmax=vmax)  # fmt: skip
        return W.Image(value=png, format="png", width=size, height=size)

    inner = [W.Stack([view(q, m) for m in maps], selected_index=0) for q in queries]
    outer = W.Stack(inner, selected_index=0)
    query_menu = _menu([f"patch row {q // cols}, col {q % cols}" for q in queries], "query", "240px")
    layer_menu = _menu([f"layer {layer}" for layer in layers], "layer", "180px")
    links = [W.jslink((query_menu, "index"), (outer, "selected_index"))]
    links += [W.jslink((layer_menu, "index"), (stack, "selected_index")) for stack in inner]
    parts = [W.HBox([query_menu, layer_menu]), outer]
    if shared:
        parts.append(W.Image(value=_colour_bar_png(vmax, cmap, size), format="png", width=size))
    return _with_save(W.VBox(parts), links)


def _colour_bar_png(
    vmax: float | None,
    cmap: str,
    width: int,
    relative: float | None = None,
    *,
    dpi: int = 200,
    height: float = 0.62,
    fontsize: float = 6,
) -> bytes:
    """A horizontal colour bar from 0 to ``vmax`` (or relative to uniform, ``relative_norm(relative)``) as
    PNG bytes, ``width`` pixels wide when shown at 100 dpi (drawn at ``dpi``)."""
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width / 100, height), dpi=dpi)
    ax = fig.add_axes((0.1, 0.62, 0.8, 0.3))  # fixed margins: too small a figure for a layout engine
    if relative is not None:
        bar = relative_colorbar(fig, ScalarMappable(relative_norm(relative), cmap), cax=ax, orientation="horizontal")
        bar.set_label("attention / uniform (log)", fontsize=fontsize, labelpad=1)
    else:
        fig.colorbar(ScalarMappable(Normalize(0, vmax), cmap), cax=ax, orientation="horizontal")
        ax.xaxis.set_major_locator(MaxNLocator(3))
        ax.set_xlabel("attention", fontsize=fontsize, labelpad=1)
    ax.tick_params(labelsize=fontsize, length=2, pad=1)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _colour_bar_rgb(cmap: str, width: int, relative: float) -> np.ndarray:
    """The relative-to-uniform colour bar as RGB pixels ``[h, width, 3]``, to draw under each view."""
    png = _colour_bar_png(None, cmap, width, relative, dpi=100, height=0.55, fontsize=7)
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def _with_save(box, links: list):
    """Attach the client-side ``links`` and a ``save(path)`` method (``vn.show.save_html``) to a picker."""
    box.links = links

    def save(path: Any, **options: Any) -> Any:
        """Write this picker as one self-contained, offline HTML file (``vn.show.save_html``); returns the path."""
        return save_html(box, path, **options)

    box.save = save
    return box


def _picker_maps(
    maps: Any, layers: Sequence[int] | None, what: str = "head_picker", shape: str = "[layer, head, rows, cols]"
) -> tuple[torch.Tensor, list]:
    """``maps`` as float32 ``[layer, head, rows, cols]`` (checked) and one label per layer."""
    maps = torch.as_tensor(maps, dtype=torch.float32)
    if maps.ndim != 4:
        raise ValueError(f"{what} expects maps {shape} for one image, got {tuple(maps.shape)}")
    n_l, n_h = maps.shape[:2]
    if n_l == 0 or n_h == 0:
        raise ValueError(f"{what} got no layers or no maps to show")
    layers = list(layers) if layers is not None else list(range(n_l))
    if len(layers) != n_l:
        raise ValueError(f"{len(layers)} layer labels for {n_l} layers of maps")
    return maps, layers


def _view_images(image: Any, layer_maps: torch.Tensor, mean: bool, style: dict, layer: Any) -> list:
    """One ``ipywidgets.Image`` per head of one layer (``[head, rows, cols]``), then the mean over heads;
    with a ``norm`` in ``style``, each view relative to uniform and titled with its H / log N."""
    import ipywidgets as W

    views = list(layer_maps) + ([layer_maps.mean(0)] if mean else [])
    names = [f"h{h}" for h in range(len(layer_maps))] + (["mean"] if mean else [])
    pngs = []
    for name, v in zip(names, views, strict=True):
        if "norm" in style:
            title = f"L{layer} {name} \u00b7 H/log N {float(normalized_entropy(v.flatten().double())):.2f}"
            pngs.append(render_png(image, relative_to_uniform(v), title=title, **style))
        else:
            pngs.append(render_png(image, v, **style))
    size = style["size"]
    return [W.Image(value=png, format="png", width=size, height=_png_height(png, size)) for png in pngs]


def _png_height(png: bytes, width: int) -> int:
    """The height of a PNG shown ``width`` pixels wide."""
    w, h = Image.open(io.BytesIO(png)).size
    return round(h * width / w)


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
