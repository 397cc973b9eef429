"""Synthetic chirp spectrograms: dataset layout, determinism, targets, and masks that match the pixels."""

import datasets
import numpy as np
import pytest
from PIL import Image

from vitnotes.data import chirps as sp

N, SIZE, SEED = 16, 64, 3


@pytest.fixture(scope="module")
def ds():
    return sp.spectrograms(N, seed=SEED, size=SIZE)


@pytest.fixture(scope="module")
def arrays():
    return sp._render(N, SEED, SIZE)


def test_columns_shapes_and_dtypes(ds):
    assert ds.column_names == ["image", "mask", "targets", *sp.TARGET_NAMES]
    assert isinstance(ds.features["image"], datasets.Image)
    assert ds.features["mask"] == datasets.Array2D(shape=(SIZE, SIZE), dtype="uint8")
    assert ds.features["targets"] == datasets.Sequence(datasets.Value("float32"), length=3)
    assert all(ds.features[name] == datasets.Value("float32") for name in sp.TARGET_NAMES)
    row = ds[0]
    assert isinstance(row["image"], Image.Image) and row["image"].mode == "RGB" and row["image"].size == (SIZE, SIZE)
    table = ds.with_format("numpy")[:]
    # Stored as uint8; datasets' numpy format hands integers back as int64.
    assert str(ds.data.column("mask").type.storage_type) == "list<item: list<item: uint8>>"
    assert table["mask"].shape == (N, SIZE, SIZE) and table["mask"].max() < len(sp.REGIONS)
    assert table["targets"].shape == (N, 3) and table["targets"].dtype == np.float32
    raw = np.stack([table[name] for name in sp.TARGET_NAMES], axis=1)
    np.testing.assert_allclose(table["targets"], sp.scale(raw), rtol=1e-5, atol=1e-5)
    assert sp.spectrograms(1, size=40)[0]["image"].size == (40, 40)


def test_dataset_rows_are_the_rendered_arrays(ds, arrays):
    table = ds.with_format("numpy")[:]
    np.testing.assert_array_equal(table["image"], arrays["image"])  # PNG is lossless
    np.testing.assert_array_equal(table["mask"], arrays["mask"])


def test_same_seed_same_data_other_seed_differs(arrays):
    again = sp._render(N, SEED, SIZE)
    for key in ("image", "mask", "raw"):
        np.testing.assert_array_equal(again[key], arrays[key])
    prefix = sp._render(3, SEED, SIZE)  # image i depends only on (seed, i, size)
    np.testing.assert_array_equal(prefix["image"], arrays["image"][:3])
    other = sp._render(N, SEED + 1, SIZE)
    assert not np.array_equal(other["raw"], arrays["raw"])
    assert all(not np.array_equal(a, b) for a, b in zip(other["image"], arrays["image"]))
    assert np.array_equal(sp.spectrograms(2, seed=7)["targets"], sp.spectrograms(2, seed=7)["targets"])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n": 0}, "n must be an int >= 1"),
        ({"n": -5}, "n must be an int >= 1"),
        ({"n": 2.0}, "n must be an int"),
        ({"n": True}, "n must be an int"),
        ({"n": "10"}, "pass e.g. n="),
        ({"n": 2, "size": 31}, "size must be an int >= 32"),
        ({"n": 2, "size": 64.0}, "size must be an int"),
        ({"n": 2, "seed": -1}, "seed must be an int >= 0"),
    ],
)
def test_bad_arguments_raise_helpful_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sp.spectrograms(**kwargs)


def test_scaler_is_analytic_and_round_trips():
    np.testing.assert_allclose(sp.TARGET_MEAN, [0.275, 2000.0, 2000.0])
    np.testing.assert_allclose(sp.TARGET_STD, np.array([0.45, 3400.0, 3400.0]) / np.sqrt(12))
    raw = np.random.default_rng(0).uniform([0, 0, 0], [1, 4000, 4000], size=(5, 7, 3))
    np.testing.assert_allclose(sp.unscale(sp.scale(raw)), raw, rtol=1e-12)
    np.testing.assert_allclose(sp.scale(sp.TARGET_MEAN), 0, atol=1e-12)
    with pytest.raises(ValueError, match="last axis of length 3"):
        sp.scale([1.0, 2.0])
    with pytest.raises(ValueError, match="last axis of length 3"):
        sp.unscale(np.zeros((4, 2)))


