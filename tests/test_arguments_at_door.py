"""Arguments checked at the door (issue 26, item 5): every bad argument of the tester's battery gets a
one-line error that names the problem and the fix, before any work or any file is written, and every
reasonable one (a numpy integer or a whole float as an index, a datasets column, a class name) is taken
as what it obviously means."""

import datasets
import numpy as np
import pytest
import torch
from conftest import make_vit
from PIL import Image

import vitnotes as vn
from vitnotes import train
from vitnotes.core.model import geometry
from vitnotes.methods.flow import attention_flow
from vitnotes.methods.gradcam import gradcam
from vitnotes.methods.gradient_rollout import gradient_rollout
from vitnotes.methods.legrad import legrad
from vitnotes.methods.occlusion import occlusion
from vitnotes.methods.random_map import random_map
from vitnotes.methods.rollout import rollout
from vitnotes.methods.value_weighted import value_weighted
from vitnotes.train import __main__ as train_cli

LABELS = ["tabby, tabby cat", "Sneaker", "c2", "Bag", "c4"]
ID2LABEL = dict(enumerate(LABELS))
PRE = vn.core.Preprocessing(size=16, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), channels=3)
GREY = vn.core.Preprocessing(size=16, mean=(0.5,), std=(0.25,), channels=1)


def one_line(err: pytest.ExceptionInfo) -> str:
    """The error's message, checked to be a single line."""
    msg = str(err.value)
    assert "\n" not in msg and msg, msg
    return msg


@pytest.fixture(scope="module")
def model():
    net = make_vit("sdpa", id2label=ID2LABEL, label2id={v: k for k, v in ID2LABEL.items()})
    return vn.core.Model(net, geometry(net), list(LABELS), PRE, name="tiny-vit")


@pytest.fixture(scope="module")
def grey():
    net = make_vit("sdpa", num_channels=1)
    return vn.core.Model(net, geometry(net), [f"c{i}" for i in range(5)], GREY, name="grey-vit")


@pytest.fixture(scope="module")
def x():
    torch.manual_seed(5)
    return torch.randn(4, 3, 16, 16)


# ------------------------------------------------------------------ A. the training command line
TINY = dict(
    hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, image_size=28, num_channels=1
)


@pytest.fixture
def tiny_recipe(monkeypatch, tmp_path):
    """fmnist-vit-p4 on a tiny ViT, one short stage; $VITNOTES_HOME in tmp_path."""
    r = dict(
        train.RECIPES["fmnist-vit-p4"],
        config=dict(TINY, patch_size=7),
        probe_epochs=[0],
        stages=[dict(epochs=1, lr=1e-3, warmup=0.1, crop_pad=2)],
    )
    monkeypatch.setitem(train.RECIPES, "fmnist-vit-p4", r)
    monkeypatch.setenv("VITNOTES_HOME", str(tmp_path / "home"))
    return tmp_path


def no_run(*_args, **_kwargs):
    raise AssertionError("a training run started")


@pytest.mark.parametrize(
    "args, words",
    [
        (["--limit", "0"], ["--limit", "0 is below 1", "--limit 256"]),
        (["--limit", "-5"], ["--limit", "-5 is below 1"]),
        (["--threads", "-1"], ["--threads", "-1 is below 1", "--threads 4"]),
        (["--threads", "0"], ["--threads", "0 is below 1"]),
        (["--epochs", "0"], ["--epochs", "0 is below 1", "--epochs 2"]),
        (["--epochs", "-2"], ["--epochs", "-2 is below 1"]),
        (["--epochs", "1.5"], ["--epochs", "'1.5' is not a whole number"]),
    ],
)
def test_cli_numbers_are_refused_before_a_run(tiny_recipe, monkeypatch, capsys, args, words):
    """--limit 0 used to start a full run, --threads -1 ended in torch's traceback: both now stop in
    argparse, exit status 2, the error on one line."""
    monkeypatch.setattr(train_cli, "run", no_run)
    threads = torch.get_num_threads()
    with pytest.raises(SystemExit) as err:
        train.main(["fmnist-vit-p4", *args, "--out", str(tiny_recipe / "m")])
    assert err.value.code == 2 and torch.get_num_threads() == threads
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and line.startswith("python -m vitnotes.train: argument "), line
    for word in words:
        assert word in line, line
    assert sorted(p.name for p in tiny_recipe.iterdir()) == []


