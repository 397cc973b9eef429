"""Notebook 07's transplant control: the transplanted, not-yet-fine-tuned model (train.starting_point),
vn.evaluate.layer_stats / vn.transplant_table (per layer, three states, two effects), vn.evaluate.linear_head (ridge on
frozen features) and vn.evaluate.head_r2, each against an independent computation on tiny random models."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import make_vit
from matplotlib.figure import Figure
from scipy.stats import t as student_t

import vitnotes as vn
from vitnotes import train
from vitnotes.core.model import geometry
from vitnotes.evaluate.finetune import LAYER_STATISTICS, TRANSPLANT_METRICS

CHIRP = vn.data.REGIONS.index("chirp")


@pytest.fixture
def base_folder(tmp_path):
    base = make_vit(seed=2, image_size=28, patch_size=4, num_channels=1)
    return vn.train.save(base, tmp_path / "base", vn.core.Preprocessing(28, (0.5,), (0.5,), 1)), base


@torch.no_grad()
def test_transplant_embeds_a_grey_image_as_the_original_with_interpolated_positions(base_folder):
    folder, base = base_folder
    start = train.starting_point(init=folder)
    torch.manual_seed(0)
    grey = torch.randn(2, 1, 56, 56)  # one channel; the transplant reads it as three equal channels
    got = start.net.vit.embeddings(grey.repeat(1, 3, 1, 1))  # [2, 1 + 196, D]
    # by hand: the original's 1-channel kernel on the same pixels, its 7x7 positions resized bicubically
    tokens = F.conv2d(grey, base.vit.embeddings.patch_embeddings.projection.weight, stride=4,
                      bias=base.vit.embeddings.patch_embeddings.projection.bias)  # fmt: skip
    tokens = tokens.flatten(2).transpose(1, 2)  # [2, 196, D]
    pos = base.vit.embeddings.position_embeddings  # [1, 1 + 49, D]
    grid = pos[:, 1:].reshape(1, 7, 7, -1).permute(0, 3, 1, 2)
    grid = (
        F.interpolate(grid, size=(14, 14), mode="bicubic", align_corners=False).permute(0, 2, 3, 1).reshape(1, 196, -1)
    )
    cls = base.vit.embeddings.cls_token + pos[:, :1]
    want = torch.cat([cls.expand(2, -1, -1), tokens + grid], 1)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_the_transplant_does_not_depend_on_the_head_seed(base_folder):
    folder, _ = base_folder
    a, b = train.starting_point(init=folder, seed=0), train.starting_point(init=folder, seed=1)
    sa, sb = a.net.state_dict(), b.net.state_dict()
    differ = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert differ and all(k.startswith("classifier.") for k in differ)  # only the new head is seeded
    x = torch.randn(3, 3, 56, 56)
    for name, v in vn.evaluate.layer_stats(a, x).items():
        np.testing.assert_array_equal(v, vn.evaluate.layer_stats(b, x)[name])


def _naive_layers(net, x, masks, grid=None):
    """[batch, layers] entropy / log N and chirp mass / area from eager attention, by loops; ``grid``:
    each patch's weight split evenly over the finer grid's patches inside it."""
    with torch.no_grad():
        att = net(pixel_values=x, output_attentions=True).attentions  # L x [batch, head, T, T]
    n, layers, heads = x.shape[0], len(att), att[0].shape[1]
    own = int(math.isqrt(att[0].shape[-1] - 1))
    g = grid or own
    k = g // own  # finer patches per own patch side
    px = masks.shape[-1] // g  # mask pixels per (finer) patch side
    chirp = masks == CHIRP
    cover = np.zeros((n, g, g))
    for i in range(n):
        for r in range(g):
            for c in range(g):
                cover[i, r, c] = chirp[i, px * r : px * r + px, px * c : px * c + px].mean()
    area = cover.mean()
    ent, mass = np.zeros((n, layers)), np.zeros((n, layers))
    for i in range(n):
        for layer in range(layers):
            for h in range(heads):
                row = att[layer][i, h, 0, 1:].double()
                coarse = (row / row.sum()).reshape(own, own).numpy()
                p = np.zeros((g, g))
                for r in range(g):
                    for c in range(g):
                        p[r, c] = coarse[r // k, c // k] / k**2
                ent[i, layer] += float(-(p * np.log(p)).sum()) / math.log(g * g) / heads
                mass[i, layer] += float((p * cover[i]).sum()) / heads
    return {LAYER_STATISTICS[0]: ent, LAYER_STATISTICS[1]: mass / area}


def sharp_vit(seed, **kw):
    """A tiny eager ViT with large random weights, so that its attention is far from uniform."""
    return make_vit("eager", seed=seed, initializer_range=0.4, **kw)


@pytest.fixture
def images():
    torch.manual_seed(5)
    masks = np.random.default_rng(0).integers(0, 6, size=(6, 16, 16))  # region codes; 2 = chirp
    return torch.randn(6, 3, 16, 16), torch.randn(6, 3, 8, 8), torch.randn(5, 3, 8, 8), masks


def test_layer_stats_match_a_naive_loop_on_two_grids(images):
    x, x8, _, masks = images
    for net, pixels in ((sharp_vit(seed=1), x), (sharp_vit(seed=4, image_size=8), x8)):
        got, want = vn.evaluate.layer_stats(net, pixels, masks), _naive_layers(net, pixels, masks)  # 4x4 and 2x2 grids
        assert list(got) == list(LAYER_STATISTICS)
        for s in LAYER_STATISTICS:
            assert got[s].shape == (6, 3)
            np.testing.assert_allclose(got[s], want[s], rtol=1e-4, atol=1e-6, err_msg=s)
    coarse = sharp_vit(seed=4, image_size=8)  # a 2x2 grid read on 4x4: the same chirp ratio, N = 16
    got, want = vn.evaluate.layer_stats(coarse, x8, masks, grid=(4, 4)), _naive_layers(coarse, x8, masks, grid=4)
    for s in LAYER_STATISTICS:
        np.testing.assert_allclose(got[s], want[s], rtol=1e-4, atol=1e-6, err_msg=s)
    own = vn.evaluate.layer_stats(coarse, x8, masks)
    np.testing.assert_allclose(got[LAYER_STATISTICS[1]], own[LAYER_STATISTICS[1]], rtol=1e-10)
    # the entropy of a map split evenly into 4 is H + log 4: on N = 16 that is (H + log 4) / log 16
    h_own = own[LAYER_STATISTICS[0]] * math.log(4)
    np.testing.assert_allclose(got[LAYER_STATISTICS[0]], (h_own + math.log(4)) / math.log(16), rtol=1e-6)
    with pytest.raises(ValueError, match="not a multiple"):
        vn.evaluate.layer_stats(coarse, x8, grid=(3, 3))
    assert list(vn.evaluate.layer_stats(sharp_vit(seed=1), x)) == [LAYER_STATISTICS[0]]  # no masks: entropy only


@pytest.mark.parametrize("n_runs", [1, 2])
def test_transplant_table_against_naive_statistics(images, n_runs):
    x, x8, own, masks = images
    original = sharp_vit(seed=4, image_size=8)  # reads the same images at 8 px, a 2x2 grid
    start = sharp_vit(seed=1)
    runs = [sharp_vit(seed=2 + k) for k in range(n_runs)]
    table = vn.transplant_table(original, start, runs if n_runs > 1 else runs[0], x, masks, x8,
                                own_pixel_values=own, n_boot=200)  # fmt: skip
    t = table.set_index(["statistic", "layer", "metric"])
    o, b = _naive_layers(original, x8, masks, grid=4), _naive_layers(start, x, masks)  # on the transplant's 4x4
    a = [_naive_layers(m, x, masks) for m in runs]
    with torch.no_grad():
        att = original(pixel_values=own, output_attentions=True).attentions
    q = student_t.ppf(0.975, 1)
    for s in LAYER_STATISTICS:
        for layer in range(3):
            expect = {
                "original": vn.bootstrap(o[s][:, layer], n_boot=200),
                "transplant": vn.bootstrap(b[s][:, layer], n_boot=200),
                "transplant effect": vn.bootstrap(b[s][:, layer] - o[s][:, layer], n_boot=200),
            }
            if n_runs == 1:
                expect["fine-tuned"] = vn.bootstrap(a[0][s][:, layer], n_boot=200)
                expect["fine-tuning effect"] = vn.bootstrap(a[0][s][:, layer] - b[s][:, layer], n_boot=200)
            else:
                for metric, v in (("fine-tuned", np.array([r[s][:, layer].mean() for r in a])),):
                    v2 = v - b[s][:, layer].mean()
                    for m, w in ((metric, v), ("fine-tuning effect", v2)):
                        half = q * w.std(ddof=1) / math.sqrt(2)
                        expect[m] = (w.mean(), w.mean() - half, w.mean() + half)
            for metric, iv in expect.items():
                row = t.loc[(s, layer, metric)]
                want = (iv.value, iv.low, iv.high) if hasattr(iv, "value") else iv
                np.testing.assert_allclose([row["value"], row["low"], row["high"]], want, rtol=1e-4, atol=1e-6,
                                           err_msg=f"{s} layer {layer} {metric}")  # fmt: skip
                runs_over = metric in ("fine-tuned", "fine-tuning effect") and n_runs > 1
                assert row["over"] == ("runs" if runs_over else "images") and row["n"] == 6
    # the original on its own images, its 2x2 maps spread over the 4x4 grid: entropy only (no chirp there)
    for layer in range(3):
        p = att[layer][:, :, 0, 1:].double()  # [5, head, 4]
        p = (p / p.sum(-1, keepdim=True)).numpy() / 4  # each of the 4 finer patches inside gets a quarter
        h = -(4 * p * np.log(p)).sum(-1) / math.log(16)  # [5, head]
        row = t.loc[(LAYER_STATISTICS[0], layer, "original, own data")]
        assert row["value"] == pytest.approx(h.mean(1).mean(), rel=1e-5) and row["n"] == 5
    assert not (table["statistic"].eq(LAYER_STATISTICS[1]) & table["metric"].eq("original, own data")).any()
    assert set(table["metric"]) == set(TRANSPLANT_METRICS) and table.attrs["runs"] == n_runs
    fig = vn.show.transplant_plot(table)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert [t.get_text() for t in fig.legends[0].get_texts()][0].startswith("original, own data")


def test_transplant_table_refuses_mismatches(images):
    x, x8, _, masks = images
    a, b = sharp_vit(seed=1), sharp_vit(seed=4, image_size=8)
    with pytest.raises(ValueError, match="same 6 images"):
        vn.transplant_table(b, a, a, x, masks, x8[:5])
    with pytest.raises(ValueError, match="number of layers"):
        vn.transplant_table(sharp_vit(seed=4, image_size=8, num_hidden_layers=2), a, a, x, masks, x8)
    with pytest.raises(ValueError, match="non-empty"):
        vn.transplant_table(b, a, [], x, masks, x8)


def _ridge(f, y, alpha):
    """Ridge with an intercept by the normal equations: (coef [features, outputs], intercept)."""
    fm, ym = f.mean(0), y.mean(0)
    fc = f - fm
    coef = np.linalg.solve(fc.T @ fc + alpha * np.eye(f.shape[1]), fc.T @ (y - ym))
    return coef, ym - fm @ coef


@torch.no_grad()
def test_linear_head_is_ridge_with_leave_one_out_penalty():
    net = make_vit("eager", seed=3)
    torch.manual_seed(1)
    x = torch.randn(14, 3, 16, 16)
    feats = []
    hook = net.classifier.register_forward_pre_hook(lambda _m, a: feats.append(a[0].double()))
    net(pixel_values=x)
    hook.remove()
    f = feats[0].numpy()  # [14, 24]: the final-normed CLS token
    rng = np.random.default_rng(2)
    y = f @ rng.normal(size=(24, 5)) + 0.5 * rng.normal(size=(14, 5))  # partly predictable targets
    alphas = [0.01, 0.1, 1.0, 10.0, 100.0]
    loo = []  # per penalty, each image's error: leave it out, refit, predict it
    for alpha in alphas:
        fits = [_ridge(np.delete(f, i, 0), np.delete(y, i, 0), alpha) for i in range(14)]
        loo.append(np.array([((f[i] @ c + c0 - y[i]) ** 2).mean() for i, (c, c0) in enumerate(fits)]))
    least = int(np.argmin([e.mean() for e in loo]))
    bound = loo[least].mean() + loo[least].std(ddof=1) / math.sqrt(14)  # one standard error
    best = max(a for a, e in zip(alphas, loo) if e.mean() <= bound)
    assert best > alphas[least]  # the rule chooses a stronger penalty than the least error's here
    coef, intercept = _ridge(f, y, best)
    head = vn.evaluate.linear_head(net, x, y, alphas=alphas)
    np.testing.assert_allclose(head.classifier.weight.double().numpy(), coef.T, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(head.classifier.bias.double().numpy(), intercept, rtol=1e-4, atol=1e-6)
    before, after = net.state_dict(), head.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith("classifier."))
    assert not torch.equal(before["classifier.weight"], after["classifier.weight"])  # a copy: the input keeps its head
    model = vn.core.Model(
        net, geometry(net), [f"c{i}" for i in range(5)], vn.core.Preprocessing(16, (0.5,) * 3, (0.5,) * 3, 3)
    )
    fitted = vn.evaluate.linear_head(model, x, y, alphas=alphas)
    assert isinstance(fitted, vn.core.Model) and f"alpha={best:g}" in fitted.source and "images=14" in fitted.source
    with pytest.raises(ValueError, match="outputs"):
        vn.evaluate.linear_head(net, x, y[:, :3])
    with pytest.raises(ValueError, match="positive"):
        vn.evaluate.linear_head(net, x, y, alphas=[0.0])


@torch.no_grad()
def test_head_r2_is_one_minus_mse_over_variance():
    net = make_vit("eager", seed=3)
    torch.manual_seed(1)
    x, y = torch.randn(9, 3, 16, 16), np.random.default_rng(2).normal(size=(9, 5))
    pred = net(pixel_values=x).logits.double().numpy()
    got = vn.evaluate.head_r2(net, x, y, n_boot=300)
    assert list(got["target"]) == [0, 1, 2, 3, 4] and (got["n"] == 9).all()
    for j in range(5):
        r2 = 1 - ((pred[:, j] - y[:, j]) ** 2).sum() / ((y[:, j] - y[:, j].mean()) ** 2).sum()
        iv = vn.bootstrap(1 - (pred[:, j] - y[:, j]) ** 2 / y[:, j].var(), n_boot=300)
        np.testing.assert_allclose(got.loc[j, ["value", "low", "high"]].to_numpy(float), [r2, iv.low, iv.high],
                                   rtol=1e-5, atol=1e-8)  # fmt: skip
    with pytest.raises(ValueError, match="outputs"):
        vn.evaluate.head_r2(net, x, y[:, :2])
