"""The command line (``python -m vitnotes explain|sweep``) on a tiny random ViT saved to a tmp folder:
the files it writes (the PNG opens, the JSON's numbers equal ``vn.explain`` computed directly, the CSV
equals ``vn.sweep``), its help, and bad input (one line on stderr, exit 2, nothing written)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import vitnotes as vn
from vitnotes import cli

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(
    os.environ,
    PYTHONPATH=str(ROOT),
    OMP_NUM_THREADS="1",
    VITNOTES_THREADS="1",
    HF_HUB_OFFLINE="1",
    TRANSFORMERS_OFFLINE="1",
    VITNOTES_QUIET="1",
    MPLBACKEND="Agg",
)


def run(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "vitnotes", *map(str, args)],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=cwd,
        timeout=300,
    )


@pytest.fixture
def images(tmp_path):
    """Two small photos-like files of other sizes than the model's input (it resizes them)."""
    rng = np.random.default_rng(0)
    paths = []
    for name, size in (("cat.png", (20, 24)), ("dog.jpg", (30, 30))):
        arr = (rng.random((*size, 3)) * 255).astype(np.uint8)
        arr[4:12, 6:14] = 255  # a bright square: some structure for the maps
        Image.fromarray(arr).save(tmp_path / name)
        paths.append(tmp_path / name)
    return paths


def expected(folder, image, method, **kw):
    model = vn.load(folder)
    x = model.preprocess(vn.core.open_image(image))
    return model, x, vn.explain(model, x, method, **kw)[0]


def check_record(rec, heat, model, x):
    p = heat.double().flatten()
    assert np.allclose(np.asarray(rec["map"]["values"]), heat.numpy(), atol=1e-6)
    assert rec["map"]["grid"] == list(heat.shape)
    if (p < 0).any():  # a signed map (CP-LRP, integrated gradients, occlusion) is not a distribution
        assert rec["map"]["entropy"] is None and rec["map"]["entropy_over_log_n"] is None
        return
    assert rec["map"]["entropy_over_log_n"] == pytest.approx(float(vn.normalized_entropy(p)), abs=1e-6)
    assert rec["map"]["entropy"] == pytest.approx(float(vn.entropy(p)), abs=1e-6)
    assert rec["map"]["top_k"] == min(10, p.numel())
    assert rec["map"]["top_k_share"] == pytest.approx(float(vn.stats.topk_share(p, min(10, p.numel()))), abs=1e-6)
    probs = torch.softmax(model.predict(x)[0].double(), -1)
    assert rec["prediction"]["index"] == int(probs.argmax())
    assert rec["prediction"]["label"] == model.labels[int(probs.argmax())]
    assert rec["prediction"]["probability"] == pytest.approx(float(probs.max()), abs=1e-6)
    tops = [t["probability"] for t in rec["top"]]
    assert tops == sorted(tops, reverse=True) and len(tops) == min(5, probs.numel())
    assert [t["index"] for t in rec["top"]] == probs.topk(len(tops)).indices.tolist()


# ------------------------------------------------------------------ what it writes
def test_explain_subprocess_writes_png_and_json_equal_to_vn_explain(vit_folder, images, tmp_path):
    out = tmp_path / "maps"
    r = run("explain", *images, "--model", vit_folder, "--method", "rollout", "--out", out)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["cat.json", "cat.png", "dog.json", "dog.png"]
    for image in images:
        with Image.open(out / f"{image.stem}.png") as png:
            png.verify()
        with Image.open(out / f"{image.stem}.png") as png:
            assert png.format == "PNG" and png.size[0] > 100 and png.size[1] > 50
        rec = json.loads((out / f"{image.stem}.json").read_text())
        assert rec["method"] == "rollout" and rec["model"] == str(vit_folder) and rec["image"] == str(image)
        assert rec["overlay"] == f"{image.stem}.png"
        model, x, heat = expected(vit_folder, image, "rollout")
        check_record(rec, heat, model, x)


def test_explain_in_process_one_head_and_a_target(vit_folder, images, tmp_path):
    out = tmp_path / "maps"
    assert cli.main(["explain", str(images[0]), "--model", str(vit_folder), "--method", "last-layer",
                     "--layer", "1", "--head", "2", "--out", str(out)]) == 0  # fmt: skip
    rec = json.loads((out / "cat.json").read_text())
    model = vn.load(vit_folder)
    x = model.preprocess(vn.core.open_image(images[0]))
    heat = vn.capture(model, x, layers=[1], cls_only=True).cls_grid(1, 2)[0]
    assert (rec["method"], rec["layer"], rec["head"]) == ("last layer", 1, 2)
    check_record(rec, heat, model, x)

    assert cli.main(["explain", str(images[1]), "--model", str(vit_folder), "--method", "gradient rollout",
                     "--target", "c3", "--out", str(out)]) == 0  # fmt: skip
    rec = json.loads((out / "dog.json").read_text())
    model, x, heat = expected(vit_folder, images[1], "gradient rollout", target=3)
    assert rec["target"] == {"index": 3, "label": "c3"}
    check_record(rec, heat, model, x)


