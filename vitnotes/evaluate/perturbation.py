"""Deletion and insertion curves, three baselines, deletion inside a mask, and the Symmetric
Relevance Gain: faithfulness done properly (issue 14).

Conventions (stated once, used everywhere here):

- **Curve.** ``steps + 1`` points at the fractions ``x_j = j / steps`` (``j = 0 .. steps``) of the
  pixels that may be edited (all of them, or those inside ``restrict``, per image: ``n_i``
  pixels). At ``x_j`` the first ``k_ij = floor(j n_i / steps + 1/2)`` pixels of the order are
  replaced by the baseline. ``x_0 = 0`` is the unperturbed image (included), ``x_steps = 1`` the
  image with every editable pixel replaced.
- **AUC.** Trapezoid rule over ``x`` from 0 to 1, both ends included (Chefer et al. 2021's
  perturbation tests and RISE's deletion/insertion, Petsiuk et al. 2018, use the same areas);
  computed by ``vitnotes.evaluate.deletion.deletion_auc``.
- **Orders.** Most relevant first (MIF): ``vitnotes.evaluate.deletion.deletion_order`` on the map
  resized to the image (ties broken at random with ``seed``); least relevant first (LIF): the
  exact reverse of that order (so ties are broken consistently between the two).
- **Insertion.** Start from the baseline image and put back the most relevant pixels first.
  Putting back the top ``x`` of the pixels *is* deleting the bottom ``1 - x``, so the insertion
  curve is the LIF deletion curve read backwards: ``insertion(x_j) = lif(x_{steps - j})``
  (computed once, identical by construction), and ``AUC(insertion) = AUC(LIF deletion)``.
- **SRG.** Symmetric Relevance Gain (Blücher, Vielhaben & Strodthoff, "Decoupling Pixel Flipping
  and Occlusion Strategy for Consistent XAI Benchmarks", TMLR 2024,
  https://openreview.net/forum?id=bIiLXdtUVM; arXiv 2401.06654):
  ``SRG = AUC(LIF deletion) - AUC(MIF deletion)``, the area between the two curves. Higher is
  better; a random order scores 0 in expectation. By the insertion identity above it also equals
  the "insertion minus deletion" form, ``AUC(insertion) - AUC(deletion)``.
- **Score.** Classifier: the softmax probability of ``target`` (None: the class the model predicts
  on the unperturbed image). Regression (``model.net.config.problem_type == "regression"``):
  ``score="neg_sq_error"`` (default) is minus the squared error of the chosen outputs (``target``:
  an output index, or None for the mean over all outputs) against ``truth`` (the true targets,
  ``[batch, outputs]``) or, when ``truth`` is None, against the model's own output on the
  unperturbed image (so the curve starts at 0 and falls); ``score="output"`` is the raw chosen
  output ``target``.
- **Baselines**, in raw pixel space (the images as loaded, before ``model.preprocess``):
  ``"black"`` = 0; ``"mean"`` = the data set's mean grey, per channel (``mean=``, in the images'
  units, e.g. ``0.2860 * 255`` for Fashion-MNIST's training set; by default the mean of the images
  evaluated); ``"blur"`` = a Gaussian blur of each image (``sigma`` in pixels, scipy's
  ``gaussian_filter``, mode ``"nearest"``); a number or an array ``[batch, H, W(, C)]`` for
  anything else. uint8 images get the baseline rounded to uint8 (``model.preprocess`` quantises
  to 8 bits anyway).

Introduced in notebook 09 (which explanation can you trust?).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..core.geometry import as_int
from ..core.images import image_stack
from ..core.model import Model, check_batch_size, class_labels, resolve_targets
from ..stats import as_maps
from .agreement import random_maps, resize_maps
from .deletion import deletion_auc, deletion_order

__all__ = [
    "SCORES",
    "Curves",
    "baseline_images",
    "brightness_maps",
    "control_maps",
    "object_masks",
    "perturbation_curves",
    "perturbation_curves_all",
    "srg",
]

SCORES = ("prob", "neg_sq_error", "output")


@dataclass
class Curves:
    """Perturbation curves of one kind of map on a batch of images (``perturbation_curves``).

    ``deletion`` (MIF), ``deletion_lif`` and ``insertion`` are ``[batch, steps + 1]`` float64
    scores at ``fractions``; ``editable`` the pixels each image could lose (``n_i``);
    ``seconds`` the wall time and ``images_per_s`` the images evaluated per second (each image
    costs ``forwards_per_image`` model forwards).
    """

    fractions: np.ndarray
    deletion: torch.Tensor
    deletion_lif: torch.Tensor
    insertion: torch.Tensor
    editable: np.ndarray
    baseline: str
    score: str
    seconds: float
    forwards_per_image: float
    settings: dict = field(default_factory=dict)

    @property
    def images_per_s(self) -> float:
        return self.deletion.shape[0] / self.seconds if self.seconds > 0 else float("inf")

    def aucs(self) -> dict[str, np.ndarray]:
        """Per-image areas (trapezoid over the fraction, 0..1): ``deletion`` (MIF, lower = better
        for a falling score), ``deletion_lif``, ``insertion`` (higher = better) and ``srg``."""
        d = _auc(self.deletion, self.fractions)
        lif = _auc(self.deletion_lif, self.fractions)
        ins = _auc(self.insertion, self.fractions)
        return {"deletion": d, "deletion_lif": lif, "insertion": ins, "srg": lif - d}


def _auc(curves: torch.Tensor, fractions: np.ndarray) -> np.ndarray:
    # deletion_auc works in float64 and returns float32: the areas are exact to ~1e-7.
    return deletion_auc(curves, fractions).double().numpy()


def srg(lif_auc: Any, mif_auc: Any) -> np.ndarray:
    """Symmetric Relevance Gain per image: ``AUC(LIF deletion) - AUC(MIF deletion)`` (Blücher et
    al., TMLR 2024; see the module docstring)."""
    return np.asarray(lif_auc, dtype=np.float64) - np.asarray(mif_auc, dtype=np.float64)


# --------------------------------------------------------------------------- maps and masks
def brightness_maps(images: Any) -> torch.Tensor:
    """The brightness control: each pixel's mean over channels ``[batch, H, W]`` (float). On
    Fashion-MNIST it ranks the garment before the black background: the confound to beat."""
    imgs = image_stack(images)
    b = imgs.astype(np.float64)
    if b.ndim == 4:
        b = b.mean(-1)
    return torch.from_numpy(b).float()


def control_maps(images: Any, seed: int = 0) -> dict[str, torch.Tensor]:
    """The two control maps for ``images``: ``random`` (``vn.evaluate.random_maps``, uniform noise with
    ``seed``) and ``brightness`` (``brightness_maps``), both ``[batch, H, W]``."""
    imgs = image_stack(images)
    return {"random": random_maps(imgs.shape[0], tuple(imgs.shape[1:3]), seed), "brightness": brightness_maps(imgs)}


def object_masks(images: Any, threshold: float = 0) -> np.ndarray:
    """Pixels brighter than ``threshold`` in any channel, ``[batch, H, W]`` bool: the garment of a
    Fashion-MNIST image (its background is 0). Pass as ``restrict`` to delete only the object."""
    imgs = image_stack(images)
    m = imgs > threshold
    return m.any(-1) if m.ndim == 4 else m


def baseline_images(images: Any, baseline: Any = "black", *, sigma: float = 5.0, mean: Any = None) -> np.ndarray:
    """The fully perturbed version of each raw image ``[batch, H, W(, C)]``, same shape and dtype.

    ``"black"``: 0; ``"mean"``: ``mean`` per channel (a number or one per channel; None: the mean
    of ``images`` per channel); ``"blur"``: Gaussian blur over H and W with ``sigma`` pixels; a
    number: that value; an array: itself (broadcast to the images). uint8 results are rounded.
    """
    imgs = image_stack(images)
    chans = imgs.shape[3] if imgs.ndim == 4 else None
    if isinstance(baseline, str):
        if baseline == "black":
            out = np.zeros(imgs.shape, np.float64)
        elif baseline == "mean":
            m = imgs.mean(axis=(0, 1, 2), dtype=np.float64) if mean is None else np.asarray(mean, np.float64)
            if m.ndim > 1 or (m.ndim == 1 and m.size not in (1, chans or 1)):
                raise ValueError(f"mean must be a number or one per channel ({chans or 1}), got shape {m.shape}")
            out = np.broadcast_to(m.reshape(-1) if chans else m.reshape(()), imgs.shape).astype(np.float64)
        elif baseline == "blur":
            from scipy.ndimage import gaussian_filter

            if not sigma > 0:
                raise ValueError(f"sigma must be > 0 pixels, got {sigma}")
            s = (0, sigma, sigma, 0) if chans else (0, sigma, sigma)
            out = gaussian_filter(imgs.astype(np.float64), sigma=s, mode="nearest")
        else:
            raise ValueError(f"baseline must be 'black', 'mean', 'blur', a number or an array, got {baseline!r}")
    else:
        out = np.broadcast_to(np.asarray(baseline, np.float64), imgs.shape).astype(np.float64)
    if imgs.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out.astype(imgs.dtype)


def _ranks(maps: torch.Tensor, editable: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel's position in the MIF order among the editable pixels ``[batch, P]`` (int64;
    ``P`` for pixels that are never edited) and the number of editable pixels per image."""
    order = deletion_order(maps, seed).numpy()  # [batch, P], most attributed first
    b, p = order.shape
    ed = editable.reshape(b, p)
    ed_sorted = np.take_along_axis(ed, order, 1)
    pos = np.cumsum(ed_sorted, 1) - 1
    rank = np.full((b, p), p, np.int32 if p < 2**31 - 1 else np.int64)
    rows = np.arange(b)[:, None]
    rank[rows, order] = np.where(ed_sorted, pos, p)
    return rank, ed.sum(1)


