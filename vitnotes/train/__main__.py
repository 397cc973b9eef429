"""``python -m vitnotes.train NAME``: train one zoo model (or a hub recipe) and write its card."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

from ..zoo import check_save_target
from .card import output_folder, work_folder, write_card
from .loop import log, machine, train_recipe
from .recipes import RECIPES
from .trainer import finetune_classifier, is_main_process, train_spectro


def whole(least: int, fix: str):
    """An argparse type: a whole number >= ``least``, else the one-line error ``fix`` (checked before any
    run starts: ``--limit 0`` would otherwise be a full run, ``--threads -1`` a traceback)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; {fix}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"{value} is below {least}; {fix}")
        return value

    return parse


class _OneLine(argparse.ArgumentParser):
    """argparse, with a bad argument said in one line (no usage block above it), exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def parser() -> argparse.ArgumentParser:
    p = _OneLine(
        prog="python -m vitnotes.train",
        description="Train a zoo model and write its card. "
        "An interrupted run resumes from its last checkpoint when run again.",
    )
    p.add_argument("name", choices=sorted(RECIPES))
    p.add_argument(
        "--epochs",
        type=whole(1, "give the (last stage's) epochs, e.g. --epochs 2"),
        default=None,
        help="override the (last stage's) epochs",
    )
    p.add_argument(
        "--seed",
        type=whole(0, "give a seed >= 0, e.g. --seed 1"),
        default=0,
        help="training seed; the output folder gets a -sN suffix when N > 0",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: the zoo, or ~/.cache/vitnotes/NAME for hub recipes)",
    )
    p.add_argument(
        "--work", type=Path, default=None, help="checkpoint folder (default: $VITNOTES_HOME/work/NAME-sSEED)"
    )
    p.add_argument(
        "--start-from",
        type=Path,
        default=None,
        help="Fashion-MNIST recipes: take stage 1's result from this model folder instead of training it",
    )
    p.add_argument("--threads", type=whole(1, "give the number of CPU threads, e.g. --threads 4"), default=None)
    p.add_argument(
        "--limit",
        type=whole(
            1, "a smoke run takes a positive number of images per split, e.g. --limit 256 (omit it for a full run)"
        ),
        default=None,
        help="smoke run: use only this many images per split",
    )
    p.add_argument(
        "--data", default=None, help="vit-b16-cifar10: another data set id or folder (datasets.load_dataset)"
    )
    p.add_argument("--base", default=None, help="vit-b16-cifar10: another starting model (hub id or folder)")
    p.add_argument(
        "--image-column", default=None, help="the data set's image column (default: the first Image feature)"
    )
    p.add_argument("--label-column", default=None, help="the data set's label column (default: the first ClassLabel)")
    return p


def run(a: argparse.Namespace, out: Path) -> dict:
    """Dispatch to the recipe's trainer."""
    if a.name == "spectro-vit-b16":
        return train_spectro(out, a.epochs, a.seed, a.limit, recipe=a.name)
    if "data" in RECIPES[a.name]:
        return finetune_classifier(
            out,
            a.name,
            a.data,
            a.base,
            a.epochs,
            a.seed,
            a.limit,
            image_column=a.image_column,
            label_column=a.label_column,
        )
    work = a.work or (out.parent / f".{out.name}.work" if a.out else work_folder(a.name, a.seed))
    return train_recipe(a.name, out, a.epochs, a.seed, a.limit, work=work, start_from=a.start_from)


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    if a.start_from and RECIPES[a.name].get("hub"):
        own = ", ".join(n for n in sorted(RECIPES) if not RECIPES[n].get("hub"))
        print(f"python -m vitnotes.train {a.name}: --start-from applies to the zoo's recipes ({own})", file=sys.stderr)
        return 2
    if a.threads:
        torch.set_num_threads(a.threads)
    out = a.out or output_folder(a.name).with_name(output_folder(a.name).name + (f"-s{a.seed}" if a.seed else ""))
    try:
        check_save_target(out)  # at the door: never after hours of training
    except (FileExistsError, ValueError) as err:
        print(f"python -m vitnotes.train {a.name}: {err}", file=sys.stderr)
        return 2
    log(f"training {a.name} -> {out} on {machine()}")
    try:
        res = run(a, out)
    except (FileNotFoundError, ValueError, OSError) as err:  # missing data, a missing or corrupt base model
        print(f"python -m vitnotes.train {a.name}: {err}", file=sys.stderr)
        return 2
    if is_main_process():
        write_card(a.name, res, out)
        shutil.rmtree(res["work"], ignore_errors=True)
    log(f"{a.name}: {json.dumps(res['metrics'])[:400]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
