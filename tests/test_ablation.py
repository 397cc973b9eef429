"""Ablation by hook equals zeroing the o_proj weight columns of the head."""

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import vitnotes_hooks

import vitnotes as vn


def zero_columns(net, layer, head):
    """Independent ablation: a copy whose o_proj ignores the head's features."""
    twin = copy.deepcopy(net)
    d = net.config.hidden_size // net.config.num_attention_heads
    with torch.no_grad():
        twin.vit.layers[layer].attention.o_proj.weight[:, head * d : (head + 1) * d] = 0
    return twin


@pytest.mark.parametrize("layer,head", [(0, 0), (1, 3), (-1, 2)])
def test_hook_equals_weight_zeroing(vit, pixels, layer, head):
    intact = vit(pixels).logits
    with vn.ablate(vit, [(layer, head)]):
        ablated = vit(pixels).logits
    twin = zero_columns(vit, layer % 3, head)(pixels).logits
    assert torch.allclose(ablated, twin, atol=1e-6)
    assert not torch.allclose(ablated, intact, atol=1e-4)
    assert torch.equal(vit(pixels).logits, intact)  # hooks gone


def test_several_heads_and_dict_form(vit, pixels):
    with vn.ablate(vit, {0: [1, 2], 2: 0}):
        a = vit(pixels).logits
    with vn.ablate(vit, [(0, 1), (0, 2), (2, 0)]):
        b = vit(pixels).logits
    assert torch.allclose(a, b)


def test_hooks_removed_even_on_error(vit, pixels):
    with pytest.raises(RuntimeError, match="boom"), vn.ablate(vit, [(0, 0)]):
        raise RuntimeError("boom")
    assert not vitnotes_hooks(vit)


def test_sweep_equals_manual_losses(vit, pixels):
    targets = torch.tensor([0, 3, 1])
    df = vn.sweep(vit, pixels, targets, batch_size=2)
    assert len(df) == 12 and df.attrs["n"] == 3 and df.attrs["loss"] == "ce"
    base = torch.nn.functional.cross_entropy(vit(pixels).logits, targets).item()
    assert abs(df.attrs["baseline"] - base) < 1e-6
    for layer, head in [(0, 1), (2, 3)]:
        manual = torch.nn.functional.cross_entropy(zero_columns(vit, layer, head)(pixels).logits, targets).item()
        row = df[(df.layer == layer) & (df["head"] == head)].iloc[0]
        assert abs(row.loss - manual) < 1e-6
        assert abs(row.rel_increase - (manual / base - 1)) < 1e-6


def test_sweep_regression_mse(pixels):
    from conftest import make_vit

    net = make_vit(num_labels=3, id2label=None, label2id=None, problem_type="regression")
    y = torch.randn(3, 3)
    df = vn.sweep(net, pixels, y, heads=[(1, 0), (1, 1)])
    assert df.attrs["loss"] == "mse" and len(df) == 2
    base = torch.nn.functional.mse_loss(net(pixels).logits, y).item()
    assert abs(df.attrs["baseline"] - base) < 1e-6


def _same_sweep(a, b):
    assert a[["layer", "head"]].equals(b[["layer", "head"]])
    rel = ((a.loss - b.loss).abs() / b.loss).max()
    assert rel <= 1e-6, rel
    assert abs(a.attrs["baseline"] / b.attrs["baseline"] - 1) <= 1e-6


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("batch_size", [2, 64])
def test_fast_sweep_equals_naive(attn, batch_size):
    """Prefix reuse, shared context, several heads per forward and the CLS-only last layer change nothing."""
    from conftest import make_vit

    net = make_vit(attn, seed=5, num_hidden_layers=4)
    torch.manual_seed(0)
    x, y = torch.randn(7, 3, 16, 16), torch.randint(0, 5, (7,))
    fast = vn.sweep(net, x, y, batch_size=batch_size)
    naive = vn.sweep(net, x, y, batch_size=batch_size, method="naive")
    assert fast.attrs["method"] == "fast" and naive.attrs["method"] == "naive" and len(fast) == 16
    _same_sweep(fast, naive)
    assert fast.rel_increase.abs().max() > 1e-4  # the heads matter: the check is not vacuous


