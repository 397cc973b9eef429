"""Diagnosing a classifier's mistakes: predictions with attention in one pass, the confusion
matrix and its main pairs, attention statistics of right vs wrong predictions, and a short
diagnosis of one error written from measured quantities.

Introduced in notebook 04 (misclassified images).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..core.capture import patch_grid, stream
from ..core.model import check_batch_size, vit_input
from ..stats import entropy, mask_mass, topk_share

__all__ = [
    "attention_stats", "compare_groups", "confusion_matrix", "confusion_pairs", "describe_error", "garment_mass",
    "group_intervals", "pick_errors", "predict_with_attention",
]  # fmt: skip


def predict_with_attention(
    model: Any, pixel_values: torch.Tensor, layer: int = -1, *, batch_size: int = 128, progress: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and one layer's CLS attention from the same forward pass.

    Returns (logits ``[batch, classes]``, CLS -> patch attention ``[batch, head, rows, cols]``, the
    prefix dropped and renormalised as in ``Attention.cls_grid``). The model runs its own kernel
    to the end; ``vitnotes.core.capture.stream`` keeps the layer's CLS query and its keys and recomputes
    ``softmax(q_cls K^T * scale)``, so the attention costs one row per head instead of a second
    pass. Introduced in notebook 04.
    """
    _, geom, pixel_values = vit_input(model, pixel_values, batch_size, "predict_with_attention")
    batch_size = check_batch_size(batch_size)
    grid = geom.grid_for(*pixel_values.shape[-2:])
    rows: list[torch.Tensor] = []  # [chunk, head, T] CLS rows
    logits = stream(
        model,
        pixel_values,
        [geom.layer(layer)],
        lambda _layer, p: rows.append(p.cpu()),
        cls_only=True,
        batch_size=batch_size,
        to_end=True,
        progress=progress,
    )
    return torch.cat(logits), patch_grid(torch.cat(rows), geom.prefix, grid)


def _labels(y: Any, what: str) -> np.ndarray:
    a = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y)
    if a.ndim != 1 or a.size == 0 or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(
            f"{what} must be a non-empty 1-D array of integer class indices, got shape {a.shape}, dtype {a.dtype}"
        )
    return a.astype(np.int64)


def confusion_matrix(true: Any, pred: Any, names: Sequence[str]) -> pd.DataFrame:
    """Counts ``[true class, predicted class]`` as a table with the class names (rows: true).
    Introduced in notebook 04 (misclassified images)."""
    t, p = _labels(true, "true"), _labels(pred, "pred")
    if t.shape != p.shape:
        raise ValueError(f"{t.size} true labels but {p.size} predictions")
    n = len(names)
    if t.min() < 0 or p.min() < 0 or max(t.max(), p.max()) >= n:
        raise ValueError(f"class indices must lie in 0..{n - 1} for {n} names")
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    return pd.DataFrame(cm, index=pd.Index(names, name="true"), columns=pd.Index(names, name="predicted"))


def confusion_pairs(cm: pd.DataFrame, top: int = 6) -> pd.DataFrame:
    """The ``top`` largest off-diagonal cells of a confusion matrix: true, predicted, count,
    ``of_true`` (share of that true class sent there) and ``of_errors`` (share of all errors).
    Introduced in notebook 04 (misclassified images)."""
    a = cm.to_numpy()
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"expected a square confusion matrix, got shape {a.shape}")
    off = a.copy()
    np.fill_diagonal(off, 0)
    errors = off.sum()
    rows = []
    for i, j in zip(*np.unravel_index(np.argsort(-off, axis=None, kind="stable"), off.shape)):
        if len(rows) == top or off[i, j] == 0:
            break
        rows.append(
            {
                "true": cm.index[i],
                "predicted": cm.columns[j],
                "count": int(off[i, j]),
                "of_true": off[i, j] / a[i].sum(),
                "of_errors": off[i, j] / errors,
            }
        )
    return pd.DataFrame(rows)


def attention_stats(cls_grid: torch.Tensor, logits: torch.Tensor, k: int = 10) -> pd.DataFrame:
    """Per-image numbers: ``cls_entropy`` (nats) and ``cls_top{k}`` share of the CLS attention,
    each averaged over heads (``cls_grid``: ``[batch, head, rows, cols]``), ``confidence`` (the
    top softmax probability) and ``margin`` (top minus second probability).
    Introduced in notebook 04 (misclassified images)."""
    if cls_grid.ndim != 4 or logits.ndim != 2 or cls_grid.shape[0] != logits.shape[0]:
        raise ValueError(
            f"expected cls_grid [batch, head, rows, cols] and logits [batch, classes] for the same "
            f"images, got {tuple(cls_grid.shape)} and {tuple(logits.shape)}"
        )
    p = cls_grid.flatten(-2)
    probs = logits.double().softmax(-1).topk(2, dim=-1).values
    return pd.DataFrame(
        {
            "cls_entropy": entropy(p).mean(-1).numpy(),
            f"cls_top{k}": topk_share(p, k).mean(-1).numpy(),
            "confidence": probs[:, 0].float().numpy(),
            "margin": (probs[:, 0] - probs[:, 1]).float().numpy(),
        }
    )


