"""Bad input to every public function raises a clear error that names the fix."""

import numpy as np
import torch
from conftest import vitnotes_hooks
from PIL import Image

import vitnotes as vn
from vitnotes.core import Preprocessing, images
from vitnotes.methods.flow import attention_flow
from vitnotes.methods.gradcam import gradcam
from vitnotes.methods.gradient_rollout import gradient_rollout
from vitnotes.methods.rollout import rollout

PRE = Preprocessing(size=16, mean=(0.5,) * 3, std=(0.5,) * 3, channels=3)
X = torch.randn(2, 3, 16, 16)


def cases(vit, resnet):
    att = vn.capture(vit, X)
    cls = vn.capture(vit, X, cls_only=True)
    nan = X.clone()
    nan[0, 0, 0, 0] = float("nan")
    return [
        # (what, call, exception, message fragment)
        ("CNN where a ViT is needed", lambda: vn.capture(resnet, X), TypeError, "'grad-cam'"),
        ("CNN to rollout by gradient", lambda: gradient_rollout(resnet, X), TypeError, "ViT-family"),
        ("CNN to ablate", lambda: vn.ablate(resnet, [(0, 0)]).__enter__(), TypeError, "ViT-family"),
        ("no batch dimension", lambda: vn.capture(vit, X[0]), ValueError, "x[None]"),
        ("five dimensions", lambda: vn.capture(vit, X[None]), ValueError, "4 dimensions"),
        ("empty batch", lambda: vn.capture(vit, X[:0]), ValueError, "at least one"),
        ("empty batch to gradcam", lambda: gradcam(resnet, X[:0]), ValueError, "at least one"),
        ("integer pixels", lambda: vn.capture(vit, (X * 100).long()), TypeError, "model.preprocess"),
        ("wrong channels", lambda: vn.capture(vit, X[:, :1]), ValueError, "expects 3"),
        ("not a patch multiple", lambda: vn.capture(vit, torch.randn(1, 3, 18, 16)), ValueError, "multiple of 4"),
        ("NaN pixels", lambda: vn.capture(vit, nan), ValueError, "NaN"),
        ("numpy pixel_values", lambda: vn.capture(vit, X.numpy()), TypeError, "model.preprocess"),
        ("layer out of range", lambda: vn.capture(vit, X, layers=[3]), IndexError, "0..2"),
        ("negative layer out of range", lambda: att.get(-4), IndexError, "-1..-3"),
        ("layer not an int", lambda: vn.capture(vit, X, layers=[1.5]), TypeError, "int"),
        ("head out of range", lambda: att.get(0, 4), IndexError, "0..3"),
        ("head out of range in cls_grid", lambda: cls.cls_grid(0, -5), IndexError, "4 heads"),
        ("empty layer list", lambda: vn.capture(vit, X, layers=[]), ValueError, "None for all"),
        ("batch size zero", lambda: vn.capture(vit, X, batch_size=0), ValueError, ">= 1"),
        ("rollout of CLS rows", lambda: rollout(cls), ValueError, "cls_only=False"),
        (
            "rollout of a gapped capture",
            lambda: rollout(vn.capture(vit, X, layers=[0, 2])),
            ValueError,
            "consecutive",
        ),
        (
            "rollout of a 4-d tensor",
            lambda: rollout(torch.rand(2, 2, 5, 5)),
            ValueError,
            "[layer, batch, head, T, T]",
        ),
        ("rollout head fusion", lambda: rollout(att, head_fusion="median"), ValueError, "mean"),
        ("rollout discard ratio", lambda: rollout(att, discard_ratio=1.0), ValueError, "[0, 1)"),
        ("rollout start layer", lambda: rollout(att, start_layer=5), IndexError, "start_layer"),
        ("rollout residual", lambda: rollout(att, residual=2), ValueError, "residual"),
        ("flow query token", lambda: attention_flow(att, query=99), IndexError, "0..16"),
        ("target class out of range", lambda: gradient_rollout(vit, X, target=7), IndexError, "5 classes"),
        ("targets per image", lambda: gradcam(vit, X, target=[0, 1, 2]), ValueError, "one per image"),
        ("gradcam stage", lambda: gradcam(resnet, X, stage=2), IndexError, "stages"),
        ("gradcam layer", lambda: gradcam(vit, X, layer=-9), IndexError, "layers"),
        ("ablate head range", lambda: vn.ablate(vit, [(0, 4)]).__enter__(), IndexError, "0..3"),
        ("ablate item form", lambda: vn.ablate(vit, [0, 1, 2]).__enter__(), TypeError, "(layer, head) pairs"),
        ("sweep target count", lambda: vn.sweep(vit, X, [0]), ValueError, "one target per image"),
        ("sweep float targets", lambda: vn.sweep(vit, X, [0.5, 1.0]), TypeError, "loss='mse'"),
        (
            "sweep loss name",
            lambda: vn.interventions.evaluate_loss(vit, X, [0, 1], loss="l1"),
            ValueError,
            "'ce', 'mse'",
        ),
        ("not a model", lambda: vn.capture("vit", X), TypeError, "vn.load"),
        # RGBA, palette, CMYK and 16-bit images are converted as a viewer shows them (test_careless_inputs.py)
        ("float image mode", lambda: PRE(Image.new("F", (8, 8))), ValueError, "floats in [0, 1]"),
        ("32-bit grey", lambda: PRE(Image.new("I", (8, 8), 70000)), ValueError, "not 16-bit grey"),
        ("16-bit array", lambda: PRE(np.zeros((8, 8), np.uint16)), TypeError, "65535"),
        ("float above 1", lambda: PRE(np.full((8, 8, 3), 2.0)), ValueError, "arr / 255"),
        ("float NaN image", lambda: PRE(np.full((8, 8), np.nan)), ValueError, "nan_to_num"),
        ("channels-first array", lambda: PRE(np.zeros((3, 8, 8), np.uint8)), ValueError, "transpose"),
        ("four channels", lambda: PRE(np.zeros((8, 8, 4), np.uint8)), ValueError, "arr[..., :3]"),
        ("a missing image file", lambda: PRE("no-such-cat.png"), FileNotFoundError, "no such image file"),
        ("a set, not an image", lambda: PRE([{1, 2}]), TypeError, "image file path"),
        ("inf pixels", lambda: vn.capture(vit, X.masked_fill(X > 1, float("inf"))), ValueError, "NaN or inf"),
        ("float below 0", lambda: PRE(np.full((8, 8), -0.5)), ValueError, "[0, 1]"),
        ("float inf image", lambda: PRE(np.full((8, 8), np.inf)), ValueError, "nan_to_num"),
        ("no spectrograms", lambda: vn.data.spectrograms(0), ValueError, "n=1000"),
        ("no photos", lambda: vn.data.sample_photos(()), ValueError, "names=None"),
        ("no labels to pick from", lambda: vn.data.per_class([], 1), ValueError, "empty"),
        ("sweep of no images", lambda: vn.sweep(vit, X[:0], []), ValueError, "at least one"),
        ("model family", lambda: _with_env("VITNOTES_MODELS", "cloud", vn.family), ValueError, "VITNOTES_MODELS=hub"),
        ("no images", lambda: PRE([]), ValueError, "at least one"),
        ("zero-size image", lambda: PRE(np.zeros((0, 8), np.uint8)), ValueError, "no pixels"),
        ("tensor to preprocess", lambda: PRE(X), TypeError, "pixel_values already"),
        ("negative seed", lambda: vn.setup(seed=-1), ValueError, "non-negative"),
        (
            "one mask per image",
            lambda: vn.stats.mask_mass(att.cls_grid(0), torch.ones(5, 16, 16)),
            ValueError,
            "one mask per image",
        ),
        (
            "strip labels",
            lambda: vn.show.layer_strip(np.zeros((8, 8)), torch.rand(3, 2, 2), labels=["a"]),
            ValueError,
            "one label per map",
        ),
        (
            "picker layer labels",
            lambda: vn.show.head_picker(np.zeros((8, 8)), torch.rand(3, 2, 2, 2), layers=[0]),
            ValueError,
            "layer labels",
        ),
        ("image tensor shape", lambda: vn.show.display_image(X), ValueError, "[C, H, W]"),
        (
            "summary of nothing",
            lambda: vn.by_layer(vn.cls_summary(att).drop(columns="layer")),
            ValueError,
            "'layer' column",
        ),
    ]


