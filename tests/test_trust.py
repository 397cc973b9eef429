"""vitnotes.evaluate.trust (chapter 09) against independent computations: each method called on its
own, scipy's Spearman image by image on a hand-randomised copy, and hand-made interval tables whose
verdicts and contradictions are known."""

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity

import vitnotes as vn
from vitnotes.evaluate.summary import COLUMNS
from vitnotes.evaluate.trust import (
    BETTER,
    every_map,
    interval_table,
    leaders,
    method_table,
    metric_disagreements,
    randomisation_check,
    scorecard,
    verdicts,
)


@pytest.fixture
def tiny(vit_folder):
    return vn.load(vit_folder)


@pytest.fixture
def x4():
    torch.manual_seed(7)
    return torch.randn(4, 3, 16, 16)


def test_every_map_equals_each_method_called_alone(tiny, x4):
    options = {"integrated gradients": {"n_steps": 8}, "random": {"seed": 3}}
    maps, cost = every_map(tiny, x4, options=options)
    assert list(maps) == vn.methods("vit")  # 17 tokens: attention flow included
    for name, m in maps.items():
        if name == "attention flow":
            ref = vn.explain(vn.capture(tiny, x4), None, name)
        else:
            ref = vn.explain(tiny, x4, name, **options.get(name, {}))
        torch.testing.assert_close(m, ref, rtol=1e-5, atol=1e-7, msg=name)
    assert list(cost["method"]) == list(maps) and (cost["images_per_s"] > 0).all()
    np.testing.assert_allclose(cost["images_per_s"], 4 / cost["seconds"].clip(lower=1e-9))
    # forwards per image, counted at the embeddings: by hand from what each method runs
    forwards = cost.set_index("method")["forwards"]
    assert forwards["random"] == 0 and forwards["last layer"] == 1 and forwards["rollout"] == 1
    assert forwards["occlusion"] == 4 * 4 + 1  # one per patch of the 4x4 grid, plus the intact image
    assert forwards["integrated gradients"] == 8 + 1  # n_steps interpolated images, plus the prediction


def test_every_map_counts_a_cnns_forwards(resnet, x4):
    opts = {
        "occlusion": {"patch": 8},
        "random": {"patch": 8},
        "integrated gradients": {"baseline": "zero", "n_steps": 4},
    }
    maps, cost = every_map(resnet, x4, options=opts)
    assert list(maps) == vn.methods("cnn")
    assert cost.set_index("method").loc["occlusion", "forwards"] == 2 * 2 + 1


def test_every_map_leaves_flow_out_of_large_models_and_refuses_bad_options(tiny, x4):
    maps, cost = every_map(tiny, x4[:2], flow_tokens=16)  # 17 tokens > 16
    assert "attention flow" not in maps and cost.attrs["skipped"] == ["attention flow"]
    maps, _ = every_map(tiny, x4[:2], names=["random", "attention flow"], flow_tokens=16)  # asked by name: kept
    assert list(maps) == ["random", "attention flow"]
    with pytest.raises(ValueError, match="unknown methods"):
        every_map(tiny, x4, options={"saliency": {}})


def test_randomisation_check_matches_scipy_on_a_hand_randomised_copy(tiny, x4):
    maps, _ = every_map(tiny, x4, names=["last layer", "legrad", "random"])
    bright = x4.mean(1)  # a model-independent "map" on the pixel grid
    table, rmaps = randomisation_check(tiny, x4, {**maps, "brightness": bright}, seed=1, n_boot=200)
    rand = vn.interventions.randomized(tiny, 0, 1, embeddings=True)
    pred = tiny.predict(x4).argmax(-1).tolist()
    t = table.set_index(["method", "metric"])
    for name in ("last layer", "legrad"):
        again = vn.explain(rand, x4, name, pred)
        torch.testing.assert_close(rmaps[name], again)
        by_hand = [spearmanr(a.ravel(), b.ravel())[0] for a, b in zip(maps[name].numpy(), again.numpy())]
        assert t.loc[(name, "randomisation_spearman"), "value"] == pytest.approx(np.mean(by_hand), abs=1e-6)
        assert t.loc[(name, "randomisation_abs_spearman"), "value"] == pytest.approx(np.mean(np.abs(by_hand)), abs=1e-6)
        assert t.loc[(name, "randomisation_abs_spearman"), "values"] == pytest.approx(np.abs(by_hand), abs=1e-6)
        unit = lambda m: (m - m.min()) / (m.max() - m.min())  # noqa: E731
        ssim = [
            structural_similarity(unit(a), unit(b), data_range=1.0, win_size=3)  # a 4x4 grid: 3x3 windows
            for a, b in zip(maps[name].double().numpy(), again.double().numpy())
        ]
        assert t.loc[(name, "randomisation_ssim"), "value"] == pytest.approx(np.mean(ssim), abs=1e-6)
    # the random map and the brightness control ignore the model: unchanged by randomisation, and fail
    for control in ("random", "brightness"):
        assert t.loc[(control, "randomisation_abs_spearman"), "value"] == pytest.approx(1.0)
        assert t.loc[(control, "randomisation_ssim"), "value"] == pytest.approx(1.0)
    assert scorecard(table).loc["random", "sanity"] == "fails"
    assert list(table.columns) == [*COLUMNS, "values"] and set(table["family"]) == {"sanity"}
    assert ((table["low"] <= table["value"] + 1e-12) & (table["value"] <= table["high"] + 1e-12)).all()


