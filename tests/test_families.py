"""Model families through ``core/arch.py``: DINOv2, DINOv2 with register tokens and ConvNeXt, each a
tiny random checkpoint saved with ``save_pretrained`` and loaded through the real ``vn.load`` path,
then run through every registered method of its kind with the numbers checked (issue 13)."""

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import LABELS, randomise
from conftest import random_pixels as _pixels
from transformers import (
    ConvNextConfig,
    ConvNextForImageClassification,
    Dinov2Config,
    Dinov2ForImageClassification,
    Dinov2WithRegistersConfig,
    Dinov2WithRegistersForImageClassification,
)

import vitnotes as vn
from vitnotes.core import arch
from vitnotes.methods.base import registered

REGISTERS = 3
DINO_COMMON = dict(
    image_size=16,
    patch_size=4,
    num_channels=3,
    hidden_size=16,
    num_hidden_layers=2,
    num_attention_heads=2,
    mlp_ratio=2,
    num_labels=5,
    id2label=LABELS,
    label2id={v: k for k, v in LABELS.items()},
    layerscale_value=0.5,
)


def _randomise(net: torch.nn.Module) -> None:
    randomise(net, "register_tokens", "lambda1", "mask_token")


def _save(net: torch.nn.Module, folder) -> str:
    net.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def dino_folder(tmp_path_factory):
    torch.manual_seed(11)
    net = Dinov2ForImageClassification(Dinov2Config(**DINO_COMMON)).eval()
    _randomise(net)
    return _save(net, tmp_path_factory.mktemp("dinov2") / "tiny-dinov2")


@pytest.fixture(scope="module")
def dinoreg_folder(tmp_path_factory):
    torch.manual_seed(12)
    cfg = Dinov2WithRegistersConfig(**DINO_COMMON, num_register_tokens=REGISTERS)
    net = Dinov2WithRegistersForImageClassification(cfg).eval()
    _randomise(net)
    return _save(net, tmp_path_factory.mktemp("dinoreg") / "tiny-dinov2-reg")


@pytest.fixture(scope="module")
def convnext_folder(tmp_path_factory):
    torch.manual_seed(13)
    cfg = ConvNextConfig(
        num_channels=3,
        patch_size=4,
        hidden_sizes=[8, 16],
        depths=[1, 1],
        num_stages=2,
        image_size=32,
        num_labels=5,
        id2label=LABELS,
        label2id={v: k for k, v in LABELS.items()},
    )
    net = ConvNextForImageClassification(cfg).eval()
    return _save(net, tmp_path_factory.mktemp("convnext") / "tiny-convnext")


@pytest.fixture(params=["dinov2", "dinov2_with_registers"])
def dino(request, dino_folder, dinoreg_folder):
    folder = dino_folder if request.param == "dinov2" else dinoreg_folder
    prefix = 1 if request.param == "dinov2" else 1 + REGISTERS
    return vn.load(folder), folder, prefix


def _eager(folder, x):
    net = vn.load(folder, attn_implementation="eager").net
    with torch.no_grad():
        return net(x, output_attentions=True, output_hidden_states=True)


def test_dino_geometry_prefix_and_grid(dino):
    m, _, prefix = dino
    g = m.geometry
    assert (g.kind, g.layers, g.heads, g.head_dim, g.prefix, g.grid) == ("vit", 2, 2, 8, prefix, (4, 4))
    x = _pixels()
    attn = vn.capture(m, x)
    assert attn.probs.shape == (2, 2, 2, prefix + 16, prefix + 16)
    grid = attn.cls_grid(-1)
    assert grid.shape == (2, 2, 4, 4)
    torch.testing.assert_close(grid.sum((-2, -1)), torch.ones(2, 2))
    # the grid is CLS -> patches with every prefix token (CLS and registers) dropped, renormalised
    row = attn.probs[-1][:, :, 0, prefix:]
    torch.testing.assert_close(grid.flatten(-2), row / row.sum(-1, keepdim=True))


def test_dino_capture_matches_eager(dino):
    m, folder, _ = dino
    x = _pixels()
    out = _eager(folder, x)
    attn = vn.capture(m, x)
    assert len(out.attentions) == 2
    for layer, a in enumerate(out.attentions):
        torch.testing.assert_close(attn.probs[layer], a, atol=1e-5, rtol=1e-4)
    cls = vn.capture(m, x, cls_only=True)
    torch.testing.assert_close(cls.probs, attn.probs[..., 0, :])


