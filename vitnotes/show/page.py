"""How large a figure's text is on the book's page, and how many map panels share a row.

The book (sphinx-book-theme) shows a PNG at its own width up to the content column, 688 px at a
1,280-px window, and shrinks a wider one to fit. A letter of ``s`` points on a figure of ``dpi``
dots per inch is ``s * dpi / 72`` px high in the PNG, and ``min(1, 688 / png width)`` times that
on the page. ``readability`` measures both from the figure as it is drawn (the texts actually drawn,
the PNG the notebook shows: ``bbox_inches="tight"`` at the figure's dpi, as IPython renders it);
the notebooks record that measure in every PNG they show (``png_with_record``), so a test reads
it back from the committed notebooks without running them (tests/test_figure_text.py).
Introduced in notebook 01 (layers).
"""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib
from typing import Any

from matplotlib.figure import Figure
from matplotlib.text import Text

__all__ = [
    "MAX_PANELS", "MIN_TEXT_PX", "PAGE_PX", "page_inches", "png_record", "png_size", "png_with_record",
    "overlapping_texts", "panels_per_row", "readability", "text_inches", "text_px_as_shown", "wrap",
]  # fmt: skip

PAGE_PX = 688  # the book's content width at a 1,280-px window (sphinx-book-theme)
MIN_TEXT_PX = 9.0  # the smallest letter height (the font size in px) a figure may show on the page
MAX_PANELS = 6  # map panels side by side in one row at most
RECORD_KEY = "vitnotes:readability"  # the PNG text chunk that carries the record


def page_inches(dpi: float | None = None) -> float:
    """The widest a figure of ``dpi`` (default: matplotlib's ``figure.dpi``) may be drawn, in inches, for
    the page to show it at full size: ``PAGE_PX`` less the 0.1-inch margins of the tight box."""
    import matplotlib as mpl

    dpi = float(dpi or mpl.rcParams["figure.dpi"])
    return (PAGE_PX - 20) / dpi


def text_inches(texts: Any, size: float) -> float:
    """The width in inches of the widest line among ``texts`` at ``size`` points (matplotlib's current
    font): how much room a title or a row name needs. 0 for no text."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    measure, font = TextToPath(), FontProperties(size=size)
    lines = [line for t in texts for line in str(t).split("\n") if line]
    return max((measure.get_text_width_height_descent(line, font, ismath=False)[0] / 72 for line in lines), default=0.0)


def wrap(n: int, columns: int = MAX_PANELS) -> tuple[int, int]:
    """``n`` panels in rows of at most ``columns``, as evenly as they go: ``(rows, per row)`` (12 -> 2 x 6,
    8 -> 2 x 4, 7 -> 2 x 4 with one slot left empty)."""
    if columns < 1:
        raise ValueError(f"columns must be at least 1, got {columns!r}")
    rows = max(1, -(-n // columns))
    return rows, max(1, -(-n // rows))


def _render(fig: Figure, **options: Any) -> bytes:
    """The PNG a notebook shows for ``fig``: IPython's ``print_figure`` (tight box, the figure's dpi)."""
    kw = dict(format="png", dpi=fig.dpi, bbox_inches="tight", facecolor=fig.get_facecolor(),
              edgecolor=fig.get_edgecolor())  # fmt: skip
    kw.update(options)
    buf = io.BytesIO()
    fig.savefig(buf, **kw)
    return buf.getvalue()


def png_size(png: bytes) -> tuple[int, int]:
    """A PNG's width and height in px, from its header."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    return struct.unpack(">II", png[16:24])


def drawn_texts(fig: Figure, boxes: bool = False) -> list[tuple]:
    """Every text the figure draws (titles, labels, tick labels, legends, annotations), as ``(text,
    size in points)`` (``boxes=True``: and its box on the canvas, ``(x0, y0, x1, y1)`` px, ``None`` for a
    slanted text, whose box is not where its letters are): a draw on a
    throw-away renderer records them (hidden and empty texts are not drawn, so they are not counted)."""
    from matplotlib.backends.backend_agg import RendererAgg

    w, h = fig.get_size_inches() * fig.dpi
    renderer = RendererAgg(int(w), int(h), fig.dpi)
    seen: list[tuple] = []
    artists: list[Any] = []

    def record(gc, x, y, s, prop, angle, ismath=False, mtext=None):  # RendererAgg.draw_text's signature
        if str(s).strip():
            seen.append((str(s), float(prop.get_size_in_points())))
            artists.append(mtext)

    renderer.draw_text = record
    renderer.draw_tex = lambda gc, x, y, s, prop, angle, *, mtext=None: record(gc, x, y, s, prop, angle, mtext=mtext)
    fig.draw(renderer)
    if not boxes:
        return seen
    out = []
    for (s, pt), artist in zip(seen, artists):
        upright = isinstance(artist, Text) and artist.get_rotation() % 90 == 0  # a slanted text's box is not its ink
        box = artist.get_window_extent(renderer) if upright else None
        out.append((s, pt, None if box is None else tuple(float(v) for v in box.extents)))
    return out


