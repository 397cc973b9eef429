"""vn.shared_maps(together=...) (notebook 04): rows named together share one colour scale."""

import numpy as np
import pytest
import torch

import vitnotes as vn


def test_rows_together_share_one_scale_others_keep_their_own():
    imgs = np.random.default_rng(0).integers(0, 256, (2, 8, 8), dtype=np.uint8)
    a, b, c = torch.rand(2, 4, 4), 3 * torch.rand(2, 4, 4), 7 * torch.rand(2, 4, 4)
    fig = vn.shared_maps(imgs, {"a": a, "b": b, "c": c}, together=[("a", "b")])
    panels = fig.axes[: 4 * 2]  # the image row, then rows a, b, c of 2 panels each; then 3 colour bars
    assert len(fig.axes) == 4 * 2 + 3
    lims = [{ax.images[0].get_clim() for ax in panels[2 * r : 2 * r + 2]} for r in (1, 2, 3)]
    top = float(max(a.max(), b.max()))
    assert lims[0] == lims[1] == {(0.0, top)}  # a and b: one scale, their joint maximum
    assert lims[2] == {(0.0, float(c.max()))}  # c: its own
    with pytest.raises(ValueError, match="not among the maps"):
        vn.shared_maps(imgs, {"a": a}, together=[("a", "x")])
