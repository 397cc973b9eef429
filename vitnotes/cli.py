"""The command line: ``python -m vitnotes explain ...`` and ``python -m vitnotes sweep ...``.

``explain`` writes, per image, an overlay PNG (the map over the image the model saw, with a colour
bar) and a JSON of its numbers (prediction, top classes, the map's entropy / log N and top-10
share, the method and model). ``sweep`` writes the per-head ablation table as CSV. Every map comes
from the method registry (``vn.explain``), every figure from ``show/``. Bad input is refused with
one line on stderr and a non-zero exit before anything is written; every file is written to a
temporary name beside it and renamed, so none is ever half-written.

Nothing is overwritten that the command did not write. ``explain`` replaces ``NAME.json`` only if it
is an explain record (a JSON object with the keys ``image``, ``model``, ``method``, ``map`` and
``overlay``, ``overlay`` being ``NAME.png``), and ``NAME.png`` only if such a record beside it names
it; ``sweep`` replaces a file only if its first line is exactly the sweep table's header
(``SWEEP_COLUMNS``). Anything else there (a user's file, a folder, a symbolic link) is refused, with
the path named, before a model is loaded; the check is repeated just before each rename. The
notebooks that introduce what the command line runs: 06 (rollout, the methods) and 08 (head
ablation, the sweep).
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .core.files import below_a_file, check_target, file_head, refuse_unless_ours, write_atomic

__all__ = ["CliError", "build_parser", "explain_images", "main", "sweep_table"]

PROG = "python -m vitnotes"
EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
TOP_K = 10  # the map's top-k share, k = 10 as in the seed paper (fewer when the grid is smaller)
# the CSV that sweep writes, column by column: its header line is what marks a file as sweep's own
SWEEP_COLUMNS = ("layer", "head", "loss", "rel_increase", "baseline_loss", "n_images", "loss_kind", "model")
# the keys that mark a JSON file as a record explain wrote (with "overlay" naming the PNG beside it)
RECORD_KEYS = ("image", "model", "method", "map", "overlay")
_REMOVE = "move or remove it, or choose another --out"


class CliError(Exception):
    """Bad input: the message names the problem and the fix; the command exits with status 2."""


# ------------------------------------------------------------------ helpers
def _registry() -> list[str]:
    from .methods import methods

    return methods()


def _method_name(text: str) -> str:
    """``last-layer`` / ``last_layer`` / ``Last Layer`` -> the registry's ``last layer``."""
    wanted = text.strip().lower().replace("-", " ").replace("_", " ")
    for name in _registry():
        if name.lower() == wanted:
            return name
    return text  # argparse's choices then refuse it with the list


@contextmanager
def _bad_input(*kinds: type[Exception]) -> Iterator[None]:
    """A one-line refusal of a path by ``core.files`` (one of ``kinds``) as a ``CliError``: exit status 2."""
    try:
        yield
    except kinds as err:
        raise CliError(str(err)) from None


def _atomic_write(
    path: Path, write: Callable[[Path], None], ours: Callable[[Path], bool] | None = None, what: str = "a file"
) -> None:
    """``write(tmp)`` to a temporary file beside ``path``, then rename it onto ``path``
    (``core.files.write_atomic``): readers see the old file or the whole new one, never half of it.
    Just before the rename, a ``path`` that exists is refused (``CliError``, the temporary file
    removed) unless ``ours(path)`` says the command wrote it (``what`` names what it would be);
    without ``ours``, nothing is replaced."""
    with _bad_input(FileExistsError):
        write_atomic(path, write, ours, what, fix="--out")


def _check_writable(folder: Path) -> None:
    """Refuse ``folder`` if it, or the nearest existing folder above it, is not writable."""
    here = folder if folder.is_dir() else next((p for p in folder.parents if p.exists()), Path("."))
    if not os.access(here, os.W_OK | os.X_OK):
        raise CliError(f"{here} is not writable, so nothing can be written in {folder}; choose another --out")