def test_raw_targets_in_range_and_z_scores_standard(ds, arrays):
    raw = np.stack([np.asarray(ds[name]) for name in sp.TARGET_NAMES], axis=1)
    assert ((raw >= sp._LOW - 1e-4) & (raw <= sp._HIGH + 1e-3)).all()
    # Targets come from each image's own stream; drawing them alone checks the statistics over many images.
    many = np.stack([sp._params(np.random.default_rng([0, i]))[0][:3] for i in range(2000)])
    np.testing.assert_allclose(many[:N], sp._render(N, 0, 32)["raw"])
    assert ((many >= sp._LOW) & (many <= sp._HIGH)).all()
    z = sp.scale(many)
    assert np.abs(z.mean(0)).max() < 0.08 and np.abs(z.std(0) - 1).max() < 0.06


def test_chirp_mask_is_where_the_chirp_is_bright(arrays):
    gray = arrays["image"].astype(float) @ [0.299, 0.587, 0.114]
    for i in range(N):
        chirp, plot = arrays["mask"][i] == 2, arrays["mask"][i] == 1
        assert chirp.sum() > 20
        assert gray[i][chirp].mean() > gray[i][plot].mean() + 5  # lightness rises with the value in every colormap
        assert arrays["level"][i][chirp].mean() > arrays["level"][i][plot].mean() + 0.03


def test_without_noise_the_chirp_mask_holds_the_energy():
    out = sp._render(N, SEED, SIZE, noise=False)
    level, mask = out["level"], out["mask"]
    power = np.where(level > 0, 10 ** ((sp.DB_RANGE[0] + level * (sp.DB_RANGE[1] - sp.DB_RANGE[0])) / 10), 0)
    share = (power * (mask == 2)).sum((1, 2)) / power.sum((1, 2))
    assert share.min() > 0.9, share
    # ... and the frequency axis points up: a rising chirp climbs towards row 0, a falling one descends.
    for (_ts, f0, f1), m in zip(out["raw"], mask):
        rows, cols = np.nonzero(m == 2)
        if abs(f1 - f0) > 800:
            slope = np.polyfit(cols, rows, 1)[0]
            assert np.sign(slope) == -np.sign(f1 - f0)


def test_text_mask_covers_the_drawn_text(arrays):
    bare = sp._render(N, SEED, SIZE, text=False)
    changed = (bare["image"] != arrays["image"]).any(-1)
    text = arrays["mask"] == 3
    assert changed.sum() > 30 * N and (bare["mask"] != 3).all()
    assert (changed & ~text).sum() == 0  # drawing text changes nothing outside its mask
    assert (changed & text).sum() > 0.9 * text.sum()  # and most of the mask visibly changed
    np.testing.assert_array_equal(bare["mask"][~text], arrays["mask"][~text])


def test_every_pixel_has_one_region_and_the_layout_is_sane(arrays):
    for m in arrays["mask"]:
        regions = sp.region_masks(m)
        assert tuple(regions) == sp.REGIONS
        assert (sum(r.astype(int) for r in regions.values()) == 1).all()
        assert all(regions[name].any() for name in sp.REGIONS)
        plot = regions["plot"] | regions["chirp"]
        rows, cols = np.nonzero(plot)
        assert plot.mean() > 0.35  # the plot stays the biggest thing in the image
        chirp_cols, bar_cols = np.nonzero(regions["chirp"])[1], np.nonzero(regions["colorbar"])[1]
        assert bar_cols.min() > chirp_cols.max() and bar_cols.min() > cols.max()  # bar right of the plot
        assert not (regions["chirp"] & (regions["colorbar"] | regions["axes"])).any()
        # The axes frame runs along all four sides of the plot box (text may touch it here and there).
        r0, r1, c0, c1 = rows.min(), rows.max(), cols.min(), cols.max()
        ax = regions["axes"]
        sides = ax[r0 - 1, c0 : c1 + 1], ax[r1 + 1, c0 : c1 + 1], ax[r0 : r1 + 1, c0 - 1], ax[r0 : r1 + 1, c1 + 1]
        assert min(side.mean() for side in sides) > 0.8


def test_region_masks_validates_its_input(ds):
    regions = sp.region_masks(ds[0]["mask"])  # a row's mask comes back as nested lists
    assert regions["chirp"].dtype == bool and regions["chirp"].shape == (SIZE, SIZE)
    with pytest.raises(ValueError, match="0..5"):
        sp.region_masks(np.full((4, 4), 6))
    with pytest.raises(ValueError, match="2-D integer"):
        sp.region_masks(np.zeros((2, 4, 4), np.uint8))