def _counts(n: np.ndarray, steps: int) -> np.ndarray:
    """``k_ij = floor(j n_i / steps + 1/2)``: pixels replaced at step ``j``, ``[steps + 1, batch]``."""
    j = np.arange(steps + 1)[:, None]
    return np.floor(j * n[None, :] / steps + 0.5).astype(np.int64)


# --------------------------------------------------------------------------- scoring
def _is_regression(model: Model) -> bool:
    return getattr(getattr(model.net, "config", None), "problem_type", None) == "regression"


def _outputs(model: Model, raw: np.ndarray, batch_size: int) -> torch.Tensor:
    return (
        model.predict(model.preprocess(list(raw)), batch_size=batch_size).double().cpu()
    )  # a list: grey images fit colour models too


class _Scorer:
    """Turns model outputs into the curve's score, fixed on the unperturbed images."""

    def __init__(self, model: Model, score: str | None, target: Any, truth: Any):
        self.regression = _is_regression(model)
        score = score or ("neg_sq_error" if self.regression else "prob")
        if score not in SCORES:
            raise ValueError(f"score must be one of {SCORES} (or None: from the model's problem_type), got {score!r}")
        if score == "prob" and self.regression:
            raise ValueError(
                "score='prob' needs a classifier; this model is a regression model (use 'neg_sq_error' or 'output')"
            )
        if score != "prob" and not self.regression:
            raise ValueError(f"score={score!r} is for regression models; a classifier's score is 'prob'")
        self.score, self.target, self.truth, self.labels = score, target, truth, class_labels(model)

    def fix(self, out0: torch.Tensor, lo: int, hi: int) -> None:
        """Resolve targets / references for images ``lo:hi`` from their unperturbed outputs."""
        b, n_out = out0.shape
        if self.score == "prob":
            t = self.target
            if t is not None and np.ndim(t) > 0 and np.size(t) > 1:
                t = np.asarray(t)[lo:hi]
            self.cols = resolve_targets(t, out0, self.labels).cpu()
            return
        if self.target is None:
            if self.score == "output" and n_out != 1:
                raise ValueError(f"score='output' needs target= an output index (the model has {n_out} outputs)")
            self.cols = torch.arange(n_out)
        else:
            t = int(self.target)
            if not -n_out <= t < n_out:
                raise IndexError(f"target output {t} out of range: the model has {n_out} outputs")
            self.cols = torch.tensor([t % n_out])
        if self.score == "neg_sq_error":
            if self.truth is None:
                self.ref = out0[:, self.cols]
            else:
                tr = torch.as_tensor(np.asarray(self.truth), dtype=torch.float64)
                tr = tr.reshape(-1, 1) if tr.ndim == 1 else tr
                if tr.shape[1] == n_out:
                    tr = tr[:, self.cols]
                self.ref = tr[lo:hi]
                if self.ref.shape != (b, len(self.cols)):
                    raise ValueError(
                        f"truth must be [batch, {n_out}] (or [batch] for one output), got {tuple(np.shape(self.truth))}"
                    )

    def __call__(self, out: torch.Tensor) -> torch.Tensor:
        """Outputs ``[steps, b, outputs]`` -> scores ``[steps, b]``."""
        if self.score == "prob":
            p = out.softmax(-1)
            return p.gather(2, self.cols[None, :, None].expand(out.shape[0], -1, 1))[..., 0]
        y = out[..., self.cols]
        if self.score == "output":
            return y[..., 0]
        return -(y - self.ref[None]).square().mean(-1)


