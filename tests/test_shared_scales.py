"""vn.show.shared_maps(together=...) (notebook 04): rows named together share one colour scale."""

import numpy as np
import pytest
import torch

import vitnotes as vn


def test_rows_together_share_one_scale_others_keep_their_own():
    imgs = np.random.default_rng(0).integers(0, 256, (2, 8, 8), dtype=np.uint8)
    a, b, c = torch.rand(2, 4, 4), 3 * torch.rand(2, 4, 4), 7 * torch.rand(2, 4, 4)
    fig = vn.show.shared_maps(imgs, {"a": a, "b": b, "c": c}, together=[("a", "b")])
    panels = fig.axes[: 4 * 2]  # the image row, then rows a, b, c of 2 panels each; then 3 colour bars
    assert len(fig.axes) == 4 * 2 + 3
    lims = [{ax.images[0].get_clim() for ax in panels[2 * r : 2 * r + 2]} for r in (1, 2, 3)]
    top = float(max(a.max(), b.max()))
    assert lims[0] == lims[1] == {(0.0, top)}  # a and b: one scale, their joint maximum
    assert lims[2] == {(0.0, float(c.max()))}  # c: its own
    with pytest.raises(ValueError, match="not among the maps"):
        vn.show.shared_maps(imgs, {"a": a}, together=[("a", "x")])


def test_metric_by_layer_draws_the_reference_and_starts_at_zero():
    import pandas as pd

    df = pd.DataFrame({"layer": [0, 0, 1, 1], "head": [0, 1, 0, 1], "entropy": [2.0, 3.0, 2.5, 3.5]})
    fig = vn.show.metric_by_layer(df, "entropy", reference=4.0, zero=True)
    ax = fig.axes[0]
    assert ax.get_ylim()[0] == 0
    ref = [ln for ln in ax.get_lines() if ln.get_label() == "uniform map"]
    assert len(ref) == 1 and list(ref[0].get_ydata()) == [4.0, 4.0]
    assert ax.get_ylim()[1] >= 4.0


def test_group_distributions_from_zero_with_references():
    import pandas as pd

    df = pd.DataFrame({"ok": [True, False] * 5, "h": np.linspace(5.1, 5.2, 10), "d": np.linspace(-1, 1, 10)})
    fig = vn.show.group_distributions(df, "ok", ["h", "d"], zero=True, references={"h": 5.28})
    h, d = fig.axes[:2]
    assert h.get_ylim()[0] == 0 and d.get_ylim()[0] == -1.0  # negative values keep their range
    assert any(list(ln.get_ydata()) == [5.28, 5.28] for ln in h.get_lines())


@pytest.mark.parametrize("shared", [True, "row"])
def test_map_panel_shared_scales_and_colour_bars(shared):
    imgs = np.random.default_rng(1).integers(0, 256, (3, 8, 8), dtype=np.uint8)
    a, b = torch.rand(3, 4, 4), 5 * torch.rand(3, 2, 2)
    fig = vn.show.map_panel(imgs, {"a": a, "b": b}, shared=shared, label="x uniform")
    rows = [fig.axes[3 * r : 3 * r + 3] for r in (1, 2)]
    lims = [{ax.images[1].get_clim() for ax in row} for row in rows]  # [0]: the image, [1]: the map
    if shared is True:
        assert lims[0] == lims[1] == {(0.0, float(b.max()))} and len(fig.axes) == 9 + 1
    else:
        assert lims == [{(0.0, float(a.max()))}, {(0.0, float(b.max()))}] and len(fig.axes) == 9 + 2
    assert fig.axes[-1].get_ylabel() == "x uniform"
    with pytest.raises(ValueError, match="shared must be"):
        vn.show.map_panel(imgs, {"a": a}, shared="column")