def test_train_recipe_refuses_limit_zero(tiny_recipe, monkeypatch):
    """The Python API too: limit=0 is no smoke run (it would train on every image)."""
    monkeypatch.setattr(train.loop, "_Run", no_run)
    with pytest.raises(ValueError, match="limit must be a positive int") as err:
        train.train_recipe("fmnist-vit-p4", tiny_recipe / "m", limit=0)
    one_line(err)
    assert sorted(p.name for p in tiny_recipe.iterdir()) == []


def other_model(folder):
    """A model folder of another architecture (3 channels, 16 px, patch 4)."""
    return vn.train.save(make_vit("sdpa", seed=4), folder, preprocessing=PRE)


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda t: t / "missing", ["no such folder"]),
        (lambda t: (t / "empty").mkdir() or t / "empty", ["no saved model", "no config.json"]),
        (lambda t: (t / "notes.txt").write_text("x") and t / "notes.txt", ["a file, not a model folder"]),
        (other_model, ["not a fmnist-vit-p4 network", "weights differ", "(1, 1, 24) there, (1, 1, 16) in the recipe"]),
    ],
    ids=["missing", "empty folder", "a file", "another architecture"],
)
def test_bad_start_from_is_refused_before_any_work(tiny_recipe, capsys, make, words):
    """A bad --start-from is refused in one line, exit status 2, before the work folder is made, the data
    read or a probe run: nothing is left on disk (another architecture used to end in a 63-line
    size-mismatch traceback after the random-init probe)."""
    start = make(tiny_recipe / "start" if make is other_model else tiny_recipe)
    before, _ = sorted(p.name for p in tiny_recipe.iterdir()), capsys.readouterr()
    args = ["fmnist-vit-p4", "--limit", "64", "--threads", "1", "--out", str(tiny_recipe / "m")]
    assert train.main([*args, "--start-from", str(start)]) == 2
    out = capsys.readouterr()
    line = out.err.strip().splitlines()[-1]  # (after transformers' progress bar, when a model loaded)
    assert "Traceback" not in out.err and line.startswith("python -m vitnotes.train fmnist-vit-p4: "), out.err
    for word in words:
        assert word in line, line
    assert "probe" not in out.out
    assert sorted(p.name for p in tiny_recipe.iterdir()) == before  # no .m.work, no m, no $VITNOTES_HOME


def test_start_from_is_not_for_hub_recipes(tiny_recipe, monkeypatch, capsys):
    monkeypatch.setattr(train_cli, "run", no_run)
    start = other_model(tiny_recipe / "start")
    assert train.main(["spectro-vit-b16", "--out", str(tiny_recipe / "m"), "--start-from", str(start)]) == 2
    assert "--start-from applies to the zoo's recipes" in capsys.readouterr().err


# ------------------------------------------------------------------ B. indices and sizes
WHOLE = [np.int64(1), np.int32(1), 1.0, np.float32(1.0), torch.tensor(1)]


@pytest.mark.parametrize("one", WHOLE, ids=lambda v: type(v).__name__)
def test_whole_numbers_are_indices(model, x, one):
    """A numpy integer or a whole float is taken as that int wherever a layer, head or token index is."""
    att = vn.capture(model, x)
    assert vn.capture(model, x, layers=one).layers == [1]
    assert vn.capture(model, x, layers=[one, 0]).layers == [1, 0]
    assert torch.equal(att.get(one, one), att.get(1, 1))
    assert torch.equal(legrad(model, x, layers=one), legrad(model, x, layers=1))
    assert torch.equal(vn.explain(model, x, "legrad", layers=[one]), legrad(model, x, layers=[1]))
    assert torch.equal(value_weighted(model, x, layer=one), value_weighted(model, x, layer=1))
    assert torch.equal(gradcam(model, x, layer=one), gradcam(model, x, layer=1))
    assert torch.equal(gradient_rollout(model, x, start_layer=one), gradient_rollout(model, x, start_layer=1))
    assert torch.equal(rollout(att, start_layer=one, end_layer=one * 2), rollout(att, start_layer=1, end_layer=2))
    assert torch.equal(attention_flow(att, query=one - 1), attention_flow(att, query=0))
    assert torch.equal(vn.profile.query_grids(att, one, one), vn.profile.query_grids(att, 1, 1))
    want = model.predict(x)
    for heads in ([(one, one)], (one, one), {one: one}, {one: [one, 0]}):
        with vn.ablate(model, heads):
            assert not torch.equal(model.predict(x), want)
    swept = vn.sweep(model, x, [0, 1, 2, 3], heads=[(one, one)])
    assert list(swept["layer"]) == [1] and list(swept["head"]) == [1]
    assert vn.interventions.randomized(model, one).net is not model.net
    assert torch.equal(occlusion(model, x, patch=one * 8), occlusion(model, x, patch=8))