def _with_env(name, value, call):
    import os

    old = os.environ.get(name)
    os.environ[name] = value
    try:
        return call()
    finally:
        os.environ.pop(name) if old is None else os.environ.__setitem__(name, old)


def test_every_bad_input_has_a_clear_error(vit, resnet):
    failures = []
    for what, call, exc, fragment in cases(vit, resnet):
        try:
            call()
        except exc as err:
            if fragment not in str(err):
                failures.append(f"{what}: message {str(err)!r} lacks {fragment!r}")
        except Exception as err:  # noqa: BLE001
            failures.append(f"{what}: {type(err).__name__} ({err}) instead of {exc.__name__}")
        else:
            failures.append(f"{what}: no error")
    assert not failures, "\n".join(failures)
    assert not vitnotes_hooks(vit)
    assert vit.config._attn_implementation == "sdpa"


def test_stacked_grey_batch_equals_a_list_of_images():
    grey = Preprocessing(size=8, mean=(0.5,), std=(0.5,), channels=1)
    batch = np.random.default_rng(0).integers(0, 256, (5, 8, 8), dtype=np.uint8)
    x = grey(batch)
    assert x.shape == (5, 1, 8, 8)
    assert torch.equal(x, grey(list(batch)))
    assert grey(batch[..., None]).shape == (5, 1, 8, 8)  # [batch, H, W, 1]


