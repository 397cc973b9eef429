"""What each layer's representation holds: the logit lens, linear probes, linear CKA.

- ``representations``: one pooled vector per image after every layer: for a ViT the embeddings and
  each block's output (the residual stream, ``emb``, ``L0`` .. ``L{n-1}``), pooled as the CLS token
  or the mean patch token; for a CNN the stem and each residual block (``stem``, ``S0.B0``, ...),
  global-average-pooled.
- ``logit_lens`` (nostalgebraist 2020): each layer's token states read out by the model's own
  final layer norm and classifier (``core.arch.readout``), as if the later blocks were skipped.
- ``linear_probes`` (Alain & Bengio 2016): a logistic regression per layer on the CLS token, fitted
  on one image set and scored on another.
- ``cka``: linear CKA (Kornblith et al. 2019) between every pair of layers of two models.

Accuracies come with percentile-bootstrap 95 % intervals over the scored images
(``evaluate.intervals.bootstrap``). Introduced in notebooks 01 (lens and probes) and 03 (CKA).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..core import arch
from ..core.hooks import hooks
from ..core.model import check_batch_size, check_pixel_values, forward, unwrap
from ..stats import cka_matrix
from .intervals import bootstrap

__all__ = ["representations", "logit_lens", "linear_probes", "probe_predictions", "cka"]

POOLS = ("cls", "mean")


def _layer_names(net: torch.nn.Module, kind: str) -> list[str]:
    if kind == "vit":
        return ["emb"] + [f"L{i}" for i in range(len(arch.blocks(net)))]
    return ["stem"] + [name for name, _ in arch.cnn_blocks(net)]


def _pool(h: torch.Tensor, pool: str, prefix: int) -> torch.Tensor:
    """``[batch, T, hidden]`` token states (ViT) or ``[batch, C, H, W]`` maps (CNN) -> ``[batch, features]``."""
    if h.ndim == 4:
        return h.float().mean((2, 3))
    return h[:, 0].float() if pool == "cls" else h[:, prefix:].float().mean(1)


@torch.no_grad()
def _cnn_chunk(net: torch.nn.Module, chunk: torch.Tensor) -> list[torch.Tensor]:
    """Stem and every residual block's output of a CNN, pooled: one ``[batch, channels]`` per layer."""
    outs: list[torch.Tensor] = []
    regs = [(block, "forward", lambda _m, _i, o: outs.append(_pool(o, "mean", 0))) for _, block in arch.cnn_blocks(net)]
    with hooks(regs):
        stem = forward(net, chunk, output_hidden_states=True).hidden_states[0]
    return [_pool(stem, "mean", 0), *outs]


def representations(
    model: Any, pixel_values: torch.Tensor, *, pool: str = "mean", batch_size: int = 64
) -> dict[str, torch.Tensor]:
    """One vector per image after every layer, ``{layer name: [batch, features]}`` in forward order.

    ViT: ``emb`` (the embeddings, prefix tokens included) and ``L0`` .. ``L{n-1}`` (each block's
    output, before the final layer norm), pooled as ``pool="cls"`` (the CLS token) or ``"mean"`` (the
    mean of the patch tokens, every prefix token dropped). CNN: ``stem`` and every residual block
    (``S<stage>.B<block>``), averaged over space (``pool`` must be ``"mean"``).
    Introduced in notebook 03 (CNN vs ViT).
    """
    net, geom = unwrap(model)
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
    if geom.kind != "vit" and pool == "cls":
        raise ValueError("a CNN has no CLS token: use pool='mean' (global average pooling)")
    x = check_pixel_values(pixel_values, geom)
    batch_size = check_batch_size(batch_size)
    names, was_training = _layer_names(net, geom.kind), net.training
    net.eval()
    chunks: list[list[torch.Tensor]] = []
    try:
        for chunk in x.split(batch_size):
            if geom.kind == "vit":
                with torch.no_grad():
                    states = forward(net, chunk, output_hidden_states=True).hidden_states
                chunks.append([_pool(h, pool, geom.prefix) for h in states])
            else:
                chunks.append(_cnn_chunk(net, chunk))
    finally:
        net.train(was_training)
    return {name: torch.cat([c[i] for c in chunks]) for i, name in enumerate(names)}