# --------------------------------------------------------------------------- curves
def _editable(restrict: Any, imgs: np.ndarray) -> np.ndarray:
    """The pixels that may be edited, ``[batch, H, W]`` bool: all, the object's (``"object"``) or a mask."""
    b, h, w = imgs.shape[:3]
    if restrict is None:
        return np.ones((b, h, w), bool)
    if isinstance(restrict, str):
        if restrict != "object":
            raise ValueError(f"restrict must be a bool mask [batch, H, W], 'object' or None, got {restrict!r}")
        return object_masks(imgs)
    editable = np.asarray(restrict).astype(bool)
    if editable.shape != (b, h, w):
        raise ValueError(f"restrict must be a bool mask [batch, H, W] = ({b}, {h}, {w}), got {editable.shape}")
    return editable


def _replaced(r: np.ndarray, nn: np.ndarray, kk: np.ndarray, steps: int) -> np.ndarray:
    """Which pixels one map's inner steps replace: most relevant first at steps 1..steps-1, then least
    relevant first at the same steps, ``[2 (steps - 1), c, P]`` bool, from ranks ``r`` ``[c, P]``,
    editable counts ``nn`` ``[c]`` and counts per step ``kk`` ``[steps + 1, c]``. Steps 0 (nothing
    replaced) and ``steps`` (every editable pixel) are the same for every map and both orders."""
    inner = kk[1:steps]  # [steps - 1, c]
    gone_mif = r[None] < inner[:, :, None]
    gone_lif = (r[None] < nn[None, :, None]) & (r[None] >= (nn[None] - inner)[:, :, None])
    return np.concatenate([gone_mif, gone_lif])


