"""The head picker's state holds every (layer, head) view and its client-side links; figures draw."""

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
    return vn.head_picker(image, maps, size=48), maps, image


def test_picker_state_holds_every_view_and_links(picker_and_maps):
    picker, maps, image = picker_and_maps
    state = embed_data(views=[picker])["manager_state"]["state"]
    layer_menu, head_menu = picker.children[0].children
    outer = picker.children[1]
    assert len(outer.children) == 3
    pngs = [img.value for stack in outer.children for img in stack.children]
    assert len(pngs) == 3 * (4 + 1)  # every head plus the mean, per layer
    assert len(set(pngs)) == len(pngs)  # all views differ
    assert pngs[0] == vn.render_png(image, maps[0, 0], size=48)
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
    size = vn.state_bytes(picker)
    raw = sum(len(i.value) for s in picker.children[1].children for i in s.children)
    assert raw < size < 4 * raw + 50_000


def test_picker_bad_maps():
    with pytest.raises(ValueError, match=r"\[layer, head, rows, cols\]"):
        vn.head_picker(np.zeros((8, 8)), torch.rand(2, 4, 4))


def test_figures(vit, pixels, tmp_path):
    att = vn.capture(vit, pixels)
    image = vn.display_image(pixels[0], vn.Preprocessing(16, (0.5,) * 3, (0.5,) * 3, 3))
    assert image.shape == (16, 16, 3) and image.min() >= 0 and image.max() <= 1
    figs = [
        vn.overlay(image, att.cls_grid(-1)[0].mean(0)),
        vn.layer_strip(image, att.cls_grids()[:, 0].mean(1), shared=False),
        vn.head_grid(image, att.cls_grids()[:, 0], shared=False),
        vn.before_after(image, att.cls_grid(0)[0, 0], att.cls_grid(-1)[0, 0]),
        vn.metric_by_layer(vn.cls_summary(att), "entropy"),
        vn.layer_strip(image, att.cls_grids()[:, 0].mean(1), shared=True),
        vn.head_grid(image, att.cls_grids()[:, 0], shared=True),
    ]
    axes = [len(f.axes) for f in figs]
    assert all(isinstance(f, Figure) for f in figs)
    assert axes[:4] == [3, 3 + 3, 12, 5]  # colour bars: overlay's, one per strip, before/after's pair and difference
    assert axes[5:] == [3 + 1, 12 + 1]  # shared scale: one colour bar
    strip = figs[5].axes[0].images[1]
    assert strip.get_clim() == (0.0, float(att.cls_grids()[:, 0].mean(1).max()))
    default = vn.layer_strip(image, att.cls_grids()[:, 0].mean(1))
    assert len(default.axes) == 3 + 1 and default.axes[0].images[1].get_clim() == strip.get_clim()
    p = att.cls_grids()[0, 0].mean(0).flatten().double()  # layer 0, image 0, mean over heads
    p = p / p.sum()
    hand = float(-(p * p.log()).sum() / np.log(p.numel()))
    assert default.axes[0].get_title() == f"layer 0\nH/logN {hand:.2f}"
    signed = vn.layer_strip(image, att.cls_grids()[:, 0].mean(1) - 0.5)
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
    fig = vn.before_after(image, b, a, grey=True, outline=mask, cmap="viridis")
    left, right = fig.axes[0].images, fig.axes[1].images
    top = float(max(b.max(), a.max()))
    assert left[1].get_clim() == right[1].get_clim() == (0.0, top)  # one scale for before and after
    grey = image.astype(np.float64) / 255 @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(left[0].get_array(), grey, atol=1e-6)  # the image in grey, under the map
    p = b.flatten().double() / b.sum()
    assert fig.axes[0].get_title() == f"before\nH/logN {float(-(p * p.log()).sum() / np.log(16)):.2f}"
    assert all(len(ax.collections) == 1 for ax in fig.axes[:3])  # the outline's contour on each panel
    with pytest.raises(ValueError, match="outline must be a mask"):
        vn.before_after(image, b, a, outline=np.zeros((4, 4), bool))


def test_figure_errors():
    with pytest.raises(ValueError, match="2-D"):
        vn.overlay(np.zeros((8, 8)), torch.rand(2, 2, 2))
    with pytest.raises(ValueError, match="differ in shape"):
        vn.before_after(np.zeros((8, 8)), torch.rand(2, 2), torch.rand(4, 4))
    with pytest.raises(ValueError, match="column 'nope'"):
        import pandas as pd

        vn.metric_by_layer(pd.DataFrame({"layer": [0]}), "nope")