@pytest.mark.parametrize(
    "call",
    [
        lambda m, x: vn.capture(m, x, layers=2.5),
        lambda m, x: vn.capture(m, x, layers=[0, 2.5]),
        lambda m, x: legrad(m, x, layers=2.5),
        lambda m, x: vn.explain(m, x, "legrad", layers=[2.5]),
        lambda m, x: value_weighted(m, x, layer=2.5),
        lambda m, x: gradcam(m, x, layer=2.5),
        lambda m, x: vn.capture(m, x).get(0, 2.5),
        lambda m, x: rollout(vn.capture(m, x), start_layer=0.5),
        lambda m, x: attention_flow(vn.capture(m, x), query=0.5),
        lambda m, x: vn.ablate(m, {0: 2.5}).__enter__(),
        lambda m, x: vn.ablate(m, (0, 2.5)).__enter__(),
        lambda m, x: vn.interventions.randomized(m, 2.5),
        lambda m, x: vn.sweep(m, x, [0, 1, 2, 3], heads=[(2.5, 0)]),
    ],
)
def test_fractional_indices_are_refused_in_one_line(model, x, call):
    with pytest.raises(TypeError, match="must be a whole number") as err:
        call(model, x)
    assert "2.5" in one_line(err) or "0.5" in one_line(err)


RAW = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
MAPS = torch.rand(4, 4, 4, generator=torch.Generator().manual_seed(0))
BATCHED = {
    "predict": lambda m, x, b: m.predict(x, batch_size=b),
    "capture": lambda m, x, b: vn.capture(m, x, batch_size=b),
    "legrad": lambda m, x, b: legrad(m, x, batch_size=b),
    "explain": lambda m, x, b: vn.explain(m, x, "rollout", batch_size=b),
    "attention_distances": lambda m, x, b: vn.attention_distances(m, x, batch_size=b),
    "attention_profile": lambda m, x, b: vn.profile.attention_profile(m, x, batch_size=b),
    "cls_summary": lambda m, x, b: vn.cls_summary(vn.capture(m, x), batch_size=b),
    "image_profile": lambda m, x, b: vn.evaluate.image_profile(m, x, batch_size=b),
    "evaluate_loss": lambda m, x, b: vn.interventions.evaluate_loss(m, x, [0, 1, 2, 3], batch_size=b),
    "head_means": lambda m, x, b: vn.interventions.head_means(m, x, batch_size=b),
    "sweep": lambda m, x, b: vn.sweep(m, x, [0, 1, 2, 3], heads=[(0, 0)], batch_size=b),
    "attribution_patching": lambda m, x, b: vn.interventions.attribution_patching(m, x, [0, 1, 2, 3], batch_size=b),
    "explanation_maps": lambda m, x, b: vn.evaluate.explanation_maps(m, x, batch_size=b),
    "cascading_randomization": lambda m, x, b: vn.evaluate.cascading_randomization(m, x, from_layers=[3], batch_size=b),
    "logit_lens": lambda m, x, b: vn.logit_lens(m, x, [0, 1, 2, 3], n_boot=10, batch_size=b),
    "representations": lambda m, x, b: vn.representations(m, x, batch_size=b),
    "token_norms": lambda m, x, b: vn.evaluate.token_norms(m, x, batch_size=b),
    "timed_predict": lambda m, x, b: vn.evaluate.timed_predict(m, x, batch_size=b),
    "predict_with_attention": lambda m, x, b: vn.predict_with_attention(m, x, batch_size=b),
    "random_map": lambda m, x, b: random_map(m, x, batch_size=b),
    "deletion_curve": lambda m, x, b: vn.evaluate.deletion_curve(m, RAW, MAPS, steps=2, batch_size=b),
    "deletion_study": lambda m, x, b: vn.evaluate.deletion_study({"m": m}, RAW, {"r": MAPS}, batch_size=b),
    "perturbation_curves": lambda m, x, b: vn.evaluate.perturbation_curves(m, RAW, MAPS, steps=2, batch_size=b),
}


