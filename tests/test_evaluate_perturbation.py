"""vitnotes.evaluate's perturbation, ground_truth, intervals and summary against independent
computations: hand-computed trapezoids, a toy model whose curves are known in closed form, a
naive per-image loop through a tiny ViT, numpy's percentile of resampled means, and hand-made
region masks."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

import vitnotes as vn
from vitnotes.core.geometry import Geometry
from vitnotes.core.images import Preprocessing
from vitnotes.core.model import Model
from vitnotes.evaluate.ground_truth import ground_truth, region_stack
from vitnotes.evaluate.intervals import bootstrap
from vitnotes.evaluate.perturbation import (
    Curves,
    baseline_images,
    brightness_maps,
    control_maps,
    object_masks,
    perturbation_curves,
    perturbation_curves_all,
    srg,
)
from vitnotes.evaluate.summary import evaluation_table, wide

H = 10  # toy images are 10 x 10 = 100 pixels


# ------------------------------------------------------------------ a toy model with known curves
class RegionMeans(torch.nn.Module):
    """Regression 'model': output o = the mean of pixel_values over region o (a [H, W] mask)."""

    def __init__(self, regions):
        super().__init__()
        self.register_buffer("regions", torch.stack([torch.as_tensor(r, dtype=torch.float32) for r in regions]))
        self.dummy = torch.nn.Parameter(torch.zeros(()))  # vn's forward reads the parameters' dtype
        self.config = SimpleNamespace(problem_type="regression", patch_size=None)

    def forward(self, pixel_values, **kw):
        x = pixel_values[:, 0]
        s = (x[:, None] * self.regions[None]).sum((-2, -1)) / self.regions.sum((-2, -1))[None]
        return SimpleNamespace(logits=s)


def toy(*regions):
    net = RegionMeans(regions)
    geom = Geometry(kind="cnn", layers=1, heads=0, head_dim=0, hidden=1, patch_size=None, image_size=H, channels=1)
    pre = Preprocessing(size=H, mean=(0.0,), std=(1.0,), channels=1)  # pixel_values = raw / 255
    return Model(net=net, geometry=geom, labels=[f"o{i}" for i in range(len(regions))], preprocessing=pre, name="toy")


R = np.zeros((H, H), bool)
R[:2] = True  # the region the toy reads: 20 of 100 pixels, r = 0.2
S = np.zeros((H, H), bool)
S[2:4] = True  # 20 more pixels the toy ignores


def toy_images(n=6, seed=0):
    """R at full brightness (255), everything else random: the score depends only on how much
    of R is left."""
    rng = np.random.default_rng(seed)
    imgs = rng.integers(0, 256, size=(n, H, H), dtype=np.uint8)
    imgs[:, R] = 255
    return imgs


def perfect_maps(n, region=R):
    return torch.from_numpy(np.broadcast_to(region, (n, H, H)).astype(np.float32).copy())


# ------------------------------------------------------------------ AUC and SRG conventions
def test_trapezoid_on_a_three_point_curve_by_hand():
    # x = 0, 0.5, 1; y = 1, 0.4, 0: 0.5 * 0.5 * (1 + 0.4) + 0.5 * 0.5 * (0.4 + 0) = 0.45
    mif = torch.tensor([[1.0, 0.4, 0.0]], dtype=torch.float64)
    lif = torch.tensor([[1.0, 0.9, 0.0]], dtype=torch.float64)  # 0.25 * 1.9 + 0.25 * 0.9 = 0.7
    c = Curves(
        fractions=np.array([0.0, 0.5, 1.0]),
        deletion=mif,
        deletion_lif=lif,
        insertion=lif.flip(1),
        editable=np.array([2]),
        baseline="black",
        score="prob",
        seconds=1.0,
        forwards_per_image=4,
    )
    a = c.aucs()
    assert a["deletion"][0] == pytest.approx(0.45, abs=1e-7)
    assert a["deletion_lif"][0] == pytest.approx(0.70, abs=1e-7)
    assert a["insertion"][0] == pytest.approx(0.70, abs=1e-7)
    assert a["srg"][0] == pytest.approx(0.25, abs=1e-7)
    assert srg([0.7], [0.45])[0] == pytest.approx(0.25)


def test_toy_preprocessing_is_raw_over_255():
    m, imgs = toy(R), toy_images(3)
    assert torch.equal(m.preprocess(list(imgs))[:, 0], torch.from_numpy(imgs.astype(np.float32) / 255))


@pytest.mark.parametrize("steps", [10, 20])
def test_perfect_map_black_baseline_closed_form(steps):
    # MIF: f(x) = max(1 - x / r, 0) -> AUC r / 2 = 0.1; LIF: AUC 1 - r / 2 = 0.9; SRG = 1 - r = 0.8.
    n = 6
    m, imgs = toy(R), toy_images(n)
    c = perturbation_curves(m, imgs, perfect_maps(n), baseline="black", steps=steps, score="output", target=0)
    x = c.fractions
    np.testing.assert_allclose(
        c.deletion.numpy(), np.broadcast_to(np.maximum(1 - x / 0.2, 0), (n, steps + 1)), atol=1e-6
    )
    a = c.aucs()
    np.testing.assert_allclose(a["deletion"], 0.1, atol=1e-6)
    np.testing.assert_allclose(a["deletion_lif"], 0.9, atol=1e-6)
    np.testing.assert_allclose(a["insertion"], 0.9, atol=1e-6)
    np.testing.assert_allclose(a["srg"], 0.8, atol=1e-6)
    assert c.forwards_per_image == 2 * steps and c.images_per_s > 0


def test_perfect_patch_map_nearest_is_exact():
    # the same map on a 5 x 5 patch grid (patch 2): nearest upsampling gives the pixel map back
    n = 4
    m, imgs = toy(R), toy_images(n)
    grid = torch.zeros(n, 5, 5)
    grid[:, 0] = 1.0
    c = perturbation_curves(m, imgs, grid, steps=10, score="output", target=0, resize_mode="nearest")
    np.testing.assert_allclose(c.aucs()["srg"], 0.8, atol=1e-6)


def test_mean_grey_baseline_closed_form():
    # baseline g' = 51 / 255 = 0.2: MIF AUC = 1 - (1 - g')(1 - r/2); LIF AUC = 1 - (1 - g') r / 2
    n, g = 5, 0.2
    m, imgs = toy(R), toy_images(n)
    c = perturbation_curves(m, imgs, perfect_maps(n), baseline="mean", mean=51, steps=10, score="output", target=0)
    a = c.aucs()
    np.testing.assert_allclose(a["deletion"], 1 - (1 - g) * (1 - 0.1), atol=1e-6)
    np.testing.assert_allclose(a["deletion_lif"], 1 - (1 - g) * 0.1, atol=1e-6)
    np.testing.assert_allclose(a["srg"], (1 - g) * 0.8, atol=1e-6)


def test_deletion_restricted_to_a_mask_closed_form():
    # editable = R u S (40 px), R first: MIF f(x) = max(1 - 2x, 0) -> 0.25; LIF 0.75; SRG 0.5.
    # Output 1 reads the pixels outside the mask: it must never change.
    n = 4
    outside = ~(R | S)
    m, imgs = toy(R, outside), toy_images(n)
    keep = np.broadcast_to(R | S, (n, H, H))
    c = perturbation_curves(m, imgs, perfect_maps(n), restrict=keep, steps=10, score="output", target=0)
    np.testing.assert_array_equal(c.editable, 40)
    a = c.aucs()
    np.testing.assert_allclose(a["deletion"], 0.25, atol=1e-6)
    np.testing.assert_allclose(a["deletion_lif"], 0.75, atol=1e-6)
    np.testing.assert_allclose(a["srg"], 0.5, atol=1e-6)
    o = perturbation_curves(m, imgs, perfect_maps(n), restrict=keep, steps=10, score="output", target=1)
    for curve in (o.deletion, o.deletion_lif, o.insertion):
        np.testing.assert_allclose(curve.numpy(), curve[:, :1].numpy().repeat(11, 1), atol=1e-7)


def test_regression_neg_squared_error_against_intact_output_and_truth():
    n = 3
    m, imgs = toy(R), toy_images(n)
    c = perturbation_curves(m, imgs, perfect_maps(n), steps=10)  # default: neg_sq_error vs the intact output (1)
    f = np.maximum(1 - c.fractions / 0.2, 0)
    assert c.score == "neg_sq_error"
    np.testing.assert_allclose(c.deletion.numpy()[0], -((f - 1) ** 2), atol=1e-6)
    t = perturbation_curves(m, imgs, perfect_maps(n), steps=10, truth=np.full((n, 1), 0.5))
    np.testing.assert_allclose(t.deletion.numpy()[1], -((f - 0.5) ** 2), atol=1e-6)


def test_random_map_srg_near_zero():
    # a random order removes R at the same rate as any pixel: both curves follow 1 - x on
    # average, so E[AUC] = 1/2 and E[SRG] = 0 (std of the mean over 200 images ~ 0.008)
    n = 200
    m, imgs = toy(R), toy_images(n, seed=3)
    c = perturbation_curves(m, imgs, vn.evaluate.random_maps(n, H, seed=13), steps=10, score="output", target=0)
    a = c.aucs()
    iv = bootstrap(a["srg"], n_boot=500, seed=0)
    assert abs(iv.value) < 0.03 and iv.low < 0 < iv.high
    assert abs(a["deletion"].mean() - 0.5) < 0.02 and abs(a["deletion_lif"].mean() - 0.5) < 0.02


def test_insertion_is_lif_deletion_read_backwards():
    n = 3
    m, imgs = toy(R), toy_images(n)
    c = perturbation_curves(m, imgs, vn.evaluate.random_maps(n, H, seed=5), steps=7, score="output", target=0)
    np.testing.assert_array_equal(c.insertion.numpy(), c.deletion_lif.numpy()[:, ::-1])
    np.testing.assert_array_equal(c.deletion[:, 0].numpy(), c.deletion_lif[:, 0].numpy())  # shared endpoints
    np.testing.assert_array_equal(c.deletion[:, -1].numpy(), c.deletion_lif[:, -1].numpy())


def test_chunks_do_not_change_the_curves():
    n = 5
    m, imgs = toy(R), toy_images(n)
    maps = vn.evaluate.random_maps(n, H, seed=2)
    a = perturbation_curves(m, imgs, maps, steps=6, chunk=1, batch_size=7, score="output", target=0)
    b = perturbation_curves(m, imgs, maps, steps=6, chunk=16, score="output", target=0)
    np.testing.assert_array_equal(a.deletion.numpy(), b.deletion.numpy())
    np.testing.assert_array_equal(a.deletion_lif.numpy(), b.deletion_lif.numpy())
    # the mean grey is the mean of all images, whatever the chunk
    a = perturbation_curves(m, imgs, maps, steps=6, chunk=1, baseline="mean", score="output", target=0)
    b = perturbation_curves(m, imgs, maps, steps=6, chunk=16, baseline="mean", score="output", target=0)
    np.testing.assert_array_equal(a.deletion.numpy(), b.deletion.numpy())
    g = imgs.mean(dtype=np.float64) / 255
    c = perturbation_curves(m, imgs, perfect_maps(n), steps=6, chunk=2, baseline="mean", score="output", target=0)
    np.testing.assert_allclose(c.deletion[:, -1].numpy(), np.rint(g * 255) / 255, atol=1e-6)


# ------------------------------------------------------------------ a tiny ViT classifier, naive loop
def _naive(model, img, base, order, ks, target):
    out = []
    for k in ks:
        e = img.copy().reshape(-1, img.shape[-1])
        e[order[:k]] = base.reshape(-1, img.shape[-1])[order[:k]]
        p = model.predict(model.preprocess([e.reshape(img.shape)])).double().softmax(-1)[0]
        out.append(float(p[target]))
    return np.array(out)


def test_vit_classifier_curves_match_a_naive_loop(vit_folder):
    model = vn.load(vit_folder)
    rng = np.random.default_rng(0)
    n, steps, side = 3, 4, 16
    imgs = rng.integers(0, 256, size=(n, side, side, 3), dtype=np.uint8)
    # pixel maps of continuous noise: no ties, so the order is plain argsort (a bilinearly upsampled patch
    # map ties in its corners, where deletion_order breaks ties at random)
    maps = torch.from_numpy(rng.random((n, side, side))).float()
    c = perturbation_curves(model, imgs, maps, baseline="blur", sigma=2.0, steps=steps)
    up = maps
    npx = side * side
    ks = [int(np.floor(j * npx / steps + 0.5)) for j in range(steps + 1)]
    for i in range(n):
        blur = np.clip(
            np.rint(
                np.stack([gaussian_filter(imgs[i, ..., ch].astype(float), 2.0, mode="nearest") for ch in range(3)], -1)
            ),
            0,
            255,
        ).astype(np.uint8)
        order = np.argsort(-up[i].numpy().reshape(-1), kind="stable")
        target = int(model.predict(model.preprocess([imgs[i]])).argmax())
        np.testing.assert_allclose(c.deletion[i].numpy(), _naive(model, imgs[i], blur, order, ks, target), atol=1e-6)
        np.testing.assert_allclose(
            c.deletion_lif[i].numpy(), _naive(model, imgs[i], blur, order[::-1], ks, target), atol=1e-6
        )
        # insertion at x_j: the blurred image with the top (N - k_{steps-j}) pixels put back
        ins = []
        for j in range(steps + 1):
            e = blur.copy().reshape(npx, 3)
            top = order[: npx - ks[steps - j]]
            e[top] = imgs[i].reshape(npx, 3)[top]
            p = model.predict(model.preprocess([e.reshape(imgs[i].shape)])).double().softmax(-1)[0]
            ins.append(float(p[target]))
        np.testing.assert_allclose(c.insertion[i].numpy(), ins, atol=1e-6)


def test_all_maps_at_once_match_a_naive_loop_per_map(vit_folder):
    """perturbation_curves_all shares the unperturbed and fully replaced images among the maps: each map's
    curves still equal a naive per-image loop, inside an object mask too, at any chunk and batch size."""
    model = vn.load(vit_folder)
    rng = np.random.default_rng(1)
    n, steps, side = 3, 3, 16
    imgs = rng.integers(0, 256, size=(n, side, side, 3), dtype=np.uint8)
    keep = np.zeros((n, side, side), bool)
    keep[:, 3:13, 2:12] = True
    keep[1, :, :] = True  # one image may lose every pixel
    maps = {f"m{j}": torch.from_numpy(rng.random((n, side, side))).float() for j in range(3)}
    for chunk, bs in ((1, 5), (16, 128)):
        got = perturbation_curves_all(model, imgs, maps, baseline="black", restrict=keep, steps=steps, chunk=chunk,
                                      batch_size=bs)  # fmt: skip
        assert list(got) == list(maps)
        for name, mp in maps.items():
            for i in range(n):
                ed = np.flatnonzero(keep[i].reshape(-1))
                order = ed[np.argsort(-mp[i].numpy().reshape(-1)[ed], kind="stable")]
                ks = [int(np.floor(j * len(ed) / steps + 0.5)) for j in range(steps + 1)]
                target = int(model.predict(model.preprocess([imgs[i]])).argmax())
                zero = np.zeros_like(imgs[i])
                want = _naive(model, imgs[i], zero, order, ks, target)
                np.testing.assert_allclose(got[name].deletion[i].numpy(), want, atol=1e-6)
                np.testing.assert_allclose(
                    got[name].deletion_lif[i].numpy(), _naive(model, imgs[i], zero, order[::-1], ks, target), atol=1e-6
                )


def test_all_maps_at_once_cost_two_shared_forwards(vit_folder, monkeypatch):
    """Images through the model: 2 + 2 (steps - 1) per image and map, not 2 steps per image and map; one map
    alone costs 2 steps, as before."""
    model = vn.load(vit_folder)
    seen = []
    real = Model.predict

    def counting(self, x, *a, **k):
        seen.append(len(x))
        return real(self, x, *a, **k)

    monkeypatch.setattr(Model, "predict", counting)
    rng = np.random.default_rng(2)
    n, steps, side = 4, 4, 16
    imgs = rng.integers(0, 256, size=(n, side, side, 3), dtype=np.uint8)
    maps = {f"m{j}": torch.from_numpy(rng.random((n, side, side))).float() for j in range(5)}
    got = perturbation_curves_all(model, imgs, maps, steps=steps, chunk=2, batch_size=1000)
    assert sum(seen) == n * (2 + 5 * 2 * (steps - 1))
    assert len(seen) == n // 2  # one batched pass per chunk of images, every map and step in it
    assert got["m0"].forwards_per_image == pytest.approx(2 / 5 + 2 * (steps - 1))
    seen.clear()
    one = perturbation_curves(model, imgs, maps["m3"], steps=steps)
    assert sum(seen) == n * 2 * steps and one.forwards_per_image == 2 * steps
    np.testing.assert_allclose(one.deletion.numpy(), got["m3"].deletion.numpy(), atol=1e-6)


def test_scores_must_fit_the_model(vit_folder):
    model = vn.load(vit_folder)
    imgs = np.zeros((1, 16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="regression"):
        perturbation_curves(model, imgs, torch.rand(1, 4, 4), score="neg_sq_error")
    with pytest.raises(ValueError, match="classifier"):
        perturbation_curves(toy(R), toy_images(1), perfect_maps(1), score="prob")
    with pytest.raises(ValueError, match="target"):
        perturbation_curves(toy(R, S), toy_images(1), perfect_maps(1), score="output")


# ------------------------------------------------------------------ baselines and controls
def test_baselines_by_hand():
    imgs = np.zeros((2, 4, 4, 3), np.uint8)
    imgs[0, 1, 1] = (200, 100, 50)
    imgs[1] = 30
    assert (baseline_images(imgs, "black") == 0).all()
    mean = imgs.reshape(-1, 3).astype(float).mean(0)
    np.testing.assert_array_equal(baseline_images(imgs, "mean")[0, 0, 0], np.rint(mean))
    np.testing.assert_array_equal(baseline_images(imgs, "mean", mean=72.9)[1, 2, 3], [73, 73, 73])
    blur = baseline_images(imgs, "blur", sigma=1.0)
    want = np.rint(gaussian_filter(imgs[0, ..., 0].astype(float), 1.0, mode="nearest"))
    np.testing.assert_array_equal(blur[0, ..., 0], want)
    assert (blur[1] == 30).all()  # a flat image is its own blur
    f = baseline_images(imgs.astype(np.float32) / 255, "mean")
    assert f.dtype == np.float32 and np.allclose(f[0, 0, 0], mean / 255)
    with pytest.raises(ValueError, match="baseline"):
        baseline_images(imgs, "white")


def test_controls_and_object_masks():
    imgs = np.zeros((2, 5, 5), np.uint8)
    imgs[:, 1:3, 1:4] = 90
    b = brightness_maps(imgs)
    assert torch.equal(b, torch.from_numpy(imgs.astype(np.float32)))
    c = control_maps(imgs, seed=4)
    assert set(c) == {"random", "brightness"} and torch.equal(c["random"], vn.evaluate.random_maps(2, (5, 5), 4))
    np.testing.assert_array_equal(object_masks(imgs), imgs > 0)
    colour = np.zeros((1, 3, 3, 3), np.uint8)
    colour[0, 0, 0, 2] = 1
    assert object_masks(colour).sum() == 1 and object_masks(colour)[0, 0, 0]


# ------------------------------------------------------------------ bootstrap
def test_bootstrap_matches_numpy_percentile_of_resampled_means():
    v = np.random.default_rng(7).normal(size=37)
    iv = bootstrap(v, n_boot=2000, seed=11)
    rng = np.random.default_rng(11)
    means = np.array([v[rng.integers(0, v.size, size=v.size)].mean() for _ in range(2000)])
    lo, hi = np.percentile(means, [2.5, 97.5])
    assert iv.low == pytest.approx(lo, abs=1e-12) and iv.high == pytest.approx(hi, abs=1e-12)
    assert iv.value == pytest.approx(v.mean()) and iv.n == 37
    with_nan = bootstrap(np.concatenate([v, [np.nan, np.nan]]), n_boot=2000, seed=11)
    assert (with_nan.low, with_nan.high, with_nan.n) == (iv.low, iv.high, 37)
    one = bootstrap([0.3], n_boot=10)
    assert one.low == one.high == one.value == 0.3
    assert np.isnan(bootstrap([np.nan]).value)


def test_bootstrap_blocks_do_not_change_the_stream(monkeypatch):
    import vitnotes.evaluate.intervals as iv_mod

    v = np.arange(50.0)
    a = bootstrap(v, n_boot=300, seed=3)
    monkeypatch.setattr(iv_mod, "_BLOCK", 170)  # 3 resamples per block
    b = bootstrap(v, n_boot=300, seed=3)
    assert (a.low, a.high) == (b.low, b.high)


# ------------------------------------------------------------------ ground truth on hand-made masks
def hand_masks():
    """Two 8 x 8 images of region codes (REGIONS: background 0, plot 1, chirp 2, text 3,
    colorbar 4, axes 5); 2 x 2 patches make a 4 x 4 grid."""
    m = np.ones((2, 8, 8), np.uint8)  # plot
    m[:, 0:2, 0:2] = 2  # chirp fills cell (0, 0)
    m[:, 2, 4:6] = 3  # text: top half of cell (1, 2)
    m[:, 6:8, 6:8] = 4  # colorbar fills cell (3, 3)
    m[:, 4:6, 0] = 5  # axes: left half of cell (2, 0)
    m[1, 0:2, 4] = 2  # image 1: chirp also covers half of cell (0, 2)
    return m


def test_region_stack_uses_the_codes():
    r = region_stack(hand_masks())
    assert r["chirp"][0].sum() == 4 and r["text"][0].sum() == 2 and r["colorbar"][0].sum() == 4
    assert r["axes"][0].sum() == 2 and r["background"].sum() == 0


def test_mass_shares_and_pointing_on_hand_masks():
    g = torch.zeros(2, 4, 4)
    g[:, 0, 0] = 1.0  # all chirp
    g[:, 1, 2] = 3.0  # half text, half plot: the top cell
    g[:, 3, 3] = -2.0  # colour bar, negative
    clip = ground_truth(g, hand_masks(), negative="clip")
    assert clip.loc[0, "mass_chirp"] == pytest.approx(1 / 4)
    assert clip.loc[0, "mass_text"] == pytest.approx(1.5 / 4)
    assert clip.loc[0, "mass_plot"] == pytest.approx(1.5 / 4)
    assert clip.loc[0, "mass_colorbar"] == 0 and clip.loc[0, "mass_axes"] == 0
    assert clip.loc[0, "area_chirp"] == pytest.approx(4 / 64)
    assert clip.loc[0, "ratio"] == pytest.approx((1 / 4) / (4 / 64))
    assert clip.loc[0, "pointing"] == 0 and clip.loc[0, "pointing_chance"] == pytest.approx(1 / 16)
    assert clip.loc[1, "pointing_chance"] == pytest.approx(2 / 16)  # cell (0, 2) holds chirp pixels too
    a = ground_truth(g, hand_masks(), negative="abs")
    assert a.loc[0, "mass_chirp"] == pytest.approx(1 / 6)
    assert a.loc[0, "mass_colorbar"] == pytest.approx(2 / 6)
    assert a.loc[0, "mass_text"] == pytest.approx(1.5 / 6)
    # ties at the top: cells (0, 0) (chirp) and (1, 2) (no chirp) -> half a hit
    t = torch.zeros(2, 4, 4)
    t[:, 0, 0] = t[:, 1, 2] = 1.0
    assert ground_truth(t, hand_masks()).loc[0, "pointing"] == pytest.approx(0.5)
    # image 1: min_cover decides whether the half-chirp cell (0, 2) counts
    h = torch.zeros(2, 4, 4)
    h[:, 0, 2] = 1.0
    assert ground_truth(h, hand_masks()).loc[1, "pointing"] == 1
    assert ground_truth(h, hand_masks(), min_cover=0.5).loc[1, "pointing"] == 0
    # all-negative map: nothing left after clipping -> NaN
    assert np.isnan(ground_truth(-torch.ones(2, 4, 4), hand_masks()).loc[0, "mass_chirp"])


def test_pixel_maps_and_uniform_reference():
    masks = hand_masks()
    px = torch.from_numpy((masks == 2).astype(np.float32))  # the chirp itself, on pixels
    gt = ground_truth(px, masks)
    np.testing.assert_allclose(gt["mass_chirp"], 1.0, atol=1e-6)
    np.testing.assert_allclose(gt["pointing"], 1.0)
    np.testing.assert_allclose(gt["pointing_chance"], [4 / 64, 6 / 64])
    for grid in (4, 8, 3):  # 3 does not divide 8: resized (nearest) to pixels first
        flat = ground_truth(torch.ones(2, grid, grid), masks)
        for r in ("chirp", "text", "colorbar", "axes", "plot"):
            np.testing.assert_allclose(flat[f"mass_{r}"], flat[f"area_{r}"], atol=1e-6)
        np.testing.assert_allclose(flat["ratio"], 1.0, atol=1e-5)
        np.testing.assert_allclose(flat["pointing"], flat["pointing_chance"], atol=1e-12)


def test_ground_truth_on_real_spectrogram_masks():
    ds = vn.data.spectrograms(2, seed=0, size=32)
    masks = np.stack([np.asarray(m) for m in ds["mask"]])
    chirp = torch.from_numpy((masks == 2).astype(np.float32))
    gt = ground_truth(chirp.reshape(2, 8, 4, 8, 4).mean((2, 4)), masks)  # the chirp's coverage on an 8 x 8 grid
    assert (gt["ratio"] > 1).all() and (gt["pointing"] == 1).all()
    # patches on the chirp's edge hold some plot or colour-bar pixels: little mass, never most of it
    for d in ("text", "colorbar", "axes"):
        assert (gt[f"mass_{d}"] < 0.1).all()
    np.testing.assert_allclose(gt[[c for c in gt if c.startswith("mass_")]].sum(1), 1.0, atol=1e-5)


# ------------------------------------------------------------------ the summary table
def test_evaluation_table_tidy_with_intervals():
    n = 8
    m, imgs = toy(R), toy_images(n, seed=2)
    codes = np.ones((n, H, H), np.uint8)
    codes[:, R] = 2  # 'chirp' = the region the toy reads
    codes[:, 8:, :] = 3
    maps = {"perfect": perfect_maps(n), "inverse": 1 - perfect_maps(n)}
    keep = np.broadcast_to(R | S, (n, H, H))
    df = evaluation_table(
        maps,
        m,
        imgs,
        codes,
        baselines=("black", "mean"),
        restrict=keep,
        restrict_baselines=("black",),
        steps=10,
        score="output",
        target=0,
        n_boot=200,
    )
    assert list(df.columns) == ["method", "family", "metric", "baseline", "value", "low", "high", "n"]
    assert set(df["method"]) == {"perfect", "inverse", "random", "brightness"}
    assert set(df["baseline"]) == {"black", "mean", "black, object", ""}
    row = df[(df.method == "perfect") & (df.metric == "srg") & (df.baseline == "black")].iloc[0]
    assert row.value == pytest.approx(0.8, abs=1e-6) and row.low == pytest.approx(0.8, abs=1e-6)
    row = df[(df.method == "perfect") & (df.metric == "srg") & (df.baseline == "black, object")].iloc[0]
    assert row.value == pytest.approx(0.5, abs=1e-6)
    inv = df[(df.method == "inverse") & (df.metric == "srg") & (df.baseline == "black")].iloc[0]
    assert inv.value == pytest.approx(-0.8, abs=1e-6)
    gt = df[(df.method == "perfect") & (df.family == "ground truth")].set_index("metric")
    assert gt.loc["mass_chirp", "value"] == pytest.approx(1.0, abs=1e-6)
    assert gt.loc["area_chirp", "value"] == pytest.approx(0.2)
    assert gt.loc["pointing", "value"] == 1 and gt.loc["mass_text", "value"] == 0
    ok = df.dropna(subset=["value"])
    assert ((ok.low <= ok.value + 1e-9) & (ok.value <= ok.high + 1e-9)).all()
    assert all(v > 0 for v in df.attrs["images_per_s"].values())
    mc = df.attrs["curves"][("perfect", "black")]
    np.testing.assert_allclose(mc["deletion"], np.maximum(1 - np.asarray(mc["fractions"]) / 0.2, 0), atol=1e-6)
    w = wide(df)
    assert list(w.index) == ["perfect", "inverse", "random", "brightness"]
    assert w[("srg [black]", "value")]["perfect"] == pytest.approx(0.8, abs=1e-6)
    assert w[("ratio", "low")].notna().all()


def test_object_restriction_by_name():
    imgs = toy_images(3)
    imgs[:, 5:] = 0  # a black lower half: never edited under restrict="object"
    m = toy(R, np.arange(H * H).reshape(H, H) >= 50)
    c = perturbation_curves(
        m,
        imgs,
        vn.evaluate.random_maps(3, H, seed=1),
        restrict="object",
        steps=5,
        score="output",
        target=1,
        baseline="mean",
        mean=200,
    )
    np.testing.assert_array_equal(c.editable, (imgs > 0).reshape(3, -1).sum(1))
    np.testing.assert_allclose(c.deletion.numpy(), 0.0, atol=1e-7)  # the black half stays black


def test_ground_truth_only_table():
    masks = hand_masks()
    g = torch.zeros(2, 4, 4)
    g[:, 0, 0] = 1.0
    df = evaluation_table({"chirp cell": g}, masks=masks, n_boot=50)
    assert set(df["family"]) == {"ground truth"} and set(df["method"]) == {"chirp cell"}
    t = df.set_index("metric")
    assert t.loc["mass_chirp", "value"] == pytest.approx(1.0) and t.loc["pointing", "value"] == 1
    assert t.loc["pointing_chance", "value"] == pytest.approx((1 / 16 + 2 / 16) / 2)


def test_evaluation_table_needs_something_to_do():
    with pytest.raises(ValueError, match="nothing to evaluate"):
        evaluation_table({"a": torch.rand(1, 2, 2)})
    with pytest.raises(ValueError, match="images"):
        evaluation_table({"a": torch.rand(1, 2, 2)}, model=toy(R))
