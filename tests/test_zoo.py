"""Every zoo model loads offline through vitnotes and re-scores its card on the fixed test subset."""

import json
import re

import pytest
import torch

import vitnotes as vn
from vitnotes import train

RECIPES = sorted(n for n, r in train.RECIPES.items() if not r.get("hub"))  # hub recipes live outside the zoo
NAMES = vn.zoo_names()  # every recipe, and seeds beside them (NAME-sN)


def _recipe(name: str) -> str:
    return re.sub(r"-s\d+$", "", name)


def test_zoo_is_complete_and_small():
    training = set(train.recipes.IN_TRAINING)
    assert set(RECIPES) - training <= set(NAMES) and all(_recipe(n) in RECIPES for n in NAMES), NAMES
    assert not training & set(NAMES), "a model in the zoo is still listed in recipes.IN_TRAINING: drop it there"
    # the zoo's models, without the checkpoints of runs under way (.NAME.work/, kept out of git)
    total = sum(f.stat().st_size for f in vn.train.ZOO_DIR.glob("[!.]*/*") if f.is_file())
    assert total <= 120 * 2**20, f"zoo is {total / 2**20:.1f} MiB"
    assert not list(vn.train.ZOO_DIR.rglob("*.bin")) and not list(vn.train.ZOO_DIR.rglob("*.pt"))


@pytest.mark.parametrize("name", NAMES)
def test_card(name):
    folder = vn.train.ZOO_DIR / name
    card = json.loads((folder / "card.json").read_text())
    for field in ("recipe", "metrics", "command", "train_seconds", "machine", "date", "parameters"):
        assert field in card, field
    assert card["command"].startswith(f"python -m vitnotes.train {_recipe(name)}") and "--limit" not in card["command"]
    text = (folder / "README.md").read_text()
    for words in ("## Data", "## Recipe", "## Reproduce", "## Test metrics", "## Training", card["machine"]):
        assert words in text, words


@pytest.mark.parametrize("name", NAMES)
def test_zoo_model_rescores_its_card(name):
    card = json.loads((vn.train.ZOO_DIR / name / "card.json").read_text())["metrics"]
    model = vn.load(name)
    assert next(model.net.parameters()).dtype == torch.float32
    if "r2" in card:  # the spectrogram regression
        assert model.geometry.channels == 3
        x, y = train.spectro_split("test", train.TEST_SUBSET, _recipe(name))
        got = train.regression_metrics(model, x, y)
        assert abs(got["mse"] - card["mse"]) <= 0.01
        for k, r2 in got["r2"].items():
            assert abs(r2 - card["r2"][k]) <= 0.01, k
    else:
        images, labels = vn.data.fashion_mnist_arrays("test")
        x = model.preprocess(list(images[: train.TEST_SUBSET]))
        acc = train.accuracy(model, x, torch.from_numpy(labels[: train.TEST_SUBSET]))
        assert abs(acc - card["test_subset_accuracy"]) <= 0.01, (acc, card["test_subset_accuracy"])