def _two_groups(df: pd.DataFrame, by: str, columns: Sequence[str] | None) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(column, values where by, values where not by)`` for each column (NaNs left out), after
    checking that ``by`` is a boolean column and that neither group is empty."""
    if by not in df.columns or df[by].dtype != bool:
        raise ValueError(f"column {by!r} must exist and be boolean (e.g. correct = pred == label)")
    out = []
    for c in [c for c in df.columns if c != by] if columns is None else list(columns):
        a = df.loc[df[by], c].dropna().to_numpy(float)
        b = df.loc[~df[by], c].dropna().to_numpy(float)
        if len(a) == 0 or len(b) == 0:
            raise ValueError(f"column {c!r}: one group is empty ({len(a)} {by}, {len(b)} not {by})")
        out.append((c, a, b))
    return out


def compare_groups(df: pd.DataFrame, by: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Two groups (``by`` is a boolean column) compared on each column: means, the difference,
    the rank-biserial effect size and a two-sided Mann-Whitney U p-value. NaNs are left out.

    Rank-biserial ``r = 2 U / (n_true n_false) - 1``, with ``U`` counting the pairs in which the
    ``True`` group's value is larger (ties count half): +1 = every ``True`` value is larger, 0 =
    no tendency, -1 = every one smaller.
    Introduced in notebook 04 (misclassified images).
    """
    from scipy.stats import mannwhitneyu

    rows = []
    for c, a, b in _two_groups(df, by, columns):
        res = mannwhitneyu(a, b, alternative="two-sided")
        rows.append(
            {
                "statistic": c,
                f"mean ({by})": a.mean(),
                f"mean (not {by})": b.mean(),
                "difference": a.mean() - b.mean(),
                "rank_biserial": 2 * res.statistic / (len(a) * len(b)) - 1,
                "p_mannwhitney": res.pvalue,
                f"n ({by})": len(a),
                f"n (not {by})": len(b),
            }
        )
    return pd.DataFrame(rows).set_index("statistic")


def group_intervals(
    df: pd.DataFrame, by: str, columns: Sequence[str] | None = None, *,
    n_boot: int = 1000, seed: int = 0, level: float = 0.95,
) -> pd.DataFrame:  # fmt: skip
    """Two groups (``by`` a boolean column) compared on each column with percentile-bootstrap
    intervals, in ``evaluation_table``'s long format (``vn.evaluate.interval_table`` shows it): per column
    (``method``), the rows ``mean (<by>)``, ``mean (not <by>)`` and ``difference`` (the first minus the
    second). The groups are resampled separately (stratified): resample ``b`` draws
    ``rng.integers(0, n_true, n_true)`` then ``rng.integers(0, n_false, n_false)`` from
    ``rng = numpy.random.default_rng(seed)``; NaNs are left out first. Introduced in notebook 04."""
    q = [100 * (1 - level) / 2, 100 * (1 + level) / 2]
    rows = []
    for c, a, b in _two_groups(df, by, columns):
        rng = np.random.default_rng(seed)
        ma, mb = np.empty(n_boot), np.empty(n_boot)
        for i in range(n_boot):
            ma[i] = a[rng.integers(0, len(a), len(a))].mean()
            mb[i] = b[rng.integers(0, len(b), len(b))].mean()
        for metric, value, boot, n in (
            (f"mean ({by})", a.mean(), ma, len(a)),
            (f"mean (not {by})", b.mean(), mb, len(b)),
            ("difference", a.mean() - b.mean(), ma - mb, len(a) + len(b)),
        ):
            low, high = np.percentile(boot, q)
            rows.append(dict(method=c, family="groups", metric=metric, baseline="", value=float(value),
                             low=float(low), high=float(high), n=int(n)))  # fmt: skip
    return pd.DataFrame(rows)


