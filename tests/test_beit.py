"""BEiT as a supported family (issue 25): relative position bias (per block and shared), layer scale
(``lambda_1``/``lambda_2``) and the mean-pooled classifier, each randomised away from its init, since
the bias tables start at zero and a dropped bias would then go unnoticed. Tiny random checkpoints are
saved with ``save_pretrained`` and loaded through ``vn.load``; captured attention is checked against
eager ``output_attentions``, and a capture that drops the bias is shown to fail that check. Every
registered method runs on BEiT, the gradient methods against hand computations. Also the families
vitnotes refuses (ViT-MAE, data2vec-vision) and DeiT with its distillation token and two heads."""

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import LABELS, randomise
from conftest import random_pixels as _pixels
from transformers import (
    BeitConfig,
    BeitForImageClassification,
    Data2VecVisionConfig,
    Data2VecVisionForImageClassification,
    DeiTConfig,
    DeiTForImageClassificationWithTeacher,
    ViTMAEConfig,
    ViTMAEForPreTraining,
    ViTMAEModel,
)

import vitnotes as vn
from vitnotes.core import arch
from vitnotes.core import capture as capture_module
from vitnotes.methods.base import registered
from vitnotes.methods.cp_lrp import lrp_rules

SMALL = dict(
    image_size=16,
    patch_size=4,
    num_channels=3,
    hidden_size=16,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=32,
    num_labels=5,
    id2label=LABELS,
    label2id={v: k for k, v in LABELS.items()},
)
# name -> (per-block bias, shared bias, mean pooling)
VARIANTS = {
    "block-bias": (True, False, True),
    "shared-bias": (False, True, True),
    "both-biases-cls": (True, True, False),
}


def _randomise(net: torch.nn.Module) -> None:
    randomise(net, "relative_position_bias_table", "lambda_", "cls_token")


def _beit(variant: str, seed: int = 21) -> BeitForImageClassification:
    block, shared, mean = VARIANTS[variant]
    torch.manual_seed(seed)
    cfg = BeitConfig(
        **SMALL,
        use_relative_position_bias=block,
        use_shared_relative_position_bias=shared,
        use_mean_pooling=mean,
        layer_scale_init_value=0.5,
    )
    net = BeitForImageClassification(cfg).eval()
    _randomise(net)
    return net


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("beit")
    out = {}
    for i, variant in enumerate(VARIANTS):
        _beit(variant, seed=21 + i).save_pretrained(root / variant)
        out[variant] = str(root / variant)
    return out


@pytest.fixture(params=list(VARIANTS))
def beit(request, folders):
    return vn.load(folders[request.param]), folders[request.param], request.param


def _eager(folder, x, grad=False):
    net = vn.load(folder, attn_implementation="eager").net
    with torch.set_grad_enabled(grad):
        return net, net(x, output_attentions=True, output_hidden_states=True)


def _patch_row(row: torch.Tensor, prefix: int = 1) -> torch.Tensor:
    p = row[..., prefix:]
    return (p / p.sum(-1, keepdim=True)).reshape(*p.shape[:-1], 4, 4)


# ------------------------------------------------------------------------------------ capture and bias


