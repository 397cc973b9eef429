"""Chapters 01-02's measurements against independent computations: high-norm tokens and the register
table, position-embedding similarity, per-image attention distances, where a query patch looks, and the
positional-vs-content control on hand-built models whose answer is known."""

import math

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

import vitnotes as vn
from tests.conftest import make_vit


def test_high_norm_tokens_rule():
    norms = torch.tensor([[1.0, 1.0, 1.1, 2.5], [1.0, 1.0, 1.0, 1.0]])
    assert vn.stats.high_norm_tokens(norms).tolist() == [[False, False, False, True], [False] * 4]
    assert vn.stats.high_norm_tokens(norms, factor=3.0).sum() == 0
    with pytest.raises(ValueError, match="factor"):
        vn.stats.high_norm_tokens(norms, factor=1.0)
    with pytest.raises(ValueError, match="two tokens"):
        vn.stats.high_norm_tokens(torch.ones(3, 1))


def test_map_correlation_matches_numpy():
    torch.manual_seed(0)
    a, b = torch.rand(3, 2, 4, 5), torch.rand(3, 2, 4, 5)
    r = vn.stats.map_correlation(a, b)
    for i in range(3):
        for j in range(2):
            want = np.corrcoef(a[i, j].flatten().numpy(), b[i, j].flatten().numpy())[0, 1]
            assert math.isclose(float(r[i, j]), want, rel_tol=1e-5, abs_tol=1e-6)
    assert torch.isnan(vn.stats.map_correlation(torch.ones(1, 3, 3), torch.rand(1, 3, 3))).all()
    with pytest.raises(ValueError, match="one shape"):
        vn.stats.map_correlation(a, b[..., :4])


def test_map_consistency_per_image_averages_to_the_default():
    torch.manual_seed(1)
    g = torch.rand(2, 5, 3, 4, 4)
    per = vn.stats.map_consistency(g, per_image=True)
    assert per.shape == (2, 5, 3)
    assert torch.allclose(per.mean(1), vn.stats.map_consistency(g), atol=1e-6)