def _step_scores(
    model: Model, scorer: _Scorer, imgs: np.ndarray, base: np.ndarray, gone: np.ndarray, lo: int, batch_size: int
) -> np.ndarray:
    """Scores ``[k, c]`` of a chunk's images ``imgs`` (the batch's images ``lo:lo + c``) with the
    pixels ``gone`` ``[k, c, P]`` replaced by those of their ``base`` images, in one batched pass;
    ``gone[0]`` must replace nothing: the unperturbed images fix the targets."""
    c, p = imgs.shape[0], gone.shape[-1]
    edited = np.where(gone[..., None], base.reshape(c, p, -1)[None], imgs.reshape(c, p, -1)[None])
    out = _outputs(model, edited.reshape(-1, *imgs.shape[1:]), batch_size).reshape(gone.shape[0], c, -1)
    scorer.fix(out[0], lo, lo + c)
    return scorer(out).numpy()


def perturbation_curves(
    model: Model,
    images: Any,
    maps: Any,
    *,
    baseline: Any = "black",
    sigma: float = 5.0,
    mean: Any = None,
    restrict: Any = None,
    steps: int = 20,
    score: str | None = None,
    target: Any = None,
    truth: Any = None,
    seed: int = 0,
    resize_mode: str = "bilinear",
    chunk: int = 16,
    batch_size: int = 128,
) -> Curves:
    """Deletion (most and least relevant first) and insertion curves of ``maps`` on ``images``.

    ``model``: a ``vn.core.Model`` (it preprocesses the edited raw images); ``images``: raw images
    ``[batch, H, W(, C)]`` (uint8 as loaded, or float in 0..1); ``maps``: ``[batch, rows, cols]``
    (patch grid) or ``[batch, H, W]``, resized to the image with ``resize_mode`` (the existing
    deletion curves' bilinear by default). ``restrict``: ``[batch, H, W]`` bool, the only pixels
    that may be edited (``"object"`` = ``object_masks(images)``: delete within the garment only; the
    fractions are then fractions of each image's mask). ``baseline``, ``sigma``, ``mean``,
    ``score``, ``target``, ``truth``: see the module docstring. ``chunk`` images are perturbed at
    a time (memory ~ ``chunk x 2 steps x H x W x C`` in the images' dtype, plus one int32 rank per
    pixel of every image); the model sees ``batch_size`` at a time.

    Cost: ``2 steps`` forwards per image (the unperturbed and the fully replaced images are
    shared by both orders). Several maps of the same images: ``perturbation_curves_all`` shares
    those two among all of them. Returns a ``Curves``; ``curves.aucs()`` gives the per-image areas
    and the SRG. Introduced in notebook 09.
    """
    options = dict(baseline=baseline, sigma=sigma, mean=mean, restrict=restrict, steps=steps, score=score)
    options.update(target=target, truth=truth, seed=seed, resize_mode=resize_mode, chunk=chunk, batch_size=batch_size)
    return perturbation_curves_all(model, images, {"map": maps}, **options)["map"]


