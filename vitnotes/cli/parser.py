"""The ``python -m vitnotes`` parser (``explain`` and ``sweep``, each with its examples under its
options) and ``main``, which runs a command and turns a refusal into one line on stderr."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .checks import EXIT_BAD_INPUT, EXIT_FAILED, PROG, CliError, _one_line, _registry
from .explain import explain_images
from .sweep import sweep_table


class _Parser(argparse.ArgumentParser):
    """argparse with errors on one line: the problem, then where the help is."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}; see {self.prog} --help\n")


EXPLAIN_EXAMPLES = """examples:
  python -m vitnotes explain cat.jpg dog.png --model fmnist-vit-p4 --out maps/
  python -m vitnotes explain photo.jpg --model google/vit-base-patch16-224 --method "gradient rollout" --target 281
  python -m vitnotes explain shirt.png --model fmnist-vit-p4 --method "last layer" --layer 5 --head 3 --out maps/
  python -m vitnotes explain photo.jpg --model ./my-checkpoint --method grad-cam --layer -2 --out maps/

Method names with a space may also be written with a dash (last-layer, gradient-rollout).
Per image, the folder gets NAME.png (the map over the image the model saw, with a colour bar) and
NAME.json: image, model, method, layer/head/target, prediction and top-5 classes with probabilities
(outputs for a regression model), and the map: its grid, entropy (nats), entropy / log N, top-10
share and values. Files are written whole (temporary name, then renamed); bad input writes nothing.
Nothing is overwritten that explain did not write: an existing NAME.json is replaced only if it is
an explain record, NAME.png only if such a record beside it names it; anything else is refused.
Models: a zoo name, a local folder (config.json + model.safetensors) or a hub id (offline: only
models already in the Hugging Face cache). Exit status: 0 done, 2 bad input, 1 failure."""


SWEEP_EXAMPLES = """examples:
  python -m vitnotes sweep a.png b.png c.png --labels 3 0 Sneaker --model fmnist-vit-p4 --out heads.csv
  python -m vitnotes sweep s1.png s2.png --labels 0.1,0.4,0.7 0.3,0.2,0.9 --model spectro-vit --out heads.csv

Each head is ablated alone (its output zeroed before the output projection, notebook 08) and the
loss over the images measured: cross-entropy for classifiers, MSE for regression models. The CSV
has one row per (layer, head): layer, head, loss, rel_increase (loss / intact loss - 1),
baseline_loss, n_images, loss_kind, model. Written whole (temporary name, then renamed). An
existing --out is replaced only if sweep wrote it (its first line is that header); any other file
is refused.
Exit status: 0 done, 2 bad input, 1 failure."""


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m vitnotes`` parser; ``--method`` lists the registry's methods."""
    names = _registry()
    parser = _Parser(
        prog=PROG,
        description="What Vision Transformer attention looks at, from the command line: maps of your own "
        "images (explain) and per-head ablation tables (sweep). Training the zoo: python -m vitnotes.train.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="run `python -m vitnotes explain --help` or `python -m vitnotes sweep --help` for their options",
    )
    sub = parser.add_subparsers(dest="command", metavar="{explain,sweep}", parser_class=_Parser)
    sub.required = True
    _add_explain(sub, names)
    _add_sweep(sub)
    return parser


def _add_explain(sub, names: list[str]) -> None:
    """The ``explain`` subcommand and its options; ``names``: the registry's methods."""
    ex = _command(
        sub,
        "explain",
        "write an overlay PNG and a JSON of numbers per image",
        "Explain each image with a map method: one overlay PNG and one JSON per image.",
        EXPLAIN_EXAMPLES,
    )
    ex.add_argument("--model", required=True, metavar="NAME", help="zoo name, local folder or hub id (required)")
    ex.add_argument(
        "--method",
        default="rollout",
        type=_method_name,
        choices=names,
        metavar="METHOD",
        help=f"map method from the registry, one of: {', '.join(names)} (default: rollout)",
    )
    ex.add_argument(
        "--out",
        default="vitnotes-maps",
        metavar="DIR",
        help="output folder (default: vitnotes-maps); files explain did not write are never replaced",
    )
    _add_map_options(ex, names)


