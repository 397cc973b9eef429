"""The offline zoo and any hub model: load by zoo name, hub id or local folder; save; cards.

Introduced in notebook 00 (attention math); every later notebook starts with ``vn.load``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from .core.arch import config_family, is_image_text
from .core.files import below_a_file
from .core.images import Preprocessing
from .core.model import Model, geometry, unwrap
from .core.prompts import prompt_classifier

__all__ = ["ZOO_DIR", "card", "check_save_target", "load", "prompts", "provenance", "save", "zoo_names"]

# the offline zoo; VITNOTES_ZOO points elsewhere (e.g. a zoo being retrained, before it replaces this one)
ZOO_DIR = Path(os.environ.get("VITNOTES_ZOO") or Path(__file__).parent / "zoo").expanduser()

_PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.pth", "model.ckpt")

_SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")


def zoo_names() -> list[str]:
    """Names of the models in the offline zoo (folders under ``vitnotes/zoo``).
    Introduced in notebook 03."""
    if not ZOO_DIR.is_dir():
        return []
    return sorted(p.name for p in ZOO_DIR.iterdir() if (p / "config.json").is_file())


def _resolve(name: str | Path) -> tuple[str, str]:
    """-> (kind, where): kind is 'zoo', 'folder' or 'hub'."""
    name = str(name)
    if "/" not in name and "\\" not in name and name not in (".", "..") and (ZOO_DIR / name / "config.json").is_file():
        return "zoo", str(ZOO_DIR / name)
    path = Path(name).expanduser()
    if path.is_dir():
        return "folder", str(path)
    if path.exists():
        raise ValueError(f"{name!r} is a file; vn.load wants a folder with config.json and model.safetensors")
    parts = name.split("/")
    if len(parts) == 2 and all(parts) and not name.startswith((".", "~")):
        return "hub", name
    zoo = ", ".join(zoo_names()) or "none installed yet"
    raise ValueError(
        f"unknown model {name!r}: not a zoo model (available: {zoo}), not an existing folder, "
        "and not a hub id of the form 'owner/name' (e.g. 'google/vit-base-patch16-224')"
    )


def _check_folder(folder: Path) -> None:
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} has no config.json; save models with model.save_pretrained(folder)")
    if any((folder / f).is_file() for f in _SAFE_WEIGHTS):
        return
    pickles = [f for f in _PICKLE_WEIGHTS if (folder / f).is_file()]
    if pickles:
        raise ValueError(
            f"{folder} holds only pickle weights ({', '.join(pickles)}); vitnotes loads safetensors only, "
            "because unpickling can run arbitrary code. Convert once, in a process you trust: "
            "AutoModelForImageClassification.from_pretrained(folder).save_pretrained(folder, safe_serialization=True)"
        )
    raise FileNotFoundError(f"{folder} has no model.safetensors; save the model with model.save_pretrained(folder)")


def _preprocessor_dict(kind: str, where: str) -> dict:
    if kind in ("zoo", "folder"):
        f = Path(where) / "preprocessor_config.json"
        return json.loads(f.read_text()) if f.is_file() else {}
    from transformers.image_processing_utils import ImageProcessingMixin

    try:
        d, _ = ImageProcessingMixin.get_image_processor_dict(where)
        return d
    except OSError:
        return {}


def load(
    name: str | Path,
    *,
    attn_implementation: str | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    new_head: bool = False,
    prompts: Any = None,
    tokenizer: Any = None,
    score: str | None = None,
) -> Model:
    """Load a model by zoo name (``"fmnist-vit-p4"``), hub id (``"google/vit-base-patch16-224"``)
    or local folder, in evaluation mode. Weights load from safetensors only.

    ``attn_implementation`` (``"sdpa"``, ``"eager"``) is passed to transformers; vitnotes' attention
    capture works under either. ``dtype`` defaults to float32 (the zoo stores float16 weights; the
    analyses want float32). A checkpoint that lacks a weight the model needs, holds one it does not
    use, or holds one of another shape is refused with the tensors named (transformers would fill the
    gap with random numbers and say so only in a log line); ``new_head=True`` accepts a missing or
    resized classifier head, and a backbone's unused pooler, on purpose (e.g. a backbone checkpoint to
    fine-tune), with a warning naming them.

    CLIP and SigLIP (a full model or its vision tower) load as classifiers over text ``prompts``
    (a list of texts, tokenised with the tokenizer saved beside the model or ``tokenizer``, or a
    mapping ``{text: token ids}``): the labels are the prompts and the logits their similarities
    (``score``: ``"softmax"``, the log-softmax over several prompts, or ``"similarity"``); see
    ``vn.prompts``. Without prompts the outputs are the image embedding's dimensions.
    Introduced in notebook 00.
    """
    from transformers import AutoConfig, AutoModelForImageClassification

    kind, where = _resolve(name)
    if kind != "hub":
        _check_folder(Path(where))
    kwargs: dict[str, Any] = {"use_safetensors": True, "trust_remote_code": False}
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    kwargs["dtype"] = dtype or torch.float32  # zoo weights are stored in float16; analysis runs in float32
    try:
        config = AutoConfig.from_pretrained(where, trust_remote_code=False)
    except (OSError, ValueError) as err:
        raise _load_error(name, kind, err) from None
    auto = AutoModelForImageClassification
    image_text = config_family(config) in _IMAGE_TEXT_TYPES
    if image_text:
        from transformers import AutoModel as auto  # CLIP / SigLIP: the model itself, read over prompts
    elif prompts is not None:
        raise ValueError(
            f"prompts= applies to CLIP and SigLIP models; {str(name)!r} is a {config_family(config)!r} classifier: "
            "pass target= (a class index or name) to the map methods instead"
        )
    try:
        net, info = auto.from_pretrained(  # mismatches: _check_loading names them
            where, output_loading_info=True, ignore_mismatched_sizes=True, **kwargs
        )
    except (OSError, ValueError, RuntimeError) as err:
        raise _load_error(name, kind, err) from None
    except Exception as err:  # safetensors' own errors (corrupt header, truncated file)
        if "safetensor" in type(err).__module__ + type(err).__name__ + str(err).lower():
            raise _load_error(name, kind, err) from None
        raise
    _check_loading(name, info, new_head)
    net.eval().to(device)
    if image_text:
        if tokenizer is None and config_family(config) in ("clip", "siglip"):
            tokenizer = _tokenizer(where)
        net = prompt_classifier(net, prompts, tokenizer=tokenizer, score=score)
        net.__dict__["tokenizer"] = tokenizer
        config = net.config
    geom = geometry(net)
    n = int(getattr(config, "num_labels", 0) or 0)
    id2label = getattr(config, "id2label", None) or {}
    labels = [str(id2label.get(i, id2label.get(str(i), f"class {i}"))) for i in range(n)]
    pre = Preprocessing.from_dict(_preprocessor_dict(kind, where), geom)
    return Model(net=net, geometry=geom, labels=labels, preprocessing=pre, name=str(name), source=kind)


def prompts(model: Any, texts: Any, *, tokenizer: Any = None, score: str | None = None) -> Model:
    """A CLIP or SigLIP model read as a classifier over the text prompts ``texts``: a ``vn.core.Model`` whose
    labels are the prompts and whose logits are the image's similarity to each (``score="softmax"``,
    the default for several prompts: their log-softmax, so a map says what makes the image this prompt
    rather than the others; ``"similarity"``: the scaled cosine similarity itself). ``texts``: a list
    of texts (tokenised with the tokenizer ``vn.load`` found beside the model, or ``tokenizer``) or a
    mapping ``{text: token ids}``. ``model``: a ``vn.load``-ed CLIP / SigLIP model (any prompts) or a
    transformers ``CLIPModel`` / ``SiglipModel``. Every map method then takes ``target=`` a prompt (its
    text or index). Introduced in notebook 00; the book's page "Running on other models" shows it at work."""
    net = model.net if isinstance(model, Model) else model
    source = net.__dict__.get("source", net)
    if not is_image_text(source):
        raise TypeError(
            f"vn.prompts takes a CLIP or SigLIP model (CLIPModel, SiglipModel, or one vn.load gave), got "
            f"{type(source).__name__}; for an image classifier pass target= (a class) to the map methods"
        )
    tokenizer = tokenizer or net.__dict__.get("tokenizer")
    new = prompt_classifier(source, texts, tokenizer=tokenizer, score=score)
    new.__dict__["tokenizer"] = tokenizer
    geom = geometry(new)
    pre = model.preprocessing if isinstance(model, Model) else Preprocessing.from_dict({}, geom)
    name, kind = (model.name, model.source) if isinstance(model, Model) else (type(source).__name__, "")
    return Model(net=new, geometry=geom, labels=list(new.prompts), preprocessing=pre, name=name, source=kind)