def perturbation_curves_all(
    model: Model,
    images: Any,
    maps: Mapping[str, Any],
    *,
    baseline: Any = "black",
    sigma: float = 5.0,
    mean: Any = None,
    restrict: Any = None,
    steps: int = 20,
    score: str | None = None,
    target: Any = None,
    truth: Any = None,
    seed: int = 0,
    resize_mode: str = "bilinear",
    chunk: int = 16,
    batch_size: int = 128,
) -> dict[str, Curves]:
    """``perturbation_curves`` of several maps of the same images, ``{name: maps}`` -> ``{name:
    Curves}``, each exactly as ``perturbation_curves`` would give it (same orders, same ties), with
    the forwards that do not depend on the map done once: the unperturbed images and the fully
    replaced ones. Each image costs ``2 + 2 (steps - 1) x len(maps)`` forwards instead of
    ``2 steps x len(maps)``, all of a chunk's in one batched pass (``chunk`` images x every map x
    every inner step). Each ``Curves.seconds`` is the shared wall time divided by the number of maps.
    """
    _require_model(model)
    if not isinstance(maps, Mapping) or not maps:
        raise ValueError("maps must be a non-empty {name: maps} mapping")
    steps, chunk = as_int(steps, "steps", least=1), as_int(chunk, "chunk", least=1)
    batch_size = check_batch_size(batch_size)
    imgs = image_stack(images)
    editable = _editable(restrict, imgs)
    label = baseline if isinstance(baseline, str) else "custom"
    t0 = time.perf_counter()
    if label == "mean" and mean is None:
        mean = imgs.mean(axis=(0, 1, 2), dtype=np.float64)  # over all images (per channel), not per chunk
    ranks = [_ranks(_maps_on(imgs, m, resize_mode), editable, seed)[0] for m in maps.values()]
    n = editable.reshape(imgs.shape[0], -1).sum(1)
    scorer = _Scorer(model, score, target, truth)
    baseline_options = {"sigma": sigma, "mean": mean}
    ends = (editable.reshape(imgs.shape[0], -1), n)
    mif, lif = _chunked_scores(model, scorer, imgs, baseline, baseline_options, ranks, ends, steps, chunk, batch_size)
    seconds = (time.perf_counter() - t0) / len(maps)
    settings = {"steps": steps, "sigma": sigma if label == "blur" else None, "seed": seed}
    settings.update(restricted=restrict is not None, resize_mode=resize_mode)
    fr = np.linspace(0.0, 1.0, steps + 1)
    forwards = 2 / len(maps) + 2 * (steps - 1)  # per image and map: 2 steps for one map
    out = {}
    for i, name in enumerate(maps):
        mif_t, lif_t = torch.from_numpy(mif[i]), torch.from_numpy(lif[i])
        out[name] = Curves(fr, mif_t, lif_t, lif_t.flip(1).clone(), n, label, scorer.score, seconds, forwards,
                           dict(settings))  # fmt: skip
    return out


