"""The head picker's state holds every (layer, head) view and its client-side links; figures draw."""

import io

import matplotlib
import numpy as np
import pytest
import torch
from ipywidgets.embed import embed_data
from matplotlib.figure import Figure

import vitnotes as vn


@pytest.fixture
def picker_and_maps(vit, pixels):
    att = vn.capture(vit, pixels[:1], cls_only=True)
    maps = att.cls_grids()[:, 0]  # [layer, head, rows, cols]
    image = np.random.default_rng(0).random((16, 16, 3)).astype(np.float32)
    return vn.show.head_picker(image, maps, size=48), maps, image


def test_picker_state_holds_every_view_and_links(picker_and_maps):
    picker, maps, image = picker_and_maps
    state = embed_data(views=[picker])["manager_state"]["state"]
    layer_menu, head_menu = picker.children[0].children
    outer = picker.children[1]
    assert len(outer.children) == 3
    pngs = [img.value for stack in outer.children for img in stack.children]
    assert len(pngs) == 3 * (4 + 1)  # every head plus the mean, per layer
    assert len(set(pngs)) == len(pngs)  # all views differ
    assert pngs[0] == vn.show.render_png(image, maps[0, 0], size=48)
    for img in (i for stack in outer.children for i in stack.children):
        assert img.model_id in state and state[img.model_id]["model_name"] == "ImageModel"
    links = [s["state"] for s in state.values() if s["model_name"] == "LinkModel"]
    wanted = {(f"IPY_MODEL_{layer_menu.model_id}", f"IPY_MODEL_{outer.model_id}")}
    wanted |= {(f"IPY_MODEL_{head_menu.model_id}", f"IPY_MODEL_{s.model_id}") for s in outer.children}
    got = {
        (link["source"][0], link["target"][0])
        for link in links
        if link["source"][1] == "index" and link["target"][1] == "selected_index"
    }
    assert wanted <= got
    assert len(layer_menu.options) == 3 and len(head_menu.options) == 5


def test_picker_weight_is_measured(picker_and_maps):
    picker, _, _ = picker_and_maps
    size = vn.show.state_bytes(picker)
    raw = sum(len(i.value) for s in picker.children[1].children for i in s.children)
    assert raw < size < 4 * raw + 50_000


def test_picker_bad_maps():
    with pytest.raises(ValueError, match=r"\[layer, head, rows, cols\]"):
        vn.show.head_picker(np.zeros((8, 8)), torch.rand(2, 4, 4))


def test_figures(vit, pixels, tmp_path):
    att = vn.capture(vit, pixels)
    image = vn.show.display_image(pixels[0], vn.core.Preprocessing(16, (0.5,) * 3, (0.5,) * 3, 3))
    assert image.shape == (16, 16, 3) and image.min() >= 0 and image.max() <= 1
    figs = [
        vn.show.overlay(image, att.cls_grid(-1)[0].mean(0)),
        vn.show.layer_strip(image, att.cls_grids()[:, 0].mean(1), shared=False),
        vn.show.head_grid(image, att.cls_grids()[:, 0], shared=False),
        vn.show.before_after(image, att.cls_grid(0)[0, 0], att.cls_grid(-1)[0, 0]),
        vn.show.metric_by_layer(vn.cls_summary(att), "entropy"),
        vn.show.layer_strip(image, att.cls_grids()[:, 0].mean(1), shared=True),
        vn.show.head_grid(image, att.cls_grids()[:, 0], shared=True),
    ]
    axes = [len(f.axes) for f in figs]
    assert all(isinstance(f, Figure) for f in figs)
    assert axes[:4] == [3, 3 + 3, 12, 5]  # colour bars: overlay's, one per strip, before/after's pair and difference
    assert axes[5:] == [3 + 1, 12 + 1]  # shared scale: one colour bar
    strip = figs[5].axes[0].images[1]
    assert strip.get_clim() == (0.0, float(att.cls_grids()[:, 0].mean(1).max()))
    default = vn.show.layer_strip(image, att.cls_grids()[:, 0].mean(1))
    assert len(default.axes) == 3 + 1 and default.axes[0].images[1].get_clim() == strip.get_clim()
    p = att.cls_grids()[0, 0].mean(0).flatten().double()  # layer 0, image 0, mean over heads
    p = p / p.sum()
    hand = float(-(p * p.log()).sum() / np.log(p.numel()))
    assert default.axes[0].get_title() == f"layer 0\nH/logN {hand:.2f}"
    signed = vn.show.layer_strip(image, att.cls_grids()[:, 0].mean(1) - 0.5)
    assert signed.axes[0].get_title() == "layer 0"  # a signed map has no entropy
    for i, f in enumerate(figs):
        f.savefig(tmp_path / f"{i}.png")
        assert (tmp_path / f"{i}.png").stat().st_size > 1000


def test_before_after_shares_one_scale_greys_and_outlines():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(8, 8, 3)).astype(np.uint8)
    b, a = torch.rand(4, 4), 2 * torch.rand(4, 4)
    mask = np.zeros((8, 8), bool)
    mask[2:5, 3:6] = True
    fig = vn.show.before_after(image, b, a, grey=True, outline=mask, cmap="viridis")
    left, right = fig.axes[0].images, fig.axes[1].images
    top = float(max(b.max(), a.max()))
    assert left[1].get_clim() == right[1].get_clim() == (0.0, top)  # one scale for before and after
    grey = image.astype(np.float64) / 255 @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(left[0].get_array(), grey, atol=1e-6)  # the image in grey, under the map
    p = b.flatten().double() / b.sum()
    assert fig.axes[0].get_title() == f"before\nH/logN {float(-(p * p.log()).sum() / np.log(16)):.2f}"
    assert all(len(ax.collections) == 1 for ax in fig.axes[:3])  # the outline's contour on each panel
    with pytest.raises(ValueError, match="outline must be a mask"):
        vn.show.before_after(image, b, a, outline=np.zeros((4, 4), bool))


