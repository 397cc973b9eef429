"""Captured attention equals softmax(QK^T / sqrt(d)) recomputed from the weights."""

import pytest
import torch
from conftest import make_vit, vitnotes_hooks

import vitnotes as vn
from vitnotes.core.model import geometry


def by_hand(net, pixels):
    """[layer, batch, head, T, T] from the hidden states and the q/k weights, no vitnotes code."""
    with torch.no_grad():
        hidden = net(pixels, output_hidden_states=True).hidden_states
    cfg = net.config
    h, d = cfg.num_attention_heads, cfg.hidden_size // cfg.num_attention_heads
    out = []
    for i, block in enumerate(net.base_model.layers):
        x = torch.nn.functional.layer_norm(
            hidden[i],
            (cfg.hidden_size,),
            block.layernorm_before.weight,
            block.layernorm_before.bias,
            cfg.layer_norm_eps,
        )
        att = block.attention
        q = (x @ att.q_proj.weight.T + att.q_proj.bias).unflatten(-1, (h, d)).transpose(1, 2)
        k = (x @ att.k_proj.weight.T + att.k_proj.bias).unflatten(-1, (h, d)).transpose(1, 2)
        out.append(torch.softmax(q @ k.transpose(-1, -2) / d**0.5, dim=-1))
    return torch.stack(out)


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_capture_equals_formula(impl, pixels):
    net = make_vit(impl)
    got = vn.capture(net, pixels)
    assert got.probs.shape == (3, 3, 4, 17, 17)
    assert torch.allclose(got.probs, by_hand(net, pixels), atol=1e-5, rtol=0)
    assert net.config._attn_implementation == impl  # capture leaves the model as it was


def test_capture_equals_eager_output_attentions(vit_eager, pixels):
    with torch.no_grad():
        ref = torch.stack(vit_eager(pixels, output_attentions=True).attentions)
    assert torch.allclose(vn.capture(vit_eager, pixels).probs, ref, atol=1e-5, rtol=0)


def test_sdpa_and_eager_agree(pixels):
    a = vn.capture(make_vit("sdpa"), pixels).probs
    b = vn.capture(make_vit("eager"), pixels).probs
    assert torch.allclose(a, b, atol=1e-6)


def test_cls_only_rows_and_batching(vit, pixels):
    full = vn.capture(vit, pixels)
    cls = vn.capture(vit, pixels, cls_only=True, batch_size=2)
    assert cls.probs.shape == (3, 3, 4, 17)
    assert torch.allclose(cls.probs, full.probs[..., 0, :], atol=1e-6)
    assert torch.allclose(cls.cls_grid(1), full.cls_grid(1), atol=1e-6)


def test_accessor_negative_layers_and_grid(vit, pixels):
    att = vn.capture(vit, pixels)
    assert torch.equal(att.get(-1), att.probs[2])
    assert torch.equal(att.get(-1, -1), att.probs[2, :, 3])
    grid = att.cls_grid(0, 2)
    assert grid.shape == (3, 4, 4)
    row = att.probs[0, :, 2, 0, 1:]
    assert torch.allclose(grid.flatten(1), row / row.sum(-1, keepdim=True), atol=1e-6)
    assert torch.allclose(att.cls_grids().sum((-1, -2)), torch.ones(3, 3, 4), atol=1e-5)


def test_layer_subset_and_uncaptured_layer(vit, pixels):
    att = vn.capture(vit, pixels, layers=[-1, 0])
    assert att.layers == [2, 0]
    assert torch.allclose(att.get(-1), vn.capture(vit, pixels).get(2), atol=1e-6)
    with pytest.raises(IndexError, match="not captured"):
        att.get(1)


def test_other_image_size_uses_interpolated_positions(vit):
    x = torch.randn(2, 3, 24, 32)
    att = vn.capture(vit, x)
    assert att.grid == (6, 8) and att.probs.shape[-1] == 1 + 48
    assert att.cls_grid(0).shape == (2, 4, 6, 8)


def test_deit_has_two_prefix_tokens(deit, pixels):
    att = vn.capture(deit, pixels)
    assert geometry(deit).prefix == 2
    assert att.probs.shape == (2, 3, 4, 18, 18)
    assert torch.allclose(att.probs, by_hand(deit, pixels), atol=1e-5, rtol=0)
    grid = att.cls_grid(-1)
    assert grid.shape == (3, 4, 4, 4)
    row = att.probs[-1, :, :, 0, 2:]  # CLS and distillation token dropped
    assert torch.allclose(grid.flatten(-2), row / row.sum(-1, keepdim=True), atol=1e-6)


def test_early_stop_leaves_model_usable(vit, pixels):
    before = vit(pixels).logits
    vn.capture(vit, pixels, layers=[0])
    assert torch.equal(vit(pixels).logits, before)
    assert not vitnotes_hooks(vit)


def test_attention_io_feeds_a_hand_computed_layer(vit, pixels):
    """The tokens attention_io returns, pushed through the layer's own weights by hand, give the
    output it returns (the recomputation chapter 00 does)."""
    g = geometry(vit)
    X, out = vn.attention_io(vit, pixels, 1)
    attn = vit.vit.layers[1].attention
    with torch.no_grad():

        def heads(t):
            return t.reshape(t.shape[0], t.shape[1], g.heads, g.head_dim).transpose(1, 2)

        q, k, v = (heads(m(X)) for m in (attn.q_proj, attn.k_proj, attn.v_proj))
        a = (q @ k.transpose(-1, -2) / g.head_dim**0.5).softmax(-1)
        want = attn.o_proj((a @ v).transpose(1, 2).reshape(X.shape))
    assert X.shape == out.shape == (pixels.shape[0], g.tokens, g.hidden)
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(a, vn.capture(vit, pixels, layers=[1]).get(1), rtol=1e-5, atol=1e-6)
    assert not vitnotes_hooks(vit)


def test_attention_io_rejects_a_cnn_and_a_bad_layer(vit, resnet, pixels):
    with pytest.raises(TypeError, match="ViT-family"):
        vn.attention_io(resnet, pixels, 0)
    with pytest.raises(IndexError):
        vn.attention_io(vit, pixels, 7)
