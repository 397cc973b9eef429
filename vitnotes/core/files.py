"""Writing a file without overwriting one the writer did not write, and never half of it.

Every writer of vitnotes (``python -m vitnotes explain`` / ``sweep``, ``python -m vitnotes.demo``,
``vn.show.save_html``) passes its own recogniser ``ours(path) -> bool`` (is the file there one it wrote?).
``check_target`` refuses, before any work, a path it may not write; ``write_atomic`` writes a
temporary file beside the target, checks again and renames it onto the target. A refusal is one line
that names the path and the fix ("move or remove it, or choose another ..."); the disk is left as it
was.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

__all__ = ["below_a_file", "check_target", "file_head", "refuse_unless_ours", "temp_beside", "write_atomic"]


def file_head(path: Path, size: int) -> bytes:
    """The first ``size`` bytes of ``path`` (what a recogniser ``ours`` reads); ``b""`` if it cannot be read."""
    try:
        with path.open("rb") as f:
            return f.read(size)
    except OSError:
        return b""


def below_a_file(path: Path) -> Path | None:
    """The first folder above ``path`` that is a file (nothing can be written below it), if any."""
    return next((p for p in path.parents if p.exists() and not p.is_dir()), None)


def temp_beside(path: Path) -> Path:
    """A new empty file ``.NAME.XXXXXXXX.tmp`` beside ``path``, with the permissions an ordinary new
    file gets (0o666 less the umask; ``tempfile.mkstemp`` would make it private, 0o600)."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"no free temporary name beside {path}")


def refuse_unless_ours(path: Path, ours: Callable[[Path], bool], what: str, fix: str = "path") -> None:
    """Refuse (``FileExistsError``) a ``path`` that holds something other than ``what`` the writer
    wrote (``ours(path)``): a user's file, a folder, a symbolic link, a device. A free path passes.
    The message ends "move or remove it, or choose another ``fix``"."""
    if not path.exists() and not path.is_symlink():
        return
    if path.is_symlink():
        found = "a symbolic link"
    elif path.is_dir():
        found = "a folder"
    elif not path.is_file():
        found = "not a regular file"
    elif ours(path):
        return
    else:
        found = "a file"
    raise FileExistsError(
        f"{path} already exists and is {found}, not {what}; it is left as it is: "
        f"move or remove it, or choose another {fix}"
    )


def check_target(path: str | Path, ours: Callable[[Path], bool], what: str, *, example: str, arg: str = "") -> Path:
    """``path`` as a ``Path`` if a writer may write the file there: a free path, or ``what`` it wrote
    earlier (``ours``), which it replaces. Refused in one line, nothing touched: an empty path
    (``ValueError``), a folder (``IsADirectoryError``), a path below a file, anything else there
    (``FileExistsError``). ``arg`` is the option that gave the path (e.g. ``"--out"``, named in the
    messages), ``example`` a file name to suggest."""
    label, fix = (f"{arg} ", arg) if arg else ("", "path")
    if not str(path).strip():
        raise ValueError(f"{label}{str(path)!r} names no file; give the file to write, e.g. {label}{example}")
    path = Path(path).expanduser()
    if path.is_dir() and not path.is_symlink():
        raise IsADirectoryError(f"{label}{path} is a folder; give a file name, e.g. {label}{path / example}")
    below = below_a_file(path)
    if below is not None:
        raise FileExistsError(f"{label}{path}: {below} is a file, not a folder; choose another {fix}")
    refuse_unless_ours(path, ours, what, fix)
    return path


def write_atomic(
    path: Path,
    write: Callable[[Path], None],
    ours: Callable[[Path], bool] | None = None,
    what: str = "a file",
    fix: str = "path",
) -> None:
    """``write(tmp)`` to a temporary file beside ``path`` (``temp_beside``), then rename it onto
    ``path``: readers see the old file or the whole new one, never half of it. Just before the
    rename, ``refuse_unless_ours`` checks ``path`` again (``FileExistsError``); without ``ours``,
    nothing is replaced. On any error the temporary file is removed."""
    tmp = temp_beside(path)
    try:
        write(tmp)
        refuse_unless_ours(path, ours or (lambda _: False), what, fix)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