def _out_folder(out: str | Path) -> Path:
    """``explain``'s ``--out`` checked, nothing created yet: a folder, or a path where one can be made."""
    if not str(out).strip():
        raise CliError(
            f"--out {str(out)!r} names no folder; give the output folder, e.g. --out maps (--out . for this folder)"
        )
    folder = Path(out).expanduser()
    if folder.is_symlink() and not folder.exists():
        raise CliError(f"--out {folder} is a broken symbolic link; {_REMOVE}")
    if folder.exists() and not folder.is_dir():
        raise CliError(f"--out {folder} is a file, not a folder; give a folder name (it is created if missing)")
    below = below_a_file(folder)
    if below is not None:
        raise CliError(f"--out {folder}: {below} is a file, not a folder; choose another --out")
    _check_writable(folder)
    return folder


def _make_folder(folder: Path) -> Path:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CliError(f"cannot create the folder {folder} ({err.strerror}); choose another --out") from None
    return folder


def _is_record(path: Path) -> bool:
    """``NAME.json`` is a record ``explain`` wrote: a JSON object with ``RECORD_KEYS``, naming ``NAME.png``."""
    try:
        if path.stat().st_size > 256 * 2**20:  # a record holds one map's values: far smaller
            return False
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(rec, dict) and all(k in rec for k in RECORD_KEYS) and rec["overlay"] == f"{path.stem}.png"


def _is_overlay(path: Path) -> bool:
    """``NAME.png`` is an overlay ``explain`` wrote: a PNG that the record ``NAME.json`` beside it names."""
    return file_head(path, 8) == b"\x89PNG\r\n\x1a\n" and _is_record(path.with_suffix(".json"))


def _overlay(name: str) -> str:
    return f"an overlay explain wrote (a PNG named by the record {name}.json beside it)"


_RECORD = f"a record explain wrote (a JSON object with the keys {', '.join(RECORD_KEYS)})"


def _check_outputs(folder: Path, names: Sequence[str]) -> None:
    """Refuse before any work if a file ``explain`` would write into ``folder`` is there and not its own."""
    with _bad_input(FileExistsError):
        for name in names:
            refuse_unless_ours(folder / f"{name}.png", _is_overlay, _overlay(name), fix="--out")
            refuse_unless_ours(folder / f"{name}.json", _is_record, _RECORD, fix="--out")


def _is_sweep_table(path: Path) -> bool:
    """A CSV ``sweep`` wrote: its first line is exactly the header ``SWEEP_COLUMNS``."""
    return file_head(path, 4096).split(b"\n", 1)[0].rstrip(b"\r") == ",".join(SWEEP_COLUMNS).encode()


_TABLE = f"a table sweep wrote (first line: {','.join(SWEEP_COLUMNS)})"


def _out_file(out: str | Path) -> Path:
    """``sweep``'s ``--out`` checked, nothing created yet: a free path or a table ``sweep`` wrote
    (``core.files.check_target``: an empty path, a folder, a path below a file are refused too)."""
    with _bad_input(ValueError, FileExistsError, IsADirectoryError):
        path = check_target(out, _is_sweep_table, _TABLE, example="heads.csv", arg="--out")
    _check_writable(path.parent)
    return path


def _open_images(paths: Sequence[str | Path]) -> list:
    """Every image opened (decoded) before any work; a bad one is named with the fix."""
    from .core.images import open_image

    if not paths:
        raise CliError("no image given; pass one or more image files (PNG, JPEG, ...)")
    images = []
    for p in paths:
        path = Path(p).expanduser()
        if not path.exists():
            raise CliError(f"image file {path} does not exist; check the path (globs like *.jpg must match files)")
        try:
            images.append(open_image(path))
        except (ValueError, OSError) as err:
            raise CliError(f"{_one_line(err)} (pass image files only)") from None
    return images


def _load_model(name: str, prompts: Sequence[str] | None = None):
    from .zoo import load

    try:
        return load(name) if not prompts else load(name, prompts=list(prompts))
    except (ValueError, OSError, TypeError) as err:
        raise CliError(_one_line(err)) from None


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    if isinstance(err, KeyError) and text.startswith("'") and text.endswith("'"):
        text = text[1:-1]
    return text or type(err).__name__


