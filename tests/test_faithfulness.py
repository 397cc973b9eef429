"""Map agreement and deletion curves (vitnotes.evaluate: agreement, deletion), checked against brute-force loops."""

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import spearmanr

import vitnotes as vn


@pytest.fixture
def model(vit_folder):
    return vn.load(vit_folder)  # a tiny random ViT with its own preprocessing: 16 px RGB, 4x4 grid


@pytest.fixture
def raw_images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(3, 16, 16, 3), dtype=np.uint8)


# --------------------------------------------------------------------------- grids and agreement
def test_resize_maps_modes():
    m = torch.arange(2 * 3 * 3, dtype=torch.float32).reshape(2, 3, 3)
    assert torch.equal(vn.evaluate.resize_maps(m, 3), m)  # already on the grid
    near = vn.evaluate.resize_maps(m, 6, mode="nearest")
    assert torch.equal(near, m.repeat_interleave(2, 1).repeat_interleave(2, 2))
    const = vn.evaluate.resize_maps(torch.full((1, 7, 7), 2.5), (28, 28))
    assert const.shape == (1, 28, 28) and torch.allclose(const, torch.full_like(const, 2.5))
    assert vn.evaluate.resize_maps(m[0], 6).shape == (1, 6, 6)  # one map is batched
    with pytest.raises(ValueError, match="mode"):
        vn.evaluate.resize_maps(m, 6, mode="cubic")
    with pytest.raises(ValueError, match="batch, rows, cols"):
        vn.evaluate.resize_maps(torch.zeros(2, 2, 3, 3), 6)


def test_rank_correlation_matches_scipy_with_ties():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 4, size=(5, 6, 6)).astype(np.float32)  # many ties
    b = rng.normal(size=(5, 6, 6)).astype(np.float32)
    b[0] = a[0] * 2 + 1  # same ranking
    got = vn.stats.rank_correlation(a, b)
    expected = [spearmanr(a[i].ravel(), b[i].ravel()).statistic for i in range(5)]
    assert got.shape == (5,)
    assert np.allclose(got.numpy(), expected, atol=1e-6)
    assert got[0].item() == pytest.approx(1.0)
    assert torch.isnan(vn.stats.rank_correlation(np.ones((1, 6, 6)), b[:1])).all()  # a constant map has no ranking
    with pytest.raises(ValueError, match="resize_maps"):
        vn.stats.rank_correlation(a, b[:, :3])


def test_topk_overlap_brute_force():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(4, 10, 10)), rng.normal(size=(4, 10, 10))
    for frac in (0.05, 0.1, 0.5):
        k = max(1, round(frac * 100))
        expected = []
        for i in range(4):
            top_a = set(np.argsort(-a[i].ravel())[:k])
            top_b = set(np.argsort(-b[i].ravel())[:k])
            expected.append(len(top_a & top_b) / k)
        assert np.allclose(vn.stats.topk_overlap(a, b, frac).numpy(), expected)
    assert torch.equal(vn.stats.topk_overlap(a, a), torch.ones(4))
    assert torch.equal(vn.stats.topk_overlap(a, -a, 0.1), torch.zeros(4))
    with pytest.raises(ValueError, match="frac"):
        vn.stats.topk_overlap(a, b, 0.0)


def test_agreement_table():
    rng = np.random.default_rng(3)
    maps = {n: torch.as_tensor(rng.normal(size=(3, 5, 5))) for n in ("a", "b", "c")}
    rho = vn.agreement(maps)
    assert list(rho.index) == list(rho.columns) == ["a", "b", "c"]
    assert np.allclose(np.diag(rho), 1.0) and np.allclose(rho, rho.T)
    assert rho.loc["a", "c"] == pytest.approx(vn.stats.rank_correlation(maps["a"], maps["c"]).mean().item(), abs=1e-6)
    ov = vn.agreement(maps, "topk", frac=0.2)
    assert ov.loc["b", "c"] == pytest.approx(vn.stats.topk_overlap(maps["b"], maps["c"], 0.2).mean().item(), abs=1e-6)
    assert ov.attrs == {"images": 3, "metric": "topk", "frac": 0.2}
    with pytest.raises(ValueError, match="one grid"):
        vn.agreement({"a": maps["a"], "b": torch.zeros(3, 4, 4)})
    with pytest.raises(ValueError, match="metric"):
        vn.agreement(maps, "pearson")


