"""Fashion-MNIST loader (Debian files, override path, offline error, atomic download) and sample photos."""

import gzip
from pathlib import Path

import numpy as np
import pytest

from vitnotes import data
from vitnotes.data import fmnist


def _write_idx(folder: Path, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    img_name, lab_name, _ = fmnist._FILES[split]
    head = bytes([0, 0, 8, 3]) + b"".join(int(s).to_bytes(4, "big") for s in images.shape)
    (folder / img_name).write_bytes(gzip.compress(head + images.tobytes()))
    head = bytes([0, 0, 8, 1]) + len(labels).to_bytes(4, "big")
    (folder / lab_name).write_bytes(gzip.compress(head + labels.astype(np.uint8).tobytes()))


def test_fashion_mnist_shapes_and_balance():
    x, y = data.fashion_mnist_arrays("test")
    assert x.shape == (10000, 28, 28) and x.dtype == np.uint8
    assert np.bincount(y).tolist() == [1000] * 10
    assert abs(x.mean() / 255 - 0.2860) < 0.01  # the published mean (train 0.2860; test is close)
    xt, yt = data.fashion_mnist_arrays("train")
    assert xt.shape == (60000, 28, 28) and np.bincount(yt).tolist() == [6000] * 10
    assert abs(xt.mean() / 255 - 0.2860) < 0.001 and abs(xt.std() / 255 - 0.3530) < 0.001


def test_fashion_mnist_dataset(tmp_path):
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (20, 28, 28), dtype=np.uint8), np.arange(20) % 10
    _write_idx(tmp_path, "test", images, labels)
    ds = data.fashion_mnist("test", path=tmp_path)
    assert len(ds) == 20 and ds.features["label"].names == list(data.FASHION_MNIST_CLASSES)
    assert ds[3]["image"].mode == "L" and ds[3]["image"].size == (28, 28)
    assert np.array_equal(np.asarray(ds[3]["image"]), images[3]) and ds[3]["label"] == 3


def test_missing_data_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setattr(fmnist, "_DEBIAN", tmp_path / "none")
    monkeypatch.setattr(fmnist, "_CACHE", tmp_path / "cache")
    monkeypatch.delenv("VITNOTES_FASHION_MNIST", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        data.fashion_mnist("test")
    with pytest.raises(FileNotFoundError, match="lacks t10k-images"):
        data.fashion_mnist("test", path=tmp_path)
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        data.fashion_mnist("validation")


def test_corrupt_files_are_refused(tmp_path):
    _write_idx(tmp_path, "test", np.zeros((5, 28, 28), np.uint8), np.zeros(5))
    img = tmp_path / fmnist._FILES["test"][0]
    img.write_bytes(gzip.compress(gzip.decompress(img.read_bytes())[:-100]))
    with pytest.raises(ValueError, match="truncated"):
        data.fashion_mnist_arrays("test", path=tmp_path)
    img.write_bytes(b"not gzip")
    with pytest.raises(ValueError, match="not a readable gzipped IDX"):
        data.fashion_mnist_arrays("test", path=tmp_path)


def test_failed_download_leaves_nothing(tmp_path, monkeypatch):
    """Online path: a truncated download is refused and never takes the real file name."""
    monkeypatch.setattr(fmnist, "_DEBIAN", tmp_path / "none")
    monkeypatch.setattr(fmnist, "_CACHE", tmp_path / "cache")
    monkeypatch.delenv("VITNOTES_FASHION_MNIST", raising=False)
    for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "VITNOTES_OFFLINE"):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setattr(fmnist.urllib.request, "urlretrieve", lambda url, dst: Path(dst).write_bytes(b"\x1f\x8b half"))
    with pytest.raises(FileNotFoundError, match="download of t10k-images.*failed"):
        data.fashion_mnist_arrays("test")
    assert list((tmp_path / "cache").iterdir()) == []


def test_sample_photos():
    ds = data.sample_photos()
    assert len(ds) == 11 and "astronaut" in ds["name"] and "china" in ds["name"]
    assert all(im.mode == "RGB" and min(im.size) >= 300 for im in ds["image"])
    labelled = [(n, lab) for n, lab in zip(ds["name"], ds["label"]) if lab >= 0]
    assert len(labelled) == 8 and dict(labelled)["chelsea"] == 281 and dict(labelled)["horse"] == 339
    assert all(0 <= x0 < x1 <= 224 and 0 <= y0 < y1 <= 224 for x0, y0, x1, y1 in ds["box"])


def test_examples_follow_the_model_family(monkeypatch):
    images, labels, objects = data.examples()
    assert images.shape == (10000, 28, 28) and objects.dtype == bool
    assert np.array_equal(objects, images > 0) and set(labels.tolist()) == set(range(10))
    monkeypatch.setenv("VITNOTES_MODELS", "hub")
    images, labels, objects = data.examples()
    assert images.shape == (8, 224, 224, 3) and images.dtype == np.uint8 and objects.shape == (8, 224, 224)
    ds = data.sample_photos(("chelsea",))
    x0, y0, x1, y1 = ds["box"][0]
    assert objects[0].sum() == (x1 - x0) * (y1 - y0) and objects[0, y0, x0] and not objects[0, y0 - 1 if y0 else y1, x0]
    # the photo is the centre square of the original, resized: compare with PIL directly
    from PIL import Image

    img = ds["image"][0]
    w, h = img.size
    s = min(w, h)
    ref = np.asarray(
        img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)).resize((224, 224), Image.BICUBIC)
    )
    assert np.array_equal(images[0], ref) and labels[0] == 281


def test_per_class_takes_the_first_k_of_each_class():
    labels = np.array([3, 1, 3, 3, 1, 0])
    assert data.per_class(labels, 2).tolist() == [5, 1, 4, 0, 2]
    with pytest.raises(ValueError, match="unknown photo"):
        data.sample_photos(("lena",))


def test_spectrogram_arrays_are_the_data_sets_rows():
    """The training fast path (no ``datasets``) gives exactly ``spectrograms``' images, masks and targets."""
    ds, arr = data.spectrograms(6, seed=3, size=56), data.spectrogram_arrays(6, seed=3, size=56)
    assert np.array_equal(np.stack([np.asarray(im) for im in ds["image"]]), arr["image"])
    assert np.array_equal(np.asarray(ds["mask"]), arr["mask"])
    assert np.allclose(np.asarray(ds["targets"]), arr["targets"])
    with pytest.raises(ValueError, match="n must be an int"):
        data.spectrogram_arrays(0)