@pytest.mark.parametrize("method", vn.methods("vit"))
def test_every_registered_method_runs(vit_folder, images, tmp_path, method):
    out = tmp_path / "maps"
    assert cli.main(["explain", str(images[0]), "--model", str(vit_folder), "--method", method, "--out", str(out)]) == 0
    rec = json.loads((out / "cat.json").read_text())
    assert rec["method"] == method and rec["map"]["grid"] == [4, 4]
    if method == "attention flow":  # capture-only: explained from a vn.capture result
        model = vn.load(vit_folder)
        x = model.preprocess(vn.core.open_image(images[0]))
        heat = vn.explain(vn.capture(model, x), None, method)[0]
    else:
        model, x, heat = expected(vit_folder, images[0], method)
    check_record(rec, heat, model, x)


def test_same_file_names_get_unique_outputs(vit_folder, tmp_path):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        Image.new("RGB", (16, 16), (10, 200, 30)).save(tmp_path / sub / "x.png")
    out = tmp_path / "maps"
    assert cli.main(["explain", str(tmp_path / "a" / "x.png"), str(tmp_path / "b" / "x.png"),
                     "--model", str(vit_folder), "--out", str(out)]) == 0  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == ["x-2.json", "x-2.png", "x.json", "x.png"]


def test_sweep_writes_the_table_equal_to_vn_sweep(vit_folder, images, tmp_path):
    table = tmp_path / "out" / "heads.csv"
    assert cli.main(["sweep", *map(str, images), "--labels", "3", "c1", "--model", str(vit_folder),
                     "--out", str(table)]) == 0  # fmt: skip
    got = pd.read_csv(table)
    model = vn.load(vit_folder)
    want = vn.sweep(model, model.preprocess([vn.core.open_image(p) for p in images]), torch.tensor([3, 1]))
    g = model.geometry
    assert len(got) == g.layers * g.heads
    assert got[["layer", "head"]].values.tolist() == want[["layer", "head"]].values.tolist()
    assert np.allclose(got["loss"], want["loss"], rtol=1e-7)
    assert np.allclose(got["rel_increase"], want["rel_increase"], rtol=1e-6, atol=1e-9)
    assert np.allclose(got["baseline_loss"], want.attrs["baseline"], rtol=1e-7)
    assert (got["n_images"] == 2).all() and (got["loss_kind"] == "ce").all()
    assert [p.name for p in table.parent.iterdir()] == ["heads.csv"]  # no temporary file left


