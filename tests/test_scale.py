"""Whole data sets: vn.sweep, vn.profile.attention_profile, vn.cls_summary and vn.evaluate.deletion_study read a
datasets.Dataset (or IterableDataset) batch by batch and give the numbers of the in-memory tensor;
split over two processes (emulated here: each part run alone, the sums handed over), they give the
numbers of one process. The real two-process run under accelerate is tests/test_processes.py."""

import datasets
import numpy as np
import pytest
import torch

import vitnotes as vn
from vitnotes import profile
from vitnotes.core import batches
from vitnotes.data.chirps import REGIONS
from vitnotes.evaluate import deletion
from vitnotes.interventions import ablation

N = 7


@pytest.fixture
def model(vit_folder):
    return vn.load(vit_folder)  # a tiny random ViT with its own preprocessing: 16 px RGB, 4x4 grid


@pytest.fixture
def raw():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(N, 16, 16, 3), dtype=np.uint8), rng.integers(0, 5, size=N)


@pytest.fixture
def masks():
    return np.random.default_rng(1).integers(0, len(REGIONS), size=(N, 16, 16)).astype(np.uint8)


@pytest.fixture
def ds(raw, masks):
    imgs, labels = raw
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "label": datasets.ClassLabel(num_classes=5),
            "mask": datasets.Array2D((16, 16), "uint8"),
        }
    )
    return datasets.Dataset.from_dict({"image": list(imgs), "label": labels, "mask": list(masks)}, features=features)


def _same(a, b, cols, rtol=1e-6):
    assert list(a.columns) == list(b.columns)
    for c in cols:
        np.testing.assert_allclose(a[c], b[c], rtol=rtol, atol=1e-7, err_msg=c)


# ------------------------------------------------------------------ a data set equals its tensor
def test_sweep_of_a_dataset_equals_the_tensor(model, raw, ds):
    imgs, labels = raw
    x = model.preprocess(imgs)
    ref = vn.sweep(model, x, torch.as_tensor(labels), batch_size=3)
    assert ref.attrs["n"] == N and ref.attrs["processes"] == 1
    for data in (ds, ds.to_iterable_dataset(num_shards=2)):
        got = vn.sweep(model, data, batch_size=3)
        _same(got, ref, ["loss", "rel_increase"])
        assert got.attrs["n"] == N and got.attrs["baseline"] == pytest.approx(ref.attrs["baseline"], rel=1e-9)
    px = datasets.Dataset.from_dict({"pixel_values": x.numpy(), "y": labels})  # a processor's output column
    _same(vn.sweep(model.net, px, "y", batch_size=4, method="naive"), ref, ["loss", "rel_increase"])


def test_profile_and_cls_summary_of_a_dataset(model, raw, ds, masks):
    x = model.preprocess(raw[0])
    ref = vn.profile.attention_profile(model, x, masks, batch_size=4)
    got = vn.profile.attention_profile(model, ds, masks="mask", batch_size=3)
    _same(got, ref, [c for c in ref.columns if c not in ("layer", "head")])
    assert got.attrs["area"] == pytest.approx(ref.attrs["area"]) and got.attrs["images"] == N
    # the streamed summary equals the summary of a capture held in memory
    cap = vn.cls_summary(vn.capture(model, x))
    streamed = vn.cls_summary(model, ds.to_iterable_dataset(), batch_size=2)
    _same(streamed, cap, [c for c in cap.columns if c not in ("layer", "head")], rtol=1e-5)
    assert {k: streamed.attrs[k] for k in cap.attrs} == cap.attrs
    cls_rows = vn.cls_summary(model, x, full=False)
    assert "distance_px" not in cls_rows and np.allclose(cls_rows["entropy"], cap["entropy"], rtol=1e-5)
    with pytest.raises(TypeError, match="without data"):
        vn.cls_summary(vn.capture(model, x), ds)
    with pytest.raises(TypeError, match=r"cls_summary\(model, data\)"):
        vn.cls_summary(model)


def test_deletion_study_of_a_dataset_equals_the_stack(model, raw, ds):
    imgs = raw[0]
    cam = torch.rand(N, 4, 4, generator=torch.Generator().manual_seed(2))
    cam[cam < 0.5] = 0  # ties, broken at random: batch by batch, the same as all at once
    ref_c, ref_a = vn.evaluate.deletion_study(
        {"m": model}, imgs, {"cam": cam, "rand": vn.evaluate.random_maps(N, 16)}, steps=3
    )
    last = lambda im: vn.explain(model, model.preprocess(im), "last layer")  # noqa: E731
    with_maps = ds.add_column("cam", [m.tolist() for m in cam])  # a list-of-lists column
    maps = {"cam": "cam", "rand": vn.evaluate.random_maps(N, 16), "last": last}
    got_c, got_a = vn.evaluate.deletion_study({"m": model}, with_maps, maps, steps=3, batch_size=2)
    for kind in ("cam", "rand"):
        for table, ref, col in ((got_c, ref_c, "prob"), (got_c, ref_c, "sem"), (got_a, ref_a, "auc")):
            np.testing.assert_allclose(table[table["map"] == kind][col], ref[ref["map"] == kind][col], atol=1e-6)
    ref_last, _ = vn.evaluate.deletion_curve(model, imgs, last(imgs), steps=3)
    np.testing.assert_allclose(got_c[got_c["map"] == "last"]["prob"], ref_last.mean(0), atol=1e-6)
    assert got_a["image"].tolist()[:N] == list(range(N)) and got_c.attrs["images"] == N
    with pytest.raises(TypeError, match="name columns"):
        vn.evaluate.deletion_study({"m": model}, imgs, {"cam": "cam"})
    with pytest.raises(ValueError, match="5 'cam' maps for 7 images"):
        vn.evaluate.deletion_study({"m": model}, ds, {"cam": cam[:5]})


