"""The explorer: your own image and your own model, live in Jupyter or served by Voilà (``make explore``).

``explore()`` returns an ipywidgets app: upload an image (or pick one of the examples), name a model
(zoo name, hub id or folder), choose the map method (the registry's methods for that kind of
model), the layer and the head (or the mean over heads); it shows the map over the image with its
colour bar, the prediction (top classes with probabilities) and the map's numbers (entropy / log N,
top-10 share). Every computation goes through the library's public functions (``load``,
``explain``, ``capture``, the statistics); bad input is a readable message in the app, never a
traceback. Introduced with notebook 06 (rollout, the methods), whose maps it lets readers redo.
"""

from __future__ import annotations

import contextlib
import html
import inspect
import io
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from ..core.capture import capture
from ..core.images import open_image
from ..core.model import Model
from ..methods import explain, methods, registered
from ..stats import entropy, normalized_entropy, topk_share
from ..zoo import load, prompts, zoo_names
from .figures import display_image, overlay

__all__ = ["Explorer", "explore", "image_from_bytes", "map_numbers", "top_classes"]

TOP_K = 10  # the map's top-k share, k = 10 as in the seed paper (fewer on a smaller grid)
TOP_CLASSES = 5
HEAD_METHOD = "last layer"  # the one method whose map can be a single head's CLS attention
# how each method names "the layer", by model kind
LAYER_OPTIONS = {"vit": ("layer", "start_layer"), "cnn": ("stage",), "swin": ("stage",)}
EXAMPLES = 12
DEFAULT, MEAN = "default", "mean"  # menu values (a Dropdown shows None as no choice at all)
CONVERTIBLE = {"RGBA": "RGB", "P": "RGB", "CMYK": "RGB", "YCbCr": "RGB", "LA": "L", "1": "L"}


# ------------------------------------------------------------------ plain helpers (tested on their own)
def image_from_bytes(content: bytes, name: str = "upload") -> Any:
    """Decode an uploaded file's bytes into a PIL image (L or RGB), checked by ``open_image`` (corrupt,
    truncated, not an image, too large); errors name the file as the user called it."""
    shown = Path(str(name) or "upload").name or "upload"
    with tempfile.TemporaryDirectory(prefix="vitnotes-upload-") as tmp:
        path = Path(tmp) / shown
        path.write_bytes(bytes(content))
        try:
            img = open_image(path)
        except (ValueError, OSError) as err:
            raise ValueError(str(err).replace(str(path), shown)) from None
    return img.convert(CONVERTIBLE[img.mode]) if img.mode in CONVERTIBLE else img


def map_numbers(heat: torch.Tensor) -> dict[str, float | int | None]:
    """The map's numbers as the book defines them: entropy (nats) and entropy / log N of the map
    renormalised over its N patches, and the share of its ``k`` largest patches (k = 10 or N).
    Undefined (None) for an empty, negative or non-finite map."""
    p = heat.detach().double().flatten()
    n, k = p.numel(), min(TOP_K, p.numel())
    numbers: dict[str, float | int | None] = {"patches": n, "k": k, "entropy": None, "entropy / log N": None}
    numbers["top-k share"] = None
    if n < 2 or not bool(torch.isfinite(p).all()) or bool((p < 0).any()) or float(p.sum()) <= 0:
        return numbers
    numbers["entropy"] = float(entropy(p))
    numbers["entropy / log N"] = float(normalized_entropy(p))
    numbers["top-k share"] = float(topk_share(p, k))
    return numbers


def top_classes(model: Model, logits: torch.Tensor, k: int = TOP_CLASSES) -> list[tuple[str, float]]:
    """The ``k`` most probable classes of one image, ``(label, probability)``, most probable first;
    a regression model's outputs as ``(output i, value)``."""
    row = logits.detach().double().reshape(-1)
    if getattr(model.net.config, "problem_type", None) == "regression":
        return [(f"output {i}", float(v)) for i, v in enumerate(row)]
    probs = torch.softmax(row, -1)
    best = probs.topk(min(k, probs.numel()))
    names = model.labels
    return [
        (names[i] if i < len(names) else f"class {i}", float(p))
        for p, i in zip(best.values.tolist(), best.indices.tolist())
    ]


def offered(kind: str) -> list[str]:
    """The registered methods the app offers for a ``kind`` model: all of ``vn.methods(kind)`` that
    run with their defaults. A CNN has no patch grid, so the methods that then need ``patch=`` (the
    app has no menu for it: occlusion, the random map) are offered for ViTs and Swin only."""
    needs_patch = {n for n in methods(kind) if "patch" in inspect.signature(registered(n).fn).parameters}
    return [n for n in methods(kind) if kind in ("vit", "swin") or n not in needs_patch]