def _labels(labels: Any, n: int, classes: int, what: str) -> torch.Tensor:
    y = torch.as_tensor(np.asarray(labels)).flatten()
    if y.is_floating_point() or y.dtype == torch.bool:
        raise TypeError(f"{what} must be integer class indices, got {y.dtype}")
    if y.numel() != n:
        raise ValueError(f"{what} has {y.numel()} entries for {n} images; give one class index per image")
    if ((y < 0) | (y >= classes)).any():
        raise ValueError(f"{what} holds a class outside 0..{classes - 1} (the model has {classes} classes)")
    return y.long()


def _interval_rows(per_image: Mapping[str, np.ndarray], n_boot: int, seed: int) -> pd.DataFrame:
    rows = {}
    for name, v in per_image.items():
        iv = bootstrap(v, n_boot=n_boot, seed=seed)
        rows[name] = {"accuracy": iv.value, "low": iv.low, "high": iv.high}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("layer")


@torch.no_grad()
def _lens_chunk(net: torch.nn.Module, chunk: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per layer and image: whether the lens's top class is ``y``, and its probability of ``y``
    (two ``[layer, batch]`` tensors)."""
    states = forward(net, chunk, output_hidden_states=True).hidden_states
    probs = torch.stack([arch.readout(net, h).float().softmax(-1) for h in states])  # [layer, batch, classes]
    return probs.argmax(-1) == y, probs.gather(2, y.expand(len(states), -1)[..., None])[..., 0]


def logit_lens(
    model: Any, pixel_values: torch.Tensor, labels: Any, *, batch_size: int = 64, n_boot: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """The logit lens: every layer's token states (``emb``, ``L0`` .. ``L{n-1}``) read out by the model's
    own final layer norm and classifier, the way it reads its last layer (``core.arch.readout``: the CLS
    token for ViT and DeiT, CLS with the patch mean for DINOv2), as if the blocks above were skipped.

    One row per layer: ``accuracy`` (share of images whose top class is the label) with its bootstrap
    95 % interval ``low`` .. ``high`` over images, ``p_true`` (mean probability of the label) and ``n``
    (images). At the last layer the lens is the model itself. Introduced in notebook 01 (layers).
    """
    net, geom = unwrap(model)
    geom.require_vit("the logit lens")
    if arch.is_regression(net):
        raise TypeError("the logit lens reads class probabilities; this model regresses (it has no classes)")
    x = check_pixel_values(pixel_values, geom)
    batch_size = check_batch_size(batch_size)
    y = _labels(labels, x.shape[0], int(net.config.num_labels), "labels")
    was_training = net.training
    net.eval()
    try:
        parts = [_lens_chunk(net, c, t) for c, t in zip(x.split(batch_size), y.split(batch_size))]
    finally:
        net.train(was_training)
    right, p_true = (torch.cat([p[i] for p in parts], dim=1).numpy() for i in (0, 1))  # [layer, images]
    names = _layer_names(net, "vit")
    table = _interval_rows(dict(zip(names, right.astype(float))), n_boot, seed)
    table["p_true"] = p_true.mean(1)
    table["n"] = x.shape[0]
    return table


def _fit(features: np.ndarray, y: np.ndarray, c: float, max_iter: int):
    """A multinomial logistic regression (L-BFGS, L2 penalty ``1 / c``) on standardised features:
    (scaler, classifier, whether it converged)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(features)
    clf = LogisticRegression(C=c, max_iter=max_iter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # reported as ``converged`` instead
        clf.fit(scaler.transform(features), y)
    return scaler, clf, bool(np.all(clf.n_iter_ < max_iter))


def _as_features(f: Any, what: str) -> np.ndarray:
    a = np.asarray(f.detach().cpu() if isinstance(f, torch.Tensor) else f, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] == 0:
        raise ValueError(f"{what} must be [images, features], got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{what} contain NaN or inf")
    return a


def probe_predictions(
    train_features: Any, train_y: Any, test_features: Any, *, c: float = 1.0, max_iter: int = 1000
) -> tuple[np.ndarray, bool]:
    """A linear probe: a multinomial logistic regression (scikit-learn, L-BFGS, L2 penalty with
    strength ``1 / c``) on standardised features (each feature's training mean and s.d.), fitted on
    ``train_features`` ``[n, d]`` with integer labels ``train_y``; returns the predicted classes of
    ``test_features`` ``[m, d]`` and whether L-BFGS converged within ``max_iter`` steps.
    Deterministic for given inputs. Introduced in notebook 01 (layers)."""
    tr, te = _as_features(train_features, "train features"), _as_features(test_features, "test features")
    y = np.asarray(train_y).reshape(-1)
    if tr.shape[1] != te.shape[1]:
        raise ValueError(f"train features have {tr.shape[1]} dimensions, test features {te.shape[1]}")
    if y.shape[0] != tr.shape[0]:
        raise ValueError(f"{y.shape[0]} training labels for {tr.shape[0]} training images")
    if np.unique(y).size < 2:
        raise ValueError("a probe needs at least two classes among the training labels")
    scaler, clf, converged = _fit(tr, y, c, max_iter)
    return clf.predict(scaler.transform(te)), converged


def linear_probes(
    model: Any,
    train_x: torch.Tensor,
    train_y: Any,
    test_x: torch.Tensor,
    test_y: Any,
    *,
    pool: str = "cls",
    c: float = 1.0,
    max_iter: int = 1000,
    batch_size: int = 64,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """A linear probe per layer (``probe_predictions``) on the ``pool`` token (``representations``),
    fitted on ``train_x`` / ``train_y`` and scored on the images ``test_x`` / ``test_y``.

    One row per layer: ``accuracy`` on the test images with its bootstrap 95 % interval ``low`` ..
    ``high``; ``last_probe``: the accuracy at that layer of the *last* layer's probe (each layer's
    features standardised with their own training mean and s.d., no labels used), which asks whether a
    readout fitted on the last layer reads the earlier ones, as the logit lens does; ``converged``;
    ``chance`` (the most frequent training class's share of the test labels); ``n_train``, ``n_test``.
    Introduced in notebook 01 (layers).
    """
    ytr, yte = np.asarray(train_y).reshape(-1), np.asarray(test_y).reshape(-1)
    if ytr.shape[0] != train_x.shape[0] or yte.shape[0] != test_x.shape[0]:
        raise ValueError(
            f"{ytr.shape[0]} / {yte.shape[0]} labels for {train_x.shape[0]} / {test_x.shape[0]} train / test images"
        )
    train = representations(model, train_x, pool=pool, batch_size=batch_size)
    test = representations(model, test_x, pool=pool, batch_size=batch_size)
    fits = {name: _fit(_as_features(train[name], "train features"), ytr, c, max_iter) for name in train}
    last = fits[list(fits)[-1]][1]
    right, by_last = {}, {}
    for name, (scaler, clf, _) in fits.items():
        feats = scaler.transform(test[name].double().numpy())
        right[name] = (clf.predict(feats) == yte).astype(float)
        by_last[name] = float(np.mean(last.predict(feats) == yte))
    table = _interval_rows(right, n_boot, seed)
    table["last_probe"] = pd.Series(by_last)
    table["converged"] = pd.Series({name: f[2] for name, f in fits.items()})
    values, counts = np.unique(ytr, return_counts=True)
    table["chance"] = float(np.mean(yte == values[np.argmax(counts)]))
    table["n_train"], table["n_test"] = len(ytr), len(yte)
    return table


def cka(
    features_a: Mapping[str, Any] | Sequence[Any],
    features_b: Mapping[str, Any] | Sequence[Any],
    *,
    debiased: bool = False,
    names: tuple[str, str] | None = None,
) -> pd.DataFrame:
    """Linear CKA (Kornblith et al. 2019) between every layer of one model (rows) and every layer of
    another (columns), from per-image representations of the same images (``representations``:
    ``{layer: [images, features]}``, or a list). ``debiased=True`` uses the unbiased HSIC estimator
    (``stats.cka_matrix``); ``names`` names the rows' and the columns' model (the axes of
    ``cka_heatmap``). Introduced in notebook 03 (CNN vs ViT)."""
    names_a = list(features_a) if isinstance(features_a, Mapping) else list(range(len(features_a)))
    names_b = list(features_b) if isinstance(features_b, Mapping) else list(range(len(features_b)))
    reps_a = list(features_a.values()) if isinstance(features_a, Mapping) else list(features_a)
    reps_b = list(features_b.values()) if isinstance(features_b, Mapping) else list(features_b)
    m = cka_matrix(reps_a, reps_b, debiased=debiased)
    rows, cols = names or (None, None)
    return pd.DataFrame(m.numpy(), index=pd.Index(names_a, name=rows), columns=pd.Index(names_b, name=cols))
