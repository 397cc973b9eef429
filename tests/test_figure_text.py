"""Figures read at the book's page width (issue 24, item 11): no strip wider than 6 panels, and every
figure's text at least 9 px high as the page shows it.

The book shows a PNG at its own width up to 688 px (the content column at a 1,280-px window) and
shrinks a wider one to fit, so a letter of ``s`` points is ``s * dpi / 72 * min(1, 688 / width)`` px
high on the page. Two checks, neither runs a notebook:

- the show functions, built with the shapes and arguments the chapters use, measured as drawn
  (``vn.show.page.readability``: the texts actually drawn, the PNG the notebook would show);
- every PNG in the committed notebooks: ``vn.setup()`` makes each shown figure carry its record in a
  PNG text chunk, and the test recomputes the height as shown from the record's smallest font and the
  width in the PNG's own header. A PNG without a record was drawn before the record existed: the
  notebook needs re-executing (a 1,360-px strip of 9-pt titles shows them 6.3 px high).
"""

import base64
import io
import json
import struct
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

import vitnotes as vn
from vitnotes.show.page import (
    MAX_PANELS,
    MIN_TEXT_PX,
    PAGE_PX,
    overlapping_texts,
    panels_per_row,
    png_record,
    png_with_record,
    readability,
    text_px_as_shown,
    wrap,
)
from vitnotes.show.training import training_plot

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(ROOT.glob("notebooks/*.ipynb"))


@pytest.fixture(autouse=True)
def book_style():
    """The plotting style the notebooks draw with (``vn.setup``), undone afterwards."""
    threads = torch.get_num_threads()
    with mpl.rc_context():
        vn.setup(seed=0, threads=threads)
        yield


def _rng():
    return np.random.default_rng(0)


def _image():
    return (_rng().random((28, 28)) * 255).astype(np.uint8)


def _maps(*shape):
    m = torch.from_numpy(_rng().random(shape)).float() ** 4  # peaked, like attention
    return m / m.flatten(-2).sum(-1)[..., None, None]


# ------------------------------------------------------------------ the measure itself
def _old_strip(n=12, size=1.15):
    """A strip as layer_strip drew it before: every map in one row (chapter 01: 1,360 px wide)."""
    fig = Figure(figsize=(size * n, size + 0.3), layout="constrained")
    axes = fig.subplots(1, n)
    for i, ax in enumerate(axes):
        im = ax.imshow(_maps(14, 14).numpy())
        ax.set_title(f"L{i}\nH/logN 0.90", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=list(axes), shrink=0.8)
    return fig


def test_a_deliberately_wide_strip_fails_both_rules():
    fig = _old_strip()
    r = readability(fig)
    assert r["png_px"][0] > 1300 and r["scale"] < 0.55
    assert r["min_text_px"] == pytest.approx(r["min_text_pt"] * 100 / 72 * PAGE_PX / r["png_px"][0], abs=1e-2)
    assert r["min_text_px"] < MIN_TEXT_PX  # 9-pt titles shrunk to about half: some 6 px
    assert r["panels_per_row"] == 12 > MAX_PANELS
    assert text_px_as_shown(fig) == pytest.approx(r["min_text_px"], abs=0.05)


def test_text_px_is_font_size_times_dpi_over_72_at_full_size():
    fig = Figure(figsize=(4, 3))
    ax = fig.subplots()
    ax.plot([0, 1])
    ax.set_title("title", fontsize=12)
    ax.tick_params(labelsize=8)
    r = readability(fig)
    assert r["png_px"][0] < PAGE_PX and r["scale"] == 1.0
    assert r["min_text_pt"] == 8 and r["min_text_px"] == pytest.approx(8 * fig.dpi / 72, abs=1e-3)
    assert r["panels_per_row"] == 0  # a plot, not a map panel
    hidden = Figure(figsize=(4, 3))
    ax = hidden.subplots()
    ax.set_title("tiny but hidden", fontsize=3).set_visible(False)
    ax.set_xlabel("")  # empty texts are not drawn either
    assert readability(hidden)["min_text_pt"] > 3


def test_panels_per_row_counts_map_panels_not_colour_bars():
    assert panels_per_row(vn.show.layer_strip(_image(), _maps(12, 14, 14))) == 6
    assert panels_per_row(vn.show.layer_strip(_image(), _maps(3, 14, 14))) == 3
    assert wrap(12) == (2, 6) and wrap(8) == (2, 4) and wrap(7) == (2, 4) and wrap(6) == (1, 6) and wrap(1) == (1, 1)