def overlapping_texts(fig: Figure, tolerance: float = 1.0, texts: list[tuple] | None = None) -> list[tuple[str, str]]:
    """Pairs of drawn texts whose boxes overlap by more than ``tolerance`` px both ways (titles that run
    into each other, a label over a tick label): text that the page shows but no one can read. Slanted
    texts are left out. ``texts``: ``drawn_texts(fig, boxes=True)`` when already at hand."""
    boxes: dict[tuple, str] = {}
    for s, _, box in texts if texts is not None else drawn_texts(fig, boxes=True):
        if box is not None:
            boxes.setdefault(box, s)  # a multi-line text is drawn line by line: one box
    items = list(boxes.items())
    pairs = []
    for i, (a, sa) in enumerate(items):
        for b, sb in items[i + 1 :]:
            if min(a[2], b[2]) - max(a[0], b[0]) > tolerance and min(a[3], b[3]) - max(a[1], b[1]) > tolerance:
                pairs.append((sa, sb))
    return pairs


def panels_per_row(fig: Figure) -> int:
    """The most map panels (axes that show an image; colour bars are not panels) in one row of the
    figure's grids: a 12-map strip in one row gives 12, wrapped to two rows of 6 it gives 6."""
    rows: dict[tuple[int, int], int] = {}
    for ax in fig.axes:
        if not ax.get_visible() or not ax.images or hasattr(ax, "_colorbar"):
            continue
        spec = ax.get_subplotspec()
        if spec is not None:
            key = (id(spec.get_gridspec()), spec.rowspan.start)
        else:
            key = (0, round(ax.get_position().y0 * 1000))
        rows[key] = rows.get(key, 0) + 1
    return max(rows.values(), default=0)


def readability(fig: Figure, page_px: int = PAGE_PX, png: bytes | None = None) -> dict:
    """How ``fig`` reads on a page ``page_px`` wide: the PNG's size, the scale the page shows it at,
    its smallest text (in points, and its height in px as shown), the most map panels in one row, and
    up to 5 pairs of texts that overlap.
    ``png``: the PNG already rendered for it (else it is rendered here). Introduced in notebook 01."""
    png = _render(fig) if png is None else png
    w, h = png_size(png)
    scale = min(1.0, page_px / w)
    drawn = drawn_texts(fig, boxes=True)
    overlaps = overlapping_texts(fig, texts=drawn)
    texts = [(s, pt) for s, pt, _ in drawn]
    text, pt = min(texts, key=lambda t: t[1]) if texts else ("", float("inf"))
    shown = pt * fig.dpi / 72 * scale
    return {
        "png_px": [w, h],
        "page_px": page_px,
        "scale": round(scale, 4),
        "dpi": float(fig.dpi),
        "min_text_pt": round(pt, 3) if texts else None,
        "min_text_px": round(shown, 3) if texts else None,
        "smallest_text": text[:60],
        "panels_per_row": panels_per_row(fig),
        "overlapping_texts": [[a[:40], b[:40]] for a, b in overlaps[:5]],
    }


def text_px_as_shown(fig: Figure, page_px: int = PAGE_PX) -> float:
    """The height in px, as the page shows the figure, of its smallest text: the font size in points
    times ``dpi / 72`` times ``min(1, page_px / PNG width)`` (infinite for a figure without text).
    Introduced in notebook 01 (layers)."""
    value = readability(fig, page_px)["min_text_px"]
    return float("inf") if value is None else value


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_with_record(fig: Figure, page_px: int = PAGE_PX, base64_str: bool = False) -> bytes | str | None:
    """The PNG a notebook shows for ``fig`` with its ``readability`` record in a text chunk (key
    ``vitnotes:readability``, JSON), as IPython's PNG formatter returns it (``base64_str=True``: base64
    text). ``None`` for an empty figure, as IPython does."""
    if not fig.axes and not fig.lines:
        return None
    png = _render(fig)
    try:
        record = json.dumps(readability(fig, page_px, png), sort_keys=True)
    except Exception:  # the figure still shows; the test then finds it without a record and says so
        return base64.b64encode(png).decode("ascii") if base64_str else png
    ihdr_end = 8 + 8 + 13 + 4  # signature, then IHDR (length, type, 13 bytes, crc)
    out = png[:ihdr_end] + _chunk(b"tEXt", RECORD_KEY.encode() + b"\0" + record.encode("latin-1")) + png[ihdr_end:]
    return base64.b64encode(out).decode("ascii") if base64_str else out


def png_record(png: bytes | str) -> dict | None:
    """The ``readability`` record a notebook stored in a PNG (bytes, or base64 text as in an .ipynb),
    or ``None`` when it has none (drawn by an older vitnotes, or not by a figure)."""
    data = base64.b64decode(png) if isinstance(png, str) else png
    at = 8
    while at + 8 <= len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind = data[at + 4 : at + 8]
        if kind == b"tEXt":
            key, _, value = data[at + 8 : at + 8 + length].partition(b"\0")
            if key.decode("latin-1") == RECORD_KEY:
                return json.loads(value.decode("latin-1"))
        if kind == b"IDAT":
            break
        at += 12 + length
    return None
