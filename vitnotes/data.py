"""Data sets that work offline, each a ``datasets.Dataset``.

- ``fashion_mnist(split)``: the real Fashion-MNIST images (Debian package ``dataset-fashion-mnist``,
  a folder you name, or a download when online).
- ``spectrograms(n, seed, size)``: the synthetic chirp task with ground-truth masks (``vitnotes.spectro``).
- ``sample_photos()``: the natural photos scikit-image and scikit-learn ship, for hub models.
"""

from __future__ import annotations

import gzip
import os
import tempfile
import urllib.request
from pathlib import Path

import numpy as np


__all__ = [
    "FASHION_MNIST_CLASSES",
    "REGIONS",
    "TARGET_NAMES",
    "fashion_mnist",
    "fashion_mnist_arrays",
    "examples",
    "per_class",
    "photos",
    "region_masks",
    "sample_photos",
    "scale",
    "show_regions",
    "spectrograms",
    "unscale",
]

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
_SPECTRO = ("REGIONS", "TARGET_NAMES", "region_masks", "scale", "show_regions", "spectrograms", "unscale")


def __getattr__(name: str):  # the spectrogram task lives in vitnotes.spectro; import it on first use
    if name in _SPECTRO:
        from . import spectro

        return getattr(spectro, name)
    raise AttributeError(f"module 'vitnotes.data' has no attribute {name!r}")


_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60000),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10000),
}
_DEBIAN = Path("/usr/share/datasets/fashion-mnist")
_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vitnotes" / "fashion-mnist"
_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"


def _offline() -> bool:
    return any(os.environ.get(v, "") not in ("", "0") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "VITNOTES_OFFLINE"))


def _find(path: str | Path | None, split: str) -> Path:
    names = _FILES[split][:2]
    if path is not None or os.environ.get("VITNOTES_FASHION_MNIST"):
        folder = Path(path or os.environ["VITNOTES_FASHION_MNIST"]).expanduser()
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise FileNotFoundError(f"{folder} lacks {', '.join(missing)}: point it at the folder holding the four gzipped IDX files")
        return folder
    for folder in (_DEBIAN, _CACHE):
        if all((folder / n).is_file() for n in names):
            return folder
    hint = (
        "Install it with `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or set "
        "VITNOTES_FASHION_MNIST=/folder/with/the/idx.gz/files, or pass path=..."
    )
    if _offline():
        raise FileNotFoundError(f"Fashion-MNIST not found in {_DEBIAN} or {_CACHE} and downloads are off (offline). {hint}")
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
            raise FileNotFoundError(f"Fashion-MNIST not found locally and the download of {n} failed ({err}). {hint}") from None
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


# name, source, ImageNet-1k class (index, name), object box (x0, y0, x1, y1) in the 224 x 224 centre crop
_PHOTOS = (
    ("chelsea", "skimage", 281, "tabby cat", (20, 10, 224, 224)),
    ("coffee", "skimage", 967, "espresso", (25, 0, 200, 150)),
    ("rocket", "skimage", 657, "missile", (98, 20, 128, 215)),
    ("camera", "skimage", 872, "tripod", (100, 40, 190, 224)),
    ("clock", "skimage", 409, "analog clock", (75, 65, 150, 150)),
    ("horse", "skimage", 339, "sorrel", (0, 35, 224, 200)),
    ("china", "sklearn", 698, "palace", (0, 20, 135, 224)),
    ("flower", "sklearn", 985, "daisy", (35, 35, 205, 210)),
    ("astronaut", "skimage", -1, "", (0, 0, 224, 224)),
    ("hubble_deep_field", "skimage", -1, "", (0, 0, 224, 224)),
    ("immunohistochemistry", "skimage", -1, "", (0, 0, 224, 224)),
)  # fmt: skip
PHOTO_SIZE = 224


def _photo_array(name: str, source: str, cache: dict) -> np.ndarray:
    if source == "skimage":
        import skimage.data

        arr = np.asarray(getattr(skimage.data, name)())
    else:
        if "sklearn" not in cache:
            from sklearn.datasets import load_sample_images

            cache["sklearn"] = dict(zip(("china", "flower"), load_sample_images().images))
        arr = cache["sklearn"][name]
    if arr.dtype == bool:  # the horse is a binary silhouette
        arr = arr.astype(np.uint8) * 255
    return arr


