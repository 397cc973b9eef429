"""Fashion-MNIST offline: Debian's ``dataset-fashion-mnist``, a folder you name
(``VITNOTES_FASHION_MNIST``), or a download when online. Introduced in notebook 01."""

from __future__ import annotations

import gzip
import os
import tempfile
import urllib.request
from pathlib import Path

import numpy as np

__all__ = ["FASHION_MNIST_CLASSES", "fashion_mnist", "fashion_mnist_arrays"]

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip

_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60000),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10000),
}

_DEBIAN = Path("/usr/share/datasets/fashion-mnist")

_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vitnotes" / "fashion-mnist"

_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"


def _offline() -> bool:
    return any(
        os.environ.get(v, "") not in ("", "0") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "VITNOTES_OFFLINE")
    )


def _find(path: str | Path | None, split: str) -> Path:
    names = _FILES[split][:2]
    if path is not None or os.environ.get("VITNOTES_FASHION_MNIST"):
        folder = Path(path or os.environ["VITNOTES_FASHION_MNIST"]).expanduser()
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{folder} lacks {', '.join(missing)}: point it at the folder holding the four gzipped IDX files"
            )
        return folder
    for folder in (_DEBIAN, _CACHE):
        if all((folder / n).is_file() for n in names):
            return folder
    hint = (
        "Install it with `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or set "
        "VITNOTES_FASHION_MNIST=/folder/with/the/idx.gz/files, or pass path=..."
    )
    if _offline():
        raise FileNotFoundError(
            f"Fashion-MNIST not found in {_DEBIAN} or {_CACHE} and downloads are off (offline). {hint}"
        )
    _CACHE.mkdir(parents=True, exist_ok=True)
    for n in names:
        if (_CACHE / n).is_file():
            continue
        fd, tmp = tempfile.mkstemp(prefix=f".{n}.", dir=_CACHE)
        os.close(fd)
        try:
            urllib.request.urlretrieve(_URL + n, tmp)  # noqa: S310 (fixed https/http host)
            _read_idx(Path(tmp))  # refuse a truncated or wrong file before it takes the real name
            os.replace(tmp, _CACHE / n)
        except Exception as err:
            Path(tmp).unlink(missing_ok=True)
            raise FileNotFoundError(
                f"Fashion-MNIST not found locally and the download of {n} failed ({err}). {hint}"
            ) from None
    return _CACHE


def _read_idx(file: Path) -> np.ndarray:
    try:
        raw = gzip.decompress(file.read_bytes())
    except (OSError, EOFError) as err:
        raise ValueError(f"{file} is not a readable gzipped IDX file ({err}); reinstall or re-download it") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 8:
        raise ValueError(f"{file} is not an unsigned-byte IDX file; reinstall or re-download it")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{file} is truncated ({data.size} bytes for shape {shape}); reinstall or re-download it")
    return data.reshape(shape)


def fashion_mnist_arrays(split: str = "train", path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST as arrays: images ``[N, 28, 28]`` uint8 and labels ``[N]`` int64 (fast path for training)."""
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    folder = _find(path, split)
    images, labels = (_read_idx(folder / n) for n in _FILES[split][:2])
    if len(images) != len(labels):
        raise ValueError(f"{folder}: {len(images)} images but {len(labels)} labels; reinstall the files")
    return images, labels.astype(np.int64)


def fashion_mnist(split: str = "train", path: str | Path | None = None):
    """Fashion-MNIST (60k train / 10k test, 28x28 grayscale, 10 balanced classes) as a ``datasets.Dataset``
    with columns ``image`` (PIL, mode "L") and ``label`` (ClassLabel with the class names).

    Looks in ``path``, ``$VITNOTES_FASHION_MNIST``, ``/usr/share/datasets/fashion-mnist`` (Debian package
    ``dataset-fashion-mnist``) and ``~/.cache/vitnotes``; downloads there when online. Introduced in notebook 01.
    """
    import datasets

    images, labels = fashion_mnist_arrays(split, path)
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=list(FASHION_MNIST_CLASSES))}
    )
    return datasets.Dataset.from_dict({"image": list(images), "label": labels}, features=features, split=split)
