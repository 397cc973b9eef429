"""Ablation by hook equals zeroing the o_proj weight columns of the head."""

import copy

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
