"""The zoo's recipes, as data: what ``python -m vitnotes.train NAME`` runs.

A Fashion-MNIST recipe is a list of ``stages`` run one after the other on the same network, each
with its own warm-up + cosine schedule. A stage may distil from a ``teacher`` (a zoo model): the
loss is ``(1 - distill) * cross-entropy + distill * T^2 KL(teacher / T || student / T)``, the
teacher seeing the student's augmented batch (DeiT's soft distillation). ``probe_epochs`` are the
cumulative epochs (counted over all stages) at which the training loop measures the model's
attention on a fixed probe set (see ``probe.py``); the end of every stage is always probed.
A recipe with ``task="regress"`` learns the spectrogram task (MSE on z-scored targets) in the same
loop; the hub recipes fine-tune with ``transformers.Trainer`` (``trainer.py``).
"""

from __future__ import annotations

FMNIST_MEAN, FMNIST_STD = 0.2860, 0.3530
TEST_SUBSET = 1000  # the first 1,000 test images: the subset the test suite re-scores
PROBE_IMAGES = 256  # the first 256 test images: the probe set whose attention is logged through training
SPECTRO_SIZE = 56
SPECTRO_SEEDS = {"train": 1, "val": 2, "test": 3}

_VIT = dict(
    hidden_size=192, num_hidden_layers=12, num_attention_heads=12, intermediate_size=768, image_size=28, num_channels=1
)
_FMNIST = dict(batch=128, weight_decay=0.05, label_smoothing=0.1, flip=True, bf16=False)
# spectrograms: no flips or crops (they would move the chirp's start time and frequencies)
_SPECTRO = dict(
    batch=32,
    weight_decay=0.05,
    label_smoothing=0.0,
    flip=False,
    crop_pad=0,
    bf16=False,  # bf16 autocast does not pay on this project's Xeon (AMX): 0.85x at batch 32, 1.03x at 128
    n_train=8000,
    n_test=TEST_SUBSET,
)
# zoo v1's only stage; zoo v2 keeps it as stage 1 and adds a longer, distilled stage 2
_P4_STAGE1 = dict(epochs=3, lr=1e-3, warmup=0.05, crop_pad=2)
_RESNET_STAGE1 = dict(epochs=8, lr=2e-3, warmup=0.05, crop_pad=4)

