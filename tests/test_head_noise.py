"""Reading a sweep against its noise: subsets, agreement and intervals against direct computations."""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_vit

import vitnotes as vn


@pytest.fixture
def swept():
    net = make_vit(seed=4)
    torch.manual_seed(3)
    x, y = torch.randn(9, 3, 16, 16), torch.randint(0, 5, (9,))
    return net, x, y, vn.sweep(net, x, y, batch_size=4, per_image=True)


def test_subset_equals_a_sweep_of_those_images(swept):
    net, x, y, df = swept
    part = vn.evaluate.sweep_subset(df, [1, 4, 5, 8])
    direct = vn.sweep(net, x[[1, 4, 5, 8]], y[[1, 4, 5, 8]])
    assert np.allclose(part.loss, direct.loss, atol=1e-7) and np.allclose(part.rel_increase, direct.rel_increase)
    assert part.attrs["n"] == 4 and abs(part.attrs["baseline"] - direct.attrs["baseline"]) < 1e-7
    mask = np.zeros(9, bool)
    mask[[1, 4, 5, 8]] = True
    assert np.allclose(vn.evaluate.sweep_subset(df, mask).loss, part.loss)
    with pytest.raises(ValueError, match="per_image=True"):
        vn.evaluate.sweep_subset(direct, [0])


def test_agreement_by_hand():
    a = pd.DataFrame({"layer": [0, 0, 1], "head": [0, 1, 0], "rel_increase": [0.1, 0.3, 0.2]})
    b = pd.DataFrame({"layer": [1, 0, 0], "head": [0, 1, 0], "rel_increase": [0.25, 0.2, 0.0]})
    got = vn.evaluate.sweep_agreement(a, b)
    assert got["heads"] == 3 and got["spearman"] == pytest.approx(0.5)  # ranks (1,3,2) vs (1,2,3)
    assert got["median_abs_diff"] == pytest.approx(0.1) and got["mean_abs_diff"] == pytest.approx(0.25 / 3)
    assert got["max_abs_diff"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="columns layer, head"):
        vn.evaluate.sweep_agreement(a.drop(columns="head"), b)


def test_intervals_equal_a_naive_resampling_loop(swept):
    _, _, _, df = swept
    losses, base = df.attrs["per_image"].losses, df.attrs["per_image"].baseline
    contrasts = {
        "layer 1": {(1, h): 0.25 for h in range(4)},
        "head (0, 2) vs its layer": {(0, 2): 1.0, **{(0, h): -1 / 3 for h in (0, 1, 3)}},
    }
    got = vn.evaluate.head_intervals(df, contrasts, n_boot=200, seed=5)
    rel = df.rel_increase.to_numpy()
    assert got.loc["layer 1", "value"] == pytest.approx(100 * rel[4:8].mean())
    assert got.loc["head (0, 2) vs its layer", "value"] == pytest.approx(100 * (rel[2] - rel[[0, 1, 3]].mean()))
    rng = np.random.default_rng(5)
    boot = []
    for _ in range(200):  # naive: resample the images, recompute every head's ratio
        i = rng.integers(0, 9, size=9)
        r = losses[:, i].mean(1) / base[i].mean() - 1
        boot.append(100 * r[4:8].mean())
    low, high = np.percentile(boot, [2.5, 97.5])
    assert got.loc["layer 1", "low"] == pytest.approx(low) and got.loc["layer 1", "high"] == pytest.approx(high)
    assert (got["n"] == 9).all() and (got["low"] <= got["value"]).all() and (got["value"] <= got["high"]).all()
    with pytest.raises(ValueError, match="did not ablate"):
        vn.evaluate.head_intervals(df, {"x": {(5, 0): 1.0}})
