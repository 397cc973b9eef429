"""Error diagnosis (vitnotes.evaluate.diagnosis): one-pass predictions with attention, confusion tables,
group comparisons, garment mass; each checked against an independent computation."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import mannwhitneyu

import vitnotes as vn


def test_predict_with_attention_equals_capture_and_forward(vit, pixels):
    for layer in (-1, 1):
        logits, cls = vn.predict_with_attention(vit, pixels, layer=layer, batch_size=2)
        assert torch.allclose(logits, vit(pixels).logits, atol=1e-5)
        expected = vn.capture(vit, pixels, layers=[layer]).cls_grid(layer)  # full matrices, CLS row
        assert cls.shape == expected.shape == (3, 4, 4, 4)
        assert torch.allclose(cls, expected, atol=1e-6)
    with pytest.raises(ValueError, match="batch_size"):
        vn.predict_with_attention(vit, pixels, batch_size=0)


def test_predict_with_attention_needs_a_vit(resnet):
    with pytest.raises(TypeError, match="ViT-family"):
        vn.predict_with_attention(resnet, torch.randn(1, 3, 32, 32))


def test_confusion_matrix_and_pairs():
    true = [0, 0, 1, 1, 1, 2, 2, 2, 2]
    pred = [0, 1, 1, 0, 0, 2, 1, 1, 1]
    cm = vn.evaluate.confusion_matrix(true, pred, ["a", "b", "c"])
    expected = np.zeros((3, 3), int)
    for t, p in zip(true, pred):
        expected[t, p] += 1
    assert np.array_equal(cm.to_numpy(), expected)
    assert cm.index.name == "true" and cm.columns.name == "predicted"
    pairs = vn.evaluate.confusion_pairs(cm, top=2)
    assert pairs[["true", "predicted", "count"]].values.tolist() == [["c", "b", 3], ["b", "a", 2]]
    assert pairs["of_true"].tolist() == pytest.approx([3 / 4, 2 / 3])
    assert pairs["of_errors"].tolist() == pytest.approx([3 / 6, 2 / 6])
    assert len(vn.evaluate.confusion_pairs(cm, top=10)) == 3  # only the non-zero off-diagonal cells
    with pytest.raises(ValueError, match="0..2"):
        vn.evaluate.confusion_matrix([0, 3], [0, 1], ["a", "b", "c"])
    with pytest.raises(ValueError, match="integer"):
        vn.evaluate.confusion_matrix([0.5], [0], ["a"])


def test_attention_stats_by_hand():
    torch.manual_seed(0)
    grid = torch.rand(2, 3, 4, 4)
    grid = grid / grid.sum((-2, -1), keepdim=True)
    logits = torch.tensor([[2.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    df = vn.evaluate.attention_stats(grid, logits, k=3)
    for i in range(2):
        ents, tops = [], []
        for h in range(3):
            p = grid[i, h].flatten().double().numpy()
            ents.append(-(p * np.log(p)).sum())
            tops.append(np.sort(p)[::-1][:3].sum())
        assert df.loc[i, "cls_entropy"] == pytest.approx(np.mean(ents), abs=1e-5)
        assert df.loc[i, "cls_top3"] == pytest.approx(np.mean(tops), abs=1e-5)
    e = np.exp([2.0, 0.0, 1.0]) / np.exp([2.0, 0.0, 1.0]).sum()
    assert df.loc[0, "confidence"] == pytest.approx(e[0]) and df.loc[0, "margin"] == pytest.approx(e[0] - e[2])
    assert df.loc[1, "margin"] == pytest.approx(0.0)
    with pytest.raises(ValueError):
        vn.evaluate.attention_stats(grid[0], logits)


def test_compare_groups_rank_biserial_brute_force():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.normal(size=30).round(1), "ok": rng.random(30) < 0.6})
    df.loc[3, "x"] = np.nan
    out = vn.compare_groups(df, "ok")
    a = df.loc[df.ok, "x"].dropna().to_numpy()
    b = df.loc[~df.ok, "x"].dropna().to_numpy()
    u = sum(1.0 if ai > bi else 0.5 if ai == bi else 0.0 for ai in a for bi in b)  # pairs, ties half
    row = out.loc["x"]
    assert row["rank_biserial"] == pytest.approx(2 * u / (len(a) * len(b)) - 1)
    assert row["p_mannwhitney"] == pytest.approx(mannwhitneyu(a, b).pvalue)
    assert row["mean (ok)"] == pytest.approx(a.mean()) and row["n (not ok)"] == len(b)
    separated = pd.DataFrame({"x": [5.0, 6.0, 1.0, 2.0], "ok": [True, True, False, False]})
    assert vn.compare_groups(separated, "ok").loc["x", "rank_biserial"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="boolean"):
        vn.compare_groups(df.assign(ok=df.ok.astype(int)), "ok")


def test_garment_mass_by_hand():
    img = np.zeros((1, 4, 4), np.uint8)
    img[0, :2, :2] = 200  # the top-left patch of a 2x2 grid is all garment
    img[0, 2, 2] = 9  # a quarter of the bottom-right patch
    m = torch.tensor([[[0.5, 0.25], [0.0, 0.25]]])
    assert vn.evaluate.garment_mass(m, img).item() == pytest.approx(0.5 + 0.25 / 4)
    assert vn.evaluate.garment_mass(m * 8, img).item() == pytest.approx(0.5 + 0.25 / 4)  # scale-free
    assert vn.evaluate.garment_mass(m, img, threshold=10).item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="non-negative"):
        vn.evaluate.garment_mass(-m, img)


def test_describe_error_uses_the_numbers():
    names = ["a", "b", "c"]
    text = vn.evaluate.describe_error(
        names,
        0,
        2,
        torch.tensor([0.3, 0.1, 0.6]),
        cls_garment=0.2,
        rollout_garment=0.55,
        garment_area=0.4,
        class_overlap=0.6,
        cls_entropy=2.5,
        typical_entropy=3.0,
    )
    for piece in (
        "True **a**",
        "predicted **c**",
        "p = 0.60",
        "second with p = 0.30",
        "20%",
        "40%",
        "less",
        "55%",
        "2.50",
        "3.00",
        "60%",
        "mostly the same",
    ):
        assert piece in text, piece
    sure = vn.evaluate.describe_error(
        names,
        1,
        0,
        torch.tensor([0.9, 0.05, 0.05]),
        cls_garment=0.5,
        rollout_garment=0.5,
        garment_area=0.4,
        class_overlap=0.1,
        cls_entropy=1.0,
        typical_entropy=1.0,
    )
    assert "confidently" in sure and "different pixels" in sure and "more than its area" in sure
    assert not math.isnan(len(sure))


def test_pick_errors_most_and_least_confident():
    true = np.array([0, 0, 0, 0, 1, 1, 2])
    pred = np.array([1, 1, 1, 0, 0, 0, 2])
    conf = np.array([0.5, 0.9, 0.3, 0.99, 0.6, 0.7, 0.8])
    pairs = vn.evaluate.confusion_pairs(vn.evaluate.confusion_matrix(true, pred, ["a", "b", "c"]))
    got = vn.pick_errors(true, pred, conf, pairs, ["a", "b", "c"], per_pair=2)
    assert got.tolist() == [1, 2, 5, 4]  # pair a->b: 0.9 then 0.3; pair b->a: 0.7 then 0.6
    assert vn.pick_errors(true, pred, conf, pairs, ["a", "b", "c"], per_pair=3).tolist() == [1, 2, 0, 5, 4]
    assert all(true[i] != pred[i] for i in got)


def test_group_distributions_figure():
    from matplotlib.figure import Figure

    df = pd.DataFrame({"x": np.arange(6.0), "y": np.ones(6), "ok": [True, False] * 3})
    assert isinstance(vn.show.group_distributions(df, "ok", ["x", "y"]), Figure)
    with pytest.raises(ValueError, match="column"):
        vn.show.group_distributions(df, "ok", ["z"])