RECIPES: dict[str, dict] = {
    "fmnist-resnet": dict(
        arch="resnet", input_size=56, **_FMNIST,
        config=dict(embedding_size=32, hidden_sizes=[64, 128], depths=[2, 2], layer_type="basic"),
        stages=[_RESNET_STAGE1, dict(epochs=5, lr=5e-4, warmup=0.05, crop_pad=4)],
        probe_epochs=[],
    ),
    "fmnist-vit-p4": dict(
        arch="vit", input_size=28, **_FMNIST, config=dict(_VIT, patch_size=4),
        stages=[_P4_STAGE1, dict(epochs=12, lr=5e-4, warmup=0.02, crop_pad=2, teacher="fmnist-resnet",
                                 distill=0.5, temperature=2.0),
                # stage 3 (zoo v2, on a GPU: tools/zoo_gpu.sh): a new warm-up + cosine at batch 512
                dict(epochs=26, lr=5e-4, warmup=0.05, crop_pad=2, batch=512, teacher="fmnist-resnet",
                     distill=0.5, temperature=2.0)],
        # random init, then roughly geometric over both stages, then every epoch of the last quarter
        probe_epochs=[0, 0.25, 0.5, 1, 2, 3, 3.5, 4, 5, 7, 11, 12, 13, 14, 15],
    ),
    # the control for chapter 03: p4's network and data with no teacher, from scratch, one warm-up + cosine
    # (fmnist-vit-p4 distils from fmnist-resnet, so its agreement with the ResNet is partly taught)
    "fmnist-vit-p4-scratch": dict(
        arch="vit", input_size=28, **_FMNIST, config=dict(_VIT, patch_size=4),
        stages=[dict(epochs=20, lr=1e-3, warmup=0.05, crop_pad=2)],
        probe_epochs=[0, 0.25, 0.5, 1, 2, 3, 5, 8, 12, 16],
    ),
    "fmnist-vit-p2": dict(
        arch="vit", input_size=28, **_FMNIST, config=dict(_VIT, patch_size=2),
        init="fmnist-vit-p4",  # patch embedding sum-pooled 4x4 -> 2x2, positions interpolated 7x7 -> 14x14
        stages=[
            dict(epochs=7, lr=3e-4, warmup=0.05, crop_pad=2, teacher="fmnist-resnet", distill=0.5, temperature=2.0)
        ],
        probe_epochs=[0, 0.25, 0.5, 1, 1.5, 2],
    ),
    "spectro-vit": dict(
        arch="vit", task="regress", input_size=SPECTRO_SIZE, **_SPECTRO, init="fmnist-vit-p4",
        # stage 2 (on a GPU, tools/zoo_gpu.sh): start time had not reached R^2 0.9 after stage 1
        stages=[dict(epochs=11, lr=3e-4, warmup=0.05), dict(epochs=10, lr=2e-4, warmup=0.05)],
        probe_epochs=[0, 0.25, 0.5, 1, 2, 4, 7.5, 8, 9, 10, 11],
    ),
    # the same regression learned by a small CNN from scratch: the reference for what the task allows
    "spectro-resnet": dict(
        arch="resnet", task="regress", input_size=SPECTRO_SIZE, **dict(_SPECTRO, batch=64),
        config=dict(embedding_size=32, hidden_sizes=[64, 128], depths=[2, 2], layer_type="basic"),
        stages=[dict(epochs=8, lr=2e-3, warmup=0.05)], probe_epochs=[1, 2, 4],
    ),
    # the seed paper's setup for readers online: ViT-B/16 from the hub fine-tuned on 224 px spectrograms
    "spectro-vit-b16": dict(
        arch="vit", input_size=224, epochs=3, batch=32, lr=5e-5, weight_decay=0.05, warmup=0.1,
        bf16=True, n_train=8000, n_val=500, n_test=TEST_SUBSET, init="google/vit-base-patch16-224", hub=True,
    ),
    # the course lab's step 7 for readers online: ViT-B/16 fine-tuned on CIFAR-10 from the hub's data sets
    "vit-b16-cifar10": dict(
        arch="vit", input_size=224, epochs=2, batch=64, lr=5e-5, weight_decay=0.05, warmup=0.1, bf16=True,
        init="google/vit-base-patch16-224", data="uoft-cs/cifar10", hub=True,
    ),
}  # fmt: skip
SPECTRO_RECIPES = ("spectro-vit", "spectro-resnet", "spectro-vit-b16")
# recipes whose run is under way (a resumable checkpoint in vitnotes/zoo/.NAME.work/), not yet in the zoo:
# no chapter loads them; a recipe leaves this list in the commit that adds its model to the zoo
IN_TRAINING = ("fmnist-vit-p4-scratch",)
# the project's targets: (metric, the least value); for "r2" every target's R^2 must reach it
TARGETS = {
    "fmnist-vit-p4": ("test_accuracy", 0.89),
    "fmnist-vit-p4-scratch": ("test_accuracy", 0.88),
    "fmnist-vit-p2": ("test_accuracy", 0.88),
    "fmnist-resnet": ("test_accuracy", 0.93),
    "spectro-vit": ("r2", 0.9),
    "spectro-resnet": ("r2", 0.9),
}


def target_met(name: str, metrics: dict) -> bool | None:
    """Whether a model's test metrics meet its recipe's target (None: the recipe has none)."""
    if name not in TARGETS:
        return None
    metric, least = TARGETS[name]
    value = min(metrics[metric].values()) if metric == "r2" else metrics[metric]
    return value >= least


def staged(name: str, epochs: int | None = None) -> list[dict]:
    """The recipe's stages with every shared field filled in; ``epochs`` replaces the last stage's."""
    r = RECIPES[name]
    shared = {k: v for k, v in r.items() if k not in ("stages", "probe_epochs", "config")}
    stages = [dict(shared, **s) for s in r["stages"]]
    if epochs is not None:
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"--epochs must be a positive whole number, got {epochs!r}")
        stages[-1]["epochs"] = epochs
    return stages


def spectro_recipe(recipe: str) -> dict:
    """A spectrogram recipe by name, with a clear error for any other name."""
    if recipe not in SPECTRO_RECIPES:
        raise ValueError(f"recipe must be one of {SPECTRO_RECIPES} (the spectrogram task), got {recipe!r}")
    return RECIPES[recipe]
