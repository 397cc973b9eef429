"""One tiny random model of every family vitnotes reads or refuses, and the family table made by
running every registered method on each: which apply, which are refused and what the refusal says.

``python tests/families.py`` prints the table as Markdown and ``--write`` puts it into the README
and the book's page "Running on other models" (between the markers ``MARK`` and ``END``);
``test_family_table.py`` fails when either differs from what the code does today.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import torch
import transformers as tf

sys.path.insert(0, str(Path(__file__).parent))

from generated import Generated  # noqa: E402

import vitnotes as vn  # noqa: E402
from vitnotes.core.model import geometry  # noqa: E402

SIZE = 16
_VIT = dict(image_size=SIZE, patch_size=4, num_channels=3, hidden_size=24, num_hidden_layers=2,
            num_attention_heads=4, intermediate_size=48, num_labels=3)  # fmt: skip
_CNN = dict(num_channels=3, num_labels=3, hidden_sizes=[8, 16], depths=[1, 1])


def _hf(config_cls, model_cls, **kw) -> Callable[[], torch.nn.Module]:
    def make():
        torch.manual_seed(0)
        return model_cls(config_cls(**kw)).eval()

    return make


def _clip(kind: str) -> Callable[[], object]:
    def make():
        from test_clip import PROMPTS, _clip, _siglip

        return vn.prompts((_clip if kind == "clip" else _siglip)(), PROMPTS)

    return make


def _described() -> object:
    from test_described import TimmLike

    return vn.describe(TimmLike(), labels=[f"c{i}" for i in range(5)])


def _swin() -> torch.nn.Module:
    from test_swin import make_swin

    return make_swin()


# (family as the table names it, how to make one, the image side it takes)
FAMILIES: list[tuple[str, Callable, int]] = [
    ("ViT (`vit`)", _hf(tf.ViTConfig, tf.ViTForImageClassification, **_VIT), SIZE),
    ("DeiT (`deit`)", _hf(tf.DeiTConfig, tf.DeiTForImageClassification, **_VIT), SIZE),
    ("DeiT with teacher (`deit`)", _hf(tf.DeiTConfig, tf.DeiTForImageClassificationWithTeacher, **_VIT), SIZE),
    ("DINOv2 (`dinov2`)", _hf(tf.Dinov2Config, tf.Dinov2ForImageClassification, **_VIT), SIZE),
    (
        "DINOv2 with registers (`dinov2_with_registers`)",
        _hf(tf.Dinov2WithRegistersConfig, tf.Dinov2WithRegistersForImageClassification, num_register_tokens=2, **_VIT),
        SIZE,
    ),
    ("BEiT (`beit`)", _hf(tf.BeitConfig, tf.BeitForImageClassification, use_relative_position_bias=True, **_VIT), SIZE),
    ("CLIP (`clip`), through `vn.prompts`", _clip("clip"), SIZE),
    ("SigLIP (`siglip`), through `vn.prompts`", _clip("siglip"), SIZE),
    ("Swin (`swin`)", _swin, 32),
    ("a plain PyTorch ViT, through `vn.describe`", _described, SIZE),
    ("ResNet (`resnet`)", _hf(tf.ResNetConfig, tf.ResNetForImageClassification, **_CNN), SIZE),
    ("ConvNeXt (`convnext`)", _hf(tf.ConvNextConfig, tf.ConvNextForImageClassification, num_stages=2, **_CNN), SIZE),
    ("ViT-MAE (`vit_mae`)", _hf(tf.ViTMAEConfig, tf.ViTMAEModel, **_VIT), SIZE),
    (
        "data2vec-vision (`data2vec-vision`)",
        _hf(tf.Data2VecVisionConfig, tf.Data2VecVisionForImageClassification, **_VIT),
        SIZE,
    ),
]


def _short(err: BaseException, name: str) -> str:
    """A refusal as the table shows it: its one sentence on one line, the method's own name replaced
    by "the method" (so one reason given to several methods is shown once), pipes escaped."""
    text = " ".join(str(err).split())
    for said in (f"map method {name!r}", name):
        if text.startswith(said + " "):
            text = "the method" + text[len(said) :]
    return text.replace("|", "\\|")


def _as_model(net):
    """A ``vn.core.Model`` (so input-space methods know the normalisation); a refused model stays as it is."""
    if isinstance(net, vn.core.Model):
        return net
    try:
        geom = geometry(net)
    except TypeError:
        return net
    return vn.core.Model(net, geom, [], vn.core.Preprocessing.from_dict({}, geom))


def outcomes(make: Callable, size: int) -> tuple[list[str], dict[str, str]]:
    """(methods that apply, {refused method: what it says}) for one family: every registered method
    run on two random images (attention flow on a ``vn.capture`` result; a CNN's occlusion and random
    maps on 4-pixel cells, as it has no patch grid of its own)."""
    model = _as_model(make())
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    cnn = isinstance(model, vn.core.Model) and model.geometry.kind == "cnn"
    applies, refused = [], {}
    for name in vn.methods():
        options = {"patch": 4} if cnn and name in ("occlusion", "random") else {}
        try:
            if name == "attention flow":
                vn.explain(vn.capture(model, x), None, name)
            else:
                vn.explain(model, x, name, target=0, **options)
            applies.append(name)
        except (TypeError, ValueError) as err:
            refused[name] = _short(err, name)
    return applies, refused


def _applies(applies: list[str], refused: dict[str, str]) -> str:
    """The methods that apply, short: "all 11", "all but the 3 refused", or their names."""
    if not refused:
        return f"all {len(applies)}"
    if len(applies) > len(refused):
        return f"all but the {len(refused)} refused"
    return ", ".join(applies) or "none"


def table() -> str:
    """The family table as Markdown: family, methods that apply, methods refused with what they say."""
    rows = ["| family | methods that apply | refused, and what the refusal says |", "|---|---|---|"]
    for family, make, size in FAMILIES:
        applies, refused = outcomes(make, size)
        said: dict[str, list[str]] = {}
        for name, text in refused.items():
            said.setdefault(text, []).append(name)
        refusals = "<br>".join(f'{", ".join(names)}: "{text}"' for text, names in said.items()) or "none"
        rows.append(f"| {family} | {_applies(applies, refused)} | {refusals} |")
    return "\n".join(rows)


MARK = "<!-- family table: generated by `python tests/families.py --write`; do not edit by hand -->"
END = "<!-- end of family table -->"
PAGES = [Path(__file__).parent.parent / p for p in ("README.md", "book/other_models.md")]
GENERATED = Generated(MARK, END, tuple(PAGES), "family-table")
held, write = GENERATED.held, GENERATED.write


if __name__ == "__main__":
    made = table()
    write(made) if "--write" in sys.argv else print(made)