def _files(tmp_path):
    """Image files of every kind a user may hand over: good ones and broken ones."""
    rng = np.random.default_rng(0)
    good = tmp_path / "good.png"
    Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(good)
    jpeg = tmp_path / "photo.jpg"
    Image.fromarray(rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)).save(jpeg, quality=90)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(jpeg.read_bytes()[: len(jpeg.read_bytes()) // 2])
    corrupt = tmp_path / "corrupt.png"
    data = bytearray(good.read_bytes())
    data[40:80] = bytes(40)  # zero part of the IHDR/IDAT chunks
    corrupt.write_bytes(bytes(data))
    text = tmp_path / "notes.png"
    text.write_text("this is not an image")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    return good, jpeg, truncated, corrupt, text, empty


def test_image_files_open_or_fail_clearly(tmp_path):
    good, jpeg, truncated, corrupt, text, empty = _files(tmp_path)
    assert PRE(good).shape == (1, 3, 16, 16)
    assert PRE([str(good), jpeg]).shape == (2, 3, 16, 16)
    for bad, fragment in (
        (truncated, "truncated"),
        (corrupt, "corrupt"),
        (text, "not an image file"),
        (empty, "not an image file"),
        (tmp_path, "is a folder"),
    ):
        before = sorted(p.name for p in tmp_path.iterdir())
        try:
            PRE(bad)
        except (ValueError, IsADirectoryError) as err:
            assert fragment in str(err), f"{bad.name}: {err}"
            assert str(bad.name) in str(err) or bad == tmp_path
        else:
            raise AssertionError(f"{bad.name} was accepted")
        assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written or removed


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    big = tmp_path / "big.png"
    Image.new("L", (400, 300)).save(big)
    monkeypatch.setattr(images, "MAX_PIXELS", 100_000)
    try:
        vn.core.open_image(big)
    except ValueError as err:
        assert "400x300" in str(err) and "downscale" in str(err)
    else:
        raise AssertionError("an over-large image was opened")


def test_odd_sizes_are_resized_not_refused():
    """Tiny, huge, non-square and non-multiple-of-patch images are documented to be resized."""
    for shape in ((1, 1, 3), (3000, 2000, 3), (50, 20, 3), (17, 17, 3), (16, 16)):
        img = np.full(shape, 128, np.uint8)
        x = PRE(img)
        assert x.shape == (1, 3, 16, 16), shape
        assert torch.allclose(x, torch.full_like(x, (128 / 255 - 0.5) / 0.5), atol=1e-6), shape
    short = Preprocessing(size=16, mean=(0.5,) * 3, std=(0.5,) * 3, channels=3, resize=("short", 18))
    assert short(np.zeros((50, 20, 3), np.uint8)).shape == (1, 3, 16, 16)


def test_every_photo_mode_converts_as_documented():
    grey = Image.fromarray(np.full((8, 8), 200, np.uint8))
    rgb = PRE(grey)
    assert torch.allclose(rgb[0, 0], rgb[0, 1]) and torch.allclose(rgb[0, 1], rgb[0, 2])  # grey -> replicated RGB
    mono = Preprocessing(size=8, mean=(0.5,), std=(0.5,), channels=1)
    colour = np.zeros((8, 8, 3), np.uint8)
    colour[..., 0] = 255
    expected = (np.asarray(Image.fromarray(colour).convert("L"), np.float32) / 255 - 0.5) / 0.5
    assert np.allclose(mono(colour)[0, 0].numpy(), expected)  # colour -> luminance (PIL's weights)
