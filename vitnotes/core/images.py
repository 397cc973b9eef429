"""Images in, ``pixel_values`` out: validation of image modes, dtypes and ranges, and the
resize / crop / normalise recipe a checkpoint ships. Introduced in notebook 00.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image, ImageOps

if TYPE_CHECKING:
    from .geometry import Geometry

__all__ = ["Preprocessing", "as_shown", "open_image", "to_pil"]


@dataclass(frozen=True)
class Preprocessing:
    """How images become ``pixel_values``: resize, centre crop to ``size``, scale to [0, 1], normalise.

    ``resize`` is ``("square", s)`` (stretch to s x s) or ``("short", s)`` (short side to s, aspect
    kept); then the centre ``size x size`` is cropped when the resized image is larger. Read from
    a checkpoint's ``preprocessor_config.json`` (the fields transformers' image processors use:
    ``size``, ``crop_size``/``do_center_crop``, ``crop_pct``, ``image_mean``, ``image_std``,
    ``resample``), so hub models get their own recipe: ViT stretches to 224, DeiT to 256 and
    crops 224, ResNet-50 takes the short side to 256 and crops 224.
    Introduced in notebook 00 (attention math).
    """

    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    channels: int
    resize: tuple[str, int] | None = None  # None: ("square", size)
    resample: int = Image.BICUBIC

    @classmethod
    def from_dict(cls, d: dict, geom: Geometry) -> Preprocessing:
        size = d.get("size", geom.image_size)
        if isinstance(size, dict) and "shortest_edge" in size:
            resize = ("short", int(size["shortest_edge"]))
        elif isinstance(size, dict):
            resize = ("square", int(size.get("height") or size.get("width") or geom.image_size))
        else:
            resize = ("square", int(size))
        final = resize[1]
        crop = d.get("crop_size")
        if d.get("do_center_crop") and crop:
            final = int(crop["height"] if isinstance(crop, dict) else crop)
        elif d.get("crop_pct"):  # ConvNeXt-style recipe (ResNet-50): short side to size / crop_pct, crop size
            resize = ("short", int(math.floor(resize[1] / d["crop_pct"])))
        c = geom.channels
        mean = tuple(d.get("image_mean", [0.5] * c))
        std = tuple(d.get("image_std", [0.5] * c))
        if len(mean) != c:  # e.g. an RGB recipe for a grey model: average; a grey one for RGB: repeat
            mean, std = ((sum(mean) / len(mean),) * c, (sum(std) / len(std),) * c)
        return cls(final, mean, std, c, resize, int(d.get("resample", Image.BICUBIC)))

    def to_dict(self) -> dict:
        """A ``preprocessor_config.json`` in transformers' field names; ``from_dict`` reads it back exactly."""
        kind, side = self.resize or ("square", self.size)
        return {
            "image_processor_type": "ViTImageProcessor",
            "do_resize": True,
            "size": {"shortest_edge": side} if kind == "short" else {"height": side, "width": side},
            "do_center_crop": side != self.size,
            "crop_size": {"height": self.size, "width": self.size},
            "do_rescale": True,
            "do_normalize": True,
            "image_mean": list(self.mean),
            "image_std": list(self.std),
            "resample": self.resample,
        }

    def __call__(self, images: Any) -> torch.Tensor:
        """PIL image(s), numpy array(s) or image files -> float32 ``pixel_values`` (batch, C, size, size).

        Every image is resized to the model's input whatever its size or shape: a tiny image is
        upsampled, a huge one downsampled, a non-square one stretched (``"square"`` recipes, e.g. ViT)
        or cropped to its centre (``"short"`` recipes, e.g. ResNet-50), so sizes that are not a
        multiple of the patch size need no care. Grey images given to a colour model are replicated,
        colour images given to a grey model converted to luminance. A file path (str or Path) is
        opened with ``open_image``. A numpy array is one image (``[H, W]``, ``[H, W, 1|3]``) or, stacked,
        a batch of them:
        ``[batch, H, W, 1|3]``, or ``[batch, H, W]`` for a one-channel model (a 3-D array for a colour
        model stays one image, so a channels-first ``[3, H, W]`` gets a clear error). A list may also hold
        images as nested lists or torch tensors (a ``datasets`` column such as ``ds["image"]``, whatever
        its format: ``to_pil``); an integer tensor ``[batch, ...]`` is such a batch (a float tensor is
        taken to be ``pixel_values`` already and refused here)."""
        if isinstance(images, (str, Path)):
            images = [images]
        stacked = isinstance(images, np.ndarray) and (
            images.ndim == 4 or (images.ndim == 3 and self.channels == 1 and images.shape[-1] not in (1, 3, 4))
        )
        if stacked:
            images = list(images)
        elif isinstance(images, (Image.Image, np.ndarray)):
            images = [images]
        if isinstance(images, torch.Tensor) and not images.is_floating_point() and images.dim() in (3, 4):
            images = list(images)  # whole numbers are pixels, not pixel_values: a batch (datasets 3's torch format)
        if isinstance(images, torch.Tensor):
            raise TypeError(
                "preprocess takes PIL images or numpy arrays; a torch tensor is taken to be "
                "pixel_values already and can be passed to vn functions directly"
            )
        try:
            images = list(images)
        except TypeError:
            raise TypeError(
                f"preprocess takes images: a PIL image, a numpy array, an image file path, or a list of them "
                f"(or a datasets column, ds['image']); got {images!r:.60}"
            ) from None
        if not images:
            raise ValueError("empty batch: pass at least one image")
        return torch.stack([self._one(img, i) for i, img in enumerate(images)])

    def _one(self, img: Any, i: int) -> torch.Tensor:
        pil = to_pil(img, self.channels, where=f"image {i}")
        kind, side = self.resize or ("square", self.size)
        w, h = pil.size
        if kind == "short":
            scale = side / min(w, h)
            pil = pil.resize((max(side, round(w * scale)), max(side, round(h * scale))), self.resample)
        else:
            pil = pil.resize((side, side), self.resample)
        w, h = pil.size
        if (w, h) != (self.size, self.size):
            if min(w, h) < self.size:
                raise ValueError(f"resizing to {side} gives {w}x{h}, smaller than the crop {self.size}")
            left, top = (w - self.size) // 2, (h - self.size) // 2
            pil = pil.crop((left, top, left + self.size, top + self.size))
        x = np.asarray(pil, dtype=np.float32) / 255.0
        x = x[..., None] if x.ndim == 2 else x
        x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