def test_deletion_order_continues_a_generator():
    m = torch.zeros(5, 3, 3)
    m[:, 0, 0] = 1  # one clear winner, then eight tied pixels
    g = torch.Generator().manual_seed(3)
    split = torch.cat([vn.evaluate.deletion_order(m[:2], generator=g), vn.evaluate.deletion_order(m[2:], generator=g)])
    assert torch.equal(split, vn.evaluate.deletion_order(m, 3))
    assert not torch.equal(
        vn.evaluate.deletion_order(m, 3), vn.evaluate.deletion_order(m, 4)
    )  # the ties really are drawn


# ------------------------------------------------------------------ bad input names the columns and the fix
def test_missing_columns_say_which_exist_and_how_to_map_them(model, raw):
    imgs, labels = raw
    features = datasets.Features({"picture": datasets.Image(), "fine": datasets.ClassLabel(num_classes=5)})
    odd = datasets.Dataset.from_dict({"picture": list(imgs), "fine": labels}, features=features)
    with pytest.raises(
        ValueError, match=r"columns \['picture', 'fine'\].*rename_columns\(\{'picture': 'image', 'fine': 'label'\}\)"
    ):
        vn.sweep(model, odd)
    ok = odd.rename_columns({"picture": "image"})
    with pytest.raises(ValueError, match=r"targets \(a 'label' column\)"):
        vn.sweep(model, ok)
    assert len(vn.sweep(model, ok, "fine", heads=[(0, 1)])) == 1  # or name the column
    with pytest.raises(TypeError, match="vn.load"):
        vn.sweep(model.net, ok, "fine")  # images need the checkpoint's preprocessing
    with pytest.raises(TypeError, match="one split"):
        vn.profile.attention_profile(model, datasets.DatasetDict({"test": ok}))
    with pytest.raises(TypeError, match="names its column"):
        vn.sweep(model, ok, torch.zeros(N, dtype=torch.long))
    with pytest.raises(ValueError, match="no images"):
        vn.sweep(model, ok.select([]), "fine")
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        vn.profile.attention_profile(model, ok, batch_size=0)


# ------------------------------------------------------------------ two processes, emulated
def test_span_is_how_datasets_splits_a_dataset():
    from datasets.distributed import split_dataset_by_node

    for n in range(3, 8):  # (datasets refuses fewer rows than processes; vitnotes gives such a process none)
        table = datasets.Dataset.from_dict({"i": list(range(n))})
        for world in (1, 2, 3):
            for rank in range(world):
                lo, hi = batches.span(n, rank, world)
                assert split_dataset_by_node(table, rank=rank, world_size=world)["i"] == list(range(lo, hi))
    assert batches.span(1, 1, 2) == (1, 1) and batches.span(0, 0, 3) == (0, 0)


def test_add_up_is_exact_and_takes_missing_keys_as_zero():
    a = {"n": 2, "x": np.array([0.1, 0.2])}
    one = batches.add_up([a])
    assert one["n"] == 2 and np.array_equal(one["x"], a["x"])  # 0 + x is x, exactly
    out = batches.add_up([a, {"n": 3}, {"n": 0, "x": np.array([1.0, 1.0])}])
    assert out["n"] == 5 and np.array_equal(out["x"], np.array([0.1, 0.2]) + 1.0)


def _two_processes(monkeypatch, run):
    """Run ``run()`` as process 1 of 2, keep what it hands to ``gather``, then as process 0 with
    process 1's part added: the table process 0 returns."""
    handed = []
    modules = (ablation, profile, deletion)

    def as_rank(rank, gathered):
        monkeypatch.setattr(batches, "processes", lambda: (rank, 2))
        monkeypatch.setattr(ablation, "processes", lambda: (rank, 2))
        for m in modules:
            monkeypatch.setattr(m, "gather", gathered)
        return run()

    as_rank(1, lambda obj: handed.append(obj) or [obj, obj])
    return as_rank(0, lambda obj: [obj, handed.pop(0)])


def test_two_processes_give_the_numbers_of_one(model, raw, masks):
    imgs, labels = raw
    x, y = model.preprocess(imgs), torch.as_tensor(labels)
    cam = torch.rand(N, 4, 4, generator=torch.Generator().manual_seed(2)).clamp_min(0.5)  # many ties
    runs = {
        "sweep": lambda: vn.sweep(model, x, y, batch_size=2),
        "profile": lambda: vn.profile.attention_profile(model, x, masks, batch_size=2),
        "deletion": lambda: vn.evaluate.deletion_study({"m": model}, imgs, {"cam": cam}, steps=3, batch_size=2)[0],
    }
    for name, run in runs.items():
        one = run()
        with pytest.MonkeyPatch.context() as mp:
            two = _two_processes(mp, run)
        num = [c for c in one.columns if one[c].dtype.kind == "f"]
        _same(two, one, num)
        assert two.attrs["processes"] == 2 and one.attrs["processes"] == 1, name
        assert (two.attrs.get("n") or two.attrs["images"]) == N, name