def _stems(paths: Sequence[str | Path]) -> list[str]:
    """Output names, one per image: the file's stem, made unique (``cat``, ``cat-2``, ...)."""
    seen: dict[str, int] = {}
    names = []
    for p in paths:
        stem = Path(p).stem or "image"
        seen[stem] = seen.get(stem, 0) + 1
        names.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    taken = set(names)
    if len(taken) != len(names):  # e.g. "cat-2" given as a file as well as made up: number them all
        names = [f"{i:03d}-{n}" for i, n in enumerate(names)]
    return names


def _regression(model) -> bool:
    return getattr(model.net.config, "problem_type", None) == "regression"


def _class_index(text: str | int, labels: Sequence[str], what: str) -> int:
    """A class given as an index (``3``) or a label name (``cat``), as ``vn.explain`` reads targets."""
    from .core.model import class_indices

    try:
        return class_indices(str(text), len(labels), list(labels), what)[0]
    except (ValueError, TypeError) as err:
        raise CliError(_one_line(err)) from None


# ------------------------------------------------------------------ explain
def _check_options(name: str, layer: int | None, head: int | None, target: Any) -> dict:
    """Which of --layer / --head / --target the method takes; refuse the ones it would ignore."""
    from .methods import registered

    m = registered(name)
    takes_layer = "layer" in inspect.signature(m.fn).parameters
    if head is not None and name != "last layer":
        raise CliError(
            f"--head picks one head of the 'last layer' map (CLS attention); use --method 'last layer', not {name!r}"
        )
    if layer is not None and not takes_layer and not (head is not None and name == "last layer"):
        with_layer = [n for n in _registry() if "layer" in inspect.signature(registered(n).fn).parameters]
        raise CliError(f"method {name!r} has no --layer option; drop --layer or use one of {with_layer}")
    if target is not None and not m.class_specific:
        specific = [n for n in _registry() if registered(n).class_specific]
        raise CliError(f"method {name!r} does not depend on the class; drop --target or use one of {specific}")
    return {"layer": layer} if layer is not None else {}


def _map_for(model, x, name: str, layer: int | None, head: int | None, target: int | None, options: dict):
    """The map ``[1, rows, cols]`` of one preprocessed image."""
    from .core.capture import capture
    from .methods import explain, registered

    if head is not None:  # one head of the CLS attention instead of the mean over heads
        lay = -1 if layer is None else layer
        return capture(model, x, layers=[lay], cls_only=True).cls_grid(lay, head)
    if not registered(name).takes_model:
        return explain(capture(model, x), None, name, **options)
    return explain(model, x, name, target=target, **options)


def _map_numbers(heat) -> dict:
    from .stats import entropy, normalized_entropy, topk_share

    p = heat.detach().double().flatten()
    n = p.numel()
    k = min(TOP_K, n)
    numbers: dict[str, Any] = {"grid": list(heat.shape), "patches": n, "top_k": k}
    if (p < 0).any() or not bool(p.isfinite().all()) or float(p.sum()) <= 0 or n < 2:
        numbers.update(entropy=None, entropy_over_log_n=None, top_k_share=None)
        numbers["note"] = "the map is empty, negative or not finite: entropy and top-k share are undefined"
    else:
        numbers.update(
            entropy=float(entropy(p)),
            entropy_over_log_n=float(normalized_entropy(p)),
            top_k_share=float(topk_share(p, k)),
        )
    numbers["log_n"] = math.log(n) if n > 0 else None
    numbers["values"] = heat.detach().double().tolist()
    return numbers


def _prediction(model, logits) -> dict:
    import torch

    if _regression(model):
        return {"outputs": [float(v) for v in logits[0]], "top": None}
    probs = torch.softmax(logits[0].double(), -1)
    top = probs.topk(min(5, probs.numel()))
    rows = [
        {"index": int(i), "label": model.labels[int(i)] if int(i) < len(model.labels) else f"class {int(i)}",
         "probability": float(p)}
        for p, i in zip(top.values, top.indices)
    ]  # fmt: skip
    return {"prediction": rows[0], "top": rows}


