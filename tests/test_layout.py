"""The layout's rules that import-linter cannot state, and the method registry.

- only ``core/arch.py`` names transformers' internal modules (q/k/v/o projections, norms, the
  base model's parts, the eager switch): a new model family is one entry there;
- nothing imports a notebook;
- every registered map method answers ``vn.explain`` with ``[batch, rows, cols]``, equal to
  calling the method's own function; ``vn.claim`` returns the sentence that holds.
"""

import ast
from pathlib import Path

import pytest
import torch

import vitnotes as vn
from vitnotes.core.model import geometry
from vitnotes.methods.gradcam import gradcam
from vitnotes.methods.gradient_rollout import gradient_rollout

LIB = Path(vn.__file__).parent
ADAPTER = LIB / "core" / "arch.py"
# the adapter's entry for plain PyTorch ViTs (vn.describe): it builds the attention modules whose parts
# it names (q_proj, k_proj, ... of its own replacement), so it may name them too
DESCRIBED = LIB / "core" / "described.py"
# attribute names of transformers' model classes (ViT, DeiT, DINOv2, ResNet, ConvNeXt) and their configs
INTERNALS = {
    "q_proj", "k_proj", "v_proj", "o_proj", "query", "key", "value", "layernorm_before", "layernorm_after",
    "layernorm", "norm1", "norm2", "vit", "deit", "dinov2", "resnet", "convnext", "encoder", "attention", "classifier",
    "base_model", "stages", "pooler", "mlp", "scaling", "set_attn_implementation", "_attn_implementation",
    "model_type", "cls_token", "distillation_token", "register_tokens", "num_register_tokens",
}  # fmt: skip
# everyday words other objects have too (an ipywidget's ``.value``, a record's ``.key``): they name
# transformers' q/k/v projections only as a step of a chain through the model (``attention.value``)
SHARED = {"query", "key", "value"}


def _library_files():
    return sorted(p for p in LIB.rglob("*.py") if "train" not in p.relative_to(LIB).parts)


def _through_the_model(node: ast.AST) -> bool:
    """Whether ``node`` (an attribute's object) is itself a step of a chain through transformers' internals."""
    return isinstance(node, ast.Attribute) and node.attr in INTERNALS - SHARED


def _internals_named(tree: ast.AST):
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in INTERNALS
            and (node.attr not in SHARED or _through_the_model(node.value))
        ):
            yield node.lineno, node.attr
        if (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", None) in ("getattr", "hasattr", "setattr")
            and len(node.args) > 1
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value in INTERNALS
            and (node.args[1].value not in SHARED or _through_the_model(node.args[0]))
        ):
            yield node.lineno, node.args[1].value


def test_shared_words_count_only_through_the_model():
    code = "w.value = 1\nrow.key\nblock.attention.value\ngetattr(m.attention, 'key')\ngetattr(w, 'value')"
    found = sorted(_internals_named(ast.parse(code)))
    assert found == [(3, "attention"), (3, "value"), (4, "attention"), (4, "key")]


def test_only_the_adapter_names_transformers_internals():
    found = [
        f"{p.relative_to(LIB)}:{line} .{name}"
        for p in _library_files()
        if p not in (ADAPTER, DESCRIBED)
        for line, name in _internals_named(ast.parse(p.read_text()))
    ]
    assert not found, "name these through vitnotes/core/arch.py: " + ", ".join(found)
    assert dict(_internals_named(ast.parse(ADAPTER.read_text()))), "the adapter itself names them"