_OK_MODES = {"L": 1, "RGB": 3}
MAX_PIXELS = 100_000_000  # larger image files are refused before decoding (PIL warns at 89 M)


def open_image(path: str | Path) -> Image.Image:
    """Open an image file completely (decoded now, so a truncated or corrupt file fails here with a
    clear message, not later inside a model). Refuses files that are missing, folders, not images,
    or over ``MAX_PIXELS`` pixels (a decompression bomb). Returns the image as a viewer shows it, in
    mode L or RGB (``as_shown``: a phone photo's EXIF orientation applied; palette, CMYK, 16-bit and
    transparent images converted). Introduced in notebook 00 (attention math)."""
    import warnings

    from PIL import UnidentifiedImageError

    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"no such image file: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; pass one image file (or a list of them)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
                if w * h > MAX_PIXELS:
                    raise ValueError(
                        f"{path} is {w}x{h} pixels, over the {MAX_PIXELS:,} vitnotes opens; "
                        "downscale it first (e.g. with PIL's Image.thumbnail)"
                    )
                img.load()
                shown = as_shown(img, str(path))
                return img.copy() if shown is img else shown
    except UnidentifiedImageError:
        raise ValueError(f"{path} is not an image file PIL can read (PNG, JPEG, TIFF, ...)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ValueError(f"{path} is too large to open safely (a decompression bomb?); downscale it first") from None
    except (OSError, SyntaxError) as err:  # truncated data, broken chunks
        raise ValueError(f"{path} is a corrupt or truncated image ({err}); re-export or re-download it") from None


def to_pil(img: Any, channels: int, where: str = "image") -> Image.Image:
    """Validate one image and return it as a PIL image with ``channels`` channels (1 -> L, 3 -> RGB).

    Accepted: PIL images (decoded now, so a lazily opened file that is truncated fails here, naming
    it; ``as_shown``: turned upright by their EXIF orientation; palette, CMYK, 16-bit grey and
    transparent ones converted as a viewer shows them); numpy arrays (H, W), (H, W, 1) or (H, W, 3)
    of uint8 (0..255), of another integer type with values in 0..255, or float (0..1), and the same
    as nested lists or torch tensors (what a ``datasets`` column of arrays gives; a tensor may also be
    channels-first, ``[1|3, H, W]``, torch's layout); image file paths (``open_image``).
    Grey images given to a colour model are replicated to RGB and colour images given to a grey
    model are converted to luminance (PIL's ``convert("L")``). Anything else raises an error that
    says how to convert it. Introduced in notebook 00 (attention math).
    """
    if isinstance(img, Image.Image):
        pil = as_shown(_decoded(img, where), where)
    elif isinstance(img, (np.ndarray, list, tuple, torch.Tensor)):
        pil = Image.fromarray(_uint8_array(_as_array(img), where))
    elif isinstance(img, (str, Path)):
        return to_pil(open_image(img), channels, where=f"{where} ({img})")
    else:
        raise TypeError(f"{where}: expected a PIL image, a numpy array or an image file path, got {type(img).__name__}")
    return pil.convert("L" if channels == 1 else "RGB")


def _decoded(img: Image.Image, where: str) -> Image.Image:
    """``img`` with its pixels decoded (a no-op once loaded): a lazily opened file (``Image.open``)
    that is truncated or corrupt fails here, in one line naming it, not deep inside a conversion."""
    try:
        img.load()
    except (OSError, SyntaxError, ValueError) as err:
        name = getattr(img, "filename", "") or f"a {img.format or 'PIL'} image"
        raise ValueError(
            f"{where} ({name}) cannot be decoded: it is corrupt or truncated ({err}); re-export or re-download it"
        ) from None
    return img


def _as_array(img: Any) -> np.ndarray:
    """A numpy image from an array, nested lists or a tensor (channels-first ``[1|3, H, W]`` turned
    channels-last, as torch lays images out)."""
    if not isinstance(img, torch.Tensor):
        return np.asarray(img)
    arr = img.detach().cpu().numpy()
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = arr.transpose(1, 2, 0)
    return arr


def _uint8_array(img: np.ndarray, where: str) -> np.ndarray:
    """A numpy image ``(H, W)`` or ``(H, W, 3)`` as uint8; float images must lie in [0, 1]."""
    arr = img
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
        raise ValueError(
            f"{where}: array of shape {arr.shape} looks channels-first; "
            "pass (height, width, channels), e.g. arr.transpose(1, 2, 0)"
        )
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] == 3)):
        raise ValueError(
            f"{where}: array of shape {img.shape} is not an image; expected (H, W), (H, W, 1) or (H, W, 3)"
            + ("; drop the alpha channel with arr[..., :3]" if arr.ndim == 3 and arr.shape[-1] == 4 else "")
        )
    if min(arr.shape[:2]) < 1:
        raise ValueError(f"{where}: image of shape {img.shape} has no pixels")
    if arr.dtype == np.uint8:
        return arr
    # other integer types (int64: what lists and datasets columns give) in 0..255; 16-bit data keeps its error
    if arr.dtype.kind in "iu" and arr.dtype.itemsize != 2 and arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 255:
            raise ValueError(
                f"{where}: integer image values must lie in 0..255, got {lo}..{hi}; "
                "scale wider data to floats in [0, 1] (e.g. arr / arr.max())"
            )
        return arr.astype(np.uint8)
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(
            f"{where}: image dtype {arr.dtype} is not supported; use uint8 (0..255) or float (0..1)"
            + (", e.g. (arr / 65535).astype('float32') for 16-bit data" if arr.dtype == np.uint16 else "")
        )
    if not np.isfinite(arr).all():
        raise ValueError(f"{where}: image contains NaN or inf; clean it (np.nan_to_num) before use")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0 or hi > 1:
        raise ValueError(
            f"{where}: float image values must lie in [0, 1], got {lo:.3g}..{hi:.3g}; "
            "rescale it (e.g. arr / 255 for 0..255 data)"
        )
    return np.round(arr * 255).astype(np.uint8)


