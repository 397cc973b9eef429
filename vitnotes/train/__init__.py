"""Zoo recipes: ``python -m vitnotes.train NAME`` trains one zoo model and writes its weights and card.

- ``recipes``: the recipes as data (stages, distillation, probe epochs);
- ``surgery``: how one model starts from another (patch 4 -> 2, Fashion-MNIST -> spectrograms);
- ``loop``: the Fashion-MNIST loop (checkpoints, resume, distillation, attention probes);
- ``probe``: attention statistics logged through training, and the plateau criterion;
- ``trainer``: fine-tuning with ``transformers.Trainer`` (spectrograms, hub data sets);
- ``card``: model cards and output folders; ``__main__``: the command line;
- from the zoo: ``save`` (a model as safetensors, atomically), ``card_epochs`` (a card's training log
  as epochs), ``ZOO_DIR``.

``vn.train`` in a notebook: chapters 07-10 start from ``vn.train.starting_point`` and
``vn.train.trained``; the book's page "How the zoo was trained" reads ``vn.train.TARGETS``.

Introduced in notebook 03 (how each model was trained, from its card).
"""

from ..zoo import ZOO_DIR, card_epochs, save
from .card import card_markdown, output_folder, refresh_card, trained, work_folder, write_card
from .loop import accuracy, augment, machine, regression_metrics, train_recipe
from .probe import layer_statistics, plateau
from .recipes import RECIPES, SPECTRO_RECIPES, TARGETS, TEST_SUBSET, staged, target_met
from .surgery import new_net, preprocessing, starting_point, transfer
from .trainer import demo_finetune, finetune_classifier, image_dataset, spectro_split, train_spectro


def main(argv: list[str] | None = None) -> int:
    """The command line (``python -m vitnotes.train``), callable from Python."""
    from .__main__ import main as cli

    return cli(argv)


__all__ = [
    "ZOO_DIR",
    "card_epochs",
    "save",
    "RECIPES",
    "SPECTRO_RECIPES",
    "TARGETS",
    "TEST_SUBSET",
    "accuracy",
    "augment",
    "card_markdown",
    "demo_finetune",
    "finetune_classifier",
    "image_dataset",
    "layer_statistics",
    "machine",
    "main",
    "new_net",
    "output_folder",
    "plateau",
    "preprocessing",
    "refresh_card",
    "regression_metrics",
    "spectro_split",
    "staged",
    "starting_point",
    "train_recipe",
    "target_met",
    "train_spectro",
    "trained",
    "transfer",
    "work_folder",
    "write_card",
]
