"""Rollout against a direct implementation of the paper's formula; attention flow against networkx."""

import networkx as nx
import numpy as np
import pytest
import torch

import vitnotes as vn
from vitnotes.methods.flow import attention_flow
from vitnotes.methods.gradient_rollout import gradient_rollout
from vitnotes.methods.rollout import capture_rollout, rollout


def stochastic(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(*shape, generator=g, dtype=torch.float64) ** 3
    return (x / x.sum(-1, keepdim=True)).float()


def paper_rollout(a, fusion="mean", discard=0.0, start=0):
    """Abnar & Zuidema with numpy loops, one image at a time."""
    a = a.double().numpy()
    n_layers, batch, _, t, _ = a.shape
    out = []
    for b in range(batch):
        r = np.eye(t)
        for layer in range(start, n_layers):
            w = {"mean": np.mean, "max": np.max, "min": np.min}[fusion](a[layer, b], axis=0)
            if discard:
                flat = w.flatten()
                drop = np.argsort(flat, kind="stable")[: int(t * t * discard)]
                flat[drop] = 0
                w = flat.reshape(t, t)
            m = 0.5 * w + 0.5 * np.eye(t)
            m = m / m.sum(axis=1, keepdims=True)
            r = m @ r
        out.append(r)
    return torch.tensor(np.stack(out))


@pytest.mark.parametrize("fusion", ["mean", "max", "min"])
@pytest.mark.parametrize("discard,start", [(0.0, 0), (0.3, 0), (0.0, 2), (0.5, 1)])
def test_rollout_matches_paper(fusion, discard, start):
    a = stochastic((4, 3, 2, 6, 6), seed=hash((fusion, discard, start)) % 1000)
    got = rollout(a, head_fusion=fusion, discard_ratio=discard, start_layer=start)
    assert got.shape == (3, 6, 6)
    assert torch.allclose(got.double(), paper_rollout(a, fusion, discard, start), atol=1e-6)
    assert torch.allclose(got.sum(-1), torch.ones(3, 6), atol=1e-5)


def test_rollout_each_batch_item_separately():
    a = stochastic((3, 4, 2, 5, 5), seed=7)
    whole = rollout(a)
    for b in range(4):
        assert torch.allclose(rollout(a[:, b : b + 1])[0], whole[b], atol=1e-6)


def test_rollout_of_one_layer_is_the_augmented_matrix():
    a = stochastic((1, 1, 1, 4, 4), seed=3)
    expected = 0.5 * a[0, 0, 0] + 0.5 * torch.eye(4)
    assert torch.allclose(rollout(a)[0], expected, atol=1e-6)


def test_rollout_grid_from_capture(vit, pixels):
    att = vn.capture(vit, pixels)
    grid = vn.rollout_grid(att)
    assert grid.shape == (3, 4, 4)
    assert torch.allclose(grid.sum((-1, -2)), torch.ones(3), atol=1e-5)


def networkx_flow(a, query=0):
    n_layers, batch, _, t, _ = a.shape
    w = a.double().mean(2) * 0.5 + 0.5 * torch.eye(t, dtype=torch.float64)
    w = w / w.sum(-1, keepdim=True)
    out = np.zeros((batch, t))
    for b in range(batch):
        g = nx.DiGraph()
        for layer in range(n_layers):
            for i in range(t):
                for j in range(t):
                    g.add_edge((layer, j), (layer + 1, i), capacity=float(w[layer, b, i, j]))
        for j in range(t):
            out[b, j] = nx.maximum_flow_value(g, (0, j), (n_layers, query))
    return out


def test_rollout_grids_equal_one_rollout_per_end_layer(vit, pixels):
    from vitnotes.methods.rollout import rollout_grid, rollout_grids

    att = vn.capture(vit, pixels)
    grids = rollout_grids(att)
    assert grids.shape == (len(att.layers), pixels.shape[0], *att.grid)
    for layer in range(len(att.layers)):
        assert torch.allclose(grids[layer], rollout_grid(att, end_layer=layer))


def test_attention_flow_matches_networkx():
    a = stochastic((3, 2, 2, 5, 5), seed=11)
    got = attention_flow(a)
    assert got.shape == (2, 5)
    assert np.allclose(got.numpy(), networkx_flow(a), atol=1e-4)


def test_attention_flow_refuses_intractable_sizes():
    a = torch.full((12, 1, 1, 500, 500), 1 / 500)
    with pytest.raises(ValueError, match="use rollout"):
        attention_flow(a)


def test_gradient_rollout_is_class_specific(vit, pixels):
    grads_before = [p.grad for p in vit.parameters()]
    maps = [gradient_rollout(vit, pixels, target=c) for c in range(3)]
    for m in maps:
        assert m.shape == (3, 4, 4) and (m >= 0).all()
        assert torch.allclose(m.sum((-1, -2)), torch.ones(3), atol=1e-5)
    assert not torch.allclose(maps[0], maps[1], atol=1e-4)
    assert vit.config._attn_implementation == "sdpa"  # the eager switch was undone
    assert all(p.grad is None for p in vit.parameters()) and all(g is None for g in grads_before)


def test_gradient_rollout_matches_manual_backward(vit_eager, pixels):
    """Against the textbook recipe: retain_grad on eager attentions, backward, R += mean_h(relu(g*A)) R."""
    out = vit_eager(pixels, output_attentions=True)
    for a in out.attentions:
        a.retain_grad()
    out.logits[:, 2].sum().backward()
    r = torch.eye(17).repeat(3, 1, 1)
    for a in out.attentions:
        r = r + (a.grad * a).clamp(min=0).mean(1) @ r
    ref = r[:, 0, 1:] / r[:, 0, 1:].sum(-1, keepdim=True)
    vit_eager.zero_grad()
    got = gradient_rollout(vit_eager, pixels, target=2)
    assert torch.allclose(got.flatten(1), ref.detach(), atol=1e-5)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"head_fusion": "max", "discard_ratio": 0.3},
        {"head_fusion": "min", "start_layer": 1},
        {"residual": 0.0},
        {"start_layer": -1},
    ],
)
def test_capture_rollout_equals_rollout_of_capture(attn, kw):
    """Streaming (one layer at a time, chunked) equals rollout over the stored full capture."""
    from conftest import make_vit

    net = make_vit(attn, seed=7)
    x = torch.randn(5, 3, 16, 16)
    want = rollout(vn.capture(net, x), **kw)
    got = capture_rollout(net, x, batch_size=2, **kw)
    assert got.shape == want.shape == (5, 17, 17)
    assert torch.allclose(got, want, atol=1e-5)


def test_capture_rollout_bad_arguments(vit, pixels):
    for kw, match in [
        ({"head_fusion": "median"}, "head_fusion"),
        ({"discard_ratio": 1.0}, "discard_ratio"),
        ({"residual": 2.0}, "residual"),
        ({"start_layer": 9}, "out of range"),
        ({"batch_size": 0}, "batch_size"),
    ]:
        with pytest.raises((ValueError, IndexError), match=match):
            capture_rollout(vit, pixels, **kw)