def _require_model(model: Any) -> None:
    if not isinstance(model, Model):
        raise TypeError(
            f"perturbation curves need a vn.core.Model (it preprocesses the edited images), got "
            f"{type(model).__name__}; load it with vn.load(...)"
        )


def _maps_on(imgs: np.ndarray, maps: Any, resize_mode: str) -> torch.Tensor:
    """``maps`` (one per image) resized to the images' ``H x W``."""
    b, h, w = imgs.shape[:3]
    m = as_maps(maps)
    if m.shape[0] != b:
        raise ValueError(f"{m.shape[0]} maps for {b} images; pass one map per image")
    return resize_maps(m, (h, w), resize_mode)


def _chunked_scores(
    model: Model,
    scorer: _Scorer,
    imgs: np.ndarray,
    baseline: Any,
    baseline_options: dict,
    ranks: list[np.ndarray],
    editable: tuple[np.ndarray, np.ndarray],
    steps: int,
    chunk: int,
    batch_size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The MIF and LIF deletion scores of every map (one rank array each), ``[maps, batch, steps + 1]``
    each, ``chunk`` images at a time: the unperturbed and the fully replaced images once, then every
    map's inner steps, all in one batched pass per chunk. ``editable``: the editable pixels ``[batch,
    P]`` and their number per image."""
    b, m = imgs.shape[0], len(ranks)
    ed, n = editable
    per_image = not isinstance(baseline, str) and np.ndim(baseline) == imgs.ndim and np.shape(baseline)[0] == b
    ks = _counts(n, steps)  # [steps + 1, batch]
    mif, lif = np.empty((m, b, steps + 1)), np.empty((m, b, steps + 1))
    inner = 2 * (steps - 1)
    for lo in range(0, b, chunk):
        hi = min(b, lo + chunk)
        bl = np.asarray(baseline)[lo:hi] if per_image else baseline
        ends = np.stack([np.zeros_like(ed[lo:hi]), ed[lo:hi]])  # nothing replaced, every editable pixel
        gone = np.concatenate([ends, *(_replaced(r[lo:hi], n[lo:hi], ks[:, lo:hi], steps) for r in ranks)])
        base = baseline_images(imgs[lo:hi], bl, **baseline_options)
        s = _step_scores(model, scorer, imgs[lo:hi], base, gone, lo, batch_size)  # [2 + maps x inner, c]
        for i in range(m):
            own = s[2 + i * inner : 2 + (i + 1) * inner]
            mif[i, lo:hi, 0] = lif[i, lo:hi, 0] = s[0]
            mif[i, lo:hi, steps] = lif[i, lo:hi, steps] = s[1]
            mif[i, lo:hi, 1:steps] = own[: steps - 1].T
            lif[i, lo:hi, 1:steps] = own[steps - 1 :].T
    return mif, lif