def test_nothing_imports_a_notebook():
    notebooks = {p.stem for p in (LIB.parent / "notebooks").glob("*.py")} | {"notebooks"}
    for p in _library_files():
        for node in ast.walk(ast.parse(p.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else ([node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            )
            for name in names:
                assert name.split(".")[0] not in notebooks, f"{p.relative_to(LIB)} imports notebook {name}"


def test_registry_lists_every_method_in_order():
    assert vn.methods() == [
        "rollout", "last layer", "gradient rollout", "grad-cam", "attention flow",
        "legrad", "cp-lrp", "integrated gradients", "occlusion", "random", "value-weighted",
    ]  # fmt: skip
    assert vn.methods("cnn") == ["grad-cam", "integrated gradients", "occlusion", "random"]
    with pytest.raises(ValueError, match="unknown map method 'saliency'.*vn.methods"):
        vn.explain(None, None, "saliency")


@pytest.mark.parametrize("family", ["vit", "deit"])
def test_explain_equals_each_methods_own_function(family, request, pixels, resnet):
    net, x = request.getfixturevalue(family), pixels
    att = vn.capture(net, x)
    expected = {
        "rollout": vn.rollout_grid(att),
        "last layer": att.cls_grid(-1).mean(1),
        "gradient rollout": gradient_rollout(net, x, target=1),
        "grad-cam": gradcam(net, x, target=1),
    }
    grid = geometry(net).grid
    for name, want in expected.items():
        got = vn.explain(net, x, name, target=1)
        assert got.shape == (3, *grid), name
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6, msg=name)
    torch.testing.assert_close(vn.explain(att, None, "attention flow"), vn.attention_flow_grid(att))
    prefix = geometry(net).prefix  # DeiT: CLS + distillation token, both dropped from the grid
    torch.testing.assert_close(expected["rollout"].sum((-2, -1)), torch.ones(3))
    assert prefix == (2 if family == "deit" else 1)
    xr = torch.randn(2, 3, 32, 32)
    assert vn.explain(resnet, xr, "grad-cam").shape[0] == 2
    with pytest.raises(TypeError, match="explains VIT models, not a CNN.*grad-cam"):
        vn.explain(resnet, xr, "rollout")


def test_claim_returns_the_sentence_that_holds():
    assert vn.claim(2 > 1, "two is more", "two is not more") == "two is more"
    assert vn.claim(1 > 2, "one is more", "one is not more") == "one is not more"
    assert {"claim": "one is more", "held": False} in vn.claims()
    with pytest.raises(AssertionError, match="one is more"):
        vn.claim(1 > 2, "one is more", "one is not more", expected=True)


def test_method_maps_feed_the_studies_from_the_registry(vit, resnet, pixels):
    maps = vn.evaluate.method_maps(vit, pixels, target=0, size=16)
    assert list(maps) == ["rollout", "last layer", "gradient rollout", "grad-cam"]  # attention flow needs a capture
    assert all(m.shape == (3, 16, 16) for m in maps.values())
    table = vn.agreement(maps)
    assert list(table.index) == list(maps) and table.shape == (4, 4)
    assert list(vn.evaluate.method_maps(resnet, torch.randn(2, 3, 32, 32))) == ["grad-cam"]
    with pytest.raises(TypeError, match="needs a vn.capture result"):
        vn.explain(vit, pixels, "attention flow")


def test_resize_maps_with_a_bare_module_is_a_clear_error(vit):
    with pytest.raises(TypeError, match=r"model= needs a vn.core.Model.*vn.load"):
        vn.evaluate.resize_maps(torch.rand(2, 4, 4), 8, model=vit)


def test_chapter_09_methods_stay_out_of_the_studies_defaults(vit, pixels):
    """The notebooks' studies keep the maps they had: the methods added for chapter 09 are listed and
    explained by name, but neither method_maps' default set nor the sanity check's one-pass maps grow."""
    from vitnotes.methods import registered

    added = ["legrad", "cp-lrp", "integrated gradients", "occlusion", "random", "value-weighted"]
    assert [n for n in vn.methods() if not registered(n).default] == added
    assert list(vn.evaluate.explanation_maps(vit, pixels)) == ["rollout", "last layer", "gradient rollout"]


def test_a_method_is_one_file():
    """Every file in vitnotes/methods/ registers its method without being named anywhere else in the
    package: value-weighted attention, added as one file, is found by the folder's discovery."""
    import importlib
    import pkgutil

    from vitnotes.methods.base import _REGISTRY

    package = importlib.import_module("vitnotes.methods")  # the package (vn.methods is the listing function)

    named = {a.name for node in ast.walk(ast.parse(Path(package.__file__).read_text()))
             if isinstance(node, ast.ImportFrom) for a in node.names}  # fmt: skip
    assert "rollout" in named and "value_weighted" not in named  # found, not imported by name
    homes = {m.fn.__module__.rsplit(".", 1)[-1] for m in _REGISTRY.values()}
    files = {f.name for f in pkgutil.iter_modules(package.__path__) if not f.name.startswith("_") and f.name != "base"}
    assert files <= homes, f"method files that registered nothing: {files - homes}"
    assert "value-weighted" in vn.methods()


def test_every_method_says_what_it_is_in_one_sentence():
    """The method tables print ``Method.summary``: a reader's sentence, not a docstring's first line
    cut mid-sentence; a method without ``what`` falls back to its docstring's first whole sentence."""
    from vitnotes.evaluate.trust import method_table
    from vitnotes.methods.base import Method

    table = method_table()
    assert list(table.index) == vn.methods()
    for name, text in table["what it computes"].items():
        assert text.endswith(".") and "``" not in text and text.count(". ") == 0, (name, text)

    def fn():
        """First sentence over
        two lines. Second sentence."""

    assert Method("x", fn, ("vit",), False).summary == "First sentence over two lines."
    assert Method("x", fn, ("vit",), False, what="Mine.").summary == "Mine."
