"""Synthetic chirp spectrogram images for a regression fine-tune, with per-pixel region masks.

Each image is a rendered plot: a title, a log-magnitude spectrogram of a noisy linear chirp,
axis frame and ticks, tick and axis labels, and a colour bar. The model regresses the chirp's
start time, start frequency and end frequency (MSE on z-scored targets); the mask says which
pixels are chirp and which are distractors. Introduced in notebook 07 (fine-tuning).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy.signal import stft

if TYPE_CHECKING:
    import datasets

__all__ = ["REGIONS", "TARGET_MEAN", "TARGET_NAMES", "TARGET_STD", "region_masks", "scale", "spectrograms", "unscale"]

REGIONS = ("background", "plot", "chirp", "text", "colorbar", "axes")  # mask value = index
TARGET_NAMES = ("start_time", "start_freq", "end_freq")
_LOW, _HIGH = np.array([0.05, 300.0, 300.0]), np.array([0.5, 3700.0, 3700.0])  # uniform ranges (s, Hz, Hz)
TARGET_MEAN = (_LOW + _HIGH) / 2
TARGET_STD = (_HIGH - _LOW) / np.sqrt(12)

FS, SECONDS, NPERSEG, HOP = 8000, 1.0, 256, 64  # 8 kHz, 1 s clip, 32 ms Hann window, 8 ms hop
DB_RANGE = (-70.0, 0.0)  # fixed dB range mapped to [0, 1] (stft 'spectrum' scaling: amplitude A -> 20log10(A/2) dB)
_AMP, _SNR_DB, _RAMP_S = (0.25, 1.0), (-8.0, 12.0), 0.01  # chirp amplitude, per-sample SNR, onset fade
_BAND_BINS = 2.0  # chirp mask half-width in STFT bins (the Hann main lobe), plus the sweep over half a window
# Extent of the spectrogram image: boundary-padded frames are centred on 0, HOP, ..., so it overhangs by half a cell.
_T_LO, _T_HI = -HOP / FS / 2, SECONDS + HOP / FS / 2
_F_LO, _F_HI = -FS / NPERSEG / 2, FS / 2 + FS / NPERSEG / 2
_CMAPS = ("viridis", "magma", "inferno", "plasma", "cividis")  # lightness rises with the value in all of them
_TITLES = ("Run {n4}", "Sensor {c}-{n2}", "Trial {n3}", "Recording {n3}", "Mic {n1}, ch {m1}", "Session {c}{n2}")
_YLABELS, _XLABELS = ("Frequency (kHz)", "Freq. [kHz]", "kHz", None), ("Time (s)", "Time [s]", "t (s)", None)
_CHUNK = 256  # signals per vectorised STFT
# Mask downsampling: each output pixel is one k x k block of the canvas, and the block gets the highest-ranked
# region present in any of its canvas pixels (rank: text > axes > colorbar > chirp > plot > background), so thin
# things (text, lines, the chirp band) are never lost. The image uses the same blocks (box filter), so a pixel's
# colour depends only on its own block and the masks line up with the image exactly.
_RANK_TO_CODE = np.array([0, 1, 2, 4, 5, 3], np.uint8)  # ranks 0..5 = background, plot, chirp, colorbar, axes, text


def scale(raw: Any) -> np.ndarray:
    """Z-score raw targets ``(..., 3)`` (start_time s, start_freq Hz, end_freq Hz) with the analytic scaler.

    Introduced in notebook 07."""
    raw = np.asarray(raw, dtype=np.float64)
    if raw.ndim == 0 or raw.shape[-1] != 3:
        raise ValueError(f"targets must have a last axis of length 3 {TARGET_NAMES}, got shape {raw.shape}")
    return (raw - TARGET_MEAN) / TARGET_STD


def unscale(z: Any) -> np.ndarray:
    """Raw targets (s, Hz, Hz) from z-scored ones ``(..., 3)``, the inverse of :func:`scale`.

    Introduced in notebook 07."""
    z = np.asarray(z, dtype=np.float64)
    if z.ndim == 0 or z.shape[-1] != 3:
        raise ValueError(f"targets must have a last axis of length 3 {TARGET_NAMES}, got shape {z.shape}")
    return z * TARGET_STD + TARGET_MEAN


def region_masks(mask: Any) -> dict[str, np.ndarray]:
    """``{region name: bool array}`` from one mask (a dataset row's ``mask``, codes index ``REGIONS``).

    Introduced in notebook 07."""
    m = np.asarray(mask)
    if m.ndim != 2 or not np.issubdtype(m.dtype, np.integer):
        raise ValueError(f"mask must be a 2-D integer array (a row's 'mask'), got shape {m.shape} dtype {m.dtype}")
    if m.size and (m.min() < 0 or m.max() >= len(REGIONS)):
        raise ValueError(f"mask codes must lie in 0..{len(REGIONS) - 1} (REGIONS), got {m.min()}..{m.max()}")
    return {name: m == code for code, name in enumerate(REGIONS)}


@cache
def _lut(name: str) -> np.ndarray:
    import matplotlib

    return np.round(matplotlib.colormaps[name](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)


@lru_cache(maxsize=4096)
def _glyphs(text: str, size: int, rotate: bool = False) -> np.ndarray:
    """Coverage (0..255) of ``text`` in the default font, cropped to its ink; rotated to read upwards."""
    font = ImageFont.load_default(size=size)
    left, top, right, bottom = font.getbbox(text)
    im = Image.new("L", (right - left, bottom - top))
    ImageDraw.Draw(im).text((-left, -top), text, fill=255, font=font)
    return np.asarray(im.rotate(90, expand=True) if rotate else im)


def _params(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Signal parameters (start_time, start_freq, end_freq, amplitude, snr_db, phase) and 20 layout uniforms."""
    u = rng.random(6)
    p = np.concatenate(
        [
            _LOW + u[:3] * (_HIGH - _LOW),
            [_AMP[0] + u[3] * (_AMP[1] - _AMP[0]), _SNR_DB[0] + u[4] * (_SNR_DB[1] - _SNR_DB[0]), 2 * np.pi * u[5]],
        ]
    )
    return p, rng.random(20)


def _levels(p: np.ndarray, rngs: list, noise: bool) -> np.ndarray:
    """Spectrograms ``[B, freq (high first), frame]`` in [0, 1] for a batch of parameter rows."""
    t = np.arange(int(FS * SECONDS)) / FS
    ts, f0, f1, amp, snr, phase0 = (c[:, None] for c in p.T)
    tau = np.clip(t - ts, 0, None)
    phase = 2 * np.pi * (f0 * tau + 0.5 * (f1 - f0) / (SECONDS - ts) * tau**2) + phase0
    fade = 0.5 - 0.5 * np.cos(np.pi * np.clip(tau / _RAMP_S, 0, 1))  # zero before the start, 10 ms rise
    x = (amp * fade * np.sin(phase)).astype(np.float32)
    if noise:
        sigma = (amp / np.sqrt(2) / 10 ** (snr / 20)).astype(np.float32)
        x += sigma * np.stack([r.standard_normal(t.size, dtype=np.float32) for r in rngs])
    _, _, z = stft(x, fs=FS, window="hann", nperseg=NPERSEG, noverlap=NPERSEG - HOP)
    db = 10 * np.log10(z.real**2 + z.imag**2 + 1e-20)
    return np.clip((db[:, ::-1] - DB_RANGE[0]) / (DB_RANGE[1] - DB_RANGE[0]), 0, 1).astype(np.float32)


def _pick(seq: tuple, v: float) -> Any:
    """The element of ``seq`` that a uniform ``v`` in [0, 1) falls on."""
    return seq[min(int(v * len(seq)), len(seq) - 1)]


def _title(u: np.ndarray) -> str:
    """A plot title drawn from ``_TITLES`` with its numbers and letter from the layout uniforms."""
    n = (u[17:20] * 10000).astype(int)
    return _pick(_TITLES, u[11]).format(
        n4=1000 + n[0] % 9000,
        n3=100 + n[0] % 900,
        n2=10 + n[1] % 90,
        n1=1 + n[1] % 9,
        m1=1 + n[2] % 8,
        c="ABCDEFGHKLMNPRS"[n[2] % 15],
    )


def _text_h(s: str, size: int) -> int:
    return _glyphs(s, size, False).shape[0]


def _text_w(s: str, size: int) -> int:
    return _glyphs(s, size, False).shape[1]


@dataclass(frozen=True)
class _Layout:
    """Where one image's parts go, in pixels of the canvas (``k`` x the output size ``c / k``).

    Plot box ``[y0:y1, x0:x1]``, colour bar ``[y0:y1, cx0:cx1]``; line width ``lw``, tick length
    ``tick``, text gap ``gap``, margins (left, top, right, bottom), font sizes ``fsz`` (ticks and
    axis labels) and ``tsz`` (title), background grey ``bg`` and ink grey ``ink``.
    """

    k: int
    c: int
    lut: np.ndarray
    fsz: int
    tsz: int
    lw: int
    tick: int
    gap: int
    margin: list
    title: str
    ylabel: str | None
    xlabel: str | None
    x0: int
    y0: int
    x1: int
    y1: int
    cx0: int
    cx1: int
    bg: int
    ink: np.uint8


def _layout(u: np.ndarray, size: int) -> _Layout:
    """The layout drawn from the 20 layout uniforms ``u``: tight, the margins hold the labels and the plot takes
    the rest (the same whether text is drawn or not)."""
    k = max(2, -(-256 // size))  # canvas is k x the output size
    c = size * k
    fsz = max(8, round(c * (0.045 + 0.012 * u[1])))  # tick label font size
    lw, tick = max(1, c // 128), max(2, round(c * 0.02))
    gap = max(1, tick // 2)
    margin = [round(c * (0.01 + 0.025 * v)) for v in u[2:6]]  # left, top, right, bottom
    title, tsz = _title(u), round(fsz * (1.2 + 0.3 * u[13]))
    ylabel, xlabel = _pick(_YLABELS, u[14]), _pick(_XLABELS, u[15])
    x0 = margin[0] + (_text_h(ylabel, fsz) + gap if ylabel else 0) + _text_w("4", fsz) + gap + tick + lw
    y0 = margin[1] + max(_text_h(title, tsz), _text_h("dB", fsz)) + 2 * gap
    cx1 = c - margin[2] - _text_w("-60", fsz) - gap - tick - lw
    cx0 = cx1 - round(c * (0.03 + 0.015 * u[7]))
    x1 = cx0 - lw - round(c * (0.025 + 0.02 * u[6]))
    y1 = c - margin[3] - (_text_h(xlabel, fsz) + gap if xlabel else 0) - _text_h("0", fsz) - gap - tick - lw
    return _Layout(
        k, c, _lut(_pick(_CMAPS, u[0])), fsz, tsz, lw, tick, gap, margin, title, ylabel, xlabel,
        x0, y0, x1, y1, cx0, cx1, round(236 + 19 * u[8]), np.uint8(60 * u[9]),
    )  # fmt: skip


class _Canvas:
    """The k x larger canvas being drawn: RGB pixels, the region rank under each pixel, the spectrogram level."""

    def __init__(self, lay: _Layout):
        self.c, self.ink = lay.c, lay.ink
        self.rgb = np.full((lay.c, lay.c, 3), lay.bg, np.uint8)
        self.rank = np.zeros((lay.c, lay.c), np.uint8)
        self.levels = np.zeros((lay.c, lay.c), np.float32)

    def line(self, ya: int, yb: int, xa: int, xb: int, r: int) -> None:
        """Fill the box ``[ya:yb, xa:xb]`` with ink, rank ``r``."""
        self.rgb[ya:yb, xa:xb], self.rank[ya:yb, xa:xb] = self.ink, r

    def put(self, x: float, y: float, s: str, size: int, ax: float, ay: float, rotate: bool = False) -> None:
        """Blend the glyph coverage of ``s`` in ink with its anchor (``ax``, ``ay`` of its box) at (x, y); rank 5
        wherever the coverage is > 0. Parts off the canvas are clipped."""
        g = _glyphs(s, size, rotate)
        h, w = g.shape
        x, y = round(x - ax * w), round(y - ay * h)
        xa, ya, xb, yb = max(x, 0), max(y, 0), min(x + w, self.c), min(y + h, self.c)
        if xa >= xb or ya >= yb:
            return
        g = g[ya - y : yb - y, xa - x : xb - x]
        a = g[..., None].astype(np.float32) / 255
        box = self.rgb[ya:yb, xa:xb]
        box[:] = np.rint(box * (1 - a) + float(self.ink) * a).astype(np.uint8)
        self.rank[ya:yb, xa:xb][g > 0] = 5


def _chirp_band(p: np.ndarray, ph: int, pw: int) -> np.ndarray:
    """Bool ``[ph, pw]``: the plot pixels within the analytic chirp band (the Hann main lobe plus the sweep over
    half a window) after the chirp starts."""
    tt = _T_LO + (np.arange(pw) + 0.5) / pw * (_T_HI - _T_LO)
    ff = _F_HI - (np.arange(ph) + 0.5) / ph * (_F_HI - _F_LO)
    ts, f0, f1 = p[:3]
    rate = (f1 - f0) / (SECONDS - ts)
    band = _BAND_BINS * FS / NPERSEG + abs(rate) * NPERSEG / FS / 2
    return (np.abs(ff[:, None] - (f0 + rate * (tt - ts))[None]) <= band) & (tt >= ts)[None]


def _draw_plot(cv: _Canvas, lay: _Layout, level: np.ndarray, p: np.ndarray) -> None:
    """The spectrogram resampled to the plot box and coloured (rank 1, the chirp band rank 2), and the colour bar's
    gradient beside it (rank 3, top = ``DB_RANGE[1]``)."""
    (y0, y1, x0, x1), ph, pw = (lay.y0, lay.y1, lay.x0, lay.x1), lay.y1 - lay.y0, lay.x1 - lay.x0
    lv = np.asarray(Image.fromarray(level).resize((pw, ph), Image.BILINEAR))
    cv.levels[y0:y1, x0:x1] = lv
    cv.rgb[y0:y1, x0:x1] = lay.lut[np.rint(lv * 255).astype(np.intp)]
    cv.rank[y0:y1, x0:x1] = np.where(_chirp_band(p, ph, pw), 2, 1)
    cv.rgb[y0:y1, lay.cx0 : lay.cx1] = lay.lut[np.rint(np.linspace(255, 0, ph)).astype(np.intp)][:, None]
    cv.rank[y0:y1, lay.cx0 : lay.cx1] = 3


def _ticks(lay: _Layout, u: np.ndarray) -> tuple[list, list, list]:
    """``(position, label)`` of the frequency ticks (y, kHz), the time ticks (x, s) and the colour bar's (y, dB)."""
    ph, pw = lay.y1 - lay.y0, lay.x1 - lay.x0
    step = 0.2 if u[10] < 0.6 else 0.25
    yticks = [(round(lay.y0 + (_F_HI - 1000 * f) / (_F_HI - _F_LO) * ph), str(f)) for f in range(5)]
    xticks = [
        (round(lay.x0 + (s - _T_LO) / (_T_HI - _T_LO) * pw), f"{s:.1f}" if step == 0.2 else f"{s:g}")
        for s in np.arange(0, SECONDS + 1e-9, step)
    ]
    span = DB_RANGE[1] - DB_RANGE[0]
    cticks = [(round(lay.y0 + (DB_RANGE[1] - d) / span * ph), f"{d:g}") for d in (0, -20, -40, -60)]
    return yticks, xticks, cticks


def _draw_frames(cv: _Canvas, lay: _Layout, ticks: tuple[list, list, list]) -> None:
    """Frames just outside the plot (rank 4) and the colour bar (rank 3), and their outward tick marks."""
    y0, y1, lw, tick = lay.y0, lay.y1, lay.lw, lay.tick
    for (a, b), r in (((lay.x0, lay.x1), 4), ((lay.cx0, lay.cx1), 3)):
        cv.line(y0 - lw, y1 + lw, a - lw, a, r), cv.line(y0 - lw, y1 + lw, b, b + lw, r)
        cv.line(y0 - lw, y0, a - lw, b + lw, r), cv.line(y1, y1 + lw, a - lw, b + lw, r)
    yticks, xticks, cticks = ticks
    for y, _ in yticks:
        cv.line(y - lw // 2, y - lw // 2 + lw, lay.x0 - lw - tick, lay.x0 - lw, 4)
    for x, _ in xticks:
        cv.line(y1 + lw, y1 + lw + tick, x - lw // 2, x - lw // 2 + lw, 4)
    for y, _ in cticks:
        cv.line(y - lw // 2, y - lw // 2 + lw, lay.cx1 + lw, lay.cx1 + lw + tick, 3)


def _draw_text(cv: _Canvas, lay: _Layout, ticks: tuple[list, list, list], u: np.ndarray) -> None:
    """Tick labels, the title, the axis labels the layout has, and (half the time) "dB" over the colour bar."""
    x0, y0, x1, y1, cx0, cx1 = lay.x0, lay.y0, lay.x1, lay.y1, lay.cx0, lay.cx1
    fsz, off = lay.fsz, lay.lw + lay.tick + lay.gap  # off: a tick label's distance from its frame
    yticks, xticks, cticks = ticks
    for y, s in yticks:
        cv.put(x0 - off, y, s, fsz, 1, 0.5)
    for x, s in xticks:
        cv.put(x, y1 + off, s, fsz, 0.5, 0)
    for y, s in cticks:
        cv.put(cx1 + off, y, s, fsz, 0, 0.5)
    cv.put((x0 + x1) / 2 + lay.c * 0.06 * (u[12] - 0.5), lay.margin[1], lay.title, lay.tsz, 0.5, 0)
    if lay.ylabel:
        cv.put(lay.margin[0], (y0 + y1) / 2, lay.ylabel, fsz, 0, 0.5, rotate=True)
    if lay.xlabel:
        cv.put((x0 + x1) / 2, lay.c - lay.margin[3], lay.xlabel, fsz, 0.5, 1)
    if u[16] < 0.5:
        cv.put((cx0 + cx1) / 2, y0 - lay.lw - lay.gap, "dB", fsz, 0.5, 1)


def _draw(level, p, u, size: int, text: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image: (RGB uint8 [S, S, 3], mask codes [S, S], spectrogram level per pixel [S, S], 0 off-plot).

    Drawn on a canvas k x the output size (:func:`_layout`), in this order: the plot and colour bar, their frames
    and tick marks, then the text (skipped with ``text=False``); :func:`_finish` box-filters it down."""
    lay = _layout(u, size)
    cv = _Canvas(lay)
    _draw_plot(cv, lay, level, p)
    ticks = _ticks(lay, u)
    _draw_frames(cv, lay, ticks)
    if text:
        _draw_text(cv, lay, ticks, u)
    return _finish(cv.rgb, cv.rank, cv.levels, lay.k)


def _finish(canvas, rank, levels, k):
    s = canvas.shape[0] // k
    image = np.asarray(Image.fromarray(canvas).reduce(k))  # box filter over each k x k block
    code = _RANK_TO_CODE[rank.reshape(s, k, -1).max(1).reshape(s, s, k).max(2)]
    return image, code, np.asarray(Image.fromarray(levels).reduce(k))


def _render(n: int, seed: int, size: int, noise: bool = True, text: bool = True) -> dict[str, np.ndarray]:
    """All arrays behind :func:`spectrograms`, plus ``level`` (the spectrogram value under each pixel)."""
    out = {
        "image": np.empty((n, size, size, 3), np.uint8),
        "mask": np.empty((n, size, size), np.uint8),
        "level": np.empty((n, size, size), np.float32),
        "raw": np.empty((n, 3), np.float64),
    }
    for lo in range(0, n, _CHUNK):
        rngs = [np.random.default_rng([seed, i]) for i in range(lo, min(lo + _CHUNK, n))]  # image i: own stream
        ps, us = zip(*(_params(r) for r in rngs))
        p = np.stack(ps)
        for j, level in enumerate(_levels(p, rngs, noise)):
            out["image"][lo + j], out["mask"][lo + j], out["level"][lo + j] = _draw(level, p[j], us[j], size, text)
        out["raw"][lo : lo + len(p)] = p[:, :3]
    return out


def spectrograms(n: int, seed: int = 0, size: int = 64) -> datasets.Dataset:
    """``n`` chirp spectrogram images with region masks and regression targets, as a ``datasets.Dataset``.

    Columns: ``image`` (RGB, size x size), ``mask`` (uint8 codes indexing ``REGIONS``), ``targets``
    (start_time, start_freq, end_freq z-scored by :func:`scale`) and the raw ``start_time`` (s),
    ``start_freq`` and ``end_freq`` (Hz). Image i depends only on (seed, i, size): the same arguments
    give identical rows, and a smaller ``n`` gives a prefix. Introduced in notebook 07.
    """
    import datasets

    out = spectrogram_arrays(n, seed, size)
    raw = out["raw"].astype(np.float32)
    size = out["image"].shape[1]
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "mask": datasets.Array2D(shape=(size, size), dtype="uint8"),
            "targets": datasets.Sequence(datasets.Value("float32"), length=3),
            **{name: datasets.Value("float32") for name in TARGET_NAMES},
        }
    )
    columns = {
        "image": [Image.fromarray(im) for im in out["image"]],
        "mask": out["mask"],
        "targets": out["targets"],
        **dict(zip(TARGET_NAMES, raw.T)),
    }
    return datasets.Dataset.from_dict(columns, features=features)


def spectrogram_arrays(n: int, seed: int = 0, size: int = 64) -> dict[str, np.ndarray]:
    """``spectrograms``' rows as arrays (the fast path for training, without ``datasets``): ``image``
    uint8 ``[n, size, size, 3]``, ``mask`` ``[n, size, size]``, ``targets`` float32 ``[n, 3]`` (z-scored)
    and ``raw`` (start time, start and end frequency, in s and Hz)."""
    for name, value, lo, hint in (("n", n, 1, "n=1000"), ("seed", seed, 0, "seed=0"), ("size", size, 32, "size=64")):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
            raise ValueError(f"{name} must be an int >= {lo}, got {value!r}; pass e.g. {hint}")
    out = _render(int(n), int(seed), int(size))
    return dict(image=out["image"], mask=out["mask"], targets=scale(out["raw"]).astype(np.float32), raw=out["raw"])