def test_overlapping_titles_are_found():
    fig = Figure(figsize=(3, 1.5))
    for ax in fig.subplots(1, 3):
        ax.set_title("a title far wider than its panel", fontsize=9)
    assert overlapping_texts(fig)
    assert not overlapping_texts(vn.show.layer_strip(_image(), _maps(12, 14, 14)))


def test_the_record_travels_in_the_png_and_leaves_its_pixels_alone():
    fig, twin = (vn.show.layer_strip(_image(), _maps(12, 14, 14)) for _ in range(2))  # each drawn once, as IPython does
    png = png_with_record(fig)
    plain = io.BytesIO()
    twin.savefig(plain, format="png", dpi=twin.dpi, bbox_inches="tight")
    a, b = Image.open(io.BytesIO(png)), Image.open(plain)
    assert a.size == b.size and np.array_equal(np.asarray(a), np.asarray(b))
    record = png_record(base64.b64encode(png).decode())  # as an .ipynb holds it
    assert record["png_px"] == list(a.size)  # the PNG it travels in
    again = json.loads(json.dumps(readability(fig)))  # a second drawing: the layout may move a few px
    assert {k: v for k, v in record.items() if k not in ("png_px", "scale")} == {
        k: v for k, v in again.items() if k not in ("png_px", "scale")
    }
    assert png_record(plain.getvalue()) is None
    assert png_with_record(Figure()) is None  # an empty figure shows nothing, as in IPython


# ------------------------------------------------------------------ the show functions, as the chapters call them
def _heads():
    rng = _rng()
    return pd.DataFrame(
        [(layer, h, rng.random(), 10 * rng.random(), rng.random()) for layer in range(12) for h in range(12)],
        columns=["layer", "head", "entropy_norm", "distance_px", "consistency"],
    )


def _intervals(methods, columns):
    rows = [(m, "faithfulness", metric, base, 0.5, 0.3, 0.7, 10) for m in methods for metric, base in columns]
    return pd.DataFrame(rows, columns=["method", "family", "metric", "baseline", "value", "low", "high", "n"])


def _card(r2=False):
    layers = {"entropy_norm": [0.9] * 12, "top10": [0.3] * 12, "distance_px": [9.0] * 12,
              "rollout_entropy_norm": [0.95] * 12, "norm_max": [80.0] * 12}  # fmt: skip
    score = (lambda e: {"r2": {"start time": e, "start freq": e, "end freq": e}}) if r2 else (
        lambda e: {"test_accuracy": e})  # fmt: skip
    log = [{"epoch": e, "seconds": 60 * e, **score(e / 60), "layers": layers} for e in (0, 1, 3, 10, 30, 60)]
    return {"name": "spectro-vit" if r2 else "fmnist-vit-p4", "patches": 49, "patch_size": 4, "training_log": log}


NAMES = ["Ankle boot", "Pullover", "Trouser", "Trouser", "Shirt", "Trouser", "Coat", "Shirt", "Bag", "Sandal"]
STEPS = ["trained", "head", "head + block 11", "head + blocks 6-11", "head + blocks 3-11", "head + blocks 1-11",
         "head + blocks 0-11", "all + embeddings"]  # fmt: skip
METHODS = ["rollout", "last layer", "gradient rollout", "grad-cam", "attention flow", "legrad", "cp-lrp",
           "integrated gradients", "occlusion", "random", "value-weighted", "brightness"]  # fmt: skip


def _strip_with_title(fig, title, size=10):
    fig.suptitle(title, fontsize=size)
    return fig