def garment_mass(maps: torch.Tensor, images: Any, threshold: int = 0) -> torch.Tensor:
    """Share of each map's (non-negative) mass on the garment: pixels brighter than ``threshold``.

    ``maps``: ``[batch, rows, cols]`` on a grid that divides the image; ``images``: raw
    ``[batch, H, W]`` grey images (0 = black background), or a boolean ``[batch, H, W]`` object
    mask used as it is (``vn.data.examples`` gives one for every model family). Patches partly on
    the garment count in proportion. Returns ``[batch]`` in [0, 1].
    Introduced in notebook 03 (CNN vs ViT).
    """
    m = torch.as_tensor(maps, dtype=torch.float64)
    imgs = torch.from_numpy(np.array(images, copy=True))  # a copy: the loaders' arrays may be read-only
    if m.ndim != 3 or imgs.ndim != 3 or m.shape[0] != imgs.shape[0]:
        raise ValueError(
            f"expected maps [batch, rows, cols] and grey images [batch, H, W] for the same images, "
            f"got {tuple(m.shape)} and {tuple(imgs.shape)}"
        )
    if (m < 0).any():
        raise ValueError("maps must be non-negative (attention, rollout, ReLU'd relevance)")
    total = m.sum((-2, -1), keepdim=True)
    p = m / total.clamp_min(1e-300)
    return mask_mass(p, imgs if imgs.dtype == torch.bool else imgs > threshold)


def describe_error(
    names: Sequence[str],
    true: int,
    pred: int,
    probs: torch.Tensor,
    *,
    cls_garment: float,
    rollout_garment: float,
    garment_area: float,
    class_overlap: float,
    cls_entropy: float,
    typical_entropy: float,
    region: str = "garment",
) -> str:
    """One error in words, every number measured: how sure the model was, whether the true class
    was a close second, where the attention went (share on the garment against the garment's
    share of the image), and whether the evidence for the predicted and the true class sits on
    the same pixels (``class_overlap``: top-10 % overlap of the two class-specific maps).

    ``region`` names what ``cls_garment`` and ``garment_area`` measure (``"object"`` for a photo's
    object box). A NaN ``typical_entropy`` (no correct predictions to take a median of) is said so.
    Introduced in notebook 04 (misclassified images)."""
    p = torch.as_tensor(probs, dtype=torch.float64)
    rank = int((p > p[true]).sum()) + 1
    sure = "confidently" if p[pred] >= 0.8 else ("narrowly" if p[pred] - p[true] < 0.15 else "")
    first = (
        f"True **{names[true]}**, predicted **{names[pred]}** {sure} (p = {p[pred]:.2f}); "
        f"the true class comes {_ordinal(rank)} with p = {p[true]:.2f}."
    ).replace("  ", " ")
    focus = "more" if cls_garment > garment_area else "less"
    typical = (
        "(no correct predictions to compare with)"
        if np.isnan(typical_entropy)
        else f"vs a median of {typical_entropy:.2f} for correct predictions"
    )
    second = (
        f"Last-layer CLS attention puts {cls_garment:.0%} of its mass on the {region}, which covers "
        f"{garment_area:.0%} of the image ({focus} than its area), rollout {rollout_garment:.0%}; "
        f"CLS entropy {cls_entropy:.2f} nats {typical}."
    )
    same = "mostly the same" if class_overlap >= 0.5 else ("partly the same" if class_overlap >= 0.25 else "different")
    third = (
        f"The class-specific maps for {names[pred]} and {names[true]} share {class_overlap:.0%} of their "
        f"top-10 % pixels: the evidence sits on {same} pixels."
    )
    return " ".join([first, second, third])


def _ordinal(n: int) -> str:
    if n in (1, 2, 3):
        return ("first", "second", "third")[n - 1]
    suffix = "th" if n % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"  # 1000 classes: 21st, 112th


def pick_errors(
    true: Any, pred: Any, confidence: Any, pairs: pd.DataFrame, names: Sequence[str], per_pair: int = 2
) -> np.ndarray:
    """Indices of errors to look at: for each (true, predicted) pair of ``confusion_pairs``, the
    most confident error, then the least confident, then the second most confident, ... up to
    ``per_pair`` (fewer when the pair has fewer errors). Introduced in notebook 04 (misclassified images)."""
    t, p = _labels(true, "true"), _labels(pred, "pred")
    conf = np.asarray(confidence, dtype=float)
    if not t.shape == p.shape == conf.shape:
        raise ValueError(f"true, pred and confidence differ in length: {t.size}, {p.size}, {conf.size}")
    if per_pair < 1:
        raise ValueError(f"per_pair must be >= 1, got {per_pair}")
    lookup = {n: i for i, n in enumerate(names)}
    out: list[int] = []
    for _, row in pairs.iterrows():
        cand = np.flatnonzero((t == lookup[row["true"]]) & (p == lookup[row["predicted"]]))
        ranked = cand[np.argsort(-conf[cand], kind="stable")]  # most confident first
        alternating = [ranked[i // 2] if i % 2 == 0 else ranked[-(i // 2) - 1] for i in range(len(ranked))]
        out += list(dict.fromkeys(int(i) for i in alternating))[:per_pair]
    return np.asarray(out, dtype=np.int64)