# ------------------------------------------------------------------ help
def help_text(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as stop:
        cli.main([*argv, "--help"])
    assert stop.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_help_is_complete(capsys):
    text = help_text(capsys, "explain")
    for option in ("--model", "--method", "--out", "--layer", "--head", "--target", "IMAGE", "examples:"):
        assert option in text
    for name in vn.methods():
        assert name in text, f"method {name!r} missing from --help"
    sweep = help_text(capsys, "sweep")
    for option in ("--labels", "--model", "--out", "--batch-size", "IMAGE", "examples:"):
        assert option in sweep
    top = run("--help")  # python -m vitnotes itself
    assert top.returncode == 0 and "explain" in top.stdout and "sweep" in top.stdout


# ------------------------------------------------------------------ bad input
def bad_cases(tmp_path, vit_folder, images):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    afile = tmp_path / "taken"
    afile.write_text("keep me")
    out = tmp_path / "maps"
    m, img = str(vit_folder), str(images[0])
    return (
        {
            "missing file": (
                ["explain", str(tmp_path / "nope.png"), "--model", m, "--out", str(out)],
                "does not exist",
            ),
            "not an image": (["explain", str(text), "--model", m, "--out", str(out)], "not an image"),
            "unknown model": (["explain", img, "--model", "no-such-model", "--out", str(out)], "unknown model"),
            "unknown method": (
                ["explain", img, "--model", m, "--method", "magic", "--out", str(out)],
                "invalid choice",
            ),
            "out is a file": (["explain", img, "--model", m, "--out", str(afile)], "is a file"),
            "label count": (
                ["sweep", img, "--labels", "1", "2", "--model", m, "--out", str(out / "t.csv")],
                "2 labels",
            ),
            "unknown label": (["sweep", img, "--labels", "zebra", "--model", m, "--out", str(out / "t.csv")], "zebra"),
            "sweep out is a folder": (
                ["sweep", img, "--labels", "1", "--model", m, "--out", str(tmp_path)],
                "is a folder",
            ),
            "head without last layer": (["explain", img, "--model", m, "--head", "1", "--out", str(out)], "--head"),
            "layer out of range": (
                ["explain", img, "--model", m, "--method", "last layer", "--layer", "9", "--out", str(out)],
                "out of range",
            ),
            "target on rollout": (["explain", img, "--model", m, "--target", "1", "--out", str(out)], "--target"),
            "target out of range": (
                ["explain", img, "--model", m, "--method", "grad-cam", "--target", "7", "--out", str(out)],
                "out of range",
            ),
        },
        out,
        afile,
    )


CASES = [
    "missing file", "not an image", "unknown model", "unknown method", "out is a file", "label count",
    "unknown label", "sweep out is a folder", "head without last layer", "layer out of range", "target on rollout",
    "target out of range",
]  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_bad_input_one_line_exit_2_nothing_written(vit_folder, images, tmp_path, capsys, case):
    cases, out, afile = bad_cases(tmp_path, vit_folder, images)
    argv, needle = cases[case]
    try:
        code = cli.main(argv)
    except SystemExit as stop:  # argparse's own refusals (unknown method)
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert needle in lines[0], lines[0]
    assert "Traceback" not in err
    assert not out.exists() or not any(out.iterdir()), "bad input wrote files"
    assert afile.read_text() == "keep me"


def test_bad_input_in_a_subprocess(vit_folder, tmp_path):
    r = run("explain", tmp_path / "missing.png", "--model", vit_folder, "--out", tmp_path / "maps")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "missing.png does not exist" in r.stderr
    assert not (tmp_path / "maps").exists()


def test_a_failed_write_leaves_no_file(tmp_path):
    target = tmp_path / "x.json"

    def boom(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        cli._atomic_write(target, boom)
    assert list(tmp_path.iterdir()) == []
    target.write_text("old")
    with pytest.raises(OSError):
        cli._atomic_write(target, boom)
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]


# ------------------------------------------------------------------ other model kinds
def test_a_cnn_gets_grad_cam_and_a_clear_refusal_of_rollout(resnet, images, tmp_path, capsys):
    folder = vn.train.save(
        resnet, tmp_path / "tiny-resnet", preprocessing=vn.core.Preprocessing(16, (0.5,) * 3, (0.25,) * 3, 3)
    )
    out = tmp_path / "maps"
    assert cli.main(["explain", str(images[0]), "--model", str(folder), "--method", "grad-cam", "--out", str(out)]) == 0
    rec = json.loads((out / "cat.json").read_text())
    model, x, heat = expected(folder, images[0], "grad-cam")
    assert rec["model_kind"] == "cnn"
    assert np.allclose(np.asarray(rec["map"]["values"]), heat.numpy(), atol=1e-6)
    capsys.readouterr()
    assert cli.main(["explain", str(images[0]), "--model", str(folder), "--out", str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err.strip()
    assert "does not explain a CNN" in err and "grad-cam" in err and "\n" not in err
    assert not (tmp_path / "other").exists() or not any((tmp_path / "other").iterdir())


def test_a_regression_model_reports_outputs_and_sweeps_with_number_labels(images, tmp_path):
    from conftest import make_vit

    net = make_vit(num_labels=3, problem_type="regression", id2label=None, label2id=None)
    pre = vn.core.Preprocessing(16, (0.5,) * 3, (0.25,) * 3, 3)
    folder = vn.train.save(net, tmp_path / "tiny-reg", preprocessing=pre)
    out = tmp_path / "maps"
    assert cli.main(["explain", str(images[0]), "--model", str(folder), "--out", str(out)]) == 0
    rec = json.loads((out / "cat.json").read_text())
    model = vn.load(folder)
    x = model.preprocess(vn.core.open_image(images[0]))
    assert np.allclose(rec["outputs"], model.predict(x)[0].numpy(), atol=1e-6) and rec["top"] is None
    table = tmp_path / "reg.csv"
    labels = ["0.1,0.2,0.3", "0.4,0.5,0.6"]
    assert cli.main(["sweep", *map(str, images), "--labels", *labels, "--model", str(folder), "--out", str(table)]) == 0
    got = pd.read_csv(table)
    y = torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])
    want = vn.sweep(model, model.preprocess([vn.core.open_image(p) for p in images]), y)
    assert (got["loss_kind"] == "mse").all() and np.allclose(got["loss"], want["loss"], rtol=1e-6)
    assert cli.main(["sweep", str(images[0]), "--labels", "big", "--model", str(folder), "--out", str(table)]) == 2