_ORIENTATION = 0x0112  # the EXIF tag a camera writes instead of rotating the pixels
_WIDE_GREY = ("I;16", "I;16B", "I;16L", "I;16N", "I")  # 16-bit grey (PNG, TIFF), and 32-bit integer grey


def as_shown(img: Image.Image, where: str = "image") -> Image.Image:
    """A PIL image as an image viewer shows it, in mode L or RGB.

    - an EXIF orientation tag (a phone photo taken upright is stored sideways with tag 6) is applied
      (PIL's ``ImageOps.exif_transpose``, which also drops the tag, so it is never applied twice);
    - transparency (RGBA, LA, PA, a palette or grey image with a transparent colour) is composited
      onto white, as a page shows it (and as transformers' ``convert_to_rgb`` does);
    - a palette image is expanded, CMYK and YCbCr are converted to RGB (PIL's conversion, no colour
      profile), a 1-bit image becomes L (0 or 255);
    - 16-bit grey (``I;16``, or ``I`` with values in 0..65535) is scaled to 8 bits: ``round(v / 257)``.

    L and RGB images with no orientation tag come back unchanged (the same object). Floating-point
    images (mode F) are refused with the fix. Introduced in notebook 00 (attention math).
    """
    img = _upright(img)
    if img.mode in _OK_MODES and "transparency" not in img.info:
        return img
    if img.mode in _WIDE_GREY:
        return _eight_bit(img, where)
    if img.mode == "F":
        raise ValueError(
            f"{where}: PIL mode 'F' (32-bit float) has no fixed range; pass np.asarray(img) scaled to floats in [0, 1]"
        )
    if "A" in img.getbands() or "a" in img.getbands() or "transparency" in img.info:
        return _over_white(img)
    try:
        return img.convert("L" if img.mode == "1" else "RGB")
    except ValueError:
        raise ValueError(
            f"{where}: PIL mode {img.mode!r} is not supported; convert it with img.convert('RGB')"
        ) from None


