"""Data sets that work offline.

- ``fashion_mnist(split)``: the real Fashion-MNIST images (``fmnist.py``);
- ``spectrograms(n, seed, size)``: the synthetic chirp task with ground-truth masks (``chirps.py``);
- ``sample_photos()``, ``photos()``: the natural photos scikit-image and scikit-learn ship, for
  hub models (``imagenet_photos.py``);
- ``examples(split)``: the images a chapter studies, for the active model family.

Introduced in notebook 00.
"""

from __future__ import annotations

import numpy as np

from .chirps import REGIONS, TARGET_NAMES, region_masks, scale, spectrogram_arrays, spectrograms, unscale
from .fmnist import FASHION_MNIST_CLASSES, fashion_mnist, fashion_mnist_arrays
from .imagenet_photos import PHOTO_SIZE, photos, sample_photos

__all__ = [
    "FASHION_MNIST_CLASSES", "PHOTO_SIZE", "REGIONS", "TARGET_NAMES", "examples", "fashion_mnist",
    "fashion_mnist_arrays", "per_class", "photos", "region_masks", "sample_photos", "scale", "spectrogram_arrays",
    "spectrograms", "unscale",
]  # fmt: skip


def examples(split: str = "test") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The images a chapter studies, for the active model family (``vn.family()``), as
    ``images, labels, objects``:

    - offline zoo: Fashion-MNIST ``split`` (``[N, 28, 28]`` uint8, labels 0-9), ``objects`` = the
      garment's pixels (brighter than the black background);
    - hub models: the labelled sample photos (``[8, 224, 224, 3]`` uint8, ImageNet-1k labels),
      ``objects`` = each object's box (``photos``).

    ``objects`` is ``[N, H, W]`` bool. Introduced in notebook 01.
    """
    from ..family import family

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