def sample_photos(names: tuple[str, ...] | None = None):
    """The natural photos scikit-image and scikit-learn ship (no download), as a ``datasets.Dataset``
    with columns ``image`` (RGB PIL, original size), ``name``, ``label`` (the ImageNet-1k class index
    of the photo's main object, -1 for the photos without one), ``label_name`` and ``box`` (the
    object's box ``[x0, y0, x1, y1]`` in the photo's 224 x 224 centre crop, see ``photos``).
    The labels and boxes were set by hand for this book. For the hub models (ImageNet classifiers)."""
    import datasets
    from PIL import Image

    known = {row[0]: row for row in _PHOTOS}
    names = tuple(names) if names is not None else tuple(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown photo(s) {unknown}; choose from {list(known)}")
    if not names:
        raise ValueError(f"no photos asked for; pass names=None for all, or some of {list(known)}")
    cache: dict = {}
    photos = [Image.fromarray(_photo_array(n, known[n][1], cache)).convert("RGB") for n in names]
    features = datasets.Features({
        "image": datasets.Image(), "name": datasets.Value("string"), "label": datasets.Value("int64"),
        "label_name": datasets.Value("string"), "box": datasets.Sequence(datasets.Value("int64"), length=4),
    })  # fmt: skip
    return datasets.Dataset.from_dict({
        "image": photos, "name": list(names), "label": [known[n][2] for n in names],
        "label_name": [known[n][3] for n in names], "box": [list(known[n][4]) for n in names],
    }, features=features)  # fmt: skip


def photos(labelled: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sample photos as arrays for the hub models: the centre square of each photo resized to
    224 x 224 (bicubic), ``images [N, 224, 224, 3]`` uint8, ``labels [N]`` (ImageNet-1k indices) and
    ``objects [N, 224, 224]`` bool (the object's box). ``labelled`` keeps only the photos whose main
    object is an ImageNet class (8 of 11)."""
    from PIL import Image

    ds = sample_photos(tuple(row[0] for row in _PHOTOS if row[2] >= 0 or not labelled))
    images, objects = [], []
    for img, (x0, y0, x1, y1) in zip(ds["image"], ds["box"]):
        w, h = img.size
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        img = img.crop((left, top, left + s, top + s)).resize((PHOTO_SIZE, PHOTO_SIZE), Image.BICUBIC)
        images.append(np.asarray(img, dtype=np.uint8))
        box = np.zeros((PHOTO_SIZE, PHOTO_SIZE), dtype=bool)
        box[y0:y1, x0:x1] = True
        objects.append(box)
    return np.stack(images), np.asarray(ds["label"], dtype=np.int64), np.stack(objects)


def examples(split: str = "test") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The images a chapter studies, for the active model family (``vn.family()``), as
    ``images, labels, objects``:

    - offline zoo: Fashion-MNIST ``split`` (``[N, 28, 28]`` uint8, labels 0-9), ``objects`` = the
      garment's pixels (brighter than the black background);
    - hub models: the labelled sample photos (``[8, 224, 224, 3]`` uint8, ImageNet-1k labels),
      ``objects`` = each object's box (``photos``).

    ``objects`` is ``[N, H, W]`` bool. Introduced in notebook 01.
    """
    from .family import family

    if family() == "hub":
        return photos()
    images, labels = fashion_mnist_arrays(split)
    return images, labels, images > 0


def per_class(labels, k: int) -> np.ndarray:
    """Indices of the first ``k`` examples of every class present in ``labels``, classes in
    ascending order (Fashion-MNIST: 4 per class gives 40 images; the photos: one each)."""
    labels = np.asarray(labels)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    if labels.size == 0:
        raise ValueError("labels is empty: there is nothing to pick from")
    return np.concatenate([np.flatnonzero(labels == c)[:k] for c in np.unique(labels)])