def _upright(img: Image.Image) -> Image.Image:
    """``img`` turned as its EXIF orientation says (unchanged without one, or when the EXIF is unreadable)."""
    try:
        orientation = img.getexif().get(_ORIENTATION, 1)
    except (OSError, ValueError, SyntaxError, TypeError, KeyError, IndexError, struct.error):
        return img  # a broken EXIF block: the image as stored, as most viewers show it
    return img if orientation in (None, 1) else ImageOps.exif_transpose(img)


def _over_white(img: Image.Image) -> Image.Image:
    """Alpha-composite onto white: ``c * a + 255 * (1 - a)`` per channel, ``a`` = alpha / 255; L or RGB."""
    grey = img.mode in ("LA", "La")
    arr = np.asarray(img.convert("LA" if grey else "RGBA"), dtype=np.float64)
    alpha = arr[..., -1:] / 255.0
    out = np.rint(arr[..., :-1] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return Image.fromarray(out[..., 0] if grey else out)


def _eight_bit(img: Image.Image, where: str) -> Image.Image:
    """16-bit grey scaled to 8 bits (``round(v / 257)``, so 65535 -> 255), mode L."""
    arr = np.asarray(img)
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) > 65535):
        raise ValueError(
            f"{where}: PIL mode {img.mode!r} with values {int(arr.min())}..{int(arr.max())} is not 16-bit grey; "
            "pass np.asarray(img) scaled to floats in [0, 1]"
        )
    return Image.fromarray(np.rint(arr.astype(np.float64) / 257.0).astype(np.uint8))


def image_stack(images: Any) -> np.ndarray:
    """Raw images as one array ``[batch, H, W]`` (grey) or ``[batch, H, W, 1|3]`` (colour), checked."""
    imgs = np.asarray(images)
    if imgs.ndim not in (3, 4) or (imgs.ndim == 4 and imgs.shape[-1] not in (1, 3)):
        raise ValueError(
            f"images must be a stack [batch, H, W] (grey) or [batch, H, W, 1|3] (colour) of raw images, "
            f"got shape {imgs.shape}"
        )
    if imgs.shape[0] == 0:
        raise ValueError("empty batch: pass at least one image")
    return imgs