def test_randomisation_check_needs_two_images_and_a_vit(tiny, x4, resnet):
    with pytest.raises(ValueError, match="at least 2 images"):
        randomisation_check(tiny, x4[:1], {"random": torch.rand(1, 4, 4)})
    with pytest.raises(TypeError, match="ViT"):
        randomisation_check(resnet, x4, {"random": torch.rand(4, 4, 4)})


def hand_table(rows):
    """rows: (method, family, metric, baseline, value, low, high)."""
    return pd.DataFrame([(*r, 10) for r in rows], columns=COLUMNS)


def test_verdicts_compare_intervals_in_each_metrics_direction():
    t = hand_table(
        [
            ("a", "faithfulness", "deletion_auc", "black", 0.2, 0.1, 0.3),  # below random: better (lower is better)
            ("b", "faithfulness", "deletion_auc", "black", 0.5, 0.35, 0.6),  # overlaps random: tied
            ("c", "faithfulness", "deletion_auc", "black", 0.8, 0.71, 0.9),  # above: worse
            ("random", "faithfulness", "deletion_auc", "black", 0.5, 0.4, 0.7),
            ("a", "faithfulness", "srg", "black", 0.3, 0.2, 0.4),  # above random: better (higher is better)
            ("random", "faithfulness", "srg", "black", 0.0, -0.1, 0.1),
            ("a", "faithfulness", "deletion_auc", "mean", 0.2, 0.1, 0.3),  # no random row for this baseline
            ("a", "ground truth", "area_chirp", "", 0.1, 0.1, 0.1),  # no direction: left out
        ]
    )
    v = verdicts(t, against=("random", "brightness"))
    assert "vs brightness" not in v and "area_chirp" not in set(v["metric"])
    got = dict(zip(zip(v["method"], v["metric"], v["baseline"]), v["vs random"]))
    assert got == {
        ("a", "deletion_auc", "black"): "better",
        ("b", "deletion_auc", "black"): "tied",
        ("c", "deletion_auc", "black"): "worse",
        ("random", "deletion_auc", "black"): "",
        ("a", "srg", "black"): "better",
        ("random", "srg", "black"): "",
        ("a", "deletion_auc", "mean"): "",
    }
    assert BETTER["deletion_auc"] == -1 and BETTER["insertion_auc"] == 1