_IMAGE_TEXT_TYPES = ("clip", "siglip", "clip_vision_model", "siglip_vision_model")


def _tokenizer(where: str) -> Any:
    """The tokenizer saved beside a CLIP / SigLIP model, or None (the prompts then need token ids)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(where)
    except (OSError, ValueError, TypeError):
        return None


_HEAD = ("classifier.",)  # what new_head=True may leave missing or resize
_UNUSED = ("pooler.",)  # what a backbone checkpoint may hold that a classifier does not read


def _check_loading(name: str | Path, info: dict, new_head: bool) -> None:
    """Refuse a checkpoint whose tensors do not match the model's (see ``load``)."""
    missing, unexpected = sorted(info.get("missing_keys") or []), sorted(info.get("unexpected_keys") or [])
    mismatched = sorted(
        str(m[0]) if isinstance(m, (tuple, list)) else str(m) for m in info.get("mismatched_keys") or []
    )
    allowed = []
    if new_head:
        allowed = [k for k in [*missing, *mismatched] if k.startswith(_HEAD)] + [
            k for k in unexpected if k.startswith(_UNUSED)
        ]
        missing = [k for k in missing if k not in allowed]
        mismatched = [k for k in mismatched if k not in allowed]
        unexpected = [k for k in unexpected if k not in allowed]
    kinds = (("missing", missing), ("unexpected", unexpected), ("of another shape", mismatched))
    problems = [f"{what} {_names(keys)}" for what, keys in kinds if keys]
    if problems:
        raise ValueError(
            f"the checkpoint of {str(name)!r} does not match its model: tensors {'; '.join(problems)}. Loading it "
            "would leave them random. Re-save the model with vn.train.save(model, folder); to start a new classifier "
            "head on purpose, pass new_head=True"
        )
    if allowed:
        import warnings

        warnings.warn(
            f"{str(name)!r}: a new classifier head, as asked (new_head=True): {_names(allowed)}", stacklevel=3
        )


