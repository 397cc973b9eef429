"""Grad-CAM: non-negative, grid-shaped, class-specific; equal to captum's LayerGradCam on a CNN."""

import pytest
import torch
from captum.attr import LayerGradCam

from vitnotes.methods.gradcam import gradcam


def test_cnn_gradcam_matches_captum(resnet):
    pixels = torch.randn(3, 3, 32, 32)  # the stem divides by 4, the second stage by 2 more
    stage = resnet.resnet.encoder.stages[-1]
    ref = LayerGradCam(lambda x: resnet(x).logits, stage)
    for target in (0, 4):
        got = gradcam(resnet, pixels, target=target)
        expected = ref.attribute(pixels, target=target, relu_attributions=True)[:, 0]
        assert got.shape == expected.shape == (3, 4, 4)
        assert torch.allclose(got, expected.detach(), atol=1e-5)


def test_cnn_gradcam_stage_choice(resnet):
    assert gradcam(resnet, torch.randn(2, 3, 32, 32), stage=0).shape == (2, 8, 8)


def test_vit_gradcam_grid_nonneg_class_specific(vit, pixels):
    maps = [gradcam(vit, pixels, target=c) for c in range(3)]
    for m in maps:
        assert m.shape == (3, 4, 4) and (m >= 0).all()
    assert not torch.allclose(maps[0], maps[1])
    assert all(p.grad is None for p in vit.parameters())
    predicted = vit(pixels).logits.argmax(-1)
    assert torch.allclose(gradcam(vit, pixels), gradcam(vit, pixels, target=predicted.tolist()))


def test_vit_gradcam_layer_and_size(vit):
    x = torch.randn(2, 3, 24, 24)
    assert gradcam(vit, x, layer=0).shape == (2, 6, 6)


@pytest.mark.parametrize("kind", ["vit", "resnet"])
def test_gradcam_with_gradients_switched_off(kind, vit, resnet, pixels):
    """Notebooks switch gradients off globally; Grad-CAM switches them on from its activation only,
    and gives the same map as with gradients on."""
    net = vit if kind == "vit" else resnet
    on = gradcam(net, pixels)
    with torch.no_grad():
        off = gradcam(net, pixels)
        assert not torch.is_grad_enabled()
    torch.testing.assert_close(off, on)