def test_position_similarity_against_a_loop(vit):
    table = vn.profile.position_embeddings(vit)  # [1 + 16, 24]
    assert table.shape == (17, 24)
    sim = vn.stats.position_similarity(table, (4, 4))
    for i in range(16):
        for j in range(16):
            a, b = table[1 + i].double(), table[1 + j].double()
            want = float(a @ b / (a.norm() * b.norm()))
            assert math.isclose(float(sim[i // 4, i % 4, j // 4, j % 4]), want, rel_tol=1e-5, abs_tol=1e-6)
    assert torch.allclose(torch.diagonal(sim.reshape(16, 16)), torch.ones(16), atol=1e-6)
    with pytest.raises(ValueError, match="at least 25 rows"):
        vn.stats.position_similarity(table, (5, 5))
    fig = vn.show.position_similarity_plot(sim)
    assert isinstance(fig, Figure) and len(fig.axes) == 2  # the mosaic and its colour bar


def test_position_embeddings_refuses_a_cnn(resnet):
    with pytest.raises(TypeError):
        vn.profile.position_embeddings(resnet)


def test_token_norms_match_hidden_states(vit, pixels):
    norms = vn.evaluate.token_norms(vit, pixels, batch_size=2)
    assert norms.shape == (3, 3, 16)  # [layer, batch, patches]
    with torch.no_grad():
        states = vit(pixel_values=pixels, output_hidden_states=True).hidden_states
    for layer in range(3):
        for b in range(3):
            for p in range(16):
                want = float(states[layer][b, 1 + p].double().pow(2).sum().sqrt())
                assert math.isclose(float(norms[layer, b, p]), want, rel_tol=1e-5)


def test_register_table_on_hand_built_tokens():
    n = 16  # 4x4 grid, 2 layers, 3 images
    norms = torch.ones(2, 3, n)
    norms[1, 0, 5] = 10.0  # layer 1, image 0: one high-norm token, patch 5
    maps = torch.full((2, 3, 4, 4), 1.0 / n)
    maps[1, 0] = 0.5 / (n - 1)
    maps[1, 0, 1, 1] = 0.5  # patch 5 gets half the CLS mass
    background = torch.zeros(3, 4, 4)
    background[:, 1, 1] = 1.0  # patch 5 is background
    t = vn.evaluate.register_table(norms, maps, background, n_boot=200)
    assert t.loc[0, "outliers"] == 0 and t.loc[0, "images_with"] == 0 and math.isnan(t.loc[0, "enrichment"])
    assert math.isclose(t.loc[1, "outliers"], 1 / 3) and math.isclose(t.loc[1, "images_with"], 1 / 3)
    assert t.loc[1, "on_background"] == 1.0
    assert math.isclose(t.loc[1, "cls_mass"], 0.5 / 3, rel_tol=1e-6)
    assert math.isclose(t.loc[1, "token_share"], 1 / (3 * n), rel_tol=1e-6)
    assert math.isclose(t.loc[1, "enrichment"], 0.5 * n, rel_tol=1e-6) and t.loc[1, "n_enrichment"] == 1
    assert t.loc[1, "max_norm"] == 10.0 and t.loc[1, "median_norm"] == 1.0 and t.loc[1, "max_over_median"] == 10.0
    with pytest.raises(ValueError, match="same layers"):
        vn.evaluate.register_table(norms, maps[:, :2])


def test_attention_distances_match_the_full_capture(vit, pixels):
    dist, share = vn.attention_distances(vit, pixels, batch_size=2)
    want_d, want_s = vn.profile.mean_attention_distance(vn.capture(vit, pixels))
    assert dist.shape == (3, 3, 4)
    assert torch.allclose(dist, want_d, atol=1e-5) and torch.allclose(share, want_s, atol=1e-6)


def test_query_grids_are_renormalised_rows(vit, pixels):
    att = vn.capture(vit, pixels)
    q = vn.profile.query_grids(att, 1, image=2)  # [head, query, rows, cols]
    assert q.shape == (4, 16, 4, 4)
    rows = att.probs[1, 2, :, 1:, 1:]
    want = rows / rows.sum(-1, keepdim=True)
    assert torch.allclose(q.flatten(-2), want, atol=1e-6)
    with pytest.raises(ValueError, match="full matrices"):
        vn.profile.query_grids(vn.capture(vit, pixels, cls_only=True), 0)


def _naive_following(model, x, shift_px, patches):
    base = vn.capture(model, x, cls_only=True).cls_grids().numpy()
    other = vn.capture(model, torch.roll(x, shift_px, -1), cls_only=True).cls_grids().numpy()
    fixed, moved = np.empty(base.shape[:3]), np.empty(base.shape[:3])
    for idx in np.ndindex(*base.shape[:3]):
        fixed[idx] = np.corrcoef(base[idx].ravel(), other[idx].ravel())[0, 1]
        moved[idx] = np.corrcoef(base[idx].ravel(), np.roll(other[idx], -patches, axis=-1).ravel())[0, 1]
    return fixed, moved


def test_content_following_matches_a_naive_loop(vit, pixels):
    got = vn.content_following(vit, pixels, shift=1)
    fixed, moved = _naive_following(vit, pixels, 4, 1)
    assert np.allclose(got["shift"]["fixed"].numpy(), fixed, atol=1e-5)
    assert np.allclose(got["shift"]["moved"].numpy(), moved, atol=1e-5)
    assert got["flip"]["fixed"].shape == (3, 3, 4)
    reused = vn.content_following(vit, pixels, shift=1, base=vn.capture(vit, pixels, cls_only=True).cls_grids())
    assert torch.equal(reused["shift"]["moved"], got["shift"]["moved"])
    with pytest.raises(ValueError, match="base must be"):
        vn.content_following(vit, pixels, base=torch.zeros(3, 2, 4, 4, 4))


def test_without_position_embeddings_every_map_moves_with_the_content(pixels):
    net = make_vit("sdpa", seed=5)
    with torch.no_grad():
        net.vit.embeddings.position_embeddings.zero_()  # blind to where a patch sits
    got = vn.content_following(net, pixels, shift=1)
    assert torch.allclose(got["shift"]["moved"], torch.ones(3, 3, 4), atol=1e-4)
    table = vn.evaluate.following_table(got, n_boot=100)
    assert len(table) == 12 and (table["shift_low"] > 0).all()


def test_a_model_that_ignores_the_pixels_is_positional(pixels):
    net = make_vit("sdpa", seed=6)
    with torch.no_grad():
        net.vit.embeddings.patch_embeddings.projection.weight.zero_()  # tokens carry only their position
    got = vn.content_following(net, pixels, shift=1)
    assert torch.allclose(got["shift"]["fixed"], torch.ones(3, 3, 4), atol=1e-4)
    assert torch.allclose(got["flip"]["fixed"], torch.ones(3, 3, 4), atol=1e-4)
    table = vn.evaluate.following_table(got, n_boot=100)
    assert (table["shift_high"] < 0).all()
    score = (got["shift"]["moved"] - got["shift"]["fixed"]).mean(1)  # [layer, head]
    assert np.allclose(table["shift"].to_numpy(), score.flatten().numpy(), atol=1e-6)
    assert isinstance(vn.show.following_plot(table), Figure)


def test_content_following_bad_input(vit, pixels, resnet):
    with pytest.raises(ValueError, match="whole number of patches"):
        vn.content_following(vit, pixels, shift=4)
    with pytest.raises(ValueError, match="kind"):
        vn.evaluate.move_images(pixels, "rotate")
    with pytest.raises(TypeError):
        vn.content_following(resnet, pixels)


def test_interval_frame_is_bootstrap_per_row():
    rng = np.random.default_rng(0)
    v = rng.random((3, 40))
    t = vn.evaluate.interval_frame(v, ["a", "b", "c"], n_boot=300)
    for name, row in zip("abc", v, strict=True):
        iv = vn.bootstrap(row, n_boot=300)
        assert (t.loc[name, "value"], t.loc[name, "low"], t.loc[name, "high"]) == (iv.value, iv.low, iv.high)
    assert list(vn.evaluate.interval_frame({"x": v[0]}, n_boot=50).index) == ["x"]
    with pytest.raises(ValueError, match="one label per row"):
        vn.evaluate.interval_frame(v, ["a"])


def test_figures_have_colour_bars_and_axes_from_zero(vit, pixels):
    att = vn.capture(vit, pixels)
    df = vn.cls_summary(att)
    fig = vn.show.distance_dots(df, vn.stats.uniform_distance((4, 4), 4))
    assert fig.axes[0].get_ylim()[0] == 0
    fig = vn.show.attention_matrix(att.get(0, 1)[0], prefix=1, title="L0 h1")
    assert len(fig.axes) == 2


def test_query_picker_holds_one_view_per_query_and_layer(vit, pixels):
    att = vn.capture(vit, pixels)
    maps = torch.stack([vn.profile.query_grids(att, layer).mean(0) for layer in range(3)])  # [layer, query, 4, 4]
    picker = vn.show.query_picker(pixels[0].mean(0).clamp(0, 1).numpy(), maps, queries=[0, 5, 15], size=32)
    assert len(picker.links) == 1 + 3
    outer = picker.children[1]
    assert len(outer.children) == 3 and all(len(s.children) == 3 for s in outer.children)
    assert vn.show.state_bytes(picker) > 0
    assert len(picker.children) == 3  # menus, views, the shared colour bar
    alone = vn.show.query_picker(pixels[0].mean(0).clamp(0, 1).numpy(), maps, queries=[0], size=32, shared=False)
    assert len(alone.children) == 2
    with pytest.raises(ValueError, match="patch indices"):
        vn.show.query_picker(pixels[0].mean(0).clamp(0, 1).numpy(), maps, queries=[16])
    with pytest.raises(ValueError, match="one per patch"):
        vn.show.query_picker(pixels[0].mean(0).clamp(0, 1).numpy(), maps[:, :5])


def test_following_plot_shades_where_both_correlations_are_weak():
    import pandas as pd

    table = pd.DataFrame({"layer": [0, 1], "shift_fixed": [0.8, 0.1], "shift_moved": [0.2, 0.15]})
    plain, marked = vn.show.following_plot(table), vn.show.following_plot(table, weak=0.3)
    assert len(plain.axes[0].patches) == 0 and len(marked.axes[0].patches) == 1
    box = marked.axes[0].patches[0]
    assert box.get_x() + box.get_width() == pytest.approx(0.3) and box.get_y() + box.get_height() == pytest.approx(0.3)
    assert "both < 0.3" in marked.axes[0].texts[0].get_text()