def _names(keys: list[str], shown: int = 4) -> str:
    return ", ".join(keys[:shown]) + (f" and {len(keys) - shown} more" if len(keys) > shown else "")


def _load_error(name: str | Path, kind: str, err: Exception) -> Exception:
    msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if "loaded with `safetensors`" in msg or "does not appear to have a file named model.safetensors" in msg:
        return ValueError(
            f"{name!r} ships no model.safetensors, only pickle weights; vitnotes loads safetensors only, because "
            "unpickling can run arbitrary code. Pick a repository or folder with safetensors weights, or convert "
            "once, in a process you trust: AutoModelForImageClassification.from_pretrained(...).save_pretrained(folder)"
        )
    if kind == "hub":
        return OSError(
            f"could not load hub model {name!r} ({msg}). Offline (HF_HUB_OFFLINE=1 or no network) only models "
            "already in the Hugging Face cache load: go online once, or pass a local folder or a zoo name "
            f"({', '.join(zoo_names()) or 'none installed yet'}); online, check the id on huggingface.co"
        )
    return ValueError(
        f"could not load the weights in {name!r} ({msg}); the checkpoint is missing or corrupt: "
        "re-save it with model.save_pretrained(folder), or re-create a zoo model with "
        "python -m vitnotes.train <name>"
    )


# what a model folder that vitnotes (or save_pretrained, or the training CLI) wrote may hold
_MODEL_FILES = ("config.json", "preprocessor_config.json", "generation_config.json", "card.json", "README.md")


def check_save_target(folder: str | Path) -> Path:
    """``folder`` as a ``Path`` if a model may be saved there: a new path, an empty folder, or a model
    folder (``config.json`` with safetensors weights, and nothing but a model's files), which saving
    replaces. Anything else (a user's file, a folder of other things, a path below a file) is refused
    in one line before anything is written. Introduced in notebook 00."""
    folder = Path(folder).expanduser()
    if str(folder).strip() in ("", "."):
        raise ValueError(f"{str(folder)!r} names no folder; give the model a folder of its own, e.g. 'my-model'")
    below = below_a_file(folder)
    if below is not None:
        raise FileExistsError(f"cannot save the model in {folder}: {below} is a file, not a folder")
    if not folder.exists() or (folder.is_dir() and not any(folder.iterdir())):
        return folder
    if not folder.is_dir():
        raise FileExistsError(f"{folder} is a file that is not a model; save the model to another path")
    others = sorted(p.name for p in folder.iterdir() if p.name not in _MODEL_FILES and not p.name.startswith("model"))
    if not (folder / "config.json").is_file() or not any(folder.glob("model*.safetensors*")) or others:
        shown = ", ".join(others[:3]) or "no config.json with safetensors weights"
        raise FileExistsError(f"{folder} holds something other than a saved model ({shown}); save to another path")
    return folder