@dataclass(frozen=True)
class _Request:
    """One ``explain`` run's settings, checked: the model's name, the method, its options and the class."""

    model: str
    method: str
    layer: int | None
    head: int | None
    target: int | None
    options: dict


def explain_images(
    images: Sequence[str | Path],
    model: str,
    method: str = "rollout",
    out: str | Path = "vitnotes-maps",
    *,
    layer: int | None = None,
    head: int | None = None,
    target: str | int | None = None,
    prompts: Sequence[str] | None = None,
    progress: bool = False,
) -> list[Path]:
    """Write ``NAME.png`` (overlay with colour bar) and ``NAME.json`` (its numbers) in ``out`` for
    every image; returns the paths written. Everything is checked before the first file is
    written (``CliError`` names the problem and the fix). An existing ``NAME.json`` is replaced
    only if it is a record explain wrote (a JSON object with ``RECORD_KEYS`` whose ``overlay`` is
    ``NAME.png``), an existing ``NAME.png`` only if such a record beside it names it; anything else
    there is refused before the model is loaded, and nothing changes on disk. An empty ``out`` is
    refused (``"."`` is this folder). ``prompts``: text prompts for a CLIP or SigLIP model (``vn.load``'s
    ``prompts``): the classes are the prompts, and ``target`` may name one. Introduced with notebook 06
    (rollout)."""
    if method not in _registry():
        raise CliError(f"unknown method {method!r}; choose one of {_registry()} (python -m vitnotes explain --help)")
    options = _check_options(method, layer, head, target)
    names = _stems(images)
    folder = _out_folder(out)
    _check_outputs(folder, names)  # before any work: nothing of the user's is overwritten
    pictures = _open_images(images)
    net = _load_model(model, prompts)
    _check_fit(net, model, method, layer, head)
    req = _Request(model, method, layer, head, _target_index(net, model, target), options)
    _make_folder(folder)
    steps = zip(images, pictures, names, strict=True)
    if progress and len(pictures) > 1:
        from tqdm.auto import tqdm

        steps = tqdm(list(steps), desc="explain", unit="image")
    written: list[Path] = []
    for path, picture, name in steps:
        written += _explain_one(net, req, path, picture, folder, name)
    return written


def _check_fit(net, model: str, method: str, layer: int | None, head: int | None) -> None:
    """Refuse a method that does not explain this kind of model, and a layer or head it does not have."""
    from .methods import registered

    geom = net.geometry
    if geom.kind not in registered(method).kinds:
        raise CliError(
            f"method {method!r} does not explain a {geom.kind.upper()} such as {model!r}; "
            f"use one of {[n for n in _registry() if geom.kind in registered(n).kinds]}"
        )
    try:
        if layer is not None:
            geom.layer(layer)
        if head is not None:
            geom.head(head)
    except (IndexError, TypeError) as err:
        raise CliError(_one_line(err)) from None


def _target_index(net, model: str, target: str | int | None) -> int | None:
    """``--target`` as a class index (None: the predicted class); refused for a regression model."""
    if target is None:
        return None
    if _regression(net):
        raise CliError(f"{model!r} is a regression model: it has no classes to pass as --target; drop --target")
    return _class_index(target, net.labels, "--target")


def _explain_one(net, req: _Request, path, picture, folder: Path, name: str) -> list[Path]:
    """Map one image and write ``NAME.png`` and ``NAME.json`` into ``folder``; returns both paths."""
    from .show.figures import display_image, overlay

    try:
        x = net.preprocess(picture)
        logits = net.predict(x)
        heat = _map_for(net, x, req.method, req.layer, req.head, req.target, req.options)[0].float()
    except (ValueError, TypeError, IndexError) as err:
        raise CliError(f"{path}: {_one_line(err)}") from None
    pred = _prediction(net, logits)
    record = {
        "image": str(path),
        "model": req.model,
        "model_kind": net.geometry.kind,
        "method": req.method,
        "layer": req.layer,
        "head": req.head,
        "target": None if req.target is None else {"index": req.target, "label": net.labels[req.target]},
        **pred,
        "map": _map_numbers(heat),
        "overlay": f"{name}.png",
    }
    fig = overlay(display_image(x[0], net.preprocessing), heat, title=_overlay_title(req, pred))
    png, js = folder / f"{name}.png", folder / f"{name}.json"
    _atomic_write(png, lambda tmp: fig.savefig(tmp, format="png", dpi=100), _is_overlay, _overlay(name))
    _atomic_write(js, lambda tmp: tmp.write_text(json.dumps(record, indent=2) + "\n"), _is_record, _RECORD)
    return [png, js]


