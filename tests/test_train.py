"""Zoo recipes: weight transfer is exact where it should be; the CLI writes a loadable model and its card;
an interrupted run resumes to the same weights; the attention probe matches hand computations."""

import json

import pytest
import torch
import torch.nn.functional as F
from conftest import make_vit

import vitnotes as vn
from vitnotes import train
from vitnotes.methods.gradcam import gradcam
from vitnotes.train import loop


def test_transfer_patch_resize_equals_upsampled_input():
    """p4 -> p2: the new model on an image equals the old model on the 2x nearest-upsampled image
    when positions need no interpolation, i.e. compare token embeddings (before position terms)."""
    src = make_vit(seed=0, image_size=16, patch_size=4, num_channels=1)
    dst = make_vit(seed=1, image_size=8, patch_size=2, num_channels=1)
    train.transfer(src, dst)
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
    train.transfer(src, dst)
    grey = torch.randn(2, 1, 16, 16)
    a = dst.vit.embeddings.patch_embeddings.projection(grey.expand(2, 3, 16, 16))
    assert torch.allclose(a, src.vit.embeddings.patch_embeddings.projection(grey), atol=1e-5)
    pos = dst.vit.embeddings.position_embeddings
    assert pos.shape == (1, 1 + 64, 24) and torch.equal(pos[:, 0], src.vit.embeddings.position_embeddings[:, 0])
    assert torch.allclose(pos[:, 1:].mean(1), src.vit.embeddings.position_embeddings[:, 1:].mean(1), atol=0.05)