def test_figure_errors():
    with pytest.raises(ValueError, match="2-D"):
        vn.show.overlay(np.zeros((8, 8)), torch.rand(2, 2, 2))
    with pytest.raises(ValueError, match="differ in shape"):
        vn.show.before_after(np.zeros((8, 8)), torch.rand(2, 2), torch.rand(4, 4))
    with pytest.raises(ValueError, match="column 'nope'"):
        import pandas as pd

        vn.show.metric_by_layer(pd.DataFrame({"layer": [0]}), "nope")


def test_relative_to_uniform_and_its_colour_scale():
    flat = torch.full((2, 3, 4, 4), 1 / 16)
    assert torch.allclose(vn.show.relative_to_uniform(flat), torch.ones(2, 3, 4, 4))
    peak = torch.zeros(4, 4)
    peak[1, 2] = 1.0
    assert float(vn.show.relative_to_uniform(peak)[1, 2]) == 16.0  # all the attention on 1 of 16 patches
    with pytest.raises(ValueError, match="non-negative"):
        vn.show.relative_to_uniform(torch.rand(4, 4) - 0.5)
    norm = vn.show.relative_norm(16)
    assert (norm.vmin, norm.vmax) == (1 / 16, 16) and float(norm(1.0)) == pytest.approx(0.5)  # uniform: the middle
    with pytest.raises(ValueError, match="above 1"):
        vn.show.relative_norm(1)
    fig = Figure()
    bar = vn.show.relative_colorbar(fig, fig.subplots().imshow(np.ones((2, 2)), norm=norm, cmap="RdBu_r"))
    assert [t.get_text() for t in bar.ax.get_yticklabels()] == ["1/16", "1/4", "1", "4", "16"]
    assert bar.extend == "both"


def test_relative_head_grid_shares_one_scale_that_an_outlier_cannot_stretch():
    rng = np.random.default_rng(0)
    maps = torch.from_numpy(rng.random((2, 3, 4, 4))).float()
    maps = maps / maps.sum((-2, -1), keepdim=True)
    image = np.zeros((8, 8), np.float32)
    fig = vn.show.head_grid(image, maps, relative=8)
    panels = [ax for ax in fig.axes if len(ax.images) == 2]
    assert len(panels) == 6 and len(fig.axes) == 6 + 1  # every panel, and one colour bar
    clims = {ax.images[1].get_clim() for ax in panels}
    assert clims == {(1 / 8, 8.0)} and all(ax.images[1].norm is panels[0].images[1].norm for ax in panels)
    bar = next(ax for ax in fig.axes if ax not in panels)
    assert "uniform" in bar.get_ylabel()
    p = maps[1, 2].flatten().double()
    hand = float(-(p * p.log()).sum() / np.log(16))
    assert panels[-1].get_title() == f"h2 {hand:.2f}"  # every panel: its head and H / log N
    spiky = maps.clone()
    spiky[0, 0] = 0.0
    spiky[0, 0, 0, 0] = 1.0  # one head puts everything on one patch
    other = vn.show.head_grid(image, spiky, relative=8)
    a = [ax for ax in other.axes if len(ax.images) == 2][5].images[1]
    assert a.get_clim() == (1 / 8, 8.0)  # the outlier does not stretch the scale of the other panels
    np.testing.assert_array_equal(a.get_array(), panels[5].images[1].get_array())


def test_relative_picker_views_share_one_scale_with_title_and_colour_bar():
    maps = torch.full((2, 2, 4, 4), 1 / 16)  # uniform heads ...
    maps[1, 1] = 0.0
    maps[1, 1, 0, 0] = 1.0  # ... and one that puts everything on one patch
    image = np.zeros((16, 16), np.float32)
    picker = vn.show.head_picker(image, maps, size=64, relative=16, alpha=1.0)
    views = [img for stack in picker.children[1].children for img in stack.children]
    assert len(views) == 2 * 3 and len(picker.links) == 1 + 2  # the static-page mechanism is unchanged
    from PIL import Image

    first = np.asarray(Image.open(io.BytesIO(views[0].value)).convert("RGB"))
    assert first.shape[1] == 64 and first.shape[0] > 64 + 20  # a title above, a colour bar below
    assert int(views[0].height) == first.shape[0]
    png = vn.show.render_png(
        image, torch.ones(4, 4), size=64, alpha=1.0, colors=None, norm=vn.show.relative_norm(16), cmap="RdBu_r"
    )
    plain = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    middle = np.array(matplotlib.colormaps["RdBu_r"](0.5)[:3]) * 255
    assert np.abs(plain.astype(float) - middle).max() <= 2  # uniform: the scale's middle colour, whatever else
    rows = [r for r in range(first.shape[0]) if np.abs(first[r].astype(float) - plain[0]).max() <= 8]
    assert len(rows) >= 60  # the uniform head's view shows that colour, not stretched by the outlier head
    default = vn.show.head_picker(image, maps, size=64)
    assert all(int(i.height) == 64 for s in default.children[1].children for i in s.children)  # default: bare views
