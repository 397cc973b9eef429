"""Standalone exports: one HTML file that shows a widget with no kernel, no server and no network.

``save_html(widget, path)`` writes the widget's state (its images inlined as base64, its ``jslink``
links included, so a head picker still switches views) and the widget manager itself: npm's
``@jupyter-widgets/html-manager`` standalone bundle ``dist/embed.js``, inlined in a ``<script>``
(no CDN, no require.js), with its icon font inlined as WOFF2 data. The file opens from disk
(``file://``), can be mailed or attached to an issue. Nothing is overwritten that ``save_html``
did not write: an existing file is replaced only if it is a page ``save_html`` wrote. Introduced in
notebook 02 (heads), where the head picker is built.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
from pathlib import Path
from typing import Any

from ..core.files import check_target, file_head, write_atomic

__all__ = ["embed_script", "find_embed_js", "save_html"]

EMBED_REL = Path("node_modules") / "@jupyter-widgets" / "html-manager" / "dist" / "embed.js"

# the bundle refers to its fonts as ``<publicPath> + "<hash>.<ext>"``; only WOFF2 is ever fetched by
# a browser that runs the bundle at all (it is listed before WOFF/TTF/SVG, and EOT is for old IE)
_ASSET = re.compile(r'[A-Za-z_$][\w$]*\.p\+"([0-9a-f]{16,}\.(woff2|woff|ttf|eot|svg))"')
# webpack finds its "public path" (where the fonts lie) from the src of a <script>: an inlined bundle
# has none and webpack throws; the page's own address stands in (nothing is fetched from it)
_PUBLIC_PATH = re.compile(
    r'if\(!([A-Za-z_$][\w$]*)\)throw new Error\("Automatic publicPath is not supported in this browser"\)'
)


def find_embed_js(embed_js: str | Path | None = None) -> Path:
    """The widget manager bundle: ``embed_js`` if given, else ``VITNOTES_EMBED_JS``, else the
    project's ``node_modules`` (``npm ci``) or the book's ``_static/embed.js`` (``make static``)."""
    root = Path(__file__).resolve().parents[2]
    candidates = (
        [Path(embed_js).expanduser()]
        if embed_js is not None
        else [Path(p).expanduser() for p in [os.environ.get("VITNOTES_EMBED_JS")] if p]
        + [root / EMBED_REL, Path.cwd() / EMBED_REL, root / "_static" / "embed.js"]
    )
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"the widget manager bundle (@jupyter-widgets/html-manager dist/embed.js) was not found at "
        f"{', '.join(map(str, candidates))}; run `npm ci` in the vitnotes checkout, set VITNOTES_EMBED_JS, "
        "or pass embed_js='path/to/embed.js'"
    )


def embed_script(embed_js: str | Path | None = None) -> str:
    """The bundle's JavaScript, ready to inline: its WOFF2 fonts as data URLs, the other font
    formats (never fetched by a browser that runs the bundle) as empty data URLs, webpack's
    public path taken from the page's address (an inlined script has no ``src``), and every
    ``</script`` escaped."""
    path = find_embed_js(embed_js)
    code = path.read_text(encoding="utf-8")
    woff2 = []

    def inline(m: re.Match) -> str:
        name, ext = m.group(1), m.group(2)
        if ext != "woff2":
            return json.dumps("data:,")
        font = path.parent / name
        if not font.is_file():
            raise FileNotFoundError(f"{font} (a font of the widget manager) is missing; run `npm ci` again")
        woff2.append(name)
        return json.dumps("data:font/woff2;base64," + base64.b64encode(font.read_bytes()).decode("ascii"))

    code = _ASSET.sub(inline, code)
    code, found = _PUBLIC_PATH.subn(lambda m: f"if(!{m.group(1)}){m.group(1)}=document.baseURI", code)
    if found != 1 or (not woff2 and "woff2" in code):
        raise ValueError(
            f"{path} refers to its fonts or finds its public path in a way vitnotes does not recognise "
            "(another html-manager version?); pin @jupyter-widgets/html-manager as in package.json"
        )
    return re.sub(r"</(script)", r"<\\/\1", code, flags=re.IGNORECASE)


# the line in the <head> of every page save_html writes: what marks an existing file as its own
GENERATOR = '<meta name="generator" content="vitnotes save_html">'


def _is_own_page(path: Path) -> bool:
    """A page ``save_html`` wrote: ``<!DOCTYPE html>`` first, and ``GENERATOR`` before the first
    ``<script`` (the title before it is HTML-escaped, so it cannot forge the line)."""
    head = file_head(path, 2**20)
    return head.startswith(b"<!DOCTYPE html>") and GENERATOR.encode() in head.split(b"<script", 1)[0]


_WHAT = "a page save_html wrote"


def _json_in_script(data: Any) -> str:
    from ipywidgets.embed import escape_script

    return escape_script(json.dumps(data))


def save_html(widget: Any, path: str | Path, *, title: str = "vitnotes", embed_js: str | Path | None = None) -> Path:
    """Write ``widget`` (e.g. ``vn.show.head_picker(...)``) as one self-contained, offline HTML file.

    The state of the widget, of every widget it holds and of the ``jslink`` s between them (the
    picker's ``links``) is embedded; the widget manager is inlined (``embed_script``), so the file
    needs no kernel, server or network: open it from disk. The file is written whole (a temporary
    name beside it, then renamed). An existing ``path`` is replaced only if ``save_html`` wrote it
    (its ``<head>`` holds ``GENERATOR``); anything else there is refused before any work, and again
    just before the rename; an empty path, a folder or a path below a file is refused too. Returns
    the path. Introduced in notebook 02 (heads)."""
    from ipywidgets import Widget
    from ipywidgets.embed import dependency_state, embed_data

    if not isinstance(widget, Widget):
        raise TypeError(
            f"save_html saves an ipywidgets widget (e.g. vn.show.head_picker(...)), got {type(widget).__name__}"
        )
    path = check_target(path, _is_own_page, _WHAT, example="picker.html")  # before any work
    script = embed_script(embed_js)
    state = dependency_state([widget, *getattr(widget, "links", [])], drop_defaults=True)
    data = embed_data(views=[widget], state=state)
    views = "\n".join(
        f'<script type="application/vnd.jupyter.widget-view+json">{_json_in_script(spec)}</script>'
        for spec in data["view_specs"]
    )
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<title>{html.escape(title)}</title>\n<link rel="icon" href="data:,">\n'
        f"{GENERATOR}\n"
        "<style>body { font-family: system-ui, sans-serif; margin: 1em; }</style>\n"
        f"<script>\n{script}\n</script>\n"
        f'<script type="application/vnd.jupyter.widget-state+json">{_json_in_script(data["manager_state"])}</script>\n'
        f"</head>\n<body>\n{views}\n</body>\n</html>\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda tmp: tmp.write_text(page, encoding="utf-8"), _is_own_page, _WHAT)
    return path