CASES = {
    # chapter 00: one layer's 12 heads
    "00 head_grid 12 heads": lambda: vn.show.head_grid(_image(), _maps(1, 12, 14, 14), layers=[3]),
    # chapter 01: a 12-layer strip per image, the metrics by layer
    "01 layer_strip 12 layers": lambda: _strip_with_title(
        vn.show.layer_strip(_image(), _maps(12, 14, 14), labels=[f"L{i}" for i in range(12)]),
        "test image 0: Ankle boot",
    ),
    "01 metric_by_layer": lambda: vn.show.metric_by_layer(
        _heads(), "entropy_norm", ylabel="CLS entropy / log N (1 = uniform)", reference=1.0, zero=True
    ),
    "01 distance_dots": lambda: vn.show.distance_dots(_heads(), 9.3),
    "01 position_similarity_plot": lambda: vn.show.position_similarity_plot(torch.rand(14, 14, 14, 14) * 2 - 1),
    "01 readability_plot": lambda: vn.show.readability_plot(
        {
            "logit lens": pd.DataFrame(
                {"accuracy": [0.5] * 13, "low": [0.4] * 13, "high": [0.6] * 13},
                index=["emb"] + [f"L{i}" for i in range(12)],
            ),
            "last layer's probe, read at each layer": pd.Series(
                [0.3] * 13, index=["emb"] + [f"L{i}" for i in range(12)]
            ),
        },
        chance=0.1,
        ylabel="accuracy (shaded: 95 % interval)",
    ),
    "01 training_plot, accuracy": lambda: training_plot(_card()),
    "90 training_plot, R^2 with a legend": lambda: training_plot(_card(r2=True)),
    # chapter 02: every head of four layers relative to uniform, strips over several images
    "02 head_grid 4 layers x 12 heads, relative": lambda: vn.show.head_grid(
        _image(), _maps(4, 12, 14, 14), layers=[0, 4, 8, 11], relative=16
    ),
    "02 head_grid 12 x 12, relative": lambda: vn.show.head_grid(_image(), _maps(12, 12, 14, 14), relative=16),
    "02 layer_strip 4 images": lambda: _strip_with_title(
        vn.show.layer_strip([_image()] * 4, _maps(4, 14, 14), labels=NAMES[:4], size=1.3),
        "content-following: layer 10, head 3 (consistency 0.52, garment ratio 1.23)",
        9,
    ),
    "02 attention_matrix": lambda: vn.show.attention_matrix(
        torch.softmax(torch.randn(197, 197), -1), title="layer 6, head 0, test image 0: attention [query, key]"
    ),
    "02 following_plot": lambda: vn.show.following_plot(
        _heads().assign(shift_fixed=np.linspace(-0.2, 1, 144), shift_moved=np.linspace(0, 1, 144)), weak=0.3
    ),
    # chapter 06 (and 03, 04, 09): maps on one scale per row; the cascade; intervals
    "06 shared_maps 6 images x 6 rows": lambda: vn.show.shared_maps(
        [_image()] * 6,
        {f"layer {i}": _maps(6, 14, 14) for i in (0, 3, 6, 9, 11)} | {"rollout": _maps(6, 14, 14)},
        titles=NAMES[:6],
        reference=1 / 196,
    ),
    "06 shared_maps 8 images": lambda: vn.show.shared_maps(
        [_image()] * 8, {k: _maps(8, 7, 7) for k in ("last layer", "rollout", "attention flow")}, titles=NAMES[:8]
    ),
    "03 shared_maps 10 images, size 0.9": lambda: vn.show.shared_maps(
        np.stack([_image()] * 10), {k: _maps(10, 7, 7) for k in METHODS[:7]}, titles=NAMES, size=0.9
    ),
    "04 shared_maps two-line titles, size 1.3": lambda: vn.show.shared_maps(
        [_image()] * 6,
        {k: _maps(6, 14, 14) for k in ("CLS attention", "grad. rollout: predicted")},
        titles=["Shirt\n→ T-shirt/top (0.93)"] * 6,
        size=1.3,
    ),
    "09 shared_maps 12 methods, signed rows": lambda: vn.show.shared_maps(
        [_image()] * 6, {k: _maps(6, 7, 7) - (0.02 if k == "cp-lrp" else 0) for k in METHODS}, titles=NAMES[:6]
    ),
    "06 cascade_panel 8 steps": lambda: vn.show.cascade_panel(
        _image(), {s: {m: _maps(1, 7, 7) for m in METHODS[:3]} for s in STEPS}, index=0
    ),
    "06 cascade_plot": lambda: vn.show.cascade_plot(
        pd.DataFrame(
            [(s, m, 0.5, 0.3, 0.7) for s in STEPS[1:] for m in METHODS[:3]],
            columns=["step", "method", "spearman", "low", "high"],
        ),
        dict.fromkeys(METHODS[:3], 0.3),
    ),
    "06 interval_plot 1 column": lambda: vn.show.interval_plot(
        _intervals(METHODS[:4], [("Spearman with occlusion", "")]),
        [("Spearman with occlusion", "")],
        controls=("random", "last layer"),
        width=3.2,
    ),
    "03 interval_plot 3 columns": lambda: vn.show.interval_plot(
        _intervals(METHODS[:7], [("srg", b) for b in ("mean", "blur", "black, garment")]),
        [("srg", b) for b in ("mean", "blur", "black, garment")],
    ),
    "09 interval_plot 5 columns": lambda: vn.show.interval_plot(
        _intervals(METHODS, [(m, "") for m in ("mass_chirp", "pointing", "mass_text", "mass_colorbar", "mass_axes")]),
        [(m, "") for m in ("mass_chirp", "pointing", "mass_text", "mass_colorbar", "mass_axes")],
    ),
    "demo layer_strip, a colour bar each": lambda: vn.show.layer_strip(
        _image(),
        _maps(8, 8, 8),
        labels=[f"CLS attn L{i}" for i in range(6)] + ["rollout", "ViT Grad-CAM"],
        shared=False,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_show_functions_read_at_the_page_width(name):
    fig = CASES[name]()
    r = readability(fig)
    assert r["min_text_px"] >= MIN_TEXT_PX, (
        f"{name}: '{r['smallest_text']}' at {r['min_text_pt']} pt is {r['min_text_px']:.1f} px high as shown "
        f"(PNG {r['png_px'][0]} px wide, shown at {r['scale']:.0%})"
    )
    assert r["panels_per_row"] <= MAX_PANELS, f"{name}: {r['panels_per_row']} panels side by side"
    assert not r["overlapping_texts"], f"{name}: texts run into each other: {r['overlapping_texts']}"


def test_wrapped_strips_keep_one_colour_bar_and_every_map():
    maps = _maps(12, 14, 14)
    fig = vn.show.layer_strip(_image(), maps)
    panels = [ax for ax in fig.axes if ax.images]
    bars = [ax for ax in fig.axes if hasattr(ax, "_colorbar")]
    assert len(panels) == 12 and len(bars) == 1  # one colour bar for both rows
    assert {ax.images[1].get_clim() for ax in panels} == {(0.0, float(maps.max()))}
    assert [ax.get_title().split("\n")[0] for ax in panels] == [f"layer {i}" for i in range(12)]
    grid = vn.show.head_grid(_image(), _maps(2, 12, 4, 4), relative=8)
    heads = [ax for ax in grid.axes if len(ax.images) == 2]
    assert len(heads) == 24 and panels_per_row(grid) == 6
    assert [ax.get_ylabel() for ax in heads[::6]] == ["L0", "L0", "L1", "L1"]  # each layer: two rows of 6 heads
    wide = vn.show.shared_maps([_image()] * 10, {"a": _maps(10, 7, 7)}, titles=NAMES)
    rows = [ax for ax in wide.axes if ax.images and not hasattr(ax, "_colorbar")]
    assert len(rows) == 2 * 10 and panels_per_row(wide) == 5  # two blocks of 5: images, then maps
    shown = [ax for ax in rows if ax.images[0].get_cmap().name == "magma"]  # the maps, not the images
    assert len(shown) == 10 and len({ax.images[0].get_clim() for ax in shown}) == 1  # one scale across the blocks


# ------------------------------------------------------------------ the committed notebooks
def _pngs(path: Path):
    nb = json.loads(path.read_text())
    for i, cell in enumerate(nb["cells"]):
        for output in cell.get("outputs", []):
            data = output.get("data", {}).get("image/png")
            if data:
                yield f"cell {i}", base64.b64decode("".join(data) if isinstance(data, list) else data)


def problems(path: Path) -> list[str]:
    """What in a notebook's PNGs breaks a rule, one line per figure."""
    out = []
    for where, png in _pngs(path):
        width, _ = struct.unpack(">II", png[16:24])
        scale = min(1.0, PAGE_PX / width)
        record = png_record(png)
        if record is None:
            out.append(f"{where}: {width} px wide (shown at {scale:.0%}), no readability record: re-execute it "
                       f"(9-pt text would show {9 * 100 / 72 * scale:.1f} px high)")  # fmt: skip
            continue
        if record["min_text_pt"] is not None:
            shown = record["min_text_pt"] * record["dpi"] / 72 * scale
            if shown < MIN_TEXT_PX:
                out.append(f"{where}: '{record['smallest_text']}' at {record['min_text_pt']} pt shows {shown:.1f} px "
                           f"high (PNG {width} px wide, shown at {scale:.0%})")  # fmt: skip
        if record["panels_per_row"] > MAX_PANELS:
            out.append(f"{where}: {record['panels_per_row']} map panels side by side")
    return out


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_figure_a_notebook_shows_reads_at_the_page_width(path):
    found = problems(path)
    assert not found, f"{path.name}:\n  " + "\n  ".join(found)