def test_augment_is_a_shift_and_flip():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).reshape(2, 1, 6, 6) + 1
    out = train.augment(x, pad=2, flip=True, gen=torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    for o, i in zip(out, x):  # every output is a padded, shifted (maybe mirrored) copy of its input
        ok = [
            torch.equal(o, c.flip(-1) if f else c)
            for f in (0, 1)
            for c in [F.pad(i, (2, 2, 2, 2), value=1.0)[:, r : r + 6, s : s + 6] for r in range(5) for s in range(5)]
        ]
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
    cam = gradcam(model, model.preprocess([torch.zeros(28, 28).numpy()]), target=0)
    assert cam.shape[-2:] == (7, 7)  # the last stage keeps a 7x7 map


def test_checkpoint_round_trip(tmp_path):
    net = make_vit(seed=0)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    net(pixel_values=torch.randn(2, 3, 16, 16)).logits.sum().backward()
    opt.step()
    loop.save_state(tmp_path, net, opt, {"stage": 1, "step": 7, "seconds": 12.5})
    net2 = make_vit(seed=1)
    opt2 = torch.optim.AdamW(net2.parameters(), lr=1e-3)
    assert loop.load_state(tmp_path, net2, opt2) == {"stage": 1, "step": 7, "seconds": 12.5}
    for (k, a), b in zip(net.state_dict().items(), net2.state_dict().values()):
        assert torch.equal(a, b), k
    s1, s2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert all(torch.equal(s1[i]["exp_avg_sq"], s2[i]["exp_avg_sq"]) for i in s1)


def test_spectro_finetune_smoke_run(tmp_path, monkeypatch):
    """The spectrogram recipe end to end on 8 images, from a tiny 28 px grey ViT saved as a folder:
    regression metrics, the attention probe with the region masks, the card."""
    base = make_vit(seed=2, image_size=28, patch_size=4, num_channels=1)
    folder = vn.train.save(base, tmp_path / "base", vn.core.Preprocessing(28, (0.5,), (0.5,), 1))
    monkeypatch.setitem(train.RECIPES, "spectro-vit", dict(train.RECIPES["spectro-vit"], init=str(folder)))
    out = tmp_path / "spectro-vit"
    assert train.main(["spectro-vit", "--limit", "8", "--epochs", "1", "--out", str(out)]) == 0
    card = json.loads((out / "card.json").read_text())
    assert set(card["metrics"]["r2"]) == set(vn.data.TARGET_NAMES) and card["metrics"]["mse"] > 0
    model = vn.load(out)
    assert model.geometry.grid == (14, 14) and model.geometry.channels == 3
    assert model.net.config.problem_type == "regression" and model.labels == list(vn.data.TARGET_NAMES)
    assert "R^2 per target" in (out / "README.md").read_text()
    last = card["training_log"][-1]["layers"]
    masses = [last[f"mass_{r}"][-1] for r in vn.data.REGIONS]
    assert abs(sum(masses) - 1) < 1e-3  # the regions partition the image: CLS mass sums to one


def test_spectro_resnet_reference_smoke_run(tmp_path):
    out = tmp_path / "spectro-resnet"
    assert train.main(["spectro-resnet", "--limit", "16", "--epochs", "1", "--out", str(out)]) == 0
    model = vn.load(out)
    assert model.geometry.kind == "cnn" and model.net.config.problem_type == "regression"
    assert set(json.loads((out / "card.json").read_text())["metrics"]["r2"]) == set(vn.data.TARGET_NAMES)


def test_cli_missing_data_is_a_clear_error(tmp_path, monkeypatch, capsys):
    from vitnotes.data import fmnist as data

    monkeypatch.setattr(data, "_DEBIAN", tmp_path / "none")
    monkeypatch.setattr(data, "_CACHE", tmp_path / "cache")
    monkeypatch.delenv("VITNOTES_FASHION_MNIST", raising=False)
    assert train.main(["fmnist-vit-p4", "--out", str(tmp_path / "m")]) == 2
    assert "apt-get install dataset-fashion-mnist" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


TINY = dict(
    hidden_size=16,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=32,
    image_size=28,
    num_channels=1,
    patch_size=7,
)


def _tiny_recipe(monkeypatch, **stage2):
    """fmnist-vit-p4's recipe on a tiny ViT: two short stages (the second distilled when asked)."""
    r = dict(
        train.RECIPES["fmnist-vit-p4"],
        config=TINY,
        probe_epochs=[0, 1, 1.5],
        stages=[
            dict(epochs=1, lr=1e-3, warmup=0.1, crop_pad=2),
            dict(epochs=1, lr=5e-4, warmup=0.1, crop_pad=2, **stage2),
        ],
    )
    monkeypatch.setitem(train.RECIPES, "fmnist-vit-p4", r)


def test_interrupted_run_resumes_to_the_same_weights(tmp_path, monkeypatch):
    _tiny_recipe(monkeypatch)
    args = ["fmnist-vit-p4", "--limit", "512", "--threads", "1"]
    assert train.main(args + ["--out", str(tmp_path / "whole")]) == 0

    calls = {"n": 0}
    real = loop._Run.loss

    def crash_at_step_3_of_stage_2(self, logits, xb, yb, stage):
        calls["n"] += 1
        if calls["n"] == 4 + 3:  # stage 1 has 4 steps (512 images / 128)
            raise KeyboardInterrupt
        return real(self, logits, xb, yb, stage)

    monkeypatch.setattr(loop, "CHECKPOINT_SECONDS", 0)  # a checkpoint after every step
    monkeypatch.setattr(loop._Run, "loss", crash_at_step_3_of_stage_2)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        train.main(args + ["--out", str(out)])
    assert not out.exists() and (tmp_path / ".resumed.work" / "state.safetensors").is_file()
    monkeypatch.setattr(loop._Run, "loss", real)
    assert train.main(args + ["--out", str(out)]) == 0
    a, b = vn.load(tmp_path / "whole").net.state_dict(), vn.load(out).net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    card = json.loads((out / "card.json").read_text())
    # init, the stage ends, the recipe's 1.5 and the last quarter's 1.75 (87.5 % of the run)
    assert [e["epoch"] for e in card["training_log"]] == [0, 1, 1.5, 1.75, 2]
    assert card["plateau"]["held"] in (True, False) and card["plateau"]["from_epoch"] == 1.5
    assert "## Training log" in (out / "README.md").read_text()


def test_start_from_continues_a_model_that_ran_the_first_stages(tmp_path, monkeypatch):
    """--start-from a model whose card shows the recipe's first stage: only stage 2 runs, and the
    earlier model's training log and time are carried over; a model of another recipe is refused as
    a continuation (it stands for stage 1's result, as zoo v1's models do)."""
    _tiny_recipe(monkeypatch)
    two = train.RECIPES["fmnist-vit-p4"]
    monkeypatch.setitem(train.RECIPES, "fmnist-vit-p4", dict(two, stages=two["stages"][:1]))
    args = ["fmnist-vit-p4", "--limit", "256", "--threads", "1"]
    assert train.main(args + ["--out", str(tmp_path / "one")]) == 0
    first = json.loads((tmp_path / "one" / "card.json").read_text())
    monkeypatch.setitem(train.RECIPES, "fmnist-vit-p4", two)
    assert loop.stages_done(tmp_path / "one", train.staged("fmnist-vit-p4")) == 1
    assert train.main(args + ["--out", str(tmp_path / "two"), "--start-from", str(tmp_path / "one")]) == 0
    card = json.loads((tmp_path / "two" / "card.json").read_text())
    assert card["recipe"]["stages_done_before"] == 1 and card["recipe"]["earlier_machine"] == first["machine"]
    assert card["training_log"][: len(first["training_log"])] == first["training_log"]
    # two steps an epoch: 1.75 falls due with the end, so the end's probe stands for both
    assert [e["epoch"] for e in card["training_log"]] == [0, 1, 1.5, 2]
    assert card["train_seconds"] >= first["train_seconds"]
    assert "Stage 1 was not re-run: this run continued" in (tmp_path / "two" / "README.md").read_text()
    # a model that ran every stage: nothing to continue, said plainly (exit status 2, no traceback)
    assert train.main(args + ["--out", str(tmp_path / "three"), "--start-from", str(tmp_path / "two")]) == 2
    assert not (tmp_path / "three").exists()
    # stages that differ from the recipe's: not a continuation
    other = dict(two, stages=[dict(two["stages"][0], lr=0.5), two["stages"][1]])
    monkeypatch.setitem(train.RECIPES, "fmnist-vit-p4", other)
    assert loop.stages_done(tmp_path / "one", train.staged("fmnist-vit-p4")) == 0


def test_train_device_follows_the_override(monkeypatch):
    monkeypatch.setenv("VITNOTES_TRAIN_DEVICE", "cpu")
    assert loop.train_device() == torch.device("cpu")
    monkeypatch.delenv("VITNOTES_TRAIN_DEVICE")
    assert loop.train_device().type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_distillation_from_an_identical_teacher_adds_nothing(tmp_path, monkeypatch):
    _tiny_recipe(monkeypatch, teacher=str(tmp_path / "t"), distill=0.5, temperature=2.0)
    net = train.new_net("fmnist-vit-p4")
    vn.train.save(net, tmp_path / "t", train.preprocessing("fmnist-vit-p4"))
    run = loop._Run.__new__(loop._Run)
    run.teachers, run.regress, run.device = {}, False, torch.device("cpu")
    x = torch.randn(4, 1, 28, 28)
    y = torch.tensor([0, 1, 2, 3])
    stage = train.staged("fmnist-vit-p4")[1]
    logits = vn.load(tmp_path / "t").net(pixel_values=x).logits
    ce = F.cross_entropy(logits, y, label_smoothing=stage["label_smoothing"])
    assert torch.allclose(run.loss(logits, x, y, stage), 0.5 * ce, atol=1e-6)
    stage_no = dict(stage, teacher=None)
    assert torch.allclose(run.loss(logits, x, y, stage_no), ce)


def test_layer_statistics_match_hand_computations():
    net = make_vit("eager", seed=3, image_size=16, patch_size=4, num_channels=3)
    x = torch.randn(5, 3, 16, 16)
    stats = train.layer_statistics(net, x)
    out = net(pixel_values=x, output_attentions=True, output_hidden_states=True)
    for layer, a in enumerate(out.attentions):  # [batch, head, T, T], eager: the reference
        p = a[:, :, 0, 1:].double()
        p = p / p.sum(-1, keepdim=True)
        h = -(p * p.log()).sum(-1) / torch.log(torch.tensor(16.0, dtype=torch.float64))
        assert abs(stats["entropy_norm"][layer] - float(h.mean())) < 1e-4
        top = p.sort(-1, descending=True).values[..., :10].sum(-1)
        assert abs(stats["top10"][layer] - float(top.mean())) < 1e-4
        norms = out.hidden_states[layer + 1][:, 1:].norm(dim=-1)
        assert abs(stats["norm_max"][layer] - float(norms.max())) < 1e-3
        assert abs(stats["norm_median"][layer] - float(norms.flatten().median())) < 1e-3
    assert len(stats["rollout_entropy_norm"]) == len(out.attentions)


def test_layer_statistics_do_not_depend_on_the_chunk():
    """The probe takes a few images at a time (one chunk's attention held, not the probe set's): the
    chunk means, weighted by their images, equal the statistics of the whole batch at once."""
    net = make_vit("eager", seed=4, image_size=16, patch_size=4, num_channels=3)
    x = torch.randn(7, 3, 16, 16)
    masks = {"left": torch.zeros(7, 16, 16, dtype=torch.bool)}
    masks["left"][:, :, :6] = True
    whole = train.layer_statistics(net, x, masks, batch_size=7)
    chunked = train.layer_statistics(net, x, masks, batch_size=3)  # chunks of 3, 3 and 1
    assert list(whole) == list(chunked) and "mass_left" in whole
    for key in whole:
        assert max(abs(a - b) for a, b in zip(whole[key], chunked[key])) <= 2e-5, key


def test_plateau_reads_the_last_quarter():
    def entry(epoch, v):
        return {"epoch": epoch, "layers": {s: [v, v] for s in ("entropy_norm", "top10", "rollout_entropy_norm")}}

    log = [entry(0, 0.9), entry(4, 0.5), entry(6, 0.45), entry(8, 0.44)]
    p = train.plateau(log)
    assert p["from_epoch"] == 6 and p["held"] is True and abs(p["max_change"]["top10"] - 0.01) < 1e-9
    assert train.plateau(log[:3] + [entry(8, 0.40)])["held"] is False
    assert train.plateau(log[:1])["held"] is None
