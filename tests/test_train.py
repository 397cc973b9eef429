"""Zoo recipes: weight transfer is exact where it should be; the CLI writes a loadable model and its card."""
import json

import torch
import torch.nn.functional as F

import vitnotes as vn
from vitnotes import train

from conftest import make_vit


def test_transfer_patch_resize_equals_upsampled_input():
    """p4 -> p2: the new model on an image equals the old model on the 2x nearest-upsampled image
    when positions need no interpolation, i.e. compare token embeddings (before position terms)."""
    src = make_vit(seed=0, image_size=16, patch_size=4, num_channels=1)
    dst = make_vit(seed=1, image_size=8, patch_size=2, num_channels=1)
    train._transfer(src, dst)
    x = torch.randn(2, 1, 8, 8)
    big = F.interpolate(x, scale_factor=2, mode="nearest")
    a = dst.vit.embeddings.patch_embeddings(x)
    b = src.vit.embeddings.patch_embeddings(big)
    assert torch.allclose(a, b, atol=1e-5)
    for k, v in src.state_dict().items():  # every block is copied
        if ".layers." in k:
            assert torch.equal(v, dst.state_dict()[k]), k


def test_transfer_expands_channels_and_positions():
    src = make_vit(seed=0, image_size=16, patch_size=4, num_channels=1)
    dst = make_vit(seed=1, image_size=32, patch_size=4, num_channels=3)
    train._transfer(src, dst)
    grey = torch.randn(2, 1, 16, 16)
    a = dst.vit.embeddings.patch_embeddings.projection(grey.expand(2, 3, 16, 16))
    assert torch.allclose(a, src.vit.embeddings.patch_embeddings.projection(grey), atol=1e-5)
    pos = dst.vit.embeddings.position_embeddings
    assert pos.shape == (1, 1 + 64, 24) and torch.equal(pos[:, 0], src.vit.embeddings.position_embeddings[:, 0])
    assert torch.allclose(pos[:, 1:].mean(1), src.vit.embeddings.position_embeddings[:, 1:].mean(1), atol=0.05)


def test_augment_is_a_shift_and_flip():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).reshape(2, 1, 6, 6) + 1
    out = train._augment(x, pad=2, flip=True, gen=torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    for o, i in zip(out, x):  # every output is a padded, shifted (maybe mirrored) copy of its input
        ok = [torch.equal(o, c.flip(-1) if f else c) for f in (0, 1) for c in
              [F.pad(i, (2, 2, 2, 2), value=1.0)[:, r:r + 6, s:s + 6] for r in range(5) for s in range(5)]]
        assert any(ok)


def test_cli_smoke_run_writes_model_and_card(tmp_path, capsys):
    out = tmp_path / "fmnist-resnet"
    assert train.main(["fmnist-resnet", "--limit", "256", "--epochs", "1", "--out", str(out)]) == 0
    card = json.loads((out / "card.json").read_text())
    assert card["command"] == "python -m vitnotes.train fmnist-resnet --epochs 1 --limit 256"
    assert 0 <= card["metrics"]["test_accuracy"] <= 1 and card["metrics"]["test_images"] == 256
    model = vn.load(out)
    assert model.geometry.kind == "cnn" and model.preprocessing.size == 56
    assert not list(tmp_path.glob(".*")), "work folder left behind"
    cam = vn.gradcam(model, model.preprocess([torch.zeros(28, 28).numpy()]), target=0)
    assert cam.shape[-2:] == (7, 7)  # the last stage keeps a 7x7 map


def test_checkpoint_round_trip(tmp_path):
    net = make_vit(seed=0)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    net(pixel_values=torch.randn(2, 3, 16, 16)).logits.sum().backward()
    opt.step()
    train._save_state(tmp_path, net, opt, step=7, seconds=12.5)
    net2, opt2 = make_vit(seed=1), None
    opt2 = torch.optim.AdamW(net2.parameters(), lr=1e-3)
    assert train._load_state(tmp_path, net2, opt2) == (7, 12.5)
    for (k, a), b in zip(net.state_dict().items(), net2.state_dict().values()):
        assert torch.equal(a, b), k
    s1, s2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert all(torch.equal(s1[i]["exp_avg_sq"], s2[i]["exp_avg_sq"]) for i in s1)


def test_spectro_finetune_smoke_run(tmp_path, monkeypatch):
    """The Trainer path end to end on 8 images, from a tiny 28 px grey ViT saved as a folder."""
    base = make_vit(seed=2, image_size=28, patch_size=4, num_channels=1)
    folder = vn.save(base, tmp_path / "base", vn.Preprocessing(28, (0.5,), (0.5,), 1))
    monkeypatch.setitem(train.RECIPES, "spectro-vit", dict(train.RECIPES["spectro-vit"], init=str(folder)))
    out = tmp_path / "spectro-vit"
    assert train.main(["spectro-vit", "--limit", "8", "--epochs", "1", "--out", str(out)]) == 0
    card = json.loads((out / "card.json").read_text())
    assert set(card["metrics"]["r2"]) == set(vn.data.TARGET_NAMES) and card["metrics"]["mse"] > 0
    model = vn.load(out)
    assert model.geometry.grid == (14, 14) and model.geometry.channels == 3
    assert model.net.config.problem_type == "regression" and model.labels == list(vn.data.TARGET_NAMES)
    assert "R^2 per target" in (out / "README.md").read_text()


def test_cli_missing_data_is_a_clear_error(tmp_path, monkeypatch, capsys):
    from vitnotes import data

    monkeypatch.setattr(data, "_DEBIAN", tmp_path / "none")
    monkeypatch.setattr(data, "_CACHE", tmp_path / "cache")
    monkeypatch.delenv("VITNOTES_FASHION_MNIST", raising=False)
    assert train.main(["fmnist-vit-p4", "--out", str(tmp_path / "m")]) == 2
    assert "apt-get install dataset-fashion-mnist" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