def test_scorecard_counts_and_sanity_words():
    t = hand_table(
        [
            ("a", "faithfulness", "deletion_auc", "black", 0.2, 0.1, 0.3),
            ("a", "faithfulness", "insertion_auc", "black", 0.2, 0.1, 0.3),
            ("random", "faithfulness", "deletion_auc", "black", 0.5, 0.4, 0.7),
            ("random", "faithfulness", "insertion_auc", "black", 0.5, 0.4, 0.7),
            # the sanity rule (vn.sanity_verdict): both intervals below 0.2 pass, either above 0.2 fails
            ("a", "sanity", "randomisation_abs_spearman", "", 0.1, 0.05, 0.15),
            ("a", "sanity", "randomisation_ssim", "", 0.0, -0.1, 0.1),
            ("random", "sanity", "randomisation_abs_spearman", "", 1.0, 1.0, 1.0),
            ("random", "sanity", "randomisation_ssim", "", 1.0, 1.0, 1.0),
            ("b", "sanity", "randomisation_abs_spearman", "", 0.2, 0.1, 0.3),  # straddles 0.2
            ("b", "sanity", "randomisation_ssim", "", 0.0, -0.1, 0.1),
            ("c", "sanity", "randomisation_abs_spearman", "", 0.3, 0.25, 0.35),  # e.g. an inverted ranking
            ("c", "sanity", "randomisation_ssim", "", -0.3, -0.4, -0.2),
            ("a", "ground truth", "mass_chirp", "", 0.5, 0.4, 0.6),
            ("uniform", "ground truth", "mass_chirp", "", 0.1, 0.1, 0.1),
        ]
    )
    cost = pd.DataFrame({"method": ["a", "random"], "seconds": [1.0, 0.1], "images_per_s": [10.0, 100.0]})
    s = scorecard(t, cost, against=("random",))
    assert s.loc["a", "better than random"] == 1 and s.loc["a", "worse than random"] == 1
    assert s.loc["a", "faithfulness columns"] == 2
    assert s.loc["a", "sanity"] == "passes" and s.loc["random", "sanity"] == "fails"
    assert s.loc["b", "sanity"] == "cannot tell" and s.loc["c", "sanity"] == "fails"
    assert s.loc["a", "mass_chirp vs uniform"] == "better" and s.loc["a", "images/s"] == 10.0


def test_metric_disagreements_find_the_opposite_orders():
    t = hand_table(
        [
            ("a", "faithfulness", "deletion_auc", "black", 0.1, 0.05, 0.15),  # a best by deletion
            ("b", "faithfulness", "deletion_auc", "black", 0.5, 0.45, 0.55),
            ("c", "faithfulness", "deletion_auc", "black", 0.3, 0.0, 0.6),
            ("a", "faithfulness", "insertion_auc", "blur", 0.1, 0.05, 0.15),  # ... but worst by insertion
            ("b", "faithfulness", "insertion_auc", "blur", 0.5, 0.45, 0.55),
            ("c", "faithfulness", "insertion_auc", "blur", 0.3, 0.0, 0.6),
            ("random", "faithfulness", "insertion_auc", "blur", 0.9, 0.8, 1.0),  # a control: left out
        ]
    )
    agree, pairs = metric_disagreements(t)
    assert list(agree.columns) == ["deletion_auc [black]", "insertion_auc [blur]"]
    assert agree.iloc[0, 1] == pytest.approx(-1.0)  # oriented: deletion's order is insertion's reversed
    assert pairs.to_dict("records") == [
        {
            "first": "deletion_auc [black]",
            "second": "insertion_auc [blur]",
            "better by first": "a",
            "better by second": "b",
        }
    ]


def test_interval_table_formats_value_and_interval():
    t = hand_table(
        [
            ("a", "faithfulness", "deletion_auc", "black", 0.12345, 0.1, 0.2),
            ("b", "faithfulness", "deletion_auc", "black", float("nan"), float("nan"), float("nan")),
            ("a", "sanity", "randomisation_spearman", "", -0.5, -0.61, -0.4),
        ]
    )
    out = interval_table(t)
    assert list(out.index) == ["a", "b"] and out.index.name == "method"
    assert list(out.columns) == ["deletion_auc [black]", "randomisation_spearman"]
    assert out.loc["a", "deletion_auc [black]"] == "0.123 [0.100, 0.200]"
    assert out.loc["a", "randomisation_spearman"] == "-0.500 [-0.610, -0.400]"
    assert out.loc["b", "deletion_auc [black]"] == "" and out.loc["b", "randomisation_spearman"] == ""
    two = interval_table(
        pd.concat([t.assign(model="m1"), t.assign(model="m2")]),
        index=("model", "method"),
        columns=[("randomisation_spearman", "")],
        digits=1,
    )
    assert two.loc[("m2", "a"), "randomisation_spearman"] == "-0.5 [-0.6, -0.4]"
    with pytest.raises(ValueError, match="not in the table"):
        interval_table(t, [("srg", "black")])
    zero = hand_table([("r", "faithfulness", "srg", "mean", -0.0004, -0.0731, 0.0004)])
    assert interval_table(zero).loc["r", "srg [mean]"] == "0.000 [-0.073, 0.000]"  # no "-0.000"


def test_method_table_lists_the_registry():
    t = method_table()
    assert list(t.index) == vn.methods()
    assert t.loc["occlusion", "models"] == "VIT/CNN/SWIN" and bool(t.loc["legrad", "class-specific"])
    assert not t.loc["rollout", "class-specific"] and t["what it computes"].str.len().gt(0).all()


