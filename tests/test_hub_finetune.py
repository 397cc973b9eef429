"""Fine-tuning on an image data set through datasets.load_dataset (CIFAR-10 for readers online),
tested offline on a small local parquet folder shaped like uoft-cs/cifar10."""

import json

import datasets
import numpy as np
import pytest

import vitnotes as vn
from vitnotes import train


@pytest.fixture
def cifar_like(tmp_path):
    """A folder of parquet files with CIFAR-10's columns (img: Image, label: ClassLabel)."""
    rng = np.random.default_rng(0)
    feats = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=["cat", "dog", "ship"])})
    folder = tmp_path / "cifar-like"
    for split, n in (("train", 12), ("test", 6)):
        imgs = list(rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8))
        ds = datasets.Dataset.from_dict({"img": imgs, "label": list(rng.integers(0, 3, n))}, features=feats)
        (folder / "data").mkdir(parents=True, exist_ok=True)
        ds.to_parquet(folder / "data" / f"{split}-00000-of-00001.parquet")
    return folder


def test_finetune_on_a_local_data_set(cifar_like, vit_folder, tmp_path):
    out = tmp_path / "ft"
    code = train.main(
        ["vit-b16-cifar10", "--data", str(cifar_like), "--base", str(vit_folder), "--epochs", "1", "--out", str(out)]
    )
    assert code == 0
    model = vn.load(out)
    assert model.labels == ["cat", "dog", "ship"] and model.geometry.image_size == 16
    card = json.loads((out / "card.json").read_text())
    assert card["metrics"]["test_images"] == 6 and 0 <= card["metrics"]["test_accuracy"] <= 1
    assert f"--data {cifar_like}" in card["command"] and "--base" in card["command"]
    # the card's accuracy is measured on the saved weights: recompute it independently
    test = datasets.load_dataset(str(cifar_like), split="test")
    x = model.preprocess([im.convert("RGB") for im in test["img"]])
    acc = float((model.predict(x).argmax(-1).numpy() == np.asarray(test["label"])).mean())
    assert acc == pytest.approx(card["metrics"]["test_accuracy"])
    assert not list(tmp_path.glob(".ft*")), "the work folder must be cleaned up"


def test_data_set_errors_are_clear(tmp_path, cifar_like):
    with pytest.raises(FileNotFoundError, match="local folder of parquet"):
        train.image_dataset(tmp_path / "nowhere", "train")
    with pytest.raises(ValueError, match="no label column"):
        train.image_dataset(cifar_like, "train", label_column="fine_label")
    empty = tmp_path / "empty"
    (empty / "data").mkdir(parents=True)
    feats = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=["a"])})
    datasets.Dataset.from_dict({"img": [], "label": []}, features=feats).to_parquet(empty / "data" / "train-0.parquet")
    with pytest.raises(ValueError, match="empty"):
        train.image_dataset(empty, "train")


def test_hub_recipe_without_weights_says_how_to_make_them(tmp_path, monkeypatch):
    monkeypatch.setenv("VITNOTES_HOME", str(tmp_path))
    assert train.output_folder("spectro-vit-b16") == tmp_path / "spectro-vit-b16"
    with pytest.raises(FileNotFoundError, match="python -m vitnotes.train spectro-vit-b16"):
        train.trained("spectro-vit-b16")
    assert train.output_folder("spectro-vit") == vn.train.ZOO_DIR / "spectro-vit"