def layer_option(name: str, kind: str) -> str | None:
    """Which keyword of method ``name`` picks a layer for a ``kind`` model (None: it takes none)."""
    params = inspect.signature(registered(name).fn).parameters
    return next((p for p in LAYER_OPTIONS.get(kind, ()) if p in params), None)


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()).strip("'\"")
    return text or type(err).__name__


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _default_model() -> str:
    from ..family import pick

    names = zoo_names()
    zoo = "fmnist-vit-p4" if "fmnist-vit-p4" in names else (names[0] if names else "")
    return pick(zoo, "google/vit-base-patch16-224")


def _examples(images: Any) -> list[tuple[str, Any]]:
    """(label, image) pairs for the example menu: ``images`` when given, else one image per class
    of the active family's examples (``vn.data.examples()``)."""
    if images is not None:
        return [(f"image {i}", img) for i, img in enumerate(images)]
    from ..data import FASHION_MNIST_CLASSES, examples, per_class
    from ..family import family

    imgs, labels, _ = examples()
    names = FASHION_MNIST_CLASSES if family() == "zoo" else None
    picked = per_class(labels, 1)[:EXAMPLES]
    return [(f"{names[int(labels[i])] if names else f'label {int(labels[i])}'} (#{i})", imgs[i]) for i in picked]