def test_leaders_pick_the_best_side_and_say_if_it_is_clear():
    t = hand_table(
        [
            ("a", "faithfulness", "deletion_auc", "black", 0.1, 0.05, 0.15),
            ("b", "faithfulness", "deletion_auc", "black", 0.5, 0.45, 0.55),
            ("random", "faithfulness", "deletion_auc", "black", 0.05, 0.0, 0.5),
            ("a", "faithfulness", "srg", "black", 0.3, 0.1, 0.5),
            ("b", "faithfulness", "srg", "black", 0.4, 0.2, 0.6),
        ]
    )
    lead = leaders(t, exclude=("random",))
    assert lead.loc["deletion_auc [black]", "best"] == "a" and lead.loc["deletion_auc [black]", "clear"]
    assert lead.loc["srg [black]", "best"] == "b" and not lead.loc["srg [black]", "clear"]
    assert leaders(t).loc["deletion_auc [black]", "best"] == "random"


# ------------------------------------------------------------------ the chapter's figures
def test_shared_maps_one_scale_per_row_with_a_colour_bar():
    from matplotlib.figure import Figure

    imgs = np.random.default_rng(0).integers(0, 256, (3, 8, 8), dtype=np.uint8)
    pos = torch.rand(3, 4, 4) * torch.tensor([1.0, 5.0, 2.0])[:, None, None]  # images of different ranges
    signed = torch.randn(3, 4, 4)
    fig = vn.show.shared_maps(imgs, {"pos": pos, "signed": signed}, outline=imgs > 128, titles=["a", "b", "c"])
    assert isinstance(fig, Figure)
    grid = fig.axes[:12]  # 3 rows x 3 columns of panels... then the 2 colour bars
    assert len(fig.axes) == 3 * 3 + 2
    rows = [grid[3:6], grid[6:9]]
    lims = [{ax.images[0].get_clim() for ax in row} for row in rows]
    assert lims[0] == {(0.0, float(pos.max()))}  # one scale for the row: 0 .. the row's maximum
    top = float(signed.abs().max())
    assert lims[1] == {(-top, top)}  # signed: symmetric about 0
    with pytest.raises(ValueError, match="one map per image"):
        vn.show.shared_maps(imgs, {"pos": pos[:2]})


def test_interval_curve_and_scatter_figures_draw_every_method():
    t = hand_table(
        [
            ("a", "faithfulness", "deletion_auc", "black", 0.1, 0.05, 0.15),
            ("random", "faithfulness", "deletion_auc", "black", 0.5, 0.4, 0.6),
            ("a", "faithfulness", "srg", "black", 0.3, 0.2, 0.4),
            ("random", "faithfulness", "srg", "black", 0.0, -0.1, 0.1),
        ]
    )
    fig = vn.show.interval_plot(t, [("deletion_auc", "black"), ("srg", "black")])
    assert len(fig.axes) == 2 and [tl.get_text() for tl in fig.axes[0].get_yticklabels()] == ["a", "random"]
    assert "lower is better" in fig.axes[0].get_title() and "higher is better" in fig.axes[1].get_title()
    fig = vn.show.metric_scatter(t, ("deletion_auc", "black"), ("srg", "black"))
    assert fig.axes[0].xaxis_inverted() and not fig.axes[0].yaxis_inverted()  # both axes point to "better"
    curves = {("a", "black"): {"fractions": [0, 1], "deletion": [1, 0], "insertion": [0, 1]}}
    fig = vn.show.curve_plot(curves, "black")
    assert len(fig.axes[0].lines) == 1 and len(fig.axes[1].lines) == 1
    names = [f"m{i}" for i in range(11)] + ["random", "brightness"]  # as many maps as chapter 09 draws
    many = {(m, "black"): {"fractions": [0, 1], "deletion": [1, 0], "insertion": [0, 1]} for m in names}
    lines = vn.show.curve_plot(many, "black").axes[0].lines
    styles = {(str(ln.get_color()), str(ln.get_linestyle())) for ln in lines}
    assert len(styles) == len(names), "two lines share a colour and a dash"
    assert all(ln.get_color() != "C7" for ln in lines)  # grey is the controls' colour
    with pytest.raises(ValueError, match="no curves"):
        vn.show.curve_plot(curves, "mean")
    with pytest.raises(ValueError, match="no rows"):
        vn.show.interval_plot(t, [("insertion_auc", "black")])