@pytest.mark.parametrize("name", sorted(BATCHED))
def test_batch_size_below_one_is_refused_everywhere(model, x, name):
    """batch_size=0 or -1 used to reach torch's split (a RuntimeError), or to be ignored."""
    for bad in (0, -1):
        with pytest.raises(ValueError, match="batch_size must be a positive int") as err:
            BATCHED[name](model, x, bad)
        one_line(err)
    with pytest.raises(TypeError, match="batch_size must be a whole number") as err:
        BATCHED[name](model, x, 2.5)
    one_line(err)


@pytest.mark.parametrize("name", ["predict", "capture", "sweep", "head_means", "representations", "deletion_curve"])
def test_batch_size_as_a_numpy_int_or_whole_float(model, x, name):
    want = BATCHED[name](model, x, 2)
    for size in (np.int64(2), 2.0):
        got = BATCHED[name](model, x, size)
        if isinstance(want, vn.core.Attention):
            assert torch.equal(got.probs, want.probs)
        elif isinstance(want, torch.Tensor):
            assert torch.equal(got, want)
        elif isinstance(want, tuple):
            assert torch.equal(got[0], want[0])
        elif isinstance(want, dict):
            assert all(torch.equal(got[k], want[k]) for k in want)
        else:
            assert got.equals(want)


# ------------------------------------------------------------------ C. images
def test_preprocess_of_nothing_says_what_it_takes():
    for bad in (None, 5):
        with pytest.raises(TypeError, match="preprocess takes images: a PIL image, a numpy array") as err:
            PRE(bad)
        assert repr(bad) in one_line(err)


def test_lazily_opened_truncated_image_is_named(tmp_path):
    path = tmp_path / "cut.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    for images in (Image.open(path), [Image.open(path)]):  # lazily opened: the pixels are read on first use
        with pytest.raises(ValueError, match="corrupt or truncated") as err:
            PRE(images)
        assert str(path) in one_line(err) and "image 0" in one_line(err)


def test_grey_batch_without_channel_axis_gets_advice_that_works(grey):
    x = torch.randn(4, 16, 16)
    with pytest.raises(ValueError, match=r"for 4 grey images use x\[:, None\]") as err:
        grey.predict(x)
    one_line(err)
    assert grey.predict(x[:, None]).shape == (4, 5)  # the advice, followed
    with pytest.raises(ValueError, match=r"x\[None\]"):
        grey.predict(x[:1])  # one grey image: [1, H, W]
    assert grey.predict(x[:1][None]).shape == (1, 5)


def test_colour_model_given_a_3d_tensor(model):
    with pytest.raises(ValueError, match=r"for one image of 3 channels use x\[None\]"):
        model.predict(torch.randn(3, 16, 16))
    raw = torch.rand(5, 16, 16)  # five raw grey images in 0..1, no channel axis
    with pytest.raises(ValueError, match=r"model.preprocess\(list\(x\)\)") as err:
        model.predict(raw)
    one_line(err)
    assert model.predict(model.preprocess(list(raw))).shape == (5, 5)  # the advice, followed


# ------------------------------------------------------------------ D. datasets inputs
@pytest.fixture(scope="module")
def arrays():
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8), rng.integers(0, 256, (4, 16, 16), dtype=np.uint8)


def image_dataset(images):
    return datasets.Dataset.from_dict(
        {"image": [Image.fromarray(a) for a in images], "label": [0, 1, 2, 3]}
    ).cast_column("image", datasets.Image())


def array_datasets(images):
    """The same images as lists, as an Array2D / Array3D feature, and in numpy and torch formats."""
    plain = datasets.Dataset.from_dict({"image": [a.tolist() for a in images], "label": [0, 1, 2, 3]})
    kind = datasets.Array2D if images.ndim == 3 else datasets.Array3D
    typed = plain.cast_column("image", kind(shape=images.shape[1:], dtype="uint8"))
    pictures = image_dataset(images)
    return {
        "lists": plain,
        kind.__name__: typed,
        f"{kind.__name__} numpy": typed.with_format("numpy"),
        f"{kind.__name__} torch": typed.with_format("torch"),
        "Image numpy": pictures.with_format("numpy"),
        "Image torch": pictures.with_format("torch"),
    }