def _check_capture(m, folder, x, cls_only=False):
    """vn.capture equals eager output_attentions (full matrices, or the CLS rows) to 1e-5."""
    _, out = _eager(folder, x)
    eager = torch.stack(out.attentions)  # [layer, batch, head, T, T]
    attn = vn.capture(m, x, cls_only=cls_only)
    want = eager[..., 0, :] if cls_only else eager
    torch.testing.assert_close(attn.probs, want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("cls_only", [False, True])
def test_beit_capture_matches_eager_attentions(beit, cls_only):
    m, folder, _ = beit
    g = m.geometry
    assert (g.kind, g.layers, g.heads, g.head_dim, g.prefix, g.grid) == ("vit", 2, 2, 8, 1, (4, 4))
    _check_capture(m, folder, _pixels(), cls_only=cls_only)


def _dropping_the_bias(monkeypatch):
    """Make vn.capture's attention function ignore the mask it is given (BEiT's relative position
    bias reaches it as the additive mask)."""
    real = capture_module._capturing

    def capturing(*args, **kwargs):
        attend = real(*args, **kwargs)
        return lambda module, q, k, v, _mask, **kw: attend(module, q, k, v, None, **kw)

    monkeypatch.setattr(capture_module, "_capturing", capturing)


@pytest.mark.parametrize("cls_only", [False, True])
def test_capture_check_fails_when_the_bias_is_dropped(beit, monkeypatch, cls_only):
    """The check above would catch a capture that leaves the relative position bias out."""
    m, folder, _ = beit
    x = _pixels()
    _dropping_the_bias(monkeypatch)
    with pytest.raises(AssertionError, match="not close"):
        _check_capture(m, folder, x, cls_only=cls_only)


def test_attention_bias_is_what_the_attention_function_receives(beit):
    """arch.attention_bias (read by value-weighted) equals the mask BEiT hands its attention function:
    the block's table plus the shared one, non-zero, per head."""
    m, _, variant = beit
    x = _pixels()
    seen = {}

    def keep(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **_):
        seen[layer_of[id(module)]] = attention_mask
        w = (query @ key.transpose(-1, -2) * scaling + attention_mask).softmax(-1)
        return (w @ value).transpose(1, 2).contiguous(), None

    with arch.use_attention_function(m.net, keep) as layer_of, torch.no_grad():
        m.net(x)
    for i, block in enumerate(arch.blocks(m.net)):
        with torch.no_grad():
            bias = arch.attention_bias(m.net, block, 16, 16)
        assert bias.shape == (1, 2, 17, 17)
        torch.testing.assert_close(bias, seen[i], atol=0, rtol=0)
        assert bias.abs().max() > 0.5
    if VARIANTS[variant][0]:  # each block has its own table (added to the shared one where there is one)
        assert not torch.equal(seen[0], seen[1])
    else:  # the shared table alone: the same bias in every block
        assert torch.equal(seen[0], seen[1])


def test_families_without_a_bias_have_none(vit, deit):
    for net in (vit, deit):
        assert arch.attention_bias(net, arch.blocks(net)[0], 16, 16) is None


def test_beit_readout_and_layer_scale_are_the_models(beit):
    """arch.readout on the last block's tokens gives the logits (BEiT's pooler: the layer-normed patch
    mean, or the final-normed CLS); arch.finish_block rebuilds a block with its lambda_1 / lambda_2."""
    m, folder, variant = beit
    x = _pixels()
    net, out = _eager(folder, x)
    mean = VARIANTS[variant][2]
    with torch.no_grad():
        torch.testing.assert_close(arch.readout(net, out.hidden_states[-1]), out.logits, atol=1e-5, rtol=1e-4)
        h = out.hidden_states[-1]
        by_hand = (
            net.classifier(net.beit.pooler.layernorm(h[:, 1:].mean(1)))
            if mean
            else net.classifier(net.beit.layernorm(h[:, 0]))
        )
        torch.testing.assert_close(by_hand, out.logits, atol=1e-5, rtol=1e-4)
        if mean:  # a CLS readout would be wrong here
            assert not torch.allclose(net.classifier(h[:, 0]), out.logits, atol=1e-3)
    assert arch.readout_tokens(net.config) == 1
    assert arch.cls_head(net) is None  # the fast sweep's CLS-only shortcut is not exact for BEiT
    for i, block in enumerate(arch.blocks(net)):
        assert arch.attention_layer_scale(block) is block.lambda_1
        kept = {}
        handle = arch.attention_output(block).register_forward_pre_hook(lambda _m, a, kept=kept: kept.update(ctx=a[0]))
        try:
            with torch.no_grad():
                net(x)
        finally:
            handle.remove()
        with torch.no_grad():
            rebuilt = arch.finish_block(block, out.hidden_states[i], kept["ctx"])
        torch.testing.assert_close(rebuilt, out.hidden_states[i + 1], atol=1e-5, rtol=1e-4)


# --------------------------------------------------------------------------------------------- methods


def test_every_method_runs_on_beit(beit):
    m, _, _ = beit
    x = _pixels()
    names = vn.methods("vit")
    assert {"rollout", "gradient rollout", "grad-cam", "legrad", "cp-lrp", "value-weighted"} <= set(names)
    for name in names:
        if registered(name).takes_model:
            got = vn.explain(m, x, name, target=1)
        else:
            got = vn.explain(vn.capture(m, x), None, name)
        assert got.shape == (2, 4, 4), name
        assert torch.isfinite(got).all(), name


def _naive_rollout_row(attentions, prefix=1):
    r = None
    for a in attentions:
        w = a.double().mean(1)
        step = 0.5 * w + 0.5 * torch.eye(w.shape[-1], dtype=torch.float64)
        step = step / step.sum(-1, keepdim=True)
        r = step if r is None else step @ r
    return _patch_row(r[:, 0], prefix).float()


def test_beit_attention_maps_equal_naive_ones(beit):
    """Rollout, last-layer CLS attention and attention flow read the CLS row (documented for BEiT's
    mean-pooled classifier), from attentions that include the bias."""
    m, folder, _ = beit
    x = _pixels()
    _, out = _eager(folder, x)
    got = vn.explain(m, x, "rollout")
    torch.testing.assert_close(got, _naive_rollout_row(out.attentions), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(vn.explain(vn.capture(m, x), None, "rollout"), got, atol=1e-5, rtol=1e-4)
    last = _patch_row(out.attentions[-1][:, :, 0]).mean(1)
    torch.testing.assert_close(vn.explain(m, x, "last layer"), last, atol=1e-5, rtol=1e-4)


def test_beit_value_weighted_includes_bias_and_layer_scale(beit, monkeypatch):
    """alpha^h_{CLS,j} (eager, bias included) * ||lambda_1 * (v^h_j W_O^h)||, prefix dropped; without
    the bias (arch.attention_bias made to say None) the check fails."""
    m, folder, _ = beit
    x = _pixels()
    _, out = _eager(folder, x)
    block = arch.blocks(m.net)[-1]
    _, _, v_proj, o_proj = arch.projections(block)
    with torch.no_grad():
        v = v_proj(block.layernorm_before(out.hidden_states[-2]))
        norms = torch.stack(
            [(block.lambda_1 * (v[..., h * 8 : (h + 1) * 8] @ o_proj.weight[:, h * 8 : (h + 1) * 8].T)).norm(dim=-1)
             for h in range(2)],
            1,
        )  # fmt: skip
        w = (out.attentions[-1][:, :, 0] * norms).mean(1)
    torch.testing.assert_close(vn.explain(m, x, "value-weighted"), _patch_row(w), atol=1e-5, rtol=1e-4)
    monkeypatch.setattr(arch, "attention_bias", lambda *_a: None)
    with pytest.raises(AssertionError, match="not close"):
        torch.testing.assert_close(vn.explain(m, x, "value-weighted"), _patch_row(w), atol=1e-5, rtol=1e-4)


def test_beit_gradient_rollout_matches_hand_computation(beit):
    m, folder, _ = beit
    x = _pixels()
    net, out = _eager(folder, x, grad=True)
    grads = torch.autograd.grad(out.logits[:, 1].sum(), out.attentions)
    r = torch.eye(17, dtype=torch.float64).expand(2, 17, 17)
    for a, g in zip(out.attentions, grads, strict=True):
        abar = (g.double() * a.detach().double()).clamp_min(0).mean(1)
        r = r + abar @ r
    torch.testing.assert_close(
        vn.explain(m, x, "gradient rollout", target=1), _patch_row(r[:, 0]).float(), atol=1e-5, rtol=1e-4
    )


def _beit_readout_by_hand(net, h):
    if net.config.use_mean_pooling:
        return net.classifier(net.beit.pooler.layernorm(h[:, 1:].mean(1)))
    return net.classifier(net.beit.layernorm(h[:, 0]))


def test_beit_legrad_matches_a_naive_loop(beit):
    """Per layer: the score read from that layer's tokens by BEiT's own pooler and classifier, one
    autograd.grad per layer, relu, mean over heads and queries, CLS key dropped."""
    m, folder, _ = beit
    x = _pixels()
    net, out = _eager(folder, x, grad=True)
    acc = 0
    for layer in range(2):
        s = _beit_readout_by_hand(net, out.hidden_states[layer + 1])[:, 1].sum()
        (g,) = torch.autograd.grad(s, out.attentions[layer], retain_graph=True)
        acc = acc + g.clamp_min(0).mean((1, 2))
    want = _patch_row(acc)
    torch.testing.assert_close(vn.explain(m, x, "legrad", target=1), want, atol=1e-5, rtol=1e-4)


def test_beit_gradcam_matches_hand_hook(beit):
    m, folder, _ = beit
    x = _pixels()
    net, _ = _eager(folder, x)
    norm = arch.blocks(net)[-1].layernorm_before
    kept = {}
    handle = norm.register_forward_hook(lambda _m, _i, o: kept.update(act=o))
    try:
        with torch.enable_grad():
            logits = net(x).logits
            (g,) = torch.autograd.grad(logits[:, 3].sum(), kept["act"])
    finally:
        handle.remove()
    act = kept["act"].detach()[:, 1:].transpose(1, 2).reshape(2, 16, 4, 4)
    g = g[:, 1:].transpose(1, 2).reshape(2, 16, 4, 4)
    want = (g.mean((-2, -1), keepdim=True) * act).sum(1).clamp_min(0)
    torch.testing.assert_close(vn.explain(m, x, "grad-cam", target=3), want, atol=1e-5, rtol=1e-4)


def test_beit_cp_lrp_conserves_with_the_identity_rule(beit):
    """CP-LRP's identity rule on BEiT (bias behind the detached softmax, layer scales, the pooler's
    layer norm): pixel relevance plus that of every bias-like parameter equals the score."""
    m, _, _ = beit
    x = _pixels(1)
    net = m.net
    with lrp_rules(net, activation="identity"), torch.enable_grad():
        xi = x.clone().requires_grad_(True)
        s = net(xi).logits[0, 2]
        params = [p for n, p in net.named_parameters() if n.endswith(("bias", "cls_token"))]
        grads = torch.autograd.grad(s, [xi, *params], allow_unused=True)
    with torch.no_grad():
        pixels = (xi * grads[0]).sum()
        biases = sum((p * g).sum() for p, g in zip(params, grads[1:], strict=True) if g is not None)
        s = s.detach()
    assert abs(float(pixels + biases - s)) < 1e-4 * abs(float(s)) + 1e-6
    got = vn.explain(m, x, "cp-lrp", target=2, activation="identity")
    assert math.isclose(float(got.sum()), float(pixels), rel_tol=1e-4, abs_tol=1e-6)


def test_beit_occlusion_and_integrated_gradients(beit):
    m, _, _ = beit
    x = _pixels()
    net = m.net
    got = vn.explain(m, x, "occlusion", target=4, baseline=0.0)
    want = torch.zeros(2, 4, 4)
    with torch.no_grad():
        full = net(x).logits[:, 4]
        for i in range(4):
            for j in range(4):
                y = x.clone()
                y[..., 4 * i : 4 * i + 4, 4 * j : 4 * j + 4] = 0
                want[:, i, j] = full - net(y).logits[:, 4]
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    # integrated gradients against a hand Riemann sum (midpoints, 8 steps) from a zero baseline
    acc = torch.zeros_like(x)
    for k in range(8):
        xa = ((k + 0.5) / 8 * x).requires_grad_(True)
        (g,) = torch.autograd.grad(net(xa).logits[:, 4].sum(), xa)
        acc += g / 8
    want = (acc * x).sum(1).reshape(2, 4, 4, 4, 4).sum((2, 4))
    ig = registered("integrated gradients").fn(m, x, 4, baseline=0.0, n_steps=8, method="riemann_middle")
    torch.testing.assert_close(ig, want, atol=1e-5, rtol=1e-4)


# ----------------------------------------------------------------------------- sweep and statistics


def _naive_sweep(net, x, y):
    losses = {}
    for layer, block in enumerate(arch.blocks(net)):
        for h in range(2):

            def zero(_m, args, h=h):
                z = args[0].clone()
                z[..., h * 8 : (h + 1) * 8] = 0
                return (z, *args[1:])

            handle = block.attention.o_proj.register_forward_pre_hook(zero)
            try:
                with torch.no_grad():
                    losses[layer, h] = F.cross_entropy(net(x).logits.double(), y).item()
            finally:
                handle.remove()
    return losses


def test_beit_sweep_equals_naive_loop(beit):
    m, _, _ = beit
    x = _pixels(4)
    y = torch.tensor([0, 1, 2, 3])
    df = vn.sweep(m, x, y, batch_size=3)
    assert df.attrs["method"] == "naive"  # BEiT's classifier does not read CLS alone: no shortcut
    expected = _naive_sweep(m.net, x, y)
    assert len(df) == 4
    for row in df.itertuples():
        assert math.isclose(row.loss, expected[row.layer, row.head], rel_tol=1e-6, abs_tol=1e-9)


def test_beit_attention_profile_equals_naive_statistics(beit):
    m, folder, _ = beit
    x = _pixels(3)
    _, out = _eager(folder, x)
    prof = vn.profile.attention_profile(m, x, batch_size=2).sort_values(["layer", "head"])
    a = torch.stack(out.attentions).double()  # [layer, batch, head, T, T]
    p = _patch_row(a[..., 0, :]).flatten(-2)  # [layer, batch, head, 16]
    entropy = -(p * p.log()).sum(-1).mean(1)  # [layer, head]
    top10 = p.sort(-1, descending=True).values[..., :10].sum(-1).mean(1)
    cls_share = a[..., 1:, :1].sum(-1).mean(-1).mean(1)  # what the patch queries give CLS
    for col, want in (("entropy", entropy), ("top10", top10), ("cls_share", cls_share)):
        got = torch.tensor(prof[col].to_numpy()).reshape(2, 2)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4, msg=col)


# ---------------------------------------------------------------------------- refused, and DeiT's two


def test_data2vec_vision_is_refused_clearly():
    torch.manual_seed(0)
    net = Data2VecVisionForImageClassification(Data2VecVisionConfig(**SMALL)).eval()
    with pytest.raises(TypeError, match="data2vec-vision.*outside transformers' attention functions"):
        vn.capture(net, _pixels())
    with pytest.raises(TypeError, match="data2vec-vision"):
        vn.explain(net, _pixels(), "grad-cam")


@pytest.mark.parametrize("cls", [ViTMAEModel, ViTMAEForPreTraining])
@pytest.mark.parametrize("ratio", [0.75, 0.0])
def test_vit_mae_is_refused_clearly(cls, ratio):
    """ViT-MAE shuffles its patch tokens (and drops mask_ratio of them) on every forward: no grid."""
    cfg = ViTMAEConfig(**{k: v for k, v in SMALL.items() if k != "id2label" and k != "label2id"}, mask_ratio=ratio)
    net = cls(cfg).eval()
    with pytest.raises(TypeError, match=rf"ViT-MAE.*mask_ratio={ratio}.*no\s+fixed patch grid"):
        vn.capture(net, _pixels())
    with pytest.raises(TypeError, match="ViT-MAE"):
        vn.explain(net, _pixels(), "rollout")


@pytest.fixture
def deit_teacher():
    torch.manual_seed(5)
    cfg = DeiTConfig(**{k: v for k, v in SMALL.items() if k != "intermediate_size"}, intermediate_size=32)
    return DeiTForImageClassificationWithTeacher(cfg).eval()


def test_deit_distilled_reads_two_prefix_tokens(deit_teacher):
    """DeiT with its distillation token: two prefix tokens dropped from every grid; capture equals
    eager; the maps that read the model's own logits (the two heads' average) run, LeGrad (which
    needs one classifier to read a layer's tokens with) is refused in one line."""
    net = deit_teacher
    x = _pixels()
    assert vn.core.model.geometry(net).prefix == 2
    attn = vn.capture(net, x)
    net.set_attn_implementation("eager")
    with torch.no_grad():
        out = net(x, output_attentions=True)
    net.set_attn_implementation("sdpa")
    torch.testing.assert_close(attn.probs, torch.stack(out.attentions), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        vn.explain(net, x, "rollout"), _naive_rollout_row(out.attentions, 2), atol=1e-5, rtol=1e-4
    )
    for name in vn.methods("vit"):
        if name == "legrad":
            continue
        options = {"baseline": 0.0} if name in ("integrated gradients", "occlusion") else {}  # a bare net
        got = (
            vn.explain(net, x, name, target=1, **options)
            if registered(name).takes_model
            else vn.explain(attn, None, name)
        )
        assert got.shape == (2, 4, 4) and torch.isfinite(got).all(), name
    with pytest.raises(TypeError, match="averages two heads"):
        vn.explain(net, x, "legrad", target=1)


def test_beit_ops_per_batch_do_not_grow(beit, monkeypatch):
    """The GPU's shape on BEiT too (``test_ops_per_batch.py``): the relative position bias is added
    once per layer for the whole chunk, not once per image."""
    from test_ops_per_batch import OpCounter

    m, _, _ = beit
    monkeypatch.setattr(capture_module, "BLOCK_BYTES", {})  # the accelerator's policy: whole chunks
    counts = {}
    for n in (4, 32):
        x = torch.randn(n, 3, 16, 16, generator=torch.Generator().manual_seed(n))
        for name in ("rollout", "last layer", "grad-cam", "legrad", "value-weighted", "gradient rollout"):
            vn.explain(m, x[:1], name, target=1)  # BEiT caches its relative position index on first use
            with OpCounter() as c:
                vn.explain(m, x, name, target=1, batch_size=64)
            counts[name, n] = sum(c.ops.values())
    assert {k[0]: v for k, v in counts.items() if k[1] == 4} == {k[0]: v for k, v in counts.items() if k[1] == 32}
