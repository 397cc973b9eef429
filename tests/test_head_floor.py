"""Chapter 08's reading of a sweep against its noise floor, each against an independent computation
on tiny random ViTs: per-image attribution patching against one call per image, its sweep-shaped
table against a hand-made one, the agreement intervals against a naive resampling loop with
scipy's Spearman, and the heatmap's greyed cells against the intervals that contain 0."""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_vit
from matplotlib.patches import Rectangle
from scipy.stats import spearmanr

import vitnotes as vn


@pytest.fixture
def data():
    torch.manual_seed(3)
    return torch.randn(7, 3, 16, 16), torch.randint(0, 5, (7,))


def test_per_image_attribution_patching_equals_one_call_per_image(data):
    x, y = data
    net = make_vit(seed=4, initializer_range=0.1)
    each = vn.interventions.attribution_patching(net, x, y, batch_size=3, per_image=True)
    assert each.shape == (7, 3, 4) and each.dtype == torch.float64
    for i in range(7):  # naive: one image at a time (float32 forwards: the batch size moves the last digits)
        alone = vn.interventions.attribution_patching(net, x[i : i + 1], y[i : i + 1])
        torch.testing.assert_close(each[i], alone, rtol=1e-4, atol=1e-8)
    torch.testing.assert_close(
        each.mean(0), vn.interventions.attribution_patching(net, x, y, batch_size=3), rtol=1e-9, atol=1e-12
    )
    score = vn.interventions.attribution_patching(net, x, 2, metric="score", per_image=True)
    torch.testing.assert_close(
        score.mean(0), vn.interventions.attribution_patching(net, x, 2, metric="score"), rtol=1e-9, atol=1e-12
    )


