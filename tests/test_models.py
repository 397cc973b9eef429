"""Loading by folder / zoo name / hub id through from_pretrained, geometry, preprocessing."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import vitnotes as vn
from vitnotes import zoo as zoo_module
from vitnotes.core.model import geometry


def test_load_folder_roundtrip(vit_folder, pixels):
    m = vn.load(vit_folder)
    assert m.source == "folder" and m.labels == [f"c{i}" for i in range(5)]
    g = m.geometry
    assert (g.kind, g.layers, g.heads, g.head_dim, g.patch_size, g.grid, g.image_size, g.channels, g.prefix) == (
        "vit",
        3,
        4,
        6,
        4,
        (4, 4),
        16,
        3,
        1,
    )
    assert g.tokens == 17
    assert m.preprocessing.std == (0.25, 0.25, 0.25)
    assert not m.net.training
    again = vn.load(vit_folder, attn_implementation="eager")
    assert torch.allclose(m.predict(pixels), again.predict(pixels), atol=1e-5)
    assert "3 layers x 4 heads" in repr(m)


def test_zoo_name_resolves_inside_package(vit_folder, monkeypatch, tmp_path):
    zoo = tmp_path / "zoo"
    shutil.copytree(vit_folder, zoo / "tiny")
    monkeypatch.setattr(zoo_module, "ZOO_DIR", zoo)
    assert vn.zoo_names() == ["tiny"]
    assert vn.load("tiny").source == "zoo"


def test_cnn_geometry(resnet):
    g = geometry(resnet)
    assert g.kind == "cnn" and g.layers == 2 and g.heads == 0
    with pytest.raises(ValueError, match="no patch grid"):
        _ = g.grid


def test_preprocess_modes_and_sizes(vit_folder):
    m = vn.load(vit_folder)
    rgb = Image.fromarray(np.full((40, 30, 3), 255, np.uint8))
    grey = Image.fromarray(np.zeros((20, 20), np.uint8))
    arr_float = np.full((16, 16, 3), 0.5, np.float32)
    x = m.preprocess([rgb, grey, arr_float])
    assert x.shape == (3, 3, 16, 16) and x.dtype == torch.float32
    assert torch.allclose(x[0], torch.full((3, 16, 16), 2.0))  # (1 - 0.5) / 0.25
    assert torch.allclose(x[1], torch.full((3, 16, 16), -2.0))
    assert torch.allclose(x[2], torch.full((3, 16, 16), (128 / 255 - 0.5) / 0.25), atol=1e-6)


def test_grey_model_converts_colour_to_luminance(tmp_path):
    from conftest import make_vit

    net = make_vit(num_channels=1)
    pre = vn.core.Preprocessing(size=16, mean=(0.5,), std=(0.5,), channels=1)
    m = vn.load(vn.train.save(net, tmp_path / "grey", preprocessing=pre))
    x = m.preprocess(Image.new("RGB", (28, 28), (255, 255, 255)))
    assert x.shape == (1, 1, 16, 16) and torch.allclose(x, torch.ones_like(x))


def test_short_side_resize_then_centre_crop():
    pre = vn.core.Preprocessing(size=8, mean=(0,) * 3, std=(1,) * 3, channels=3, resize=("short", 16))
    img = np.zeros((32, 64, 3), np.uint8)
    img[12:20, 28:36] = 255  # a white square in the centre
    x = pre(img)
    assert x.shape == (1, 3, 8, 8)
    assert x[0, :, 2:6, 2:6].min() > 0.8 and x[0, :, 0, 0].max() < 0.1


@pytest.mark.parametrize(
    "recipe,expected",
    [
        # google/vit-base-patch16-224: stretch to 224
        (
            {"size": {"height": 224, "width": 224}, "image_mean": [0.5] * 3, "image_std": [0.5] * 3},
            (224, ("square", 224)),
        ),
        # facebook/deit-*-224: stretch to 256, crop 224
        (
            {"size": {"height": 256, "width": 256}, "do_center_crop": True, "crop_size": {"height": 224, "width": 224}},
            (224, ("square", 256)),
        ),
        # microsoft/resnet-50: short side to 224 / 0.875 = 256, crop 224
        ({"size": {"shortest_edge": 224}, "crop_pct": 0.875}, (224, ("short", 256))),
    ],
)
def test_hub_recipes(recipe, expected):
    geom = vn.core.Geometry("vit", 1, 1, 1, 1, 16, 224, 3, 1)
    pre = vn.core.Preprocessing.from_dict(recipe, geom)
    assert (pre.size, pre.resize) == expected
    assert pre(np.zeros((300, 400, 3), np.uint8)).shape == (1, 3, 224, 224)
    again = vn.core.Preprocessing.from_dict(pre.to_dict(), geom)
    assert again == pre


def test_save_is_atomic_and_replaces(vit_folder, tmp_path):
    from conftest import make_vit

    target = tmp_path / "m"
    vn.train.save(make_vit(seed=1), target)
    first = (target / "model.safetensors").read_bytes()
    vn.train.save(make_vit(seed=2), target)
    assert (target / "model.safetensors").read_bytes() != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "tiny-vit"]  # no temporary leftovers


def test_hub_id_offline_gives_clear_error():
    with pytest.raises(OSError, match="Offline"):
        vn.load("google/vit-base-patch16-224-not-cached")


def test_pickle_checkpoint_refused(vit_folder):
    (vit_folder / "model.safetensors").rename(vit_folder / "pytorch_model.bin")
    with pytest.raises(ValueError, match="safetensors only"):
        vn.load(vit_folder)


def test_corrupt_and_missing_weights(vit_folder):
    weights = vit_folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError, match="missing or corrupt"):
        vn.load(vit_folder)
    weights.unlink()
    with pytest.raises(FileNotFoundError, match="no model.safetensors"):
        vn.load(vit_folder)
    (vit_folder / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        vn.load(vit_folder)


def test_unknown_name_lists_options():
    with pytest.raises(ValueError, match="not a zoo model"):
        vn.load("no-such-model")


def test_unsupported_architecture_is_refused():
    from transformers import MobileNetV2Config, MobileNetV2ForImageClassification

    net = MobileNetV2ForImageClassification(MobileNetV2Config(image_size=32, depth_multiplier=0.25, num_labels=2))
    with pytest.raises(TypeError, match="neither a ViT-family"):
        geometry(net)


def test_setup_seeds_and_threads():
    info = vn.setup(seed=5, threads=1, style=False)
    a = torch.rand(3)
    vn.setup(seed=5, threads=1, style=False)
    assert torch.equal(a, torch.rand(3)) and info["threads"] == 1 and torch.get_num_threads() == 1
    json.dumps(info)


class _Trap:
    """Unpickling this writes a marker file: proof that a pickle was executed."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_beside_safetensors_is_never_unpickled(vit_folder, tmp_path):
    import pickle

    marker = tmp_path / "pickle-ran"
    (vit_folder / "pytorch_model.bin").write_bytes(pickle.dumps(_Trap(marker)))
    assert vn.load(vit_folder).geometry.layers == 3  # loaded from model.safetensors
    assert not marker.exists()
    (vit_folder / "model.safetensors").unlink()
    with pytest.raises(ValueError, match="safetensors only"):
        vn.load(vit_folder)
    assert not marker.exists()


