"""Labelled sample photos for the hub models (ImageNet classifiers): the photos scikit-image and
scikit-learn ship, with object boxes set by hand. Introduced in notebook 01 (hub models)."""

from __future__ import annotations

import numpy as np

__all__ = ["PHOTO_SIZE", "photos", "sample_photos"]

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
