"""``python -m vitnotes sweep``: every attention head ablated alone, the loss table written as CSV.
Introduced with notebook 08 (head ablation)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .. import cli  # the package: ``cli._load_model`` is looked up when called, so a test may replace it
from .checks import (
    _TABLE,
    SWEEP_COLUMNS,
    CliError,
    _atomic_write,
    _class_index,
    _is_sweep_table,
    _make_folder,
    _one_line,
    _open_images,
    _out_file,
    _regression,
)


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
    from ..interventions.ablation import sweep

    if batch_size < 1:
        raise CliError(f"--batch-size must be at least 1, got {batch_size}")
    path = _out_file(out)
    pictures = _open_images(images)
    if len(labels) != len(pictures):
        raise CliError(
            f"{len(labels)} labels for {len(pictures)} images; give one --labels entry per image, in the same order"
        )
    net = cli._load_model(model)
    if net.geometry.kind != "vit":
        raise CliError(f"{model!r} is a {net.geometry.kind.upper()}: it has no attention heads to ablate; use a ViT")
    targets = _targets(labels, net, len(pictures))
    try:
        x = net.preprocess(pictures)
        df = sweep(net, x, targets, batch_size=batch_size, progress=progress)
    except (ValueError, TypeError, IndexError) as err:
        raise CliError(_one_line(err)) from None
    table = _columns(df, model)
    _make_folder(path.parent)
    _atomic_write(path, lambda tmp: table.to_csv(tmp, index=False, float_format="%.9g"), _is_sweep_table, _TABLE)
    return path


def _columns(df, model: str):
    """``vn.sweep``'s frame with the intact loss, the image count, the kind of loss and the model as columns,
    in the order ``SWEEP_COLUMNS``."""
    df["baseline_loss"] = df.attrs["baseline"]
    df["n_images"] = df.attrs["n"]
    df["loss_kind"] = df.attrs["loss"]
    df["model"] = model
    return df[list(SWEEP_COLUMNS)]
