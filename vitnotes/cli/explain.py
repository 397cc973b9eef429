"""``python -m vitnotes explain``: per image, an overlay PNG (the map over the image the model saw,
with a colour bar) and a JSON of its numbers. Introduced with notebook 06 (rollout, the methods)."""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import cli  # the package: ``cli._load_model`` is looked up when called, so a test may replace it
from .checks import (
    _RECORD,
    CliError,
    _atomic_write,
    _check_outputs,
    _class_index,
    _is_overlay,
    _is_record,
    _make_folder,
    _one_line,
    _open_images,
    _out_folder,
    _overlay,
    _registry,
    _regression,
)

TOP_K = 10  # the map's top-k share, k = 10 as in the seed paper (fewer when the grid is smaller)


def _stems(paths: Sequence[str | Path]) -> list[str]:
    """Output names, one per image: the file's stem, made unique (``cat``, ``cat-2``, ...)."""
    seen: dict[str, int] = {}
    names = []
    for p in paths:
        stem = Path(p).stem or "image"
        seen[stem] = seen.get(stem, 0) + 1
        names.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    taken = set(names)
    if len(taken) != len(names):  # e.g. "cat-2" given as a file as well as made up: number them all
        names = [f"{i:03d}-{n}" for i, n in enumerate(names)]
    return names


def _check_options(name: str, layer: int | None, head: int | None, target: Any) -> dict:
    """Which of --layer / --head / --target the method takes; refuse the ones it would ignore."""
    from ..methods import registered

    m = registered(name)
    takes_layer = "layer" in inspect.signature(m.fn).parameters
    if head is not None and name != "last layer":
        raise CliError(
            f"--head picks one head of the 'last layer' map (CLS attention); use --method 'last layer', not {name!r}"
        )
    if layer is not None and not takes_layer and not (head is not None and name == "last layer"):
        with_layer = [n for n in _registry() if "layer" in inspect.signature(registered(n).fn).parameters]
        raise CliError(f"method {name!r} has no --layer option; drop --layer or use one of {with_layer}")
    if target is not None and not m.class_specific:
        specific = [n for n in _registry() if registered(n).class_specific]
        raise CliError(f"method {name!r} does not depend on the class; drop --target or use one of {specific}")
    return {"layer": layer} if layer is not None else {}


def _map_for(model, x, name: str, layer: int | None, head: int | None, target: int | None, options: dict):
    """The map ``[1, rows, cols]`` of one preprocessed image."""
    from ..core.capture import capture
    from ..methods import explain, registered

    if head is not None:  # one head of the CLS attention instead of the mean over heads
        lay = -1 if layer is None else layer
        return capture(model, x, layers=[lay], cls_only=True).cls_grid(lay, head)
    if not registered(name).takes_model:
        return explain(capture(model, x), None, name, **options)
    return explain(model, x, name, target=target, **options)


def _map_numbers(heat) -> dict:
    from ..stats import entropy, normalized_entropy, topk_share

    p = heat.detach().double().flatten()
    n = p.numel()
    k = min(TOP_K, n)
    numbers: dict[str, Any] = {"grid": list(heat.shape), "patches": n, "top_k": k}
    if (p < 0).any() or not bool(p.isfinite().all()) or float(p.sum()) <= 0 or n < 2:
        numbers.update(entropy=None, entropy_over_log_n=None, top_k_share=None)
        numbers["note"] = "the map is empty, negative or not finite: entropy and top-k share are undefined"
    else:
        numbers.update(
            entropy=float(entropy(p)),
            entropy_over_log_n=float(normalized_entropy(p)),
            top_k_share=float(topk_share(p, k)),
        )
    numbers["log_n"] = math.log(n) if n > 0 else None
    numbers["values"] = heat.detach().double().tolist()
    return numbers


def _prediction(model, logits) -> dict:
    import torch

    if _regression(model):
        return {"outputs": [float(v) for v in logits[0]], "top": None}
    probs = torch.softmax(logits[0].double(), -1)
    top = probs.topk(min(5, probs.numel()))
    rows = [
        {"index": int(i), "label": model.labels[int(i)] if int(i) < len(model.labels) else f"class {int(i)}",
         "probability": float(p)}
        for p, i in zip(top.values, top.indices)
    ]  # fmt: skip
    return {"prediction": rows[0], "top": rows}


@dataclass(frozen=True)
class _Request:
    """One ``explain`` run's settings, checked: the model's name, the method, its options and the class."""

    model: str
    method: str
    layer: int | None
    head: int | None
    target: int | None
    options: dict


