"""Whole data sets in batches, and one analysis spread over several processes.

An analysis that accepts a ``datasets.Dataset`` (or an ``IterableDataset``) reads it here, one batch
at a time, never whole: images from a ``pixel_values`` column, or from an image column through the
model's own preprocessing (``vn.load`` reads it from the checkpoint's ``preprocessor_config.json``).
Under ``accelerate launch`` (or ``torchrun``) each process takes one contiguous part of the images
(``datasets.distributed.split_dataset_by_node``'s split; a tensor is split the same way) and the analysis
adds up its per-process sums with ``gather``, so every process returns the table one process would.
Introduced in the book's page "Whole data sets, many processes" (``book/scale.md``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .geometry import as_int
from .images import image_stack

__all__ = ["Part", "add_up", "gather", "is_dataset", "part", "processes", "span"]

# how accelerate (and torchrun, mpirun) tell a process that it is one of several
_WORLD = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
PIXELS = "pixel_values"
IMAGE_COLUMNS = ("image", "img")


def processes() -> tuple[int, int]:
    """(this process's index, the number of processes): ``(0, 1)`` unless the script was started
    by ``accelerate launch`` / ``torchrun`` with several processes. Without a GPU (or with
    ``ACCELERATE_USE_CPU`` set) the processes talk over gloo on the CPU."""
    if not any(int(os.environ.get(name) or 1) > 1 for name in _WORLD):
        return 0, 1
    from accelerate import PartialState

    cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes") or not torch.cuda.is_available()
    state = PartialState(cpu=cpu)
    return state.process_index, state.num_processes


def gather(obj: Any) -> list:
    """``obj`` of every process, in process order (``[obj]`` in one process); every process gets the list."""
    if processes()[1] == 1:
        return [obj]
    from accelerate.utils import gather_object

    return gather_object([obj])


def add_up(parts: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Key-wise sums of per-process sums (numbers or arrays), in process order; a key a process
    lacks (it had no image) counts as 0. In one process: the sums themselves, exactly."""
    keys = list(dict.fromkeys(k for p in parts for k in p))
    return {k: sum(p[k] for p in parts if k in p) for k in keys}


def span(n: int, rank: int, world: int) -> tuple[int, int]:
    """(start, stop) of process ``rank``'s contiguous part of ``n`` images: the first ``n % world``
    processes take one more, as ``split_dataset_by_node`` splits a ``Dataset``."""
    div, mod = divmod(n, world)
    start = rank * div + min(rank, mod)
    return start, start + div + (rank < mod)


def is_dataset(data: Any) -> bool:
    """Whether ``data`` is a ``datasets.Dataset`` or ``IterableDataset`` (a dataset dict is refused:
    pick a split)."""
    ds = sys.modules.get("datasets")
    if ds is None:
        return False
    if isinstance(data, (ds.DatasetDict, ds.IterableDatasetDict)):
        raise TypeError(f"got a dataset dict with splits {list(data)}; pass one split, e.g. ds[{list(data)[0]!r}]")
    return isinstance(data, (ds.Dataset, ds.IterableDataset))


@dataclass
class Part:
    """This process's part of an analysis's input, read in batches.

    Each batch is a dict: ``pixel_values`` (float tensor) or ``images`` (raw images, numpy), one entry
    per role asked for, and ``index``, the position of the batch's first image in the whole input
    (None for an ``IterableDataset`` split over processes, whose positions are unknown)."""

    batches: Iterator[dict[str, Any]]
    start: int | None  # position of the part's first image in the whole input
    size: int | None  # images in this part (None: a stream)
    total: int | None  # images in the whole input (None: a stream)


def part(data: Any, model: Any, roles: Mapping[str, Any], *, batch_size: int, what: str, raw: bool = False) -> Part:
    """This process's part of ``data``: a tensor / array of images (``roles`` then maps each role to
    its per-image values, already checked, or None) or a dataset (``roles`` maps each role to its
    column: a name, a tuple of accepted names where the first present one is used, or None for
    "not wanted"). ``raw``: raw images (an image column) instead of ``pixel_values``."""
    batch_size = as_int(batch_size, "batch_size", least=1)
    if is_dataset(data):
        return _dataset_part(data, model, roles, batch_size, what, raw)
    rank, world = processes()
    n = len(data)
    start, stop = span(n, rank, world)
    key = "images" if raw else PIXELS

    def batches() -> Iterator[dict[str, Any]]:
        for lo in range(start, stop, batch_size):
            hi = min(lo + batch_size, stop)
            yield {key: data[lo:hi], "index": lo, **{r: None if v is None else v[lo:hi] for r, v in roles.items()}}

    return Part(batches(), start, stop - start, n)


def _dataset_part(ds: Any, model: Any, roles: Mapping[str, Any], batch_size: int, what: str, raw: bool) -> Part:
    import datasets
    from datasets.distributed import split_dataset_by_node

    image = _image_column(ds, model, raw, what, roles)
    columns = {r: _column(ds, spec, r, what, image) for r, spec in roles.items() if spec is not None}
    rank, world = processes()
    start = size = total = None
    if isinstance(ds, datasets.IterableDataset):
        start = 0 if world == 1 else None  # a stream's parts: its shards, or every world-th row
        ds = ds if world == 1 else split_dataset_by_node(ds, rank=rank, world_size=world)
    else:  # contiguous rows, as split_dataset_by_node would take them (it fails with fewer rows than processes)
        total = len(ds)
        start, stop = span(total, rank, world)
        size = stop - start
        ds = ds if world == 1 else ds.select(range(start, stop))
    reader = ds.select_columns(list(dict.fromkeys([image, *columns.values()])))
    if raw or image == PIXELS:  # arrays; images for preprocessing stay PIL images (their modes checked there)
        reader = reader.with_format("numpy")

    def batches() -> Iterator[dict[str, Any]]:
        at = start
        for b in reader.iter(batch_size):
            images = _images(b[image], image, model, raw, what)
            yield {"images" if raw else PIXELS: images, "index": at, **{r: b[c] for r, c in columns.items()}}
            at = None if at is None else at + len(images)

    return Part(batches(), start, size, total)


def _images(values: Any, column: str, model: Any, raw: bool, what: str) -> Any:
    """One batch of a dataset's image column as raw images or ``pixel_values``."""
    uneven = isinstance(values, np.ndarray) and values.dtype.kind == "O"  # numpy formatting: sizes differ
    if uneven and (raw or column == PIXELS):
        raise ValueError(
            f"{what}: the rows of column {column!r} differ in size within a batch; "
            + (
                "the deletion study needs raw images of one size: resize them first, e.g. "
                "ds = ds.map(lambda e: {'image': e['image'].resize((224, 224))})"
                if raw
                else "give pixel_values of one size (the image processor's output), or an 'image' column"
            )
        )
    if column == PIXELS:
        return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
    return image_stack(values) if raw else model.preprocess(list(values))  # the checkpoint's own recipe


def _columns_help(ds: Any, need: str, what: str) -> ValueError:
    """The error for a dataset without the columns an analysis needs: which exist, how to map them."""
    features = ds.features or {}
    names = _names(ds)
    kinds = {type(f).__name__: c for c, f in features.items()}
    rename = {
        c: new for new, kind in (("image", "Image"), ("label", "ClassLabel")) if (c := kinds.get(kind)) and c != new
    }
    hint = f"ds = ds.rename_columns({rename})" if rename else "ds = ds.rename_columns({'<your column>': 'image', ...})"
    return ValueError(
        f"{what}: the dataset has columns {names}; it needs {need}. Map yours onto these names, e.g. {hint}"
    )


def _names(ds: Any) -> list[str]:
    """A dataset's column names; a stream whose features are unknown is asked for its first row."""
    if ds.column_names is not None:
        return list(ds.column_names)
    first = next(iter(ds.take(1)), None)
    return list(first or {})


def _image_column(ds: Any, model: Any, raw: bool, what: str, roles: Mapping[str, Any]) -> str:
    names = _names(ds)
    if not raw and PIXELS in names:
        return PIXELS
    found = next((c for c in IMAGE_COLUMNS if c in names), None)
    if found is None:
        need = "raw images in an 'image' column" if raw else "images: a 'pixel_values' column or an 'image' column"
        wanted = [f"{r} (a {s if isinstance(s, str) else s[0]!r} column)" for r, s in roles.items() if s is not None]
        raise _columns_help(ds, " and ".join([need, *wanted]), what)
    if not raw and not callable(getattr(model, "preprocess", None)):
        raise TypeError(
            f"{what}: the dataset's {found!r} column holds images and a bare transformers model has no preprocessing; "
            "load the model with vn.load(...) (it reads the checkpoint's preprocessor_config.json), or add a "
            "'pixel_values' column (ds.with_transform with the checkpoint's image processor)"
        )
    return found


def _column(ds: Any, spec: str | tuple[str, ...], role: str, what: str, image: str) -> str:
    names = _names(ds)
    accepted = (spec,) if isinstance(spec, str) else tuple(spec)
    found = next((c for c in accepted if c in names), None)
    if found is None:
        raise _columns_help(ds, f"images ({image!r}) and {role} (a {accepted[0]!r} column)", what)
    return found
