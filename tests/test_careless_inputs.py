"""Real users' inputs, as a careless user gives them: photos straight from a phone camera, models
left in training mode, classes in whatever type the user holds them. Each gets the correct result,
checked against an independent computation (a hand formula, numpy's rotation, PIL's own
compositing, the same call with a plain int or in evaluation mode), or one clear error raised by
vitnotes that names the problem and the fix."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_vit
from PIL import Image, ImageOps

import vitnotes as vn
from vitnotes import cli
from vitnotes.core.images import as_shown
from vitnotes.core.model import geometry
from vitnotes.methods import registered

LABELS = ["tabby, tabby cat", "Sneaker", "c2", "Bag", "c4"]
ID2LABEL = dict(enumerate(LABELS))
PRE = vn.core.Preprocessing(size=16, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), channels=3)
GREY = vn.core.Preprocessing(size=16, mean=(0.5,), std=(0.25,), channels=1)
MODEL_METHODS = [n for n in vn.methods("vit") if registered(n).takes_model]
CLASS_METHODS = [n for n in MODEL_METHODS if registered(n).class_specific]


def dropout_model(seed: int = 0) -> vn.core.Model:
    net = make_vit(
        "sdpa",
        seed=seed,
        hidden_dropout_prob=0.3,
        attention_probs_dropout_prob=0.3,
        id2label=ID2LABEL,
        label2id={v: k for k, v in ID2LABEL.items()},
    )
    return vn.core.Model(net, geometry(net), list(LABELS), PRE, name="dropout-vit")


@pytest.fixture
def model():
    return dropout_model()


@pytest.fixture
def x():
    torch.manual_seed(5)
    return torch.randn(3, 3, 16, 16)


def modes(net: torch.nn.Module) -> list[bool]:
    return [m.training for m in net.modules()]


def user_left_in_training(net: torch.nn.Module) -> list[bool]:
    """Training mode, with one submodule in evaluation mode (a user's frozen part): the mix to restore."""
    net.train()
    list(net.modules())[2].eval()
    return modes(net)


# ------------------------------------------------------------------ models left in training mode
@pytest.mark.parametrize("method", MODEL_METHODS)
def test_training_mode_gives_evaluation_results_and_stays(model, x, method):
    model.net.eval()
    torch.manual_seed(0)
    want = vn.explain(model, x, method)
    before = user_left_in_training(model.net)
    assert any(before) and not all(before)
    torch.manual_seed(0)
    got = vn.explain(model, x, method)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert modes(model.net) == before


def test_training_mode_capture_predict_and_patching(model, x):
    model.net.eval()
    att, logits = vn.capture(model, x), model.predict(x)
    patched = vn.interventions.attribution_patching(model, x, [0, 1, 2])
    before = user_left_in_training(model.net)
    torch.testing.assert_close(vn.capture(model, x).probs, att.probs, rtol=0, atol=0)
    torch.testing.assert_close(model.predict(x), logits, rtol=0, atol=0)
    torch.testing.assert_close(vn.interventions.attribution_patching(model, x, [0, 1, 2]), patched, rtol=0, atol=0)
    assert modes(model.net) == before


def test_training_mode_cnn_keeps_its_batch_norm_statistics(resnet, x):
    """Grad-CAM on a ResNet left in training mode: eval-mode maps, running statistics untouched."""
    want = vn.explain(resnet, x, "grad-cam")
    stats = {k: v.clone() for k, v in resnet.state_dict().items() if "running" in k}
    resnet.train()
    torch.testing.assert_close(vn.explain(resnet, x, "grad-cam"), want, rtol=0, atol=0)
    assert resnet.training
    for k, v in resnet.state_dict().items():
        if "running" in k:
            assert torch.equal(v, stats[k]), k


def test_training_mode_naive_sweep(model, x):
    model.net.eval()
    want = vn.sweep(model, x, [0, 1, 2], method="naive")
    before = user_left_in_training(model.net)
    got = vn.sweep(model, x, [0, 1, 2], method="naive")
    np.testing.assert_array_equal(got["loss"].to_numpy(), want["loss"].to_numpy())
    assert modes(model.net) == before


def test_training_mode_fast_sweep(model, x):
    model.net.eval()
    want = vn.sweep(model, x, [0, 1, 2])
    model.net.train()
    np.testing.assert_array_equal(vn.sweep(model, x, [0, 1, 2])["loss"].to_numpy(), want["loss"].to_numpy())


# ------------------------------------------------------------------ targets in whatever type the user has
SAME_AS_2 = {
    "numpy int64": np.int64(2),
    "numpy 0-d array": np.array(2),
    "0-d tensor": torch.tensor(2),
    "list of one": [2],
}
NAMES = {  # (target, the class index it names)
    "exact label": ("Sneaker", 1),
    "any case": ("sNEAKER ", 1),
    "one of a label's names": ("Tabby Cat", 0),
    "digits naming no class": ("3", 3),
}


@pytest.mark.parametrize("method", CLASS_METHODS)
def test_target_types_give_the_int_result(model, x, method):
    want = vn.explain(model, x, method, target=2)
    for what, target in SAME_AS_2.items():
        torch.testing.assert_close(vn.explain(model, x, method, target=target), want, rtol=0, atol=0, msg=what)
    per_image = vn.explain(model, x, method, target=[2, 0, 3])
    for what, target in {
        "numpy int64 array": np.array([2, 0, 3], dtype=np.int64),
        "int tensor": torch.tensor([2, 0, 3]),
        "list of numpy ints and 0-d tensors": [np.int64(2), torch.tensor(0), np.int32(3)],
    }.items():
        torch.testing.assert_close(vn.explain(model, x, method, target=target), per_image, rtol=0, atol=0, msg=what)


@pytest.mark.parametrize("method", CLASS_METHODS)
def test_class_names_give_the_index_result(model, x, method):
    for what, (name, index) in NAMES.items():
        want = vn.explain(model, x, method, target=index)
        torch.testing.assert_close(vn.explain(model, x, method, target=name), want, rtol=0, atol=0, msg=what)
    got = vn.explain(model, x, method, target=["Bag", 1, "TABBY"])  # names and indices mixed, one per image
    torch.testing.assert_close(got, vn.explain(model, x, method, target=[3, 1, 0]), rtol=0, atol=0)


BAD_TARGETS = {  # target: (error type, words the message must hold)
    "float": (2.0, TypeError, ["2.0", "float", "class index"]),
    "numpy float": (np.float32(2), TypeError, ["float", "class index"]),
    "float tensor": (torch.tensor(2.0), TypeError, ["float", "class index"]),
    "bool": (True, TypeError, ["bool", "class index"]),
    "negative": (-1, ValueError, ["-1", "negative", "0..4"]),
    "ignore index": (-100, ValueError, ["-100", "negative", "skip"]),
    "one past the end": (5, ValueError, ["5", "out of range", "0..4"]),
    "far out of range": (np.int64(1000), ValueError, ["1000", "out of range", "5 classes"]),
    "unknown name": ("zebra", ValueError, ["zebra", "not a class", "Sneaker"]),
    "two for three images": ([0, 1], ValueError, ["2 entries", "batch of 3", "one per image"]),
    "a dict": ({"class": 1}, TypeError, ["dict", "class index"]),
}


@pytest.mark.parametrize("case", sorted(BAD_TARGETS))
@pytest.mark.parametrize("method", ["gradient rollout", "grad-cam", "legrad", "occlusion"])
def test_bad_targets_are_refused_with_the_fix(model, x, method, case):
    target, kind, words = BAD_TARGETS[case]
    with pytest.raises(kind) as err:
        vn.explain(model, x, method, target=target)
    for word in words:
        assert word in str(err.value), (case, str(err.value))
    assert "vitnotes" in str(err.traceback[-1].path), "raised deep inside a library, not by vitnotes' check"


def test_out_of_range_is_an_index_error_too(model, x):
    with pytest.raises(IndexError, match="out of range"):
        vn.explain(model, x, "legrad", target=9)


def test_sweep_labels_in_the_users_types(model, x):
    want = vn.sweep(model, x, [2, 0, 3])
    for labels in (np.array([2, 0, 3]), torch.tensor([2, 0, 3]), [np.int64(2), torch.tensor(0), 3]):
        np.testing.assert_array_equal(vn.sweep(model, x, labels)["loss"].to_numpy(), want["loss"].to_numpy())
    for labels, kind, words in (
        ([2, 0, 5], ValueError, ["5", "out of range", "5 classes"]),
        ([2, 0, -100], ValueError, ["-100", "negative"]),
        ([2.0, 0.0, 3.0], TypeError, ["integer class indices", "loss='mse'"]),
        (torch.tensor([2.0, 0.0, 3.0]), TypeError, ["integer class indices"]),
        (["Bag", "c2", "Kitten"], ValueError, ["'Kitten'", "not a class of this model"]),
        (2, ValueError, ["1 targets for 3 images"]),
    ):
        with pytest.raises(kind) as err:
            vn.sweep(model, x, labels)
        for word in words:
            assert word in str(err.value), (labels, str(err.value))


# ------------------------------------------------------------------ photos as they come off a phone
def quadrants(h: int, w: int) -> np.ndarray:
    """An RGB image whose four quadrants have four colours: any rotation or flip shows."""
    img = np.empty((h, w, 3), np.uint8)
    img[: h // 2, : w // 2] = (220, 30, 30)
    img[: h // 2, w // 2 :] = (30, 200, 40)
    img[h // 2 :, : w // 2] = (20, 40, 210)
    img[h // 2 :, w // 2 :] = (240, 230, 20)
    return img


def save_with_orientation(path: Path, pixels: np.ndarray, orientation: int) -> Path:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, quality=90, exif=exif.tobytes())
    return path


def test_phone_photo_is_turned_upright(tmp_path):
    """A 4032x3024 JPEG stored sideways with EXIF orientation 6 (rotate 90 degrees clockwise to view)."""
    path = save_with_orientation(tmp_path / "IMG_0001.JPG", quadrants(3024, 4032), 6)
    stored = np.asarray(Image.open(path))  # the pixels as the file holds them, [3024, 4032, 3]
    upright = np.rot90(stored, k=-1)  # numpy's clockwise rotation: what a viewer shows
    shown = vn.core.open_image(path)
    assert shown.size == (3024, 4032) and shown.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(shown), upright)
    want = PRE(np.ascontiguousarray(upright))
    for given in (path, str(path), Image.open(path), ImageOps.exif_transpose(Image.open(path))):
        torch.testing.assert_close(PRE(given), want, rtol=0, atol=0)  # never turned twice


@pytest.mark.parametrize(("orientation", "turn"), [(3, lambda a: np.rot90(a, 2)), (8, lambda a: np.rot90(a, 1))])
def test_other_orientations(tmp_path, orientation, turn):
    path = save_with_orientation(tmp_path / "p.jpg", quadrants(30, 40), orientation)
    np.testing.assert_array_equal(np.asarray(vn.core.open_image(path)), turn(np.asarray(Image.open(path))))


def test_cmyk_jpeg_is_converted_to_rgb(tmp_path):
    c, m, y, k = 0, 128, 255, 64
    Image.new("CMYK", (64, 48), (c, m, y, k)).save(tmp_path / "print.jpg", quality=95)
    rgb = np.asarray(vn.core.open_image(tmp_path / "print.jpg")).astype(float)
    want = [(255 - v) * (255 - k) / 255 for v in (c, m, y)]  # the uncalibrated CMYK -> RGB formula
    np.testing.assert_allclose(rgb.reshape(-1, 3).mean(0), want, atol=3)


def test_transparent_png_is_composited_onto_white(tmp_path):
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (20, 24, 4), dtype=np.uint8)
    rgba[0, 0, 3], rgba[0, 1, 3] = 0, 255  # one fully transparent and one opaque pixel
    Image.fromarray(rgba).save(tmp_path / "logo.png")
    white = Image.new("RGBA", (24, 20), (255, 255, 255, 255))
    want = np.asarray(Image.alpha_composite(white, Image.fromarray(rgba)).convert("RGB")).astype(int)
    for given in (vn.core.open_image(tmp_path / "logo.png"), as_shown(Image.fromarray(rgba))):
        got = np.asarray(given).astype(int)
        assert given.mode == "RGB" and np.abs(got - want).max() <= 1
        assert tuple(got[0, 0]) == (255, 255, 255) and tuple(got[0, 1]) == tuple(rgba[0, 1, :3])


def test_palette_png_with_and_without_transparency(tmp_path):
    idx = np.arange(12 * 16).reshape(12, 16) % 7
    palette = np.random.default_rng(1).integers(0, 256, (7, 3), dtype=np.uint8)
    img = Image.fromarray(idx.astype(np.uint8), "P")
    img.putpalette(palette.flatten().tolist())
    img.save(tmp_path / "gif-like.png")
    np.testing.assert_array_equal(np.asarray(vn.core.open_image(tmp_path / "gif-like.png")), palette[idx])
    img.save(tmp_path / "clear.png", transparency=3)  # palette entry 3 is see-through
    want = palette[idx].copy()
    want[idx == 3] = 255
    np.testing.assert_array_equal(np.asarray(vn.core.open_image(tmp_path / "clear.png")), want)


def test_16_bit_grey_png_is_scaled_to_8_bits(tmp_path):
    a = (np.arange(30 * 20).reshape(30, 20) * 109).astype(np.uint16)
    a[0, 0], a[0, 1] = 0, 65535
    Image.fromarray(a).save(tmp_path / "scan.png")
    shown = vn.core.open_image(tmp_path / "scan.png")
    assert shown.mode == "L"
    got = np.asarray(shown)
    np.testing.assert_array_equal(got, np.floor(a / 257 + 0.5).astype(np.uint8))
    assert got[0, 0] == 0 and got[0, 1] == 255
    torch.testing.assert_close(PRE(tmp_path / "scan.png"), PRE(np.repeat(got[..., None], 3, -1)), rtol=0, atol=0)


def test_grey_to_colour_model_and_colour_to_grey_model():
    rng = np.random.default_rng(2)
    grey = rng.integers(0, 256, (16, 16), dtype=np.uint8)
    torch.testing.assert_close(PRE(Image.fromarray(grey)), PRE(np.stack([grey] * 3, -1)), rtol=0, atol=0)
    rgb = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    luma = rgb @ np.array([0.299, 0.587, 0.114])  # ITU-R 601-2, PIL's "L"
    want = (luma / 255 - 0.5) / 0.25
    got = GREY(Image.fromarray(rgb))[0, 0].numpy()
    assert np.abs(got - want).max() <= 1.01 / 255 / 0.25  # PIL rounds to whole grey levels


def test_modes_with_no_fixed_range_are_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"mode 'F'.*floats in \[0, 1\]"):
        PRE(Image.fromarray(np.full((8, 8), 3.5, np.float32)))
    with pytest.raises(ValueError, match=r"not 16-bit grey.*floats in \[0, 1\]"):
        PRE(Image.fromarray(np.full((8, 8), 70000, np.int32)))


def test_one_bit_and_grey_alpha(tmp_path):
    bits = np.zeros((8, 8), bool)
    bits[2:5, 3:6] = True
    assert np.array_equal(np.asarray(as_shown(Image.fromarray(bits))), bits.astype(np.uint8) * 255)
    la = np.stack([np.full((4, 4), 100, np.uint8), np.full((4, 4), 51, np.uint8)], -1)  # alpha 0.2
    got = as_shown(Image.fromarray(la, "LA"))
    assert got.mode == "L" and np.all(np.asarray(got) == round(100 * 0.2 + 255 * 0.8))


def test_cli_explains_phone_photos_and_named_targets(vit_folder, tmp_path, capsys):
    files = [save_with_orientation(tmp_path / "IMG_0002.JPG", quadrants(300, 400), 6)]
    Image.new("CMYK", (40, 30), (10, 200, 30, 0)).save(tmp_path / "cmyk.jpg")
    Image.fromarray(np.full((30, 40, 4), 128, np.uint8)).save(tmp_path / "alpha.png")
    Image.fromarray((np.arange(1200).reshape(30, 40) * 50).astype(np.uint16)).save(tmp_path / "deep.png")
    files += [tmp_path / "cmyk.jpg", tmp_path / "alpha.png", tmp_path / "deep.png"]
    out = tmp_path / "maps"
    argv = ["explain", *map(str, files), "--model", str(vit_folder), "--method", "grad-cam", "--out", str(out)]
    assert cli.main([*argv, "--target", "C2"]) == 0
    record = json.loads((out / "IMG_0002.json").read_text())
    assert record["target"] == {"index": 2, "label": "c2"}
    model = vn.load(str(vit_folder))
    heat = vn.explain(model, model.preprocess(files[0]), "grad-cam", target=2)[0].double()
    np.testing.assert_allclose(np.asarray(record["map"]["values"]), heat.numpy(), rtol=1e-6, atol=1e-9)
    for target, words in (("2.5", ["2.5", "not a class"]), ("-1", ["negative"]), ("9", ["out of range"])):
        capsys.readouterr()
        assert cli.main([*argv, "--target", target]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
        for word in words:
            assert word in err, (target, err)
