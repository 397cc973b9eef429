"""Fine-tuning with ``transformers.Trainer``: the spectrogram recipes (``spectro-vit`` at 56 px,
``spectro-vit-b16`` from the hub) and any hub image classification set (``vit-b16-cifar10``). Under
``accelerate launch`` the Trainer spreads the batches over every GPU; only rank 0 saves. Introduced in
notebook 07.
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .. import data as vdata
from ..core.images import Preprocessing
from ..core.model import Model
from ..zoo import load
from .loop import finish, log, regression_metrics
from .recipes import RECIPES, SPECTRO_SEEDS, spectro_recipe
from .surgery import preprocessing, spectro_net


# --------------------------------------------------------------------------------- spectrograms
class _Tensors(torch.utils.data.Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return {"pixel_values": self.x[i], "labels": self.y[i]}


def spectro_split(split: str, n: int | None = None, recipe: str = "spectro-vit") -> tuple[torch.Tensor, torch.Tensor]:
    """The spectrogram task's fixed splits as (pixel_values in the recipe's preprocessing, z-scored
    targets): 56 px for ``spectro-vit``, 224 px for ``spectro-vit-b16``. ``n`` defaults to the recipe's
    split size. Introduced in notebook 07."""
    r = spectro_recipe(recipe)
    n = n or r.get(f"n_{split}") or r["n_test"]
    ds = vdata.spectrograms(n, seed=SPECTRO_SEEDS[split], size=r["input_size"])
    x = preprocessing(recipe)(list(ds["image"]))
    return x, torch.tensor(np.asarray(ds["targets"], dtype=np.float32))


def run_trainer(net, r: dict, work: Path, train, steps: int, quiet: bool, eval_dataset=None, **args) -> tuple:
    """The one ``transformers.Trainer`` set-up both hub recipes share: AdamW with the recipe's lr and
    weight decay, warm-up + cosine over ``steps`` optimiser steps, bfloat16 on a GPU, no checkpoints,
    quiet when asked. ``args`` override ``TrainingArguments``. Returns (trainer, training seconds)."""
    from transformers import Trainer, TrainingArguments
    from transformers.trainer_callback import PrinterCallback

    settings = dict(
        output_dir=str(work), num_train_epochs=r["epochs"], per_device_train_batch_size=r["batch"],
        per_device_eval_batch_size=r["batch"], learning_rate=r["lr"], weight_decay=r["weight_decay"],
        warmup_steps=int(r["warmup"] * steps), lr_scheduler_type="cosine", bf16=r["bf16"] and torch.cuda.is_available(),
        use_cpu=not torch.cuda.is_available(), eval_strategy="no", save_strategy="no", logging_steps=50,
        report_to=[], seed=r["seed"], data_seed=r["seed"], dataloader_num_workers=0,
        disable_tqdm=quiet or not sys.stderr.isatty(),
    )  # fmt: skip
    trainer = Trainer(model=net, args=TrainingArguments(**{**settings, **args}), train_dataset=train,
                      eval_dataset=eval_dataset)  # fmt: skip
    if quiet:
        trainer.remove_callback(PrinterCallback)
    t0 = time.time()
    with torch.enable_grad():  # a notebook may have switched gradients off globally
        trainer.train()
    return trainer, time.time() - t0


def _result(r: dict, trainer, seconds: float, work: Path, metrics: dict) -> dict:
    return dict(recipe=r, metrics=metrics, train_seconds=seconds, work=work, steps=trainer.state.global_step,
                history=list(trainer.state.log_history))  # fmt: skip


def train_spectro(
    out: Path,
    epochs: int | None = None,
    seed: int = 0,
    limit: int | None = None,
    quiet: bool = False,
    init: str | Path | None = None,
    recipe: str = "spectro-vit-b16",
) -> dict:
    """Fine-tune the hub recipe ``spectro-vit-b16`` (ViT-B/16 from the hub) on the spectrograms with
    ``transformers.Trainer`` and save it in ``out``; ``quiet`` prints nothing (no timestamps, no
    Trainer log lines); ``init`` replaces the recipe's starting model. Under ``accelerate launch``
    the Trainer spreads the batches over every GPU."""
    name = recipe
    r = dict(spectro_recipe(name), epochs=epochs or RECIPES[name]["epochs"], seed=seed)
    if init is not None:
        r["init"] = str(init)
    if limit:  # a smoke run with `limit` images per split
        r.update(limit=limit, n_train=limit, n_val=limit, n_test=limit)
    net = spectro_net(r["init"], seed, r["input_size"])
    train, val = spectro_split("train", r["n_train"], name), spectro_split("val", r["n_val"], name)
    work = out.parent / f".{out.name}.work"
    steps = r["epochs"] * r["n_train"] // r["batch"]
    trainer, seconds = run_trainer(net, r, work, _Tensors(*train), steps, quiet, eval_dataset=_Tensors(*val),
                                   per_device_eval_batch_size=100, eval_strategy="epoch", logging_steps=25,
                                   bf16=r["bf16"], disable_tqdm=True)  # fmt: skip
    if not is_main_process():  # accelerate launch: rank 0 saves and scores the model
        return _result(r, trainer, seconds, work, {})
    model = finish(name, net, preprocessing(name), out)
    xt, yt = spectro_split("test", r["n_test"], name)
    metrics = regression_metrics(model, xt, yt)
    metrics["test_subset"] = f"spectrograms(n={r['n_test']}, seed={SPECTRO_SEEDS['test']}, size={r['input_size']})"
    metrics["log"] = [h for h in trainer.state.log_history if "eval_loss" in h]
    return _result(r, trainer, seconds, work, metrics)


def demo_finetune(
    limit: int = 32, epochs: int = 1, seed: int = 0, init: str | Path | None = None, recipe: str = "spectro-vit"
) -> dict:
    """A smoke run of the real spectrogram recipe (the same code, loss, optimiser, schedule and
    transfer) on ``limit`` images per split, written to a temporary folder that is deleted afterwards:
    nothing is left on disk and the zoo is not touched. Prints nothing.

    Returns ``recipe`` (as run), ``settings`` (training images, learning rate, batch size and epochs of
    the run, whatever the recipe's form), ``steps`` (optimiser steps), ``train_loss`` (the mean training
    loss of the last steps), ``history`` (the training log: for the zoo recipe one entry per probe with
    the test MSE and R^2 and the attention statistics; for the hub recipe the Trainer's log),
    ``metrics`` (test MSE and R^2 on ``limit`` test images) and ``seconds``. The full run is
    ``python -m vitnotes.train spectro-vit``. Introduced in notebook 07.
    """
    import tempfile

    from .loop import steps_per_epoch, train_recipe

    for what, value in (("limit", limit), ("epochs", epochs)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{what} must be a positive int (e.g. {what}=32 for limit), got {value!r}")
    spectro_recipe(recipe)
    with tempfile.TemporaryDirectory(prefix="vitnotes-finetune-") as tmp:
        t = time.time()
        if RECIPES[recipe].get("hub"):
            res = train_spectro(
                Path(tmp) / recipe, epochs=epochs, seed=seed, limit=limit, quiet=True, init=init, recipe=recipe
            )
        else:
            res = train_recipe(recipe, Path(tmp) / recipe, epochs, seed, limit, init=init, quiet=True)
            # every stage's steps (``epochs`` sets the last stage's epochs; the log's steps count within a stage)
            stages = res["recipe"]["stages"]
            res.update(steps=sum(steps_per_epoch(res["recipe"]["n_train"], s["batch"]) * s["epochs"] for s in stages),
                       history=res["log"])  # fmt: skip
        seconds = time.time() - t
    r, history = res["recipe"], res["history"]
    stage = r["stages"][-1] if "stages" in r else r
    epochs_run = sum(s["epochs"] for s in r["stages"]) if "stages" in r else stage["epochs"]
    settings = dict(n_train=r["n_train"], lr=stage["lr"], batch=stage["batch"], epochs=epochs_run)
    train_loss = next(h["train_loss"] for h in reversed(history) if "train_loss" in h)
    metrics = {k: v for k, v in res["metrics"].items() if k != "log"}
    return dict(recipe=r, settings=settings, steps=res["steps"], train_loss=train_loss, history=history,
                metrics=metrics, seconds=seconds)  # fmt: skip


# ------------------------------------------------------------------------- any hub image data set
class _Images(torch.utils.data.Dataset):
    """A ``datasets.Dataset`` of images and class labels, preprocessed on the fly (CIFAR-10 at 224 px
    would not fit in memory as one tensor)."""

    def __init__(self, ds, image: str, label: str, pre: Preprocessing):
        self.ds, self.image, self.label, self.pre = ds, image, label, pre

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> dict:
        row = self.ds[int(i)]
        return {"pixel_values": self.pre(row[self.image].convert("RGB"))[0], "labels": int(row[self.label])}


def image_dataset(
    data: str | Path,
    split: str,
    limit: int | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
):
    """``(dataset, image column, label column)`` from ``datasets.load_dataset(data, split=split)``: a hub
    id (``uoft-cs/cifar10``) or a local folder of parquet / image files. The columns default to the
    first ``Image`` and the first ``ClassLabel`` feature; ``limit`` keeps the first rows."""
    import datasets

    try:
        ds = datasets.load_dataset(str(data), split=split)
    except Exception as err:  # noqa: BLE001 (hub, file-system and format errors all mean: no data)
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        if "corresponds to no data" in first:
            raise ValueError(
                f"split {split!r} of {str(data)!r} is empty: there is nothing to train or test on"
            ) from None
        raise FileNotFoundError(
            f"could not load split {split!r} of the data set {str(data)!r} ({first}). Online, check the id on "
            "huggingface.co/datasets; offline (HF_HUB_OFFLINE=1), pass a local folder of parquet or image files"
        ) from None
    if len(ds) == 0:
        raise ValueError(f"split {split!r} of {str(data)!r} is empty: there is nothing to train or test on")
    feats = ds.features
    image_column = image_column or next((k for k, f in feats.items() if isinstance(f, datasets.Image)), None)
    label_column = label_column or next((k for k, f in feats.items() if isinstance(f, datasets.ClassLabel)), None)
    for what, col in (("image", image_column), ("label", label_column)):
        if col is None or col not in feats:
            raise ValueError(
                f"{str(data)!r} has no {what} column (columns: {list(feats)}); name it with --{what}-column"
            )
    if limit:
        ds = ds.select(range(min(limit, len(ds))))
    return ds, image_column, label_column


def finetune_classifier(
    out: Path,
    name: str = "vit-b16-cifar10",
    data: str | Path | None = None,
    base: str | Path | None = None,
    epochs: int | None = None,
    seed: int = 0,
    limit: int | None = None,
    quiet: bool = False,
    image_column: str | None = None,
    label_column: str | None = None,
) -> dict:
    """Fine-tune a hub classifier (default ViT-B/16) on an image classification data set loaded with
    ``datasets.load_dataset`` (default CIFAR-10), with ``transformers.Trainer``: a new head for the data
    set's classes, AdamW, warm-up + cosine, bfloat16 on a GPU. Trains on the ``train`` split and scores
    top-1 accuracy on ``test``. Under ``accelerate launch`` the Trainer uses every GPU."""
    r = dict(RECIPES[name], epochs=epochs or RECIPES[name]["epochs"], seed=seed)
    r["data"], r["init"] = str(data or r["data"]), str(base or r["init"])
    if limit:
        r["limit"] = limit
    train_ds, image, label = image_dataset(r["data"], "train", limit, image_column, label_column)
    test_ds, _, _ = image_dataset(r["data"], "test", limit, image, label)
    classes = train_ds.features[label].names
    start = load(r["init"], new_head=True)  # safetensors only, no remote code; a backbone may lack a head
    net = _classifier(start, classes, seed)
    work = out.parent / f".{out.name}.work"
    if not quiet:
        log(f"{name}: {len(train_ds)} training images of {r['data']}, {len(classes)} classes")
    steps = max(1, math.ceil(len(train_ds) / r["batch"]) * r["epochs"])
    trainer, seconds = run_trainer(net, r, work, _Images(train_ds, image, label, start.preprocessing), steps, quiet,
                                   remove_unused_columns=False)  # fmt: skip
    if not is_main_process():
        return _result(r, trainer, seconds, work, {})
    model = finish(name, net, start.preprocessing, out)
    return _result(r, trainer, seconds, work, _test_accuracy(model, test_ds, image, label, r["data"]))


def _classifier(start: Model, classes: list[str], seed: int):
    """The starting model with a new classification head for ``classes`` (seeded)."""
    from transformers import AutoModelForImageClassification

    torch.manual_seed(seed)
    return AutoModelForImageClassification.from_pretrained(
        start.net.name_or_path, num_labels=len(classes), id2label=dict(enumerate(classes)),
        label2id={c: i for i, c in enumerate(classes)}, ignore_mismatched_sizes=True, use_safetensors=True,
        trust_remote_code=False, dtype=torch.float32,
    )  # fmt: skip


def _test_accuracy(model: Model, test_ds, image: str, label: str, data: str) -> dict:
    correct = 0
    for i in range(0, len(test_ds), 100):  # in chunks: the test split as one 224 px tensor would not fit
        rows = test_ds[i : i + 100]
        x = model.preprocess([img.convert("RGB") for img in rows[image]])
        correct += int((model.predict(x).argmax(-1) == torch.tensor(rows[label])).sum())
    return dict(test_accuracy=correct / len(test_ds), test_images=len(test_ds), test_subset=f"{data} test split")


def is_main_process() -> bool:
    """False in the extra processes ``accelerate launch`` starts: only rank 0 writes the card."""
    return int(os.environ.get("RANK", "0")) == 0
