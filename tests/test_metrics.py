"""Metrics on hand-made distributions whose values are known."""

import math

import numpy as np
import pytest
import torch

import vitnotes as vn
from vitnotes.core.geometry import Geometry

GEOM = Geometry(kind="vit", layers=1, heads=1, head_dim=4, hidden=4, patch_size=8, image_size=24, channels=1, prefix=1)


def test_entropy_uniform_and_one_hot():
    for n in (4, 49, 196):
        u = torch.full((n,), 1.0 / n)
        assert math.isclose(float(vn.entropy(u)), math.log(n), rel_tol=1e-6)
        assert math.isclose(float(vn.normalized_entropy(u)), 1.0, rel_tol=1e-6)
        one = torch.zeros(n)
        one[n // 2] = 1
        assert float(vn.entropy(one)) == 0.0
    two = torch.tensor([0.5, 0.5, 0.0, 0.0])
    assert math.isclose(float(vn.entropy(two)), math.log(2), rel_tol=1e-6)
    assert math.isclose(float(vn.normalized_entropy(two)), 0.5, rel_tol=1e-6)


def test_topk_share_known_values():
    p = torch.tensor([0.4, 0.1, 0.3, 0.2])
    assert math.isclose(float(vn.stats.topk_share(p, 1)), 0.4, rel_tol=1e-6)
    assert math.isclose(float(vn.stats.topk_share(p, 2)), 0.7, rel_tol=1e-6)
    assert math.isclose(float(vn.stats.topk_share(p, 4)), 1.0, rel_tol=1e-6)
    assert math.isclose(float(vn.stats.topk_share(torch.full((196,), 1 / 196), 10)), 10 / 196, rel_tol=1e-6)


def full_attention(targets, cls_weight=0.0):
    """3x3 grid, 1 CLS token: query patch i puts 1 - cls_weight on patch targets[i]."""
    a = torch.zeros(10, 10)
    a[0, 0] = 1
    for i, j in enumerate(targets):
        a[1 + i, 0] = cls_weight
        a[1 + i, 1 + j] = 1 - cls_weight
    return a


def test_mean_attention_distance_known_values():
    self_only = full_attention(range(9))
    dist, cls = vn.profile.mean_attention_distance(self_only, GEOM, (3, 3))
    assert float(dist) == 0.0 and float(cls) == 0.0
    # every patch looks at the centre patch (index 4), with a CLS share of 0.25
    centre = full_attention([4] * 9, cls_weight=0.25)
    dist, cls = vn.profile.mean_attention_distance(centre, GEOM, (3, 3))
    expected = 8 * (4 * 1 + 4 * math.sqrt(2)) / 9  # 4 edge neighbours at 1 patch, 4 corners at sqrt 2
    assert math.isclose(float(dist), expected, rel_tol=1e-6)
    assert math.isclose(float(cls), 0.25, rel_tol=1e-6)
    # batched shapes go through: [layer, batch, head, T, T] -> [layer, batch, head]
    stacked = torch.stack([self_only, centre]).reshape(1, 2, 1, 10, 10)
    assert vn.profile.mean_attention_distance(stacked, GEOM, (3, 3))[0].shape == (1, 2, 1)


def test_attention_distance_matches_a_loop_across_blocks(monkeypatch):
    """The blocked float32 products with float64 sums equal a plain per-row loop in float64, for
    any block size (blocks that split the rows unevenly, one row per block), an empty patch row and bf16."""
    from vitnotes import stats

    g = torch.Generator().manual_seed(0)
    full = torch.rand(2, 3, 5, 10, 10, generator=g) ** 4  # [layer, batch, head, T, T]: 1 CLS + a 3x3 grid
    full = full / full.sum(-1, keepdim=True)
    full[0, 1, 2, 4, 1:] = 0  # a query patch with no weight on any patch: distance 0 there
    d = stats.patch_distances((3, 3), 4)
    want_d, want_s = torch.zeros(full.shape[:3], dtype=torch.float64), torch.zeros(full.shape[:3], dtype=torch.float64)
    for idx in np.ndindex(*full.shape[:3]):
        rows = full[idx].double()[1:]
        share = rows[:, 0].mean()
        keys = rows[:, 1:]
        per = [float((keys[i] * d[i]).sum() / keys[i].sum()) if keys[i].sum() > 0 else 0.0 for i in range(9)]
        want_d[idx], want_s[idx] = sum(per) / 9, share
    for block_bytes in (1, 7 * 4 * 100, 1 << 30):  # one row per block, uneven blocks, one block
        monkeypatch.setitem(stats.DISTANCE_BLOCK_BYTES, "cpu", block_bytes)
        dist, share = stats.attention_distance(full, 1, (3, 3), 4)
        assert dist.shape == share.shape == (2, 3, 5)
        assert torch.allclose(dist.double(), want_d, rtol=1e-6, atol=1e-6)
        assert torch.allclose(share.double(), want_s, rtol=1e-6, atol=1e-7)
    dist16, _ = stats.attention_distance(full.bfloat16(), 1, (3, 3), 4)
    assert dist16.dtype == torch.float32 and torch.allclose(dist16.double(), want_d, rtol=2e-2, atol=2e-2)


def test_mask_mass_and_coverage():
    p = torch.zeros(2, 2)
    p[0, 0], p[1, 1] = 0.75, 0.25
    mask = torch.zeros(4, 4, dtype=torch.bool)
    mask[:2, :2] = True  # the top-left patch
    mask[2, 2] = True  # a quarter of the bottom-right patch
    assert torch.allclose(
        vn.stats.mask_coverage(mask, (2, 2)), torch.tensor([[1.0, 0.0], [0.0, 0.25]], dtype=torch.float64)
    )
    assert math.isclose(float(vn.stats.mask_mass(p, mask)), 0.75 + 0.25 * 0.25, rel_tol=1e-6)
    # one mask per image, on the batch axis of [batch, head, rows, cols]
    probs = torch.stack([p, p.flip(0, 1)])[:, None].expand(2, 3, 2, 2)
    masks = torch.stack([mask, torch.ones(4, 4, dtype=torch.bool)])
    got = vn.stats.mask_mass(probs, masks)
    assert got.shape == (2, 3) and torch.allclose(got[1], torch.ones(3))


def test_cls_summary_and_by_layer(vit, pixels):
    att = vn.capture(vit, pixels)
    df = vn.cls_summary(att)
    assert len(df) == 3 * 4 and df.attrs["images"] == 3 and df.attrs["patches"] == 16
    grid = att.cls_grid(1, 2).flatten(1)
    row = df[(df.layer == 1) & (df["head"] == 2)].iloc[0]
    assert math.isclose(row.entropy, float(vn.entropy(grid).mean()), rel_tol=1e-5)
    assert math.isclose(row.top10, float(vn.stats.topk_share(grid, 10).mean()), rel_tol=1e-5)
    assert df.entropy_norm.between(0, 1).all()
    layers = vn.by_layer(df)
    assert list(layers.index) == [0, 1, 2] and "head" not in layers.columns
    cls_only = vn.cls_summary(vn.capture(vit, pixels, cls_only=True))
    assert "distance_px" not in cls_only.columns
    assert torch.allclose(torch.tensor(cls_only.entropy.values), torch.tensor(df.entropy.values), atol=1e-5)


def test_metric_errors():
    with pytest.raises(ValueError, match="non-negative"):
        vn.entropy(torch.tensor([0.5, -0.5, 1.0]))
    with pytest.raises(ValueError, match="k must lie"):
        vn.stats.topk_share(torch.ones(4) / 4, 5)
    with pytest.raises(ValueError, match="does not divide"):
        vn.stats.mask_coverage(torch.ones(5, 5), (2, 2))
    with pytest.raises(ValueError, match="geometry"):
        vn.profile.mean_attention_distance(torch.ones(10, 10) / 10)


def test_map_consistency_matches_numpy_correlations():
    import numpy as np

    g = torch.rand(2, 5, 3, 4, 4)  # [layer, batch, head, rows, cols]
    g[0, :, 1] = g[0, 0, 1]  # a head that draws the same map on every image
    got = vn.stats.map_consistency(g)
    assert got.shape == (2, 3)
    for layer in range(2):
        for head in range(3):
            maps = g[layer, :, head].flatten(1).numpy().astype(np.float64)
            mean = maps.mean(0)
            want = np.mean([np.corrcoef(m, mean)[0, 1] for m in maps])
            assert abs(float(got[layer, head]) - want) < 1e-5
    assert abs(float(got[0, 1]) - 1.0) < 1e-6


def test_map_consistency_refuses_bad_shapes():
    with pytest.raises(ValueError, match="layer, batch, head"):
        vn.stats.map_consistency(torch.rand(5, 3, 4, 4))
    with pytest.raises(ValueError, match="two images"):
        vn.stats.map_consistency(torch.rand(2, 1, 3, 4, 4))