def test_fast_sweep_regression_deit_subset_and_other_size(deit):
    from conftest import make_vit

    torch.manual_seed(1)
    net = make_vit(num_labels=3, id2label=None, label2id=None, problem_type="regression")
    x, y = torch.randn(5, 3, 24, 24), torch.randn(5, 3)  # 24 px: interpolated positions
    heads = {0: [1, 3], -1: [0]}
    _same_sweep(vn.sweep(net, x, y, heads=heads), vn.sweep(net, x, y, heads=heads, method="naive"))
    yc = torch.randint(0, 5, (5,))
    _same_sweep(vn.sweep(deit, x[..., :16, :16], yc), vn.sweep(deit, x[..., :16, :16], yc, method="naive"))
    with pytest.raises(ValueError, match="method must be"):
        vn.sweep(net, x, y, method="quick")


def _recorded_inputs(net, x, layer):
    """Independent: the o_proj input of ``layer`` for every image, by a hook of this test's own."""
    seen = []
    handle = net.vit.layers[layer].attention.o_proj.register_forward_pre_hook(lambda _m, a: seen.append(a[0].clone()))
    try:
        with torch.no_grad():
            net(x)
    finally:
        handle.remove()
    return torch.cat(seen)  # [B, T, H*d]


def _mean_ablated_loss(net, x, y, layer, head, mean):
    """Independent mean-ablation: a hook that writes the head's reference mean into the o_proj input."""
    d = net.config.hidden_size // net.config.num_attention_heads

    def hook(_m, args):
        z = args[0].clone()
        z[:, :, head * d : (head + 1) * d] = mean[:, head * d : (head + 1) * d]
        return (z,)

    handle = net.vit.layers[layer].attention.o_proj.register_forward_pre_hook(hook)
    try:
        with torch.no_grad():
            return torch.nn.functional.cross_entropy(net(x).logits, y, reduction="none")
    finally:
        handle.remove()


@pytest.mark.parametrize("method", ["fast", "naive"])
def test_mean_ablation_equals_a_naive_hook(method):
    from conftest import make_vit

    net = make_vit(seed=3)
    torch.manual_seed(2)
    ref, x, y = torch.randn(6, 3, 16, 16), torch.randn(5, 3, 16, 16), torch.randint(0, 5, (5,))
    means = vn.interventions.head_means(net, ref, batch_size=4)  # two chunks: the mean is over all six images
    assert sorted(means) == [0, 1, 2] and means[1].shape == (17, 24)
    assert torch.allclose(means[1], _recorded_inputs(net, ref, 1).mean(0), atol=1e-6)
    df = vn.sweep(net, x, y, batch_size=2, method=method, means=means, per_image=True)
    assert df.attrs["ablation"] == "mean" and df.attrs["per_image"].losses.shape == (12, 5)
    base = torch.nn.functional.cross_entropy(net(x).logits, y, reduction="none").detach().double().numpy()
    assert np.allclose(df.attrs["per_image"].baseline, base, atol=1e-6)
    for row, (layer, head) in enumerate(zip(df.layer, df["head"])):
        manual = _mean_ablated_loss(net, x, y, layer, head, _recorded_inputs(net, ref, layer).mean(0)).double().numpy()
        assert np.allclose(df.attrs["per_image"].losses[row], manual, atol=1e-5), (layer, head)
        assert abs(df.loss.iloc[row] - manual.mean()) < 1e-5
    zero = vn.sweep(net, x, y, batch_size=2, method=method)
    assert zero.attrs["ablation"] == "zero" and (zero.loss - df.loss).abs().max() > 1e-4  # not the same ablation
    with vn.ablate(net, [(2, 1)], means=means):
        ablated = net(x).logits
    assert not torch.allclose(ablated, net(x).logits, atol=1e-6)
    with pytest.raises(ValueError, match="no entry for layer"):
        vn.sweep(net, x, y, means={0: means[0]})
    with pytest.raises(ValueError, match="reference means cover"), vn.ablate(net, [(0, 0)], means=means):
        net(torch.randn(2, 3, 24, 24), interpolate_pos_encoding=True)


def test_per_image_losses_average_to_the_table(vit, pixels):
    df = vn.sweep(vit, pixels, torch.tensor([0, 3, 1]), batch_size=2, per_image=True)
    assert np.allclose(df.attrs["per_image"].losses.mean(1), df.loss, atol=1e-9)
    assert abs(df.attrs["per_image"].baseline.mean() - df.attrs["baseline"]) < 1e-9
    assert "per_image" not in vn.sweep(vit, pixels, torch.tensor([0, 3, 1])).attrs
    both = pd.concat([df, df.copy()])  # tables with per-image losses still concatenate
    assert both.attrs["per_image"] == df.attrs["per_image"]
