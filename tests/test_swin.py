"""Swin (issue 25, item 3): a tiny random SwinForImageClassification from a written config. Grad-CAM on a
stage's feature map against a hand loop, the methods defined on the input, each block's window attention
against transformers' own ``output_attentions=True`` (every block, shifted ones too, with padding), the
map's un-shift against a hand roll and a patch-by-patch lookup, the one-sentence refusals, and op counts
that do not grow with the batch."""

import copy

import pytest
import torch
from conftest import LABELS, randomise
from test_ops_per_batch import OpCounter
from transformers import SwinConfig, SwinForImageClassification

import vitnotes as vn
from vitnotes.core.model import geometry
from vitnotes.methods.cp_lrp import cp_lrp
from vitnotes.methods.gradient_rollout import gradient_rollout
from vitnotes.methods.legrad import legrad
from vitnotes.methods.rollout import capture_rollout
from vitnotes.methods.value_weighted import value_weighted

SWIN = dict(
    image_size=32,
    patch_size=2,
    num_channels=3,
    embed_dim=12,
    depths=[2, 2],
    num_heads=[2, 4],
    window_size=4,
    mlp_ratio=2.0,
    num_labels=5,
    id2label=LABELS,
    label2id={v: k for k, v in LABELS.items()},
)
BLOCKS = [(0, 0), (0, 1), (1, 0), (1, 1)]  # (stage, block); odd blocks are shifted
REFUSED = ["rollout", "last layer", "attention flow", "value-weighted", "gradient rollout", "legrad", "cp-lrp"]
REASON = "a Swin has none: its attention stays inside shifted local windows and patch merging changes the grid"


def make_swin(attn: str = "sdpa") -> SwinForImageClassification:
    torch.manual_seed(25)
    cfg = SwinConfig(**SWIN)
    cfg._attn_implementation = attn
    net = SwinForImageClassification(cfg).eval()
    randomise(net, "relative_position_bias_table")  # zero at init: a test would not see it dropped
    return net


@pytest.fixture(scope="module")
def swin():
    return make_swin()


@pytest.fixture(scope="module")
def swin_eager(swin):
    net = copy.deepcopy(swin)
    net.set_attn_implementation("eager")
    return net


def pixels(n: int = 3, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_load_geometry_and_methods(swin, tmp_path):
    swin.save_pretrained(tmp_path / "tiny-swin")
    m = vn.load(tmp_path / "tiny-swin")
    for g in (m.geometry, geometry(swin)):
        assert (g.kind, g.layers, g.patch_size, g.prefix, g.grid, g.hidden) == ("swin", 2, 2, 0, (16, 16), 24)
        assert g.stage_grid(32, 32, 0) == (16, 16) and g.stage_grid(32, 32, -1) == (8, 8)
        assert g.stage_grid(40, 40, 1) == (10, 10)
    assert vn.methods("swin") == ["grad-cam", "integrated gradients", "occlusion", "random"]
    x = pixels()
    with torch.no_grad():
        torch.testing.assert_close(m.predict(x), swin(x).logits)
    assert vn.explain(m, x, "grad-cam").shape == (3, 8, 8)
    assert vn.explain(m, x, "integrated gradients", n_steps=4).shape == (3, 16, 16)  # black baseline: a vn.core.Model


def _hand_gradcam(net, x, stage, target):
    """Grad-CAM by hand: the last block's tokens of ``stage`` kept by a hook, the gradient of the target
    logits by torch.autograd.grad, the stage's grid from the token count."""
    kept = {}

    def keep(_module, _inputs, out):
        kept["act"] = out[0]

    handle = net.swin.encoder.layers[stage].blocks[-1].register_forward_hook(keep)
    try:
        with torch.enable_grad():
            logits = net(x).logits
            t = logits.argmax(-1) if target is None else torch.full((x.shape[0],), target)
            (grad,) = torch.autograd.grad(logits.gather(1, t[:, None]).sum(), kept["act"])
    finally:
        handle.remove()
    act = kept["act"].detach()
    b, n, c = act.shape
    side = int(n**0.5)
    weights = grad.mean(1, keepdim=True)  # [batch, 1, C]: the gradient's mean over the stage's positions
    return (weights * act).sum(-1).clamp_min(0).reshape(b, side, side)


@pytest.mark.parametrize("stage", [0, -1])
@pytest.mark.parametrize("target", [None, 3])
def test_gradcam_equals_hand_loop(swin, stage, target):
    x = pixels()
    got = vn.explain(swin, x, "grad-cam", target=target, stage=stage)
    want = _hand_gradcam(swin, x, stage, target)
    assert got.shape == ((3, 16, 16) if stage == 0 else (3, 8, 8))
    assert want.abs().max() > 0
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["integrated gradients", "occlusion", "random"])
def test_input_methods_return_finite_patch_grid_maps(swin, name):
    options = {"baseline": "zero", "n_steps": 4} if name == "integrated gradients" else {}
    maps = vn.explain(swin, pixels(), name, target=1, **options)
    assert maps.shape == (3, 16, 16) and torch.isfinite(maps).all() and maps.abs().sum() > 0


