"""Bad input to every public function raises a clear error that names the fix."""
import numpy as np
import torch
from PIL import Image

import vitnotes as vn
from conftest import vitnotes_hooks
from vitnotes import Preprocessing

PRE = Preprocessing(size=16, mean=(0.5,) * 3, std=(0.5,) * 3, channels=3)
X = torch.randn(2, 3, 16, 16)


def cases(vit, resnet):
    att = vn.capture(vit, X)
    cls = vn.capture(vit, X, cls_only=True)
    nan = X.clone()
    nan[0, 0, 0, 0] = float("nan")
    return [
        # (what, call, exception, message fragment)
        ("CNN where a ViT is needed", lambda: vn.capture(resnet, X), TypeError, "vn.gradcam"),
        ("CNN to rollout by gradient", lambda: vn.gradient_rollout(resnet, X), TypeError, "ViT-family"),
        ("CNN to ablate", lambda: vn.ablate(resnet, [(0, 0)]).__enter__(), TypeError, "ViT-family"),
        ("no batch dimension", lambda: vn.capture(vit, X[0]), ValueError, "x[None]"),
        ("five dimensions", lambda: vn.capture(vit, X[None]), ValueError, "4 dimensions"),
        ("empty batch", lambda: vn.capture(vit, X[:0]), ValueError, "at least one"),
        ("empty batch to gradcam", lambda: vn.gradcam(resnet, X[:0]), ValueError, "at least one"),
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
        ("rollout of CLS rows", lambda: vn.rollout(cls), ValueError, "cls_only=False"),
        ("rollout of a gapped capture", lambda: vn.rollout(vn.capture(vit, X, layers=[0, 2])), ValueError, "consecutive"),
        ("rollout of a 4-d tensor", lambda: vn.rollout(torch.rand(2, 2, 5, 5)), ValueError, "[layer, batch, head, T, T]"),
        ("rollout head fusion", lambda: vn.rollout(att, head_fusion="median"), ValueError, "mean"),
        ("rollout discard ratio", lambda: vn.rollout(att, discard_ratio=1.0), ValueError, "[0, 1)"),
        ("rollout start layer", lambda: vn.rollout(att, start_layer=5), IndexError, "start_layer"),
        ("rollout residual", lambda: vn.rollout(att, residual=2), ValueError, "residual"),
        ("flow query token", lambda: vn.attention_flow(att, query=99), IndexError, "0..16"),
        ("target class out of range", lambda: vn.gradient_rollout(vit, X, target=7), IndexError, "5 classes"),
        ("targets per image", lambda: vn.gradcam(vit, X, target=[0, 1, 2]), ValueError, "one per image"),
        ("gradcam stage", lambda: vn.gradcam(resnet, X, stage=2), IndexError, "stages"),
        ("gradcam layer", lambda: vn.gradcam(vit, X, layer=-9), IndexError, "layers"),
        ("ablate head range", lambda: vn.ablate(vit, [(0, 4)]).__enter__(), IndexError, "0..3"),
        ("ablate item form", lambda: vn.ablate(vit, [0, 1, 2]).__enter__(), TypeError, "(layer, head) pairs"),
        ("sweep target count", lambda: vn.sweep(vit, X, [0]), ValueError, "one target per image"),
        ("sweep float targets", lambda: vn.sweep(vit, X, [0.5, 1.0]), TypeError, "loss='mse'"),
        ("sweep loss name", lambda: vn.evaluate_loss(vit, X, [0, 1], loss="l1"), ValueError, "'ce', 'mse'"),
        ("not a model", lambda: vn.capture("vit", X), TypeError, "vn.load"),
        ("RGBA image", lambda: PRE(Image.new("RGBA", (8, 8))), ValueError, "convert('RGB')"),
        ("palette image", lambda: PRE(Image.new("P", (8, 8))), ValueError, "expands the palette"),
        ("16-bit image", lambda: PRE(Image.new("I;16", (8, 8))), ValueError, "65535"),
        ("16-bit array", lambda: PRE(np.zeros((8, 8), np.uint16)), TypeError, "65535"),
        ("float above 1", lambda: PRE(np.full((8, 8, 3), 2.0)), ValueError, "arr / 255"),
        ("float NaN image", lambda: PRE(np.full((8, 8), np.nan)), ValueError, "nan_to_num"),
        ("channels-first array", lambda: PRE(np.zeros((3, 8, 8), np.uint8)), ValueError, "transpose"),
        ("four channels", lambda: PRE(np.zeros((8, 8, 4), np.uint8)), ValueError, "arr[..., :3]"),
        ("a path, not an image", lambda: PRE("cat.png"), TypeError, "PIL.Image.open"),
        ("no images", lambda: PRE([]), ValueError, "at least one"),
        ("zero-size image", lambda: PRE(np.zeros((0, 8), np.uint8)), ValueError, "no pixels"),
        ("tensor to preprocess", lambda: PRE(X), TypeError, "pixel_values already"),
        ("negative seed", lambda: vn.setup(seed=-1), ValueError, "non-negative"),
        ("one mask per image", lambda: vn.mask_mass(att.cls_grid(0), torch.ones(5, 16, 16)), ValueError,
         "one mask per image"),
        ("strip labels", lambda: vn.layer_strip(np.zeros((8, 8)), torch.rand(3, 2, 2), labels=["a"]), ValueError,
         "one label per map"),
        ("picker layer labels", lambda: vn.head_picker(np.zeros((8, 8)), torch.rand(3, 2, 2, 2), layers=[0]),
         ValueError, "layer labels"),
        ("image tensor shape", lambda: vn.display_image(X), ValueError, "[C, H, W]"),
        ("summary of nothing", lambda: vn.by_layer(vn.cls_summary(att).drop(columns="layer")), ValueError,
         "'layer' column"),
    ]


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