def save(model: Model | torch.nn.Module, folder: str | Path, preprocessing: Preprocessing | None = None) -> Path:
    """Save a model as safetensors (+ config + preprocessing) atomically: a crash leaves the old folder intact.
    A path that holds something other than a saved model is refused (``check_save_target``); a model
    folder is replaced. Introduced in notebook 00 (attention math)."""
    import shutil
    import tempfile

    net, geom = unwrap(model)
    folder = check_save_target(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    pre = preprocessing or (model.preprocessing if isinstance(model, Model) else None)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; a saved model is an ordinary folder
    try:
        net.save_pretrained(tmp, safe_serialization=True)
        if pre is not None:
            (tmp / "preprocessor_config.json").write_text(json.dumps(pre.to_dict(), indent=2))
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            folder.rename(old)
            tmp.rename(folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def card_epochs(info: dict) -> float:
    """A card's training epochs in all (every stage of a staged recipe, else the recipe's ``epochs``).
    Introduced in notebook 05 (patch size)."""
    r = info["recipe"]
    return float(sum(s["epochs"] for s in r["stages"])) if r.get("stages") else float(r["epochs"])


def provenance(model: Any) -> str:
    """How a zoo model was trained, in one line read from its card: where it started (from scratch, or
    from which model), each stage's epochs and whether it distilled from a teacher, and its test
    metric. A chapter prints it under its model cell, so the prose never restates a recipe by hand.
    ``model``: a zoo name or a ``vn.core.Model``; a hub model has no card and says so.
    Introduced in notebook 00 (attention math)."""
    name = model.name if isinstance(model, Model) else str(model)
    if name not in zoo_names():
        return f"{name}: not a zoo model; its training is described where it was published (e.g. its hub page)"
    info = card(name)
    r = info["recipe"]
    start = f"started from {r['init']}" if r.get("init") else "trained from scratch"
    stages = r.get("stages") or [r]
    said = [
        f"{s['epochs']:g} epoch{'s' * (s['epochs'] != 1)} "
        + (f"distilled from {s['teacher']} at weight {s['distill']:g}" if s.get("teacher") else "with no teacher")
        for s in stages
    ]
    steps = "; ".join(f"stage {i}: {t}" for i, t in enumerate(said, 1)) if len(said) > 1 else said[0]
    m = info.get("metrics", {})
    if "test_accuracy" in m:
        score = f"test accuracy {m['test_accuracy']:.1%} ({m.get('test_images', '?')} images)"
    elif "r2" in m:
        score = "test R^2 " + ", ".join(f"{k} {v:.3f}" for k, v in m["r2"].items())
    else:
        score = "no test metric on its card"
    return f"{name}: {start}, {card_epochs(info):g} epochs in all: {steps}; {score}"


def card(name: str | Path) -> dict:
    """The card of a zoo model (its ``card.json``): recipe, test metrics, training time, machine.

    ``card("fmnist-vit-p2")["metrics"]["test_accuracy"]`` is the accuracy on all 10,000 test
    images. A folder written by ``python -m vitnotes.train`` (e.g. a hub recipe's) has a card too:
    pass its path. Introduced in notebook 01.
    """
    if isinstance(name, (str, Path)) and Path(name).expanduser().is_dir() and str(name) not in zoo_names():
        f = Path(name).expanduser() / "card.json"
        if not f.is_file():
            raise FileNotFoundError(f"{f} is missing: only folders written by python -m vitnotes.train have a card")
        return json.loads(f.read_text())
    if not isinstance(name, str) or name not in zoo_names():
        raise ValueError(
            f"{name!r} is not a zoo model (available: {', '.join(zoo_names()) or 'none installed yet'}) nor a "
            "folder written by python -m vitnotes.train; hub models have no vitnotes card"
        )
    f = ZOO_DIR / name / "card.json"
    if not f.is_file():
        raise FileNotFoundError(f"{f} is missing; re-create the card with python -m vitnotes.train {name}")
    return json.loads(f.read_text())
