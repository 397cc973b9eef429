"""Capture through vitnotes' own attention function (issue 17) equals an independent eager
computation: transformers' ``output_attentions=True`` under eager attention, and rollout as a plain
float64 loop over those matrices. Tiny random ViT, DeiT, DINOv2 and DINOv2 with registers; blocks
of one image and chunks that do not divide the batch, so every seam of the streaming is crossed."""

import pytest
import torch
from conftest import LABELS
from transformers import (
    DeiTConfig,
    DeiTForImageClassification,
    Dinov2Config,
    Dinov2ForImageClassification,
    Dinov2WithRegistersConfig,
    Dinov2WithRegistersForImageClassification,
    ViTConfig,
    ViTForImageClassification,
)

import vitnotes as vn
from vitnotes.core import capture as capture_module
from vitnotes.core.model import geometry
from vitnotes.methods.rollout import capture_rollout, rollout

COMMON = dict(image_size=16, patch_size=4, num_channels=3, hidden_size=24, num_hidden_layers=3, num_attention_heads=4)
LABELLED = dict(num_labels=5, id2label=LABELS, label2id={v: k for k, v in LABELS.items()})


def _model(family: str) -> torch.nn.Module:
    torch.manual_seed(5)
    if family == "vit":
        net = ViTForImageClassification(ViTConfig(**COMMON, intermediate_size=48, **LABELLED))
    elif family == "deit":
        net = DeiTForImageClassification(DeiTConfig(**COMMON, intermediate_size=48, **LABELLED))
    elif family == "dinov2":
        net = Dinov2ForImageClassification(Dinov2Config(**COMMON, mlp_ratio=2, layerscale_value=0.5, **LABELLED))
    else:
        cfg = Dinov2WithRegistersConfig(**COMMON, mlp_ratio=2, layerscale_value=0.5, num_register_tokens=3, **LABELLED)
        net = Dinov2WithRegistersForImageClassification(cfg)
    with torch.no_grad():  # sharper attention than the default init gives, so errors would show
        for name, p in net.named_parameters():
            if "q_proj.weight" in name or "k_proj.weight" in name:
                p.mul_(8.0)
            if "register_tokens" in name:
                p.copy_(torch.randn_like(p))
    return net.eval()


def _eager_attentions(net: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """([layer, batch, head, T, T] from transformers' eager attention, the model's SDPA logits)."""
    with torch.no_grad():
        logits = net(x).logits
        net.set_attn_implementation("eager")
        maps = torch.stack(net(x, output_attentions=True).attentions)
        net.set_attn_implementation("sdpa")
    return maps, logits


def _naive_rollout(maps: torch.Tensor, start: int = 0, residual: float = 0.5) -> torch.Tensor:
    """Abnar & Zuidema's rollout, one image and one layer at a time in float64: [batch, T, T]."""
    out = []
    for b in range(maps.shape[1]):
        r = torch.eye(maps.shape[-1], dtype=torch.float64)
        for layer in range(start, maps.shape[0]):
            a = (1 - residual) * maps[layer, b].double().mean(0) + residual * torch.eye(maps.shape[-1])
            r = (a / a.sum(-1, keepdim=True)) @ r
        out.append(r)
    return torch.stack(out).float()


@pytest.fixture(params=["vit", "deit", "dinov2", "dinov2_with_registers"])
def family(request, monkeypatch):
    monkeypatch.setitem(capture_module.BLOCK_BYTES, "cpu", 1)  # one image per block: every block seam is crossed
    net = _model(request.param)
    x = torch.randn(5, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    return net, x, *_eager_attentions(net, x)


def test_full_and_cls_capture_equal_eager(family):
    net, x, maps, _ = family
    full = vn.capture(net, x, batch_size=2)
    assert full.probs.shape == maps.shape
    assert (full.probs - maps).abs().max() < 1e-5
    cls = vn.capture(net, x, cls_only=True, batch_size=3)
    assert (cls.probs - maps[..., 0, :]).abs().max() < 1e-5
    assert net.config._attn_implementation == "sdpa"  # restored


@pytest.mark.parametrize("kw", [{}, {"residual": 0.2}, {"start_layer": 1}, {"residual": 0.0, "start_layer": -1}])
def test_streamed_rollout_equals_a_naive_loop(family, kw):
    net, x, maps, _ = family
    start = kw.get("start_layer", 0) % net.config.num_hidden_layers
    want = _naive_rollout(maps, start, kw.get("residual", 0.5))
    got = capture_rollout(net, x, batch_size=2, **kw)
    assert (got - want).abs().max() < 1e-5
    grid = vn.explain(net, x, "rollout", batch_size=3, **kw)
    prefix = geometry(net).prefix
    row = want[:, 0, prefix:]
    assert (grid.flatten(1) - row / row.sum(-1, keepdim=True)).abs().max() < 1e-5


def test_fused_rollout_step_equals_the_general_one(family):
    """Mean fusion takes one baddbmm; max fusion with no discarding runs the general step."""
    net, x, maps, _ = family
    got = capture_rollout(net, x, batch_size=4, head_fusion="max")
    assert (got - rollout(maps, head_fusion="max")).abs().max() < 1e-5


def test_logits_through_the_capturing_function_equal_the_plain_forward(family):
    net, x, maps, logits = family
    rows = []
    got = capture_module.stream(net, x, [0, 2], lambda _l, p: rows.append(p), cls_only=False, batch_size=2, to_end=True)
    assert (torch.cat(got) - logits).abs().max() < 1e-5
    assert sum(r.shape[0] for r in rows) == 2 * x.shape[0]
    logits2, cls = vn.predict_with_attention(net, x, layer=1, batch_size=2)
    assert (logits2 - logits).abs().max() < 1e-5
    prefix = geometry(net).prefix
    row = maps[1, :, :, 0, prefix:]
    assert (cls.flatten(-2) - row / row.sum(-1, keepdim=True)).abs().max() < 1e-5


def test_blocks_tile_each_chunk_in_order(monkeypatch):
    """``blocks=True`` hands consecutive blocks of the block size, the same in every layer."""
    monkeypatch.setitem(capture_module.BLOCK_BYTES, "cpu", 2 * 4 * 17 * 17 * 4)  # two images of 4 heads x 17^2
    net = _model("vit")
    x = torch.randn(7, 3, 16, 16)
    sizes: dict[int, list[int]] = {}
    capture_module.stream(
        net, x, [0, 1, 2], lambda layer, p: sizes.setdefault(layer, []).append(p.shape[0]), batch_size=5, blocks=True
    )
    assert sizes == {layer: [2, 2, 1, 2] for layer in range(3)}