def test_dino_readout_is_the_models(dino):
    """arch.readout (LeGrad's per-layer readout) on the last block's tokens gives the model's logits:
    CLS concatenated with the mean of the patch tokens, registers excluded."""
    m, folder, prefix = dino
    x = _pixels()
    out = _eager(folder, x)
    with torch.no_grad():
        torch.testing.assert_close(arch.readout(m.net, out.hidden_states[-1]), out.logits, atol=1e-5, rtol=1e-4)
        # and it is not the CLS-only readout, nor a mean that counts the registers
        normed = arch.final_norm(m.net)(out.hidden_states[-1])
        wrong = arch.classifier(m.net)(torch.cat([normed[:, 0], normed[:, 1:].mean(1)], -1))
    if prefix > 1:
        assert not torch.allclose(wrong, out.logits, atol=1e-4)
    assert arch.readout_tokens(m.net.config) == 2


def test_dino_finish_block_reproduces_the_block(dino):
    """The fast path's block pieces (context, layer scales, norm1/norm2) rebuild a DINOv2 block exactly."""
    m, _, _ = dino
    x = _pixels()
    with torch.no_grad():
        h = arch.embeddings(m.net)(x)
        for block in arch.blocks(m.net):
            ctx = arch.context(block, arch.attention_input(block)(h))
            torch.testing.assert_close(arch.finish_block(block, h, ctx), block(h), atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(arch.cls_block(block, h), block(h)[:, :1], atol=1e-5, rtol=1e-4)
            h = block(h)


def _naive_rollout_row(attentions, prefix):
    r = None
    for a in attentions:
        w = a.double().mean(1)
        step = 0.5 * w + 0.5 * torch.eye(w.shape[-1], dtype=torch.float64)
        step = step / step.sum(-1, keepdim=True)
        r = step if r is None else step @ r
    row = r[:, 0, prefix:]
    return (row / row.sum(-1, keepdim=True)).reshape(-1, 4, 4).float()


def test_dino_rollout_row_drops_every_prefix_token(dino):
    m, folder, prefix = dino
    x = _pixels()
    out = _eager(folder, x)
    got = vn.explain(m, x, "rollout")
    assert got.shape == (2, 4, 4)
    torch.testing.assert_close(got.sum((-2, -1)), torch.ones(2))
    torch.testing.assert_close(got, _naive_rollout_row(out.attentions, prefix), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(vn.explain(vn.capture(m, x), None, "rollout"), got, atol=1e-5, rtol=1e-4)


def test_every_vit_method_on_dino(dino):
    m, _, _ = dino
    x = _pixels()
    names = vn.methods("vit")
    assert {"rollout", "gradient rollout", "grad-cam", "legrad", "cp-lrp"} <= set(names)
    for name in names:
        if registered(name).takes_model:
            got = vn.explain(m, x, name, target=1)
        else:
            got = vn.explain(vn.capture(m, x), None, name)
        assert got.shape == (2, 4, 4), name
        assert torch.isfinite(got).all(), name


def test_dino_legrad_last_layer_uses_the_models_readout(dino):
    """LeGrad at the last layer equals relu(d logit / d A_L) from the model's own logits, averaged over
    heads and queries, prefix keys dropped: its readout is the model's (CLS + patch mean)."""
    m, folder, prefix = dino
    x = _pixels(1)
    net = vn.load(folder, attn_implementation="eager").net
    with torch.enable_grad():
        out = net(x, output_attentions=True)
        (g,) = torch.autograd.grad(out.logits[:, 1].sum(), out.attentions[-1])
    expected = g.clamp_min(0).mean((1, 2))[:, prefix:].reshape(1, 4, 4)
    expected = expected / expected.sum()
    got = vn.explain(m, x, "legrad", target=1, layers=[-1])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def _naive_sweep(net, x, y, geom):
    """Independent per-head ablation: zero head h's slice of o_proj's input, full forward, mean CE."""
    d = geom.head_dim
    losses = {}
    for layer, block in enumerate(arch.blocks(net)):
        for h in range(geom.heads):

            def zero(_m, args, h=h):
                z = args[0].clone()
                z[..., h * d : (h + 1) * d] = 0
                return (z, *args[1:])

            handle = arch.attention_output(block).register_forward_pre_hook(zero)
            try:
                with torch.no_grad():
                    logits = net(x).logits.double()
            finally:
                handle.remove()
            losses[layer, h] = F.cross_entropy(logits, y).item()
    return losses


def test_dino_sweep_equals_naive_loop(dino):
    m, _, _ = dino
    x = _pixels(4)
    y = torch.tensor([0, 1, 2, 3])
    df = vn.sweep(m, x, y, batch_size=3)
    # DINOv2's classifier reads the patch mean too: the CLS-only shortcut is refused, full forwards run
    assert arch.cls_head(m.net) is None
    assert df.attrs["method"] == "naive"
    expected = _naive_sweep(m.net, x, y, m.geometry)
    assert len(df) == 4
    for row in df.itertuples():
        assert math.isclose(row.loss, expected[row.layer, row.head], rel_tol=1e-6, abs_tol=1e-9)


def test_convnext_geometry_and_gradcam_grid(convnext_folder):
    m = vn.load(convnext_folder)
    g = m.geometry
    assert (g.kind, g.layers, g.hidden, g.image_size) == ("cnn", 2, 16, 32)
    x = _pixels(2, size=32)
    names = vn.methods("cnn")
    assert "grad-cam" in names
    cells = {"occlusion": {"patch": 8}, "random": {"patch": 8}}  # a CNN has no patch grid: say the cell size
    for name in names:
        got = vn.explain(m, x, name, target=1, **cells.get(name, {}))
        assert got.ndim == 3 and got.shape[0] == 2, name
        if name in cells:
            assert got.shape == (2, 4, 4), name
        assert torch.isfinite(got).all(), name
    # stage grids: patchify by 4 (32 -> 8), the second stage downsamples by 2 (8 -> 4)
    assert vn.explain(m, x, "grad-cam").shape == (2, 4, 4)
    assert vn.explain(m, x, "grad-cam", stage=0).shape == (2, 8, 8)
    assert (vn.explain(m, x, "grad-cam") >= 0).all()


def test_convnext_gradcam_matches_hand_computation(convnext_folder):
    m = vn.load(convnext_folder)
    x = _pixels(1, size=32)
    stage = arch.cnn_stages(m.net)[-1]
    kept = {}
    handle = stage.register_forward_hook(lambda _m, _i, out: kept.update(act=out))
    try:
        with torch.enable_grad():
            logits = m.net(x).logits
            (g,) = torch.autograd.grad(logits[0, 2], kept["act"])
    finally:
        handle.remove()
    expected = (g.mean((-2, -1), keepdim=True) * kept["act"]).sum(1).clamp_min(0).detach()
    torch.testing.assert_close(vn.explain(m, x, "grad-cam", target=2), expected, atol=1e-5, rtol=1e-4)


def test_dino_value_weighted_includes_layer_scale(dino):
    """Value-weighted attention on DINOv2: ``alpha^h_{CLS,j} * ||layer_scale1(v^h_j W_O^h)||`` (the vector
    the head writes to the residual stream), computed here from the eager attentions and the block's
    own modules, prefix tokens dropped and renormalised."""
    m, folder, prefix = dino
    x = _pixels()
    out = _eager(folder, x)
    block = arch.blocks(m.net)[-1]
    _, _, v_proj, o_proj = arch.projections(block)
    heads, d = m.geometry.heads, m.geometry.head_dim
    with torch.no_grad():
        v = v_proj(arch.attention_input(block)(out.hidden_states[-2]))  # [B, T, H*d]
        norms = []
        for h in range(heads):
            written = v[..., h * d : (h + 1) * d] @ o_proj.weight[:, h * d : (h + 1) * d].T  # [B, T, hidden]
            norms.append(block.layer_scale1(written).norm(dim=-1))
        w = (out.attentions[-1][:, :, 0] * torch.stack(norms, 1)).mean(1)[:, prefix:]
    expected = (w / w.sum(-1, keepdim=True)).reshape(-1, 4, 4)
    torch.testing.assert_close(vn.explain(m, x, "value-weighted"), expected, atol=1e-5, rtol=1e-4)


def test_dino_statistics_drop_every_prefix_token(dino):
    """The per-head statistics read the patches only: entropy over the renormalised CLS -> patch row
    (registers dropped), the prefix share = weight the query patches give to CLS and the registers."""
    m, _, prefix = dino
    x = _pixels()
    attn = vn.capture(m, x)
    df = vn.cls_summary(attn)
    row = attn.probs[..., 0, prefix:].double()
    p = row / row.sum(-1, keepdim=True)
    entropy = -(p * p.log()).sum(-1).mean(1)  # [layer, head], mean over the batch
    got = torch.tensor(df.sort_values(["layer", "head"])["entropy"].to_numpy()).reshape(2, 2)
    torch.testing.assert_close(got, entropy, atol=1e-5, rtol=1e-4)
    _, share = vn.profile.mean_attention_distance(attn)
    expected = attn.probs[..., prefix:, :prefix].sum(-1).mean(-1)  # [layer, batch, head]
    torch.testing.assert_close(share, expected.to(share.dtype), atol=1e-5, rtol=1e-4)


def test_swiglu_dino_refuses_the_identity_activation_rule(tmp_path):
    """DINOv2 with a SwiGLU MLP (the giant models): CP-LRP's default gradient rule runs; the identity
    activation rule has no single activation to hook and is refused with the reason."""
    torch.manual_seed(14)
    net = Dinov2ForImageClassification(Dinov2Config(**DINO_COMMON, use_swiglu_ffn=True)).eval()
    m = vn.load(_save(net, tmp_path / "tiny-dinov2-swiglu"))
    x = _pixels()
    got = vn.explain(m, x, "cp-lrp", target=0)
    assert got.shape == (2, 4, 4) and torch.isfinite(got).all()
    with pytest.raises(TypeError, match="gated MLP"):
        vn.explain(m, x, "cp-lrp", target=0, activation="identity")