def explain_images(
    images: Sequence[str | Path],
    model: str,
    method: str = "rollout",
    out: str | Path = "vitnotes-maps",
    *,
    layer: int | None = None,
    head: int | None = None,
    target: str | int | None = None,
    prompts: Sequence[str] | None = None,
    progress: bool = False,
) -> list[Path]:
    """Write ``NAME.png`` (overlay with colour bar) and ``NAME.json`` (its numbers) in ``out`` for
    every image; returns the paths written. Everything is checked before the first file is
    written (``CliError`` names the problem and the fix). An existing ``NAME.json`` is replaced
    only if it is a record explain wrote (a JSON object with ``RECORD_KEYS`` whose ``overlay`` is
    ``NAME.png``), an existing ``NAME.png`` only if such a record beside it names it; anything else
    there is refused before the model is loaded, and nothing changes on disk. An empty ``out`` is
    refused (``"."`` is this folder). ``prompts``: text prompts for a CLIP or SigLIP model (``vn.load``'s
    ``prompts``): the classes are the prompts, and ``target`` may name one. Introduced with notebook 06
    (rollout)."""
    if method not in _registry():
        raise CliError(f"unknown method {method!r}; choose one of {_registry()} (python -m vitnotes explain --help)")
    options = _check_options(method, layer, head, target)
    names = _stems(images)
    folder = _out_folder(out)
    _check_outputs(folder, names)  # before any work: nothing of the user's is overwritten
    pictures = _open_images(images)
    net = cli._load_model(model, prompts)
    _check_fit(net, model, method, layer, head)
    req = _Request(model, method, layer, head, _target_index(net, model, target), options)
    _make_folder(folder)
    written: list[Path] = []
    for path, picture, name in _steps(images, pictures, names, progress):
        written += _explain_one(net, req, path, picture, folder, name)
    return written


def _steps(images: Sequence[str | Path], pictures: list, names: list[str], progress: bool):
    """``(path, picture, name)`` per image, behind a progress bar when asked for and there are several."""
    steps = zip(images, pictures, names, strict=True)
    if progress and len(pictures) > 1:
        from tqdm.auto import tqdm

        return tqdm(list(steps), desc="explain", unit="image")
    return steps


def _check_fit(net, model: str, method: str, layer: int | None, head: int | None) -> None:
    """Refuse a method that does not explain this kind of model, and a layer or head it does not have."""
    from ..methods import registered

    geom = net.geometry
    if geom.kind not in registered(method).kinds:
        raise CliError(
            f"method {method!r} does not explain a {geom.kind.upper()} such as {model!r}; "
            f"use one of {[n for n in _registry() if geom.kind in registered(n).kinds]}"
        )
    try:
        if layer is not None:
            geom.layer(layer)
        if head is not None:
            geom.head(head)
    except (IndexError, TypeError) as err:
        raise CliError(_one_line(err)) from None


def _target_index(net, model: str, target: str | int | None) -> int | None:
    """``--target`` as a class index (None: the predicted class); refused for a regression model."""
    if target is None:
        return None
    if _regression(net):
        raise CliError(f"{model!r} is a regression model: it has no classes to pass as --target; drop --target")
    return _class_index(target, net.labels, "--target")


def _explain_one(net, req: _Request, path, picture, folder: Path, name: str) -> list[Path]:
    """Map one image and write ``NAME.png`` and ``NAME.json`` into ``folder``; returns both paths."""
    from ..show.figures import display_image, overlay

    try:
        x = net.preprocess(picture)
        logits = net.predict(x)
        heat = _map_for(net, x, req.method, req.layer, req.head, req.target, req.options)[0].float()
    except (ValueError, TypeError, IndexError) as err:
        raise CliError(f"{path}: {_one_line(err)}") from None
    pred = _prediction(net, logits)
    record = {
        "image": str(path),
        "model": req.model,
        "model_kind": net.geometry.kind,
        "method": req.method,
        "layer": req.layer,
        "head": req.head,
        "target": None if req.target is None else {"index": req.target, "label": net.labels[req.target]},
        **pred,
        "map": _map_numbers(heat),
        "overlay": f"{name}.png",
    }
    fig = overlay(display_image(x[0], net.preprocessing), heat, title=_overlay_title(req, pred))
    png, js = folder / f"{name}.png", folder / f"{name}.json"
    _atomic_write(png, lambda tmp: fig.savefig(tmp, format="png", dpi=100), _is_overlay, _overlay(name))
    _atomic_write(js, lambda tmp: tmp.write_text(json.dumps(record, indent=2) + "\n"), _is_record, _RECORD)
    return [png, js]


def _overlay_title(req: _Request, pred: dict) -> str:
    """The method (or layer and head) and, for a classifier, the predicted label with its probability."""
    title = req.method if req.head is None else f"layer {-1 if req.layer is None else req.layer}, head {req.head}"
    if "prediction" in pred:
        title += f" | {pred['prediction']['label']} {pred['prediction']['probability']:.0%}"
    return title
