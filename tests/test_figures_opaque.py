"""Figures read in the book's dark mode: every PNG a committed notebook shows (cell outputs and the
images inside its saved widget state) is opaque, so black text and lines never land on the dark
page, and `vn.setup()` sets the matplotlib defaults that keep new figures that way."""

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vitnotes as vn

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted([*ROOT.glob("notebooks/*.ipynb"), *ROOT.glob("apps/*.ipynb")])
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def transparent_pixels(png: bytes) -> int:
    """How many pixels of a PNG are not fully opaque (alpha channel, or a transparent palette or
    grey colour), counted on the decoded image."""
    image = Image.open(io.BytesIO(png))
    if image.mode not in ("RGBA", "LA", "PA") and "transparency" not in image.info:
        return 0
    alpha = np.asarray(image.convert("RGBA"))[..., 3]
    return int((alpha < 255).sum())


def notebook_pngs(path: Path):
    """(where, bytes) for every PNG in a notebook: cell outputs, then widget-state buffers."""
    nb = json.loads(path.read_text())
    for i, cell in enumerate(nb["cells"]):
        for output in cell.get("outputs", []):
            data = output.get("data", {}).get("image/png")
            if data:
                yield f"cell {i}", base64.b64decode("".join(data) if isinstance(data, list) else data)
    state = nb["metadata"].get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    for model_id, model in state.get("state", {}).items():
        for buffer in model.get("buffers", []):
            raw = base64.b64decode(buffer["data"])
            if raw.startswith(PNG_MAGIC):
                yield f"widget {model_id}", raw


def test_transparent_pixels_counts_alpha_palette_and_opaque():
    def png(image):
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return buf.getvalue()

    rgba = np.full((4, 5, 4), 255, np.uint8)
    rgba[0, :3, 3] = 0  # three transparent pixels
    assert transparent_pixels(png(Image.fromarray(rgba, "RGBA"))) == 3
    assert transparent_pixels(png(Image.new("RGB", (4, 4), "white"))) == 0
    palette = Image.new("P", (4, 4), 0)
    palette.info["transparency"] = 0  # colour 0 transparent: every pixel
    assert transparent_pixels(png(palette)) == 16


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_figures_are_opaque(path):
    bad = [(where, n) for where, raw in notebook_pngs(path) if (n := transparent_pixels(raw))]
    assert not bad, (
        f"{path.name}: PNGs with transparent pixels (unreadable in dark mode): {bad[:5]}. "
        "Draw on an opaque background (vn.setup() sets figure.facecolor white and savefig.transparent "
        "False) and re-execute the notebook."
    )


def test_setup_makes_figures_opaque():
    import matplotlib as mpl
    import matplotlib.pyplot as plt

    with mpl.rc_context({"savefig.transparent": True, "figure.facecolor": "none"}):
        vn.setup(seed=0, threads=1)
        assert mpl.rcParams["savefig.transparent"] is False
        fig, ax = plt.subplots(figsize=(1, 1))
        ax.plot([0, 1], [0, 1])
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        plt.close(fig)
    assert transparent_pixels(buf.getvalue()) == 0