def test_garbage_weights_of_the_right_size_are_refused(vit_folder):
    weights = vit_folder / "model.safetensors"
    weights.write_bytes(np.random.default_rng(0).integers(0, 256, weights.stat().st_size, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match="missing or corrupt"):
        vn.load(vit_folder)


def test_remote_code_in_a_config_is_not_run(vit_folder, tmp_path):
    import json

    marker = tmp_path / "remote-code-ran"
    (vit_folder / "evil.py").write_text(f"open({str(marker)!r}, 'w')\n")
    cfg = json.loads((vit_folder / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForImageClassification": "evil.EvilModel", "AutoConfig": "evil.EvilConfig"}
    (vit_folder / "config.json").write_text(json.dumps(cfg))
    try:
        vn.load(vit_folder)
    except (ValueError, OSError):
        pass  # refusing is fine; running the code is not
    assert not marker.exists()


def test_hub_repository_with_only_pickle_weights_is_refused(tmp_path, vit_folder):
    """A cached hub repository that ships only pytorch_model.bin: refused by name, never unpickled."""
    import os
    import subprocess
    import sys

    from safetensors.torch import load_file

    snap = tmp_path / "models--acme--pickled-vit" / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    shutil.copy(vit_folder / "config.json", snap / "config.json")
    torch.save(load_file(vit_folder / "model.safetensors"), snap / "pytorch_model.bin")
    (tmp_path / "models--acme--pickled-vit" / "refs").mkdir()
    (tmp_path / "models--acme--pickled-vit" / "refs" / "main").write_text("0" * 40)
    code = (
        "import vitnotes as vn\ntry:\n    vn.load('acme/pickled-vit')\nexcept ValueError as e:\n    print(e)\n"
        "else:\n    print('loaded')\n"
    )
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert "ships no model.safetensors" in out and "loaded" not in out.splitlines()[-1]