# --------------------------------------------------------------------------- deletion
def test_deletion_order_sorted_and_ties_random():
    m = torch.tensor([[[0.0, 3.0], [1.0, 0.0]]])
    order = vn.evaluate.deletion_order(m)
    assert order[0, :2].tolist() == [1, 2]  # 3.0 then 1.0
    assert sorted(order[0].tolist()) == [0, 1, 2, 3]
    flat = torch.zeros(50, 4, 4)  # all tied: the order is a permutation that depends on the seed
    orders = vn.evaluate.deletion_order(flat, seed=1)
    assert torch.equal(orders, vn.evaluate.deletion_order(flat, seed=1))
    assert not torch.equal(orders, vn.evaluate.deletion_order(flat, seed=2))
    assert orders[:, 0].unique().numel() > 5  # not always the top-left pixel
    vals = torch.rand(2, 6, 6)
    o = vn.evaluate.deletion_order(vals)
    assert (vals.flatten(1).gather(1, o).diff(dim=1) <= 0).all()


def test_delete_pixels_loop(raw_images):
    order = vn.evaluate.deletion_order(torch.rand(3, 16, 16), seed=0)
    out = vn.evaluate.delete_pixels(raw_images, order, 40, background=7)
    expected = raw_images.copy()
    for i in range(3):
        for p in order[i, :40].tolist():
            expected[i, p // 16, p % 16, :] = 7
    assert np.array_equal(out, expected) and out.dtype == raw_images.dtype
    assert np.array_equal(vn.evaluate.delete_pixels(raw_images, order, 0), raw_images)
    with pytest.raises(ValueError, match="order"):
        vn.evaluate.delete_pixels(raw_images, order[:, :10], 3)


def _brute_curve(model, images, maps, steps, seed=0):
    """Each fraction by hand: delete, preprocess, predict, read the intact prediction's probability."""
    full = vn.evaluate.resize_maps(maps, images.shape[1:3])
    order = vn.evaluate.deletion_order(full, seed)
    n = images.shape[1] * images.shape[2]
    target = None
    rows = []
    for f in np.linspace(0, 1, steps + 1):
        edited = images.copy().reshape(len(images), n, -1)
        for i in range(len(images)):
            edited[i, order[i, : int(round(f * n))].numpy()] = 0
        p = model.predict(model.preprocess(edited.reshape(images.shape))).softmax(-1)
        target = p.argmax(-1) if target is None else target
        rows.append(p[torch.arange(len(images)), target])
    return torch.stack(rows, 1)


def test_deletion_curve_matches_brute_force(model, raw_images):
    maps = torch.rand(3, 4, 4, generator=torch.Generator().manual_seed(0))  # on the patch grid: resized to 16 px
    curves, fr = vn.evaluate.deletion_curve(model, raw_images, maps, steps=4)
    assert curves.shape == (3, 5) and np.allclose(fr, [0, 0.25, 0.5, 0.75, 1])
    assert torch.allclose(curves, _brute_curve(model, raw_images, maps, 4), atol=1e-6)
    intact = model.predict(model.preprocess(raw_images)).softmax(-1)
    assert torch.allclose(curves[:, 0], intact.max(-1).values, atol=1e-6)
    fixed, _ = vn.evaluate.deletion_curve(model, raw_images, maps, steps=4, target=1)
    assert torch.allclose(fixed[:, 0], intact[:, 1], atol=1e-6)
    with pytest.raises(TypeError, match="vn.core.Model"):
        vn.evaluate.deletion_curve(model.net, raw_images, maps)
    with pytest.raises(ValueError, match="one map per image"):
        vn.evaluate.deletion_curve(model, raw_images, maps[:2])


def test_deletion_auc_trapezoid():
    c = torch.tensor([[1.0, 0.5, 0.0], [0.2, 0.2, 0.2]])
    assert torch.allclose(vn.evaluate.deletion_auc(c, [0, 0.5, 1]), torch.tensor([0.5, 0.2]))
    with pytest.raises(ValueError, match="fractions"):
        vn.evaluate.deletion_auc(c, [0, 1])


def test_deletion_study_and_summary(model, raw_images):
    maps = {
        "a": torch.rand(3, 4, 4, generator=torch.Generator().manual_seed(1)),
        "random": vn.evaluate.random_maps(3, 16, seed=0),
    }
    models = {"m": model}
    curves, aucs = vn.evaluate.deletion_study(models, raw_images, maps, steps=3)
    assert len(curves) == 2 * 4 and len(aucs) == 2 * 3
    for kind, m in maps.items():
        ref, fr = vn.evaluate.deletion_curve(model, raw_images, m, steps=3)
        got = curves[curves["map"] == kind]
        assert np.allclose(got["prob"], ref.mean(0).numpy(), atol=1e-6)
        assert np.allclose(got["sem"], (ref.std(0) / np.sqrt(3)).numpy(), atol=1e-6)
        assert np.allclose(aucs[aucs["map"] == kind]["auc"], vn.evaluate.deletion_auc(ref, fr).numpy(), atol=1e-6)
    s = vn.evaluate.deletion_summary(aucs, control="random")
    a = aucs[aucs["map"] == "a"]["auc"].to_numpy()
    r = aucs[aucs["map"] == "random"]["auc"].to_numpy()
    assert s.loc[("m", "a"), "auc"] == pytest.approx(a.mean())
    assert s.loc[("m", "a"), "below_random"] == pytest.approx(np.mean(a < r))
    assert np.isnan(s.loc[("m", "random"), "below_random"])
    with pytest.raises(ValueError, match="control"):
        vn.evaluate.deletion_summary(aucs, control="brightness")


def test_random_maps_seeded():
    assert torch.equal(vn.evaluate.random_maps(2, 5, seed=3), vn.evaluate.random_maps(2, 5, seed=3))
    assert vn.evaluate.random_maps(2, (4, 6)).shape == (2, 4, 6)
    with pytest.raises(ValueError):
        vn.evaluate.random_maps(0)


def test_figures(raw_images):
    from matplotlib.figure import Figure

    maps = {"a": torch.rand(3, 4, 4), "b": torch.rand(3, 16, 16)}
    assert isinstance(vn.show.map_panel(raw_images, maps, titles=["x", "y", "z"]), Figure)
    with pytest.raises(ValueError, match="titles"):
        vn.show.map_panel(raw_images, maps, titles=["x"])
    t = vn.agreement({k: vn.evaluate.resize_maps(v, 16) for k, v in maps.items()})
    assert isinstance(vn.show.agreement_heatmap({"rho": t}), Figure)
    curves = pd.DataFrame(
        {
            "model": ["m"] * 4,
            "map": ["a", "a", "random", "random"],
            "fraction": [0, 1, 0, 1],
            "prob": [0.9, 0.1, 0.9, 0.2],
            "sem": [0.0, 0.1, 0.0, 0.1],
        }
    )
    assert isinstance(vn.show.deletion_plot(curves), Figure)


def test_resize_maps_places_a_centre_crop_model_on_its_centre():
    from types import SimpleNamespace

    from vitnotes.core import Preprocessing

    m = torch.rand(2, 7, 7)
    whole = SimpleNamespace(preprocessing=Preprocessing(size=16, mean=(0.5,), std=(0.5,), channels=1))
    assert torch.equal(vn.evaluate.resize_maps(m, 32, model=whole), vn.evaluate.resize_maps(m, 32))
    # short side to 256, centre 224: the model saw the centre 7/8 of each side (28 of 32 pixels)
    crop = SimpleNamespace(
        preprocessing=Preprocessing(size=224, mean=(0.5,), std=(0.5,), channels=1, resize=("short", 256))
    )
    out = vn.evaluate.resize_maps(m, 32, model=crop)
    assert out.shape == (2, 32, 32)
    assert torch.equal(out[:, 2:30, 2:30], vn.evaluate.resize_maps(m, 28))
    assert out[:, :2].abs().sum() == 0 and out[:, 30:].abs().sum() == 0 and out[:, :, :2].abs().sum() == 0