def _overlay_title(req: _Request, pred: dict) -> str:
    """The method (or layer and head) and, for a classifier, the predicted label with its probability."""
    title = req.method if req.head is None else f"layer {-1 if req.layer is None else req.layer}, head {req.head}"
    if "prediction" in pred:
        title += f" | {pred['prediction']['label']} {pred['prediction']['probability']:.0%}"
    return title


# ------------------------------------------------------------------ sweep
def _targets(labels: Sequence[str], model, n_images: int):
    import torch

    if len(labels) != n_images:
        raise CliError(
            f"{len(labels)} labels for {n_images} images; give one --labels entry per image, in the same order"
        )
    if _regression(model):
        rows = []
        for text in labels:
            try:
                rows.append([float(v) for v in str(text).split(",")])
            except ValueError:
                raise CliError(
                    f"label {text!r} is not a list of numbers; a regression model wants one comma-separated "
                    "row per image, e.g. --labels 0.1,0.5,0.3"
                ) from None
        if len({len(r) for r in rows}) != 1:
            raise CliError("the --labels rows have different lengths; give every image the same number of outputs")
        return torch.tensor(rows, dtype=torch.float32)
    return torch.tensor([_class_index(text, model.labels, "label") for text in labels])


def sweep_table(
    images: Sequence[str | Path],
    labels: Sequence[str],
    model: str,
    out: str | Path,
    *,
    batch_size: int = 64,
    progress: bool = False,
) -> Path:
    """Ablate every head alone over ``images`` (true ``labels``: class indices or names, or
    comma-separated numbers for a regression model) and write the table (``vn.sweep``) as CSV to
    ``out``: one row per (layer, head) with ``loss``, ``rel_increase``, and the intact loss and
    image count (columns ``SWEEP_COLUMNS``). An existing ``out`` is replaced only if it is a table
    sweep wrote (its first line is exactly that header); anything else (a user's file, a folder,
    a symbolic link, an empty ``out``, a path below a file) is refused before the images are read
    or the model loaded, and nothing changes on disk. Introduced with notebook 08 (head ablation)."""
    from .interventions.ablation import sweep

    if batch_size < 1:
        raise CliError(f"--batch-size must be at least 1, got {batch_size}")
    path = _out_file(out)
    pictures = _open_images(images)
    if len(labels) != len(pictures):
        raise CliError(
            f"{len(labels)} labels for {len(pictures)} images; give one --labels entry per image, in the same order"
        )
    net = _load_model(model)
    if net.geometry.kind != "vit":
        raise CliError(f"{model!r} is a {net.geometry.kind.upper()}: it has no attention heads to ablate; use a ViT")
    targets = _targets(labels, net, len(pictures))
    try:
        x = net.preprocess(pictures)
        df = sweep(net, x, targets, batch_size=batch_size, progress=progress)
    except (ValueError, TypeError, IndexError) as err:
        raise CliError(_one_line(err)) from None
    df["baseline_loss"] = df.attrs["baseline"]
    df["n_images"] = df.attrs["n"]
    df["loss_kind"] = df.attrs["loss"]
    df["model"] = model
    table = df[list(SWEEP_COLUMNS)]
    _make_folder(path.parent)
    _atomic_write(path, lambda tmp: table.to_csv(tmp, index=False, float_format="%.9g"), _is_sweep_table, _TABLE)
    return path


# ------------------------------------------------------------------ the parser
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
    from .methods import registered

    return registered(name).class_specific


# ------------------------------------------------------------------ entry point
def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 done, 2 bad input, 1 failure)."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    parser = build_parser()
    args = parser.parse_args(argv)
    from . import setup, show_progress

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