def test_datasets_of_arrays_are_analysed_as_their_images(model, grey, arrays):
    for m, images in ((model, arrays[0]), (grey, arrays[1])):
        reference = image_dataset(images)
        want_x = m.preprocess(reference["image"])
        want = vn.sweep(m, reference, heads=[(0, 0), (1, 1)])
        profile = vn.profile.attention_profile(m, reference)
        for name, ds in array_datasets(images).items():
            assert torch.equal(m.preprocess(ds["image"]), want_x), name
            assert vn.sweep(m, ds, heads=[(0, 0), (1, 1)]).equals(want), name
            assert vn.profile.attention_profile(m, ds).equals(profile), name


def test_deletion_study_on_a_dataset_of_arrays(model, arrays):
    reference = image_dataset(arrays[0])
    maps = {"r": vn.evaluate.random_maps(4, 16)}
    want = vn.evaluate.deletion_study({"m": model}, reference, maps, steps=2)
    for name, ds in array_datasets(arrays[0]).items():
        got = vn.evaluate.deletion_study({"m": model}, ds, maps, steps=2)
        assert got[0].equals(want[0]) and got[1].equals(want[1]), name


def test_integer_arrays_beyond_eight_bits_are_refused():
    with pytest.raises(ValueError, match="0..255") as err:
        PRE(np.full((8, 8), 300, dtype=np.int64))
    one_line(err)


def test_a_label_column_is_taken_as_targets(model, x, arrays):
    """ds["label"] (a datasets Column) is taken wherever targets are, as preprocess takes ds["image"]."""
    column = image_dataset(arrays[0])["label"]
    if int(datasets.__version__.split(".")[0]) >= 4:  # datasets 3 returns a list (constraints-min.txt)
        assert not isinstance(column, (list, tuple, np.ndarray, torch.Tensor))
    labels = [0, 1, 2, 3]
    assert vn.sweep(model, x, column, heads=[(0, 0)]).equals(vn.sweep(model, x, labels, heads=[(0, 0)]))
    assert vn.interventions.evaluate_loss(model, x, column) == vn.interventions.evaluate_loss(model, x, labels)
    assert torch.equal(
        vn.interventions.attribution_patching(model, x, column), vn.interventions.attribution_patching(model, x, labels)
    )
    assert torch.equal(
        vn.explain(model, x, "legrad", target=column, batch_size=2), vn.explain(model, x, "legrad", target=labels)
    )


# ------------------------------------------------------------------ E. class names
def test_sweep_takes_class_names_as_explain_does(model, x):
    names = ["Bag", "c2", "sneaker", "tabby cat"]  # exact, case-insensitive, one of a label's names
    by_index = vn.sweep(model, x, [3, 2, 1, 0], heads=[(0, 0), (2, 3)])
    assert vn.sweep(model, x, names, heads=[(0, 0), (2, 3)]).equals(by_index)
    assert vn.sweep(model, x, np.array(names), heads=[(0, 0), (2, 3)]).equals(by_index)
    assert vn.interventions.evaluate_loss(model, x, names) == vn.interventions.evaluate_loss(model, x, [3, 2, 1, 0])
    assert torch.equal(
        vn.interventions.attribution_patching(model, x, names),
        vn.interventions.attribution_patching(model, x, [3, 2, 1, 0]),
    )
    with pytest.raises(ValueError, match="'Kitten' is not a class of this model") as err:
        vn.sweep(model, x, ["Bag", "c2", "Kitten", "c4"])
    one_line(err)


def test_sweep_of_a_dataset_with_class_name_labels(model, arrays):
    ds = image_dataset(arrays[0])
    named = ds.map(lambda e: {"name": LABELS[e["label"]]})
    assert vn.sweep(model, named, "name", heads=[(1, 2)]).equals(vn.sweep(model, ds, heads=[(1, 2)]))


def test_an_integer_tensor_is_a_batch_of_pixels_a_float_one_is_refused():
    """datasets 3's torch format hands a column of images back as one uint8 tensor [N, H, W, C]."""
    batch = np.random.default_rng(0).integers(0, 256, size=(3, 10, 12, 3), dtype=np.uint8)
    assert torch.equal(PRE(torch.from_numpy(batch)), PRE(list(batch)))
    with pytest.raises(TypeError, match="pixel_values already") as err:
        PRE(torch.rand(3, 3, 10, 12))
    one_line(err)