def _reference(net_eager, x, stage, block):
    """transformers' own per-window attention of block ``block`` of ``stage``: ``output_attentions=True``
    returns each stage's last block, so a copy keeps the blocks of that stage up to ``block``."""
    net = copy.deepcopy(net_eager)
    blocks = net.swin.encoder.layers[stage].blocks
    net.swin.encoder.layers[stage].blocks = torch.nn.ModuleList(list(blocks)[: block + 1])
    with torch.no_grad():
        return net(x, output_attentions=True).attentions[stage]  # [batch * windows, head, N, N]


@pytest.mark.parametrize("size", [32, 40])  # 40: stage 1's 10x10 grid is padded to 12x12 windows
@pytest.mark.parametrize("stage, block", BLOCKS)
def test_window_attention_equals_output_attentions(swin, swin_eager, size, stage, block):
    x = pixels(2, size)
    ref = _reference(swin_eager, x, stage, block)
    layer = 2 * stage + block
    for net in (swin, swin_eager):  # recomputed under SDPA; the eager probabilities as returned
        for which in (layer, (stage, block), layer - 4):
            wa = vn.core.window_attention(net, x, which)
            assert (wa.layer, wa.stage, wa.block, wa.shift) == (layer, stage, block, 2 * block)
            torch.testing.assert_close(wa.probs.reshape(ref.shape), ref, atol=1e-5, rtol=0)
    assert wa.probs.shape[:3] == (2, ref.shape[0] // 2, SWIN["num_heads"][stage])


@pytest.mark.parametrize("size", [32, 40])
@pytest.mark.parametrize("stage, block", BLOCKS)
def test_window_map_lines_up_with_the_image(swin, swin_eager, size, stage, block):
    x = pixels(2, size, seed=1)
    ref = _reference(swin_eager, x, stage, block)
    wa = vn.core.window_attention(swin, x, (stage, block))
    rows = cols = size // 2 // 2**stage
    assert wa.grid == (rows, cols) and wa.map.shape == (2, rows, cols) and wa.patch_pixels == 2 * 2**stage
    w, s = wa.window, wa.shift
    side = -(-rows // w) * w  # padded to whole windows
    per = side // w
    received = ref.mean((1, 2)).reshape(2, per, per, w, w)  # [batch, window row, window col, r, c]
    # patch by patch: where the block put patch (y, x) (rolled by -shift on the padded grid), what it received
    want = torch.empty(2, rows, cols)
    for y in range(rows):
        for xx in range(cols):
            ys, xs = (y - s) % side, (xx - s) % side
            want[:, y, xx] = received[:, ys // w, xs // w, ys % w, xs % w]
    torch.testing.assert_close(wa.map, want, atol=1e-6, rtol=0)
    # the same by a hand roll of the shifted frame
    frame = received.permute(0, 1, 3, 2, 4).reshape(2, side, side)
    torch.testing.assert_close(wa.map, torch.roll(frame, (s, s), (1, 2))[:, :rows, :cols], atol=1e-6, rtol=0)
    if size == 32:  # no padding: each window's entries sum to 1, so the map sums to the number of windows
        torch.testing.assert_close(wa.map.sum((-2, -1)), torch.full((2,), float(per * per)))


def test_window_attention_leaves_the_output_alone(swin):
    x = pixels()
    with torch.no_grad():
        before = swin(x).logits
    vn.core.window_attention(swin, x, 1)
    with torch.no_grad():
        torch.testing.assert_close(swin(x).logits, before, atol=0, rtol=0)
    assert not [h for m in swin.modules() for h in (*m._forward_hooks.values(), *m._forward_pre_hooks.values())
                if h.__module__.startswith("vitnotes")]  # fmt: skip


def test_window_attention_refuses_bad_layers_and_other_models(swin):
    x = pixels(1)
    with pytest.raises(IndexError, match="4 blocks over all stages"):
        vn.core.window_attention(swin, x, 4)
    with pytest.raises(IndexError, match="stage 1 has 2 blocks"):
        vn.core.window_attention(swin, x, (1, 2))
    with pytest.raises(TypeError, match="for a ViT use vn.capture"):
        vn.core.window_attention(make_vit_like(), torch.randn(1, 3, 16, 16))


def make_vit_like():
    from conftest import make_vit

    return make_vit("sdpa")


@pytest.mark.parametrize("name", REFUSED)
def test_cls_and_rollout_methods_refuse_in_one_sentence(swin, name):
    with pytest.raises(TypeError, match=REASON) as err:
        vn.explain(swin, pixels(1), name)
    message = str(err.value)
    assert "\n" not in message and ". " not in message and "use grad-cam, integrated gradients" in message
    assert "vn.core.window_attention" in message and err.value.__cause__ is None


@pytest.mark.parametrize(
    "call",
    [
        lambda m, x: vn.capture(m, x),
        lambda m, x: capture_rollout(m, x),
        lambda m, x: gradient_rollout(m, x),
        lambda m, x: value_weighted(m, x),
        lambda m, x: legrad(m, x),
        lambda m, x: cp_lrp(m, x),
    ],
    ids=["capture", "capture_rollout", "gradient_rollout", "value_weighted", "legrad", "cp_lrp"],
)
def test_direct_calls_refuse_in_one_sentence(swin, call):
    with pytest.raises(TypeError, match=REASON) as err:
        call(swin, pixels(1))
    assert "\n" not in str(err.value) and "vn.core.window_attention" in str(err.value)


def _ops(fn, n):
    x = pixels(n, seed=n)
    fn(x)  # warm-up
    with OpCounter() as c:
        fn(x)
    return c.ops


@pytest.mark.parametrize(
    "name, fn",
    [
        ("grad-cam", lambda net, x: vn.explain(net, x, "grad-cam", batch_size=256)),
        ("window attention", lambda net, x: vn.core.window_attention(net, x, 1, batch_size=256)),
        ("window attention, last", lambda net, x: vn.core.window_attention(net, x, -1, batch_size=256)),
    ],
)
def test_ops_do_not_grow_with_the_batch(swin, name, fn):
    small, large = _ops(lambda x: fn(swin, x), 4), _ops(lambda x: fn(swin, x), 32)
    grown = {op: (small[op], large[op]) for op in small.keys() | large.keys() if small[op] != large[op]}
    assert not grown, f"{name}: {sum(small.values())} ops for 4 images, {sum(large.values())} for 32; {grown}"


def test_every_map_and_the_explorer_take_a_swin(swin):
    """The trust table's image count hooks the first stage (a Swin has no ViT embeddings to hook), and
    the explorer offers every method that applies (Swin has a patch grid: occlusion and random too)."""
    from vitnotes.show.explorer import offered

    m = vn.core.Model(swin, geometry(swin), [], vn.core.Preprocessing.from_dict({}, geometry(swin)))
    maps, table = vn.evaluate.every_map(m, pixels(2), target=0)
    assert set(maps) == set(vn.methods("swin"))
    forwards = dict(zip(table["method"], table["forwards"], strict=True))
    assert forwards.pop("random") == 0 and all(v > 0 for v in forwards.values())  # the random map runs no model
    assert offered("swin") == vn.methods("swin")
