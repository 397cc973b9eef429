"""What the commands share: the error class and exit statuses, the checks on ``--out`` (a folder for
``explain``, a file for ``sweep``) and on the files already there (only the command's own are
replaced), writes to a temporary name then renamed, the images opened and the model loaded before
any work, and class targets read as ``vn.explain`` reads them."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ..core.files import below_a_file, check_target, file_head, refuse_unless_ours, write_atomic

PROG = "python -m vitnotes"
EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
# the CSV that sweep writes, column by column: its header line is what marks a file as sweep's own
SWEEP_COLUMNS = ("layer", "head", "loss", "rel_increase", "baseline_loss", "n_images", "loss_kind", "model")
# the keys that mark a JSON file as a record explain wrote (with "overlay" naming the PNG beside it)
RECORD_KEYS = ("image", "model", "method", "map", "overlay")
_REMOVE = "move or remove it, or choose another --out"


class CliError(Exception):
    """Bad input: the message names the problem and the fix; the command exits with status 2."""


def _registry() -> list[str]:
    from ..methods import methods

    return methods()


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
    from ..core.images import open_image

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
    from ..zoo import load

    try:
        return load(name) if not prompts else load(name, prompts=list(prompts))
    except (ValueError, OSError, TypeError) as err:
        raise CliError(_one_line(err)) from None


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    if isinstance(err, KeyError) and text.startswith("'") and text.endswith("'"):
        text = text[1:-1]
    return text or type(err).__name__


def _regression(model) -> bool:
    return getattr(model.net.config, "problem_type", None) == "regression"


def _class_index(text: str | int, labels: Sequence[str], what: str) -> int:
    """A class given as an index (``3``) or a label name (``cat``), as ``vn.explain`` reads targets."""
    from ..core.model import class_indices

    try:
        return class_indices(str(text), len(labels), list(labels), what)[0]
    except (ValueError, TypeError) as err:
        raise CliError(_one_line(err)) from None