def _add_map_options(ex: argparse.ArgumentParser, names: list[str]) -> None:
    """``explain``'s options that pick the map: ``--layer``, ``--head``, ``--target``, ``--prompt``."""
    ex.add_argument(
        "--layer",
        type=int,
        metavar="L",
        help="layer for methods that take one ('last layer', grad-cam) and for --head; negative counts from the end",
    )
    ex.add_argument(
        "--head",
        type=int,
        metavar="H",
        help="with --method 'last layer': one head's CLS attention instead of the mean over heads",
    )
    ex.add_argument(
        "--target",
        metavar="T",
        help="class to explain, an index or a label, for class-specific methods "
        f"({', '.join(n for n in names if _class_specific(n))}); default: the predicted class",
    )
    ex.add_argument(
        "--prompt",
        action="append",
        metavar="TEXT",
        help="CLIP / SigLIP models: a text prompt, repeat for several (the classes are the prompts; with "
        "several, the map explains the softmax over them); --target may name one",
    )


def _add_sweep(sub) -> None:
    """The ``sweep`` subcommand and its options."""
    sw = _command(
        sub,
        "sweep",
        "write the per-head ablation table as CSV",
        "Ablate every attention head alone and write the loss table as CSV.",
        SWEEP_EXAMPLES,
    )
    sw.add_argument(
        "--labels",
        nargs="+",
        required=True,
        metavar="LABEL",
        help="the true label of each image, in order: a class index or name (regression: comma-separated numbers)",
    )
    sw.add_argument(
        "--model", required=True, metavar="NAME", help="zoo name, local folder or hub id of a ViT (required)"
    )
    sw.add_argument(
        "--out",
        required=True,
        metavar="FILE",
        help="CSV file to write (its folder is created if missing); replaced only if sweep wrote it",
    )
    sw.add_argument("--batch-size", type=int, default=64, metavar="N", help="images per forward pass (default: 64)")


def _command(sub, name: str, summary: str, description: str, examples: str) -> argparse.ArgumentParser:
    """A subcommand that takes image files, with its examples under its options."""
    cmd = sub.add_parser(
        name,
        help=summary,
        description=description,
        epilog=examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmd.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, TIFF, ...)")
    return cmd


def _class_specific(name: str) -> bool:
    from ..methods import registered

    return registered(name).class_specific


def _method_name(text: str) -> str:
    """``last-layer`` / ``last_layer`` / ``Last Layer`` -> the registry's ``last layer``."""
    wanted = text.strip().lower().replace("-", " ").replace("_", " ")
    for name in _registry():
        if name.lower() == wanted:
            return name
    return text  # argparse's choices then refuse it with the list


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 done, 2 bad input, 1 failure)."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    parser = build_parser()
    args = parser.parse_args(argv)
    from .. import setup, show_progress

    setup(seed=0, style=False)
    progress = show_progress()
    try:
        if args.command == "explain":
            written = explain_images(
                args.images,
                args.model,
                args.method,
                args.out,
                layer=args.layer,
                head=args.head,
                target=args.target,
                prompts=args.prompt,
                progress=progress,
            )
            for path in written:
                print(path)
        else:
            print(
                sweep_table(
                    args.images, args.labels, args.model, args.out, batch_size=args.batch_size, progress=progress
                )
            )
    except CliError as err:
        print(f"{PROG} {args.command}: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (OSError, RuntimeError, ValueError, TypeError, IndexError) as err:
        print(f"{PROG} {args.command}: failed: {_one_line(err)}", file=sys.stderr)
        if os.environ.get("VITNOTES_DEBUG"):
            raise
        return EXIT_FAILED
    return 0