# ------------------------------------------------------------------ the app
class Explorer:
    """The explorer's widgets and state; ``widget`` is what a notebook shows (``explore()`` returns it,
    with this object as its ``explorer`` attribute). Every change of a control redraws."""

    def __init__(self, model: str | Model | None = None, images: Any = None, prompts: Any = None):
        import ipywidgets as W

        self.model: Model | None = None
        self.image: Any = None
        self.pixels: torch.Tensor | None = None
        self._cache: dict[str, Model] = {}
        self._quiet = False
        name = (model.name or "my model") if isinstance(model, Model) else str(model or _default_model())
        if isinstance(model, Model):
            self._cache[name] = model
        self._build(W, name)
        self.prompt_box.value = "\n".join([prompts] if isinstance(prompts, str) else list(prompts or []))
        self._connect()
        self._fill_examples(images)
        self.load_model(self.model_box.value)
        if self.example.options and self.image is None:
            self.example.value = self.example.options[0][1]

    def _build(self, W, name: str) -> None:
        narrow, wide = W.Layout(width="210px"), W.Layout(width="360px")
        self.model_box = W.Combobox(value=str(name), options=zoo_names(), description="model", ensure_option=False,
                                    placeholder="zoo name, hub id (owner/name) or folder", layout=wide,
                                    continuous_update=False)  # fmt: skip
        self.load_button = W.Button(description="load", icon="refresh", layout=W.Layout(width="90px"))
        self.upload = W.FileUpload(accept="image/*", multiple=False, description="upload image")
        self.example = W.Dropdown(options=[], value=None, description="or example", layout=wide)
        self.method = W.Dropdown(options=[], description="method", layout=narrow)
        self.layer = W.Dropdown(options=[DEFAULT], value=DEFAULT, description="layer", layout=narrow)
        self.head = W.Dropdown(options=[MEAN], value=MEAN, description="head", layout=narrow)
        self.prompt_box = W.Textarea(description="prompts", placeholder="CLIP / SigLIP: one text prompt per line",
                                     layout=W.Layout(width="360px", height="64px"),
                                     continuous_update=False)  # fmt: skip
        self.status, self.message = W.HTML(), W.HTML()
        self.picture = W.Image(format="png", layout=W.Layout(max_width="640px"))
        self.prediction, self.numbers = W.HTML(), W.HTML()
        for w, cls in [(self.model_box, "model"), (self.upload, "upload"), (self.example, "example"),
                       (self.method, "method"), (self.layer, "layer"), (self.head, "head"), (self.status, "status"),
                       (self.prompt_box, "prompts"),
                       (self.message, "message"), (self.picture, "picture"), (self.prediction, "prediction"),
                       (self.numbers, "numbers")]:  # fmt: skip
            w.add_class(f"vn-{cls}")
        results = W.VBox([self.prediction, self.numbers], layout=W.Layout(padding="0 0 0 16px"))
        self.widget = W.VBox([
            W.HBox([self.model_box, self.load_button]), W.HBox([self.upload, self.example]),
            W.HBox([self.method, self.layer, self.head]), self.prompt_box, self.status, self.message,
            W.HBox([self.picture, results]),
        ])  # fmt: skip
        self.widget.explorer = self

    def _connect(self) -> None:
        self.model_box.observe(lambda c: self.load_model(c["new"]), "value")
        self.load_button.on_click(lambda _b: self.load_model(self.model_box.value))
        self.upload.observe(lambda c: self._uploaded(c["new"]), "value")
        self.example.observe(lambda c: self._picked(c["new"]), "value")
        self.method.observe(lambda _c: self._method_changed(), "value")
        self.layer.observe(lambda _c: self.redraw(), "value")
        self.head.observe(lambda _c: self.redraw(), "value")
        self.prompt_box.observe(lambda _c: self.load_model(self.model_box.value), "value")

    def _fill_examples(self, images: Any) -> None:
        try:
            pairs = _examples(images)
        except (ValueError, OSError, TypeError) as err:
            self._examples = []
            self._say(f"no example images ({_one_line(err)}); upload an image instead")
            return
        self._examples = [img for _, img in pairs]
        with self._still():
            self.example.options = [(label, i) for i, (label, _) in enumerate(pairs)]
            self.example.value = None

    # -------------------------------------------------------------- feedback
    def _say(self, text: str) -> None:
        """A readable message in the app (an error or a hint); empty text clears it."""
        self.message.value = f'<span style="color:#b00020">{html.escape(text)}</span>' if text else ""

    @contextlib.contextmanager
    def _busy(self, what: str):
        """Progress: the status line says what runs while it runs, then how long it took."""
        self.status.value = f'<span class="vn-busy">&#8987; {html.escape(what)} &hellip;</span>'
        start = time.perf_counter()
        try:
            yield
        finally:
            self.status.value = f"<span>{html.escape(what)}: done in {time.perf_counter() - start:.2f} s</span>"

    @contextlib.contextmanager
    def _still(self):
        """Change controls without redrawing for each change."""
        quiet, self._quiet = self._quiet, True
        try:
            yield
        finally:
            self._quiet = quiet

    # -------------------------------------------------------------- model and image
    def load_model(self, name: str) -> None:
        """Load ``name`` (zoo name, hub id or folder), fill the method / layer / head menus for it, redraw."""
        name = str(name or "").strip()
        if not name:
            return self._say("type a model: a zoo name, a hub id (owner/name) or a folder")
        try:
            with self._busy(f"loading model {name}"):
                model = self._cache.get(name) or load(name)
                self._cache[name] = model
                model = self._prompted(model)
        except Exception as err:  # any failure to load is a message in the app, never a traceback
            return self._say(f"cannot load model {name!r}: {_one_line(err)}")
        self.model = model
        self._say("")
        self._fill_controls()
        self._prepare()
        self.redraw()

    def _prompted(self, model: Model) -> Model:
        """``model`` read over the prompt box's prompts (CLIP, SigLIP); other models need none."""
        texts = [t.strip() for t in self.prompt_box.value.splitlines() if t.strip()]
        if not texts:
            return model
        if not hasattr(model.net, "similarity"):
            raise ValueError("text prompts apply to CLIP and SigLIP models; clear the prompt box for this one")
        return prompts(model, texts)

    def _fill_controls(self) -> None:
        g = self.model.geometry
        names = offered(g.kind)
        unit = "layer" if g.kind == "vit" else "stage"
        with self._still():
            keep = self.method.value if self.method.value in names else names[0]
            self.method.options = names
            self.method.value = keep
            self.layer.options = [(DEFAULT, DEFAULT)] + [(f"{unit} {i}", i) for i in range(g.layers)]
            self.layer.value = DEFAULT
            self.head.options = [(MEAN, MEAN)] + [(f"head {h}", h) for h in range(g.heads if g.kind == "vit" else 0)]
            self.head.value = MEAN
        self._enable()

    def _enable(self) -> None:
        """Layer and head menus only where the chosen method uses them."""
        if self.model is None or self.method.value is None:
            return
        kind = self.model.geometry.kind
        self.layer.disabled = layer_option(self.method.value, kind) is None
        self.head.disabled = not (kind == "vit" and self.method.value == HEAD_METHOD)

    def _uploaded(self, files: Any) -> None:
        if not files:
            return
        f = files[0]
        try:
            image = image_from_bytes(f["content"], f.get("name", "upload"))
        except (ValueError, OSError) as err:
            return self._say(f"cannot read the uploaded file: {_one_line(err)}")
        with self._still():
            self.example.value = None
        self.image = image
        self._prepare()
        self.redraw()

    def _picked(self, index: int | None) -> None:
        if index is None or self._quiet:
            return
        self.image = self._examples[index]
        with self._still():
            self.upload.value = ()  # a later upload of the same file counts as a change again
        self._prepare()
        self.redraw()

    def _prepare(self) -> None:
        """The current image as the model's input (resized, normalised); a refusal is a message."""
        self.pixels = None
        if self.model is None or self.image is None:
            return
        try:
            self.pixels = self.model.preprocess(self.image)
        except (ValueError, TypeError, OSError) as err:
            self._say(f"this image does not fit the model: {_one_line(err)}")

    # -------------------------------------------------------------- drawing
    def _method_changed(self) -> None:
        self._enable()
        self.redraw()

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits ``[1, classes]``, map ``[rows, cols]``) of the current image, method, layer and head."""
        name, layer, head = self.method.value, self.layer.value, self.head.value
        layer, head = (None if layer == DEFAULT else layer), (None if head == MEAN else head)
        x, model = self.pixels, self.model
        logits = model.predict(x)
        if name == HEAD_METHOD and head is not None:  # one head's CLS attention, not the mean over heads
            lay = -1 if layer is None else layer
            return logits, capture(model, x, layers=[lay], cls_only=True).cls_grid(lay, head)[0]
        key = layer_option(name, model.geometry.kind)
        options = {key: layer} if key is not None and layer is not None else {}
        if not registered(name).takes_model:  # attention-only methods read a capture
            return logits, explain(capture(model, x), None, name, **options)[0]
        return logits, explain(model, x, name, **options)[0]

    def redraw(self) -> None:
        """Recompute and show the map, the prediction and the numbers (a failure is a message)."""
        if self._quiet or self.model is None or self.method.value is None:
            return
        if self.pixels is None:
            if self.image is None:
                self.status.value = "upload an image or choose an example"
            return
        what = self._title()
        try:
            with self._busy(f"computing {what}"):
                logits, heat = self.compute()
                picture = _png(overlay(display_image(self.pixels[0], self.model.preprocessing), heat, title=what))
        except Exception as err:  # a method that refuses this model / layer: say why, keep the last picture
            return self._say(f"{what}: {_one_line(err)}")
        self._say("")
        self.picture.value = picture
        self.prediction.value = _prediction_html(top_classes(self.model, logits), self._regression())
        self.numbers.value = _numbers_html(map_numbers(heat))

    def _title(self) -> str:
        parts = [self.method.value]
        if not self.layer.disabled and self.layer.value != DEFAULT:
            parts.append(self.layer.label)
        if not self.head.disabled and self.head.value != MEAN:
            parts.append(self.head.label)
        return ", ".join(parts)

    def _regression(self) -> bool:
        return getattr(self.model.net.config, "problem_type", None) == "regression"


def _prediction_html(rows: list[tuple[str, float]], regression: bool) -> str:
    if regression:
        body = "".join(f"<tr><td>{html.escape(n)}</td><td>{v:.3g}</td></tr>" for n, v in rows)
        return f"<b>outputs</b><table>{body}</table>"
    body = "".join(f"<tr><td>{html.escape(n)}</td><td style='text-align:right'>{p:.1%}</td></tr>" for n, p in rows)
    label, p = rows[0]
    return f"<b>prediction: {html.escape(label)} ({p:.1%})</b><table>{body}</table>"


def _numbers_html(numbers: dict[str, Any]) -> str:
    if numbers["entropy"] is None:
        return f"<b>map</b>: {numbers['patches']} patches; empty or negative, so entropy and top-k share are undefined"
    return (
        f"<b>map</b> over {numbers['patches']} patches<br>entropy / log N = {numbers['entropy / log N']:.3f} "
        f"({numbers['entropy']:.3f} nats)<br>top-{numbers['k']} share = {numbers['top-k share']:.3f}"
    )


def explore(model: str | Model | None = None, images: Any = None, prompts: Any = None):
    """An app to explain your own image with your own model: upload an image (or pick an example),
    name a model (zoo name, hub id or folder; default: the family's first ViT), pick the method,
    layer and head; see the map with its colour bar, the top classes and the map's numbers.
    ``images``: your own example images (PIL, arrays or paths) instead of the family's. ``prompts``:
    text prompts for a CLIP or SigLIP model, one per line in the app's prompt box (the classes are
    the prompts; the map explains the predicted one, against the others when there are several).
    Returns an ipywidgets ``VBox`` (its ``explorer`` attribute holds the controls). Runs live in
    Jupyter and as a Voilà app (``make explore``). Introduced with notebook 06 (rollout, the methods)."""
    return Explorer(model, images, prompts).widget