def test_attribution_sweep_is_a_sweep_of_the_estimates(data):
    x, y = data
    net = make_vit(seed=4, initializer_range=0.1)
    table = vn.attribution_sweep(net, x, y, batch_size=3)
    each = vn.interventions.attribution_patching(net, x, y, per_image=True).reshape(7, 12).T.numpy()  # [heads, image]
    with torch.no_grad():  # intact per-image cross-entropy, by hand
        base = torch.nn.functional.cross_entropy(net(x).logits.double(), y, reduction="none").numpy()
    assert list(zip(table["layer"], table["head"])) == [(la, h) for la in range(3) for h in range(4)]
    assert table.attrs["baseline"] == pytest.approx(base.mean()) and table.attrs["n"] == 7
    assert table.attrs["method"] == "attribution patching" and table.attrs["loss"] == "ce"
    np.testing.assert_allclose(table["loss"], base.mean() + each.mean(1), rtol=1e-6)
    np.testing.assert_allclose(table["rel_increase"], each.mean(1) / base.mean(), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(table.attrs["per_image"].losses, base[None] + each, rtol=1e-6)
    # the sweep tools read it as a sweep: a subset equals the estimate on those images alone
    part = vn.evaluate.sweep_subset(table, [0, 2, 5])
    alone = vn.attribution_sweep(net, x[[0, 2, 5]], y[[0, 2, 5]])
    np.testing.assert_allclose(part["rel_increase"], alone["rel_increase"], rtol=1e-5, atol=1e-9)
    # and it estimates the exact sweep: on this mild model it ranks the heads alike
    exact = vn.sweep(net, x, y)
    assert spearmanr(exact["rel_increase"], table["rel_increase"])[0] > 0.8


def _naive(pairs, *, same, n_boot, seed, layers=None, by="head", scale=100.0):
    """Per resample: draw the images as documented, recompute every head's ratio head by head, average
    layers by hand, scipy's Spearman and numpy's median of |difference|."""
    rng = np.random.default_rng(seed)
    first = next(iter(pairs.values()))
    n_a, n_b = first[0].attrs["per_image"].baseline.size, first[1].attrs["per_image"].baseline.size
    first_a = [rng.integers(0, n_a, size=n_a) for _ in range(n_boot)]  # every resample's a images first,
    draws = [(ia, ia if same else rng.integers(0, n_b, size=n_b)) for ia in first_a]  # then b's (disjoint sets)

    def items(df, idx):
        per = df.attrs["per_image"]
        keys = list(zip(df["layer"], df["head"]))
        out = {}
        for r, k in enumerate(keys):
            if layers is None or k[0] in layers:
                out[k] = scale * (per.losses[r, idx].mean() / per.baseline[idx].mean() - 1)
        if by == "layer":
            ls = sorted({k[0] for k in out})
            return np.array([np.mean([v for k, v in out.items() if k[0] == la]) for la in ls])
        return np.array([out[k] for k in sorted(out)])

    got = {}
    for name, (a, b) in pairs.items():
        rho, mad = [], []
        for ia, ib in draws:
            va, vb = items(a, ia), items(b, ib)
            rho.append(spearmanr(va, vb)[0])
            mad.append(np.median(np.abs(va - vb)))
        va, vb = items(a, np.arange(n_a)), items(b, np.arange(n_b))
        got[name] = (spearmanr(va, vb)[0], np.percentile(rho, [2.5, 97.5]), np.median(np.abs(va - vb)),
                     np.percentile(mad, [2.5, 97.5]), np.array(rho))  # fmt: skip
    return got


@pytest.fixture
def sweeps():
    torch.manual_seed(5)
    x, y = torch.randn(12, 3, 16, 16), torch.randint(0, 5, (12,))
    zero = vn.sweep(make_vit(seed=4, initializer_range=0.1), x, y, per_image=True)
    other = vn.sweep(make_vit(seed=6, initializer_range=0.1), x, y, per_image=True)
    return zero, other


@pytest.mark.parametrize("same", [False, True])
@pytest.mark.parametrize("by, layers", [("head", None), ("layer", None), ("head", [1, 2])])
def test_agreement_intervals_equal_a_naive_resampling_loop(sweeps, same, by, layers):
    zero, other = sweeps
    a, b = vn.evaluate.sweep_subset(zero, range(6)), vn.evaluate.sweep_subset(zero, range(6, 12))
    c = vn.evaluate.sweep_subset(other, range(6, 12)) if not same else vn.evaluate.sweep_subset(other, range(6))
    pairs = {"floor": (a, b), "other": (a, c)} if not same else {"floor": (a, a), "other": (a, c)}
    got = vn.evaluate.sweep_agreement_intervals(pairs, same_images=same, reference="floor", layers=layers, by=by,
                                       n_boot=150, seed=7)  # fmt: skip
    want = _naive(pairs, same=same, n_boot=150, seed=7, layers=layers, by=by)
    items = (3 if layers is None else 2) if by == "layer" else (12 if layers is None else 8)
    for name, (rho, rho_iv, mad, mad_iv, _) in want.items():
        row = got.loc[(name, "spearman")]
        assert row["value"] == pytest.approx(rho, abs=1e-12) or (np.isnan(rho) and np.isnan(row["value"]))
        np.testing.assert_allclose([row["low"], row["high"]], rho_iv, atol=1e-9)
        row = got.loc[(name, "median |difference|")]
        assert row["value"] == pytest.approx(mad, abs=1e-9)
        np.testing.assert_allclose([row["low"], row["high"]], mad_iv, atol=1e-9)
    diff = np.percentile(want["other"][4] - want["floor"][4], [2.5, 97.5])
    row = got.loc[("other minus floor", "spearman")]
    assert row["value"] == pytest.approx(want["other"][0] - want["floor"][0], abs=1e-12)
    np.testing.assert_allclose([row["low"], row["high"]], diff, atol=1e-9)
    assert (got["items"] == items).all() and (got["n_a"] == 6).all() and (got["n_b"] == 6).all()


def test_agreement_interval_values_are_sweep_agreements(sweeps):
    zero, other = sweeps
    a, b = vn.evaluate.sweep_subset(zero, range(5)), vn.evaluate.sweep_subset(other, range(5, 12))
    got = vn.evaluate.sweep_agreement_intervals({"ab": (a, b)}, n_boot=50)
    plain = vn.evaluate.sweep_agreement(a.assign(p=100 * a.rel_increase), b.assign(p=100 * b.rel_increase), column="p")
    assert got.loc[("ab", "spearman"), "value"] == pytest.approx(plain["spearman"])
    assert got.loc[("ab", "median |difference|"), "value"] == pytest.approx(plain["median_abs_diff"])
    assert got["n_a"].iloc[0] == 5 and got["n_b"].iloc[0] == 7
    with pytest.raises(ValueError, match="same images"):
        vn.evaluate.sweep_agreement_intervals({"ab": (a, b)}, same_images=True)
    with pytest.raises(ValueError, match="reference"):
        vn.evaluate.sweep_agreement_intervals({"ab": (a, b)}, reference="nope")
    with pytest.raises(ValueError, match="share resamples"):
        vn.evaluate.sweep_agreement_intervals({"ab": (a, b), "aa": (a, a)})
    with pytest.raises(ValueError, match="per_image=True"):
        vn.evaluate.sweep_agreement_intervals(
            {"ab": (vn.sweep(make_vit(seed=4), torch.randn(2, 3, 16, 16), [0, 1]), b)}
        )


def test_heatmap_greys_the_cells_whose_interval_contains_zero():
    rng = np.random.default_rng(0)
    df = pd.DataFrame([{"layer": la, "head": h} for la in range(3) for h in range(4)])
    df["v"] = rng.normal(0, 3, len(df))
    df.loc[0, "v"] = 400.0
    df["low"], df["high"] = df["v"] - 2.0, df["v"] + 2.0
    fig = vn.show.head_heatmap(df, "v", low="low", high="high", symlog=2.0, limit=500.0, fmt=".1f", size=(5, 3))
    ax = fig.axes[0]
    by_hand = {(la, h) for la, h, lo, hi in zip(df["layer"], df["head"], df["low"], df["high"]) if lo <= 0 <= hi}
    boxes = {(int(p.get_y()), int(p.get_x())) for p in ax.patches if isinstance(p, Rectangle) and p.get_hatch()}
    assert boxes == by_hand and 0 < len(by_hand) < 12
    grey = [t.get_text() for t in ax.texts if t.get_color() == "0.4"]
    assert sorted(grey) == sorted(format(df.set_index(["layer", "head"]).at[k, "v"], ".1f") for k in by_hand)
    assert len(ax.texts) == 12  # every cell keeps its number
    mesh = ax.collections[0]
    assert np.ma.getmaskarray(mesh.get_array()).sum() == len(by_hand)
    norm = mesh.norm
    assert type(norm).__name__ == "SymLogNorm" and norm.linthresh == 2.0 and (norm.vmin, norm.vmax) == (-500, 500)
    bar = mesh.colorbar  # plain ticks: 0, the linear range's ends, the powers of ten up to the limit
    assert bar.get_ticks().tolist() == [-100, -10, -2, 0, 2, 10, 100]
    assert [t.get_text() for t in bar.ax.get_yticklabels()] == ["-100", "-10", "-2", "0", "2", "10", "100"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["its interval contains 0 (number in grey)"]
    assert fig.get_size_inches().tolist() == [5, 3]
    big = vn.show.head_heatmap(df, "v", symlog=2.0, limit=5000.0).axes[0].collections[0].colorbar
    assert [t.get_text() for t in big.ax.get_yticklabels()][-1] == "1000"  # not 1e+03
    with pytest.raises(ValueError, match="both low and high"):
        vn.show.head_heatmap(df, "v", low="low")
    with pytest.raises(ValueError, match="limit"):
        vn.show.head_heatmap(df, "v", symlog=1.0, limit=0)
