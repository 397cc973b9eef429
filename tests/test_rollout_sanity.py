"""Notebooks 05-06: randomised copies, cards, analytic cost, rollout by depth, explanation maps and
the randomisation cascade, each against an independent computation. Tiny random models only."""

import copy

import numpy as np
import pytest
import torch
from conftest import make_vit

import vitnotes as vn
from vitnotes.core.model import geometry
from vitnotes.methods.gradient_rollout import gradient_rollout
from vitnotes.methods.rollout import rollout


# --------------------------------------------------------------------------- randomized
def _blocks(net):
    return net.vit.layers


def _same(m1, m2):
    return all(torch.equal(a, b) for a, b in zip(m1.parameters(), m2.parameters(), strict=True))


def test_randomized_reinitialises_exactly_the_top(vit):
    before = copy.deepcopy(vit)
    new = vn.interventions.randomized(vit, 1, seed=3)
    assert _same(vit, before)  # the input model is untouched
    assert _same(_blocks(new)[0], _blocks(vit)[0])  # below from_layer: trained weights kept
    assert _same(new.vit.embeddings, vit.vit.embeddings)
    for i in (1, 2):
        blk = _blocks(new)[i]
        assert not torch.equal(blk.attention.q_proj.weight, _blocks(vit)[i].attention.q_proj.weight)
        assert torch.all(blk.attention.q_proj.bias == 0) and torch.all(blk.mlp.fc1.bias == 0)
        assert torch.all(blk.layernorm_before.weight == 1) and torch.all(blk.layernorm_before.bias == 0)
    assert not torch.equal(new.classifier.weight, vit.classifier.weight)
    assert torch.all(new.vit.layernorm.weight == 1)


def test_randomized_draws_from_the_initial_distribution():
    net = make_vit(hidden_size=64, intermediate_size=256, initializer_range=0.05)
    new = vn.interventions.randomized(net, 0, seed=0)
    w = torch.cat([p.detach().flatten() for n, p in _blocks(new).named_parameters() if p.ndim == 2])
    assert abs(float(w.mean())) < 0.005
    assert abs(float(w.std()) - 0.05) < 0.003


def test_randomized_cascade_shares_random_blocks_and_seed_matters(vit):
    a, b = vn.interventions.randomized(vit, 2, seed=0), vn.interventions.randomized(vit, 0, seed=0)
    assert _same(_blocks(a)[2], _blocks(b)[2])  # block 2 is the same random draw in both cascade steps
    assert _same(a.classifier, b.classifier)
    c = vn.interventions.randomized(vit, 2, seed=1)
    assert not torch.equal(_blocks(a)[2].attention.q_proj.weight, _blocks(c)[2].attention.q_proj.weight)
    d = vn.interventions.randomized(vit, 2, seed=0)
    assert _same(a, d)  # deterministic


def test_randomized_head_only_embeddings_and_model_wrapper(vit, pixels):
    head = vn.interventions.randomized(vit, vit.config.num_hidden_layers, seed=0)
    assert _same(_blocks(head), _blocks(vit)) and not torch.equal(head.classifier.weight, vit.classifier.weight)
    att_a, att_b = vn.capture(vit, pixels), vn.capture(head, pixels)
    assert torch.allclose(att_a.probs, att_b.probs)  # attention never reads the classifier
    full = vn.interventions.randomized(vit, 0, seed=0, embeddings=True)
    assert not torch.equal(full.vit.embeddings.cls_token, vit.vit.embeddings.cls_token)
    assert not torch.equal(
        full.vit.embeddings.patch_embeddings.projection.weight, vit.vit.embeddings.patch_embeddings.projection.weight
    )
    model = vn.core.Model(net=vit, geometry=geometry(vit), labels=["a"] * 5, preprocessing=None, name="tiny")
    wrapped = vn.interventions.randomized(model, -1, seed=0)
    assert isinstance(wrapped, vn.core.Model) and "blocks 2..2" in wrapped.name
    assert _same(_blocks(wrapped.net)[1], _blocks(vit)[1])


@pytest.mark.parametrize("bad,err", [(4, IndexError), (-4, IndexError), (1.5, TypeError), (True, TypeError)])
def test_randomized_bad_layers(vit, bad, err):
    with pytest.raises(err):
        vn.interventions.randomized(vit, bad)


def test_randomized_bad_seed_and_cnn(vit, resnet):
    with pytest.raises(ValueError, match="seed"):
        vn.interventions.randomized(vit, 0, seed=-1)
    with pytest.raises(TypeError, match="ViT"):
        vn.interventions.randomized(resnet, 0)


# --------------------------------------------------------------------------- cards and cost
def test_card_reads_the_zoo_and_rejects_others():
    names = vn.zoo_names()
    if names:
        c = vn.card(names[0])
        assert c["name"] == names[0] and "metrics" in c
    with pytest.raises(ValueError, match="not a zoo model"):
        vn.card("google/vit-base-patch16-224")


def _count_flops(net, x):
    from torch.utils.flop_counter import FlopCounterMode

    with vn.core.eager_attention(net), FlopCounterMode(display=False) as counter, torch.no_grad():
        net(x, interpolate_pos_encoding=x.shape[-1] != net.config.image_size)
    return counter.get_total_flops()


@pytest.mark.parametrize("kw", [{}, dict(image_size=32, patch_size=8, hidden_size=32, num_attention_heads=2)])
def test_vit_cost_matches_torch_flop_counter(kw):
    net = make_vit("eager", **kw)
    size = net.config.image_size
    got = vn.vit_cost(net)
    assert got["flops"] == _count_flops(net, torch.randn(1, 3, size, size))
    g = geometry(net)
    assert got["tokens"] == g.tokens and got["attention_entries"] == g.heads * g.tokens**2


def test_vit_cost_other_size_and_errors(vit, resnet):
    big = vn.vit_cost(vit, image_size=32)
    assert big["patches"] == 64 and big["tokens"] == 65
    assert big["flops"] == _count_flops(vit, torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match="multiple"):
        vn.vit_cost(vit, image_size=18)
    with pytest.raises(TypeError, match="ViT"):
        vn.vit_cost(resnet)


def test_timed_predict_returns_the_logits(vit, pixels):
    logits, seconds = vn.evaluate.timed_predict(vit, pixels, batch_size=2)
    with torch.no_grad():
        assert torch.allclose(logits, vit(pixels).logits, atol=1e-6)
    assert seconds > 0
    with pytest.raises(ValueError, match="batch_size"):
        vn.evaluate.timed_predict(vit, pixels, batch_size=0)


# --------------------------------------------------------------------------- rollout by depth
def test_rollout_end_layer_matches_a_slice(vit, pixels):
    att = vn.capture(vit, pixels)
    for end in range(3):
        assert torch.allclose(rollout(att, end_layer=end), rollout(att.probs[: end + 1]), atol=1e-6)
    with pytest.raises(ValueError, match="before"):
        rollout(att, start_layer=2, end_layer=1)
    with pytest.raises(IndexError):
        rollout(att, end_layer=3)


def test_rollout_by_depth_against_loops(vit, pixels):
    att = vn.capture(vit, pixels)
    df = vn.evaluate.rollout_by_depth(att, discard_ratio=0.3)
    assert list(df["end_layer"]) == [0, 1, 2]
    assert df["agreement"].iloc[-1] == pytest.approx(1.0)
    for end in range(3):
        r = rollout(att, end_layer=end, discard_ratio=0.3).double().numpy()
        spread, diag = [], []
        for b in range(r.shape[0]):
            rows = r[b, :, 1:] / r[b, :, 1:].sum(-1, keepdims=True)
            spread += [0.5 * np.abs(rows[j] - rows[0]).sum() for j in range(1, rows.shape[0])]
            diag += [rows[j, j - 1] for j in range(1, rows.shape[0])]
        assert df["row_spread"].iloc[end] == pytest.approx(np.mean(spread), abs=1e-6)
        assert df["identity_share"].iloc[end] == pytest.approx(np.mean(diag), abs=1e-6)


def test_rollout_collapses_when_attention_is_uniform():
    """Uniform attention U: A = (I + U) / 2, so A^k = 2^-k I + (1 - 2^-k) U (U is idempotent)."""
    t, n_layers = 5, 6
    a = torch.full((n_layers, 1, 2, t, t), 1.0 / t)
    eye, u = torch.eye(t, dtype=torch.float64), torch.full((t, t), 1.0 / t, dtype=torch.float64)
    c = 0.5**n_layers
    assert torch.allclose(rollout(a)[0].double(), c * eye + (1 - c) * u, atol=1e-6)
    att = vn.core.Attention(
        probs=a, layers=list(range(n_layers)), geometry=geometry(make_vit()), grid=(2, 2), cls_only=False
    )
    df = vn.evaluate.rollout_by_depth(att)
    for k in range(1, n_layers + 1):
        diag, off = 0.5**k + (1 - 0.5**k) / t, (1 - 0.5**k) / t
        share = diag / (diag + (t - 2) * off)  # a patch row renormalised over the t - 1 patches
        assert df["identity_share"].iloc[k - 1] == pytest.approx(share, abs=1e-6)
    assert df["row_spread"].is_monotonic_decreasing


def test_attention_flow_grid_shape_and_sum(vit, pixels):
    att = vn.capture(vit, pixels)
    g = vn.attention_flow_grid(att)
    assert g.shape == (3, 4, 4)
    assert torch.allclose(g.sum((-2, -1)), torch.ones(3), atol=1e-5)
    with pytest.raises(TypeError, match="Attention"):
        vn.attention_flow_grid(att.probs)


# --------------------------------------------------------------------------- sanity maps
def test_explanation_maps_equal_the_separate_functions(vit, pixels):
    maps = vn.evaluate.explanation_maps(vit, pixels, [0, 1, 2], batch_size=2)
    att = vn.capture(vit, pixels)
    assert torch.allclose(maps["rollout"], vn.rollout_grid(att), atol=1e-5)
    assert torch.allclose(maps["last layer"], att.cls_grid(-1).mean(1), atol=1e-5)
    assert torch.allclose(maps["gradient rollout"], gradient_rollout(vit, pixels, [0, 1, 2]), atol=1e-5)


def test_cascading_randomization_table(vit, pixels):
    df, maps = vn.evaluate.cascading_randomization(vit, pixels, 1, from_layers=[3, 1], seed=0)
    assert list(maps) == ["trained", "head", "head + blocks 1-2", "all + embeddings"]
    assert len(df) == 4 * 3
    trained = df[df["step"] == "trained"]
    assert np.allclose(trained["spearman"], 1.0) and np.allclose(trained["topk_overlap"], 1.0)
    head = df[df["step"] == "head"].set_index("method")
    assert head.loc["rollout", "spearman"] == pytest.approx(1.0)  # attention never reads the classifier
    assert head.loc["last layer", "spearman"] == pytest.approx(1.0)
    rho = vn.stats.rank_correlation(maps["head + blocks 1-2"]["rollout"], maps["trained"]["rollout"])
    row = df[(df["step"] == "head + blocks 1-2") & (df["method"] == "rollout")].iloc[0]
    assert row["spearman"] == pytest.approx(float(rho.mean()), abs=1e-6)
    with torch.no_grad():
        acc = float((vn.interventions.randomized(vit, 1, 0)(pixels).logits.argmax(-1) == 1).double().mean())
    assert row["accuracy"] == pytest.approx(acc)
    assert df.attrs["images"] == 3
    assert vn.show.cascade_plot(df, {"rollout": 0.1}) is not None
    assert vn.show.cascade_panel(np.zeros((16, 16, 3), np.uint8), maps) is not None


def test_cascading_randomization_bad_input(vit, pixels):
    with pytest.raises(ValueError, match="from_layers"):
        vn.evaluate.cascading_randomization(vit, pixels, from_layers=[4])
    with pytest.raises(ValueError, match="topk_frac"):
        vn.evaluate.cascading_randomization(vit, pixels, topk_frac=0)
    with pytest.raises(ValueError, match="column"):
        vn.show.cascade_plot(vn.cls_summary(vn.capture(vit, pixels)))


def test_cascade_intervals_against_single_cascades(vit):
    """Each seed's per-image values equal that seed's own cascade; the table averages over seeds
    per image, then bootstraps over images; the reference row compares each image with the next."""
    torch.manual_seed(0)
    x = torch.randn(5, 3, 16, 16)
    table, per_image, maps = vn.evaluate.cascade_intervals(vit, x, 1, from_layers=[3, 1], seeds=[0, 4], n_boot=300)
    assert table.attrs["images"] == 5 and table.attrs["seeds"] == [0, 4]
    for seed in (0, 4):
        _, own = vn.evaluate.cascading_randomization(vit, x, 1, from_layers=[3, 1], seed=seed)
        for step in ("head", "head + blocks 1-2", "all + embeddings"):
            got = per_image.query("seed == @seed and step == @step and method == 'rollout'")["spearman"].to_numpy()
            want = vn.stats.rank_correlation(own[step]["rollout"], own["trained"]["rollout"]).numpy()
            assert np.allclose(got, want, atol=1e-6), (seed, step)
    g = per_image.query("step == 'head + blocks 1-2' and method == 'last layer'")
    per_img = g.groupby("image")["spearman"].mean().to_numpy()
    row = table.query("step == 'head + blocks 1-2' and method == 'last layer'").iloc[0]
    iv = vn.bootstrap(per_img, n_boot=300)
    assert (row.spearman, row.low, row.high, row.n) == pytest.approx((iv.value, iv.low, iv.high, 5))
    by_seed = g.groupby("seed")["spearman"].mean()
    assert (row.seed_min, row.seed_max) == pytest.approx((by_seed.min(), by_seed.max()))
    head = table.query("step == 'head' and method == 'rollout'").iloc[0]  # a map that never reads the head
    assert head.spearman == pytest.approx(1.0) and head.seed_min == pytest.approx(1.0)
    ref = table.query("step == 'trained, another image' and method == 'rollout'").iloc[0]
    t = maps["trained"]["rollout"]
    assert ref.spearman == pytest.approx(float(vn.stats.rank_correlation(t, t.roll(1, 0)).mean()), abs=1e-6)
    assert set(maps) == {"trained", "head", "head + blocks 1-2", "all + embeddings"}
    # Adebayo et al.'s comparison per image (|Spearman|, SSIM), averaged over seeds, judged by one rule
    g = per_image.query("step == 'head + blocks 1-2' and method == 'last layer'")
    seed0 = g[g["seed"] == 0].sort_values("image")
    _, own0 = vn.evaluate.cascading_randomization(vit, x, 1, from_layers=[3, 1], seed=0)
    want = vn.evaluate.map_ssim(own0["head + blocks 1-2"]["last layer"], own0["trained"]["last layer"]).numpy()
    assert np.allclose(seed0["ssim"].to_numpy(), want) and np.allclose(seed0["abs_spearman"], seed0["spearman"].abs())
    ab, ss = (vn.bootstrap(g.groupby("image")[c].mean().to_numpy(), n_boot=300) for c in ("abs_spearman", "ssim"))
    assert (row.abs_spearman, row.abs_low, row.abs_high) == pytest.approx((ab.value, ab.low, ab.high))
    assert (row.ssim, row.ssim_low, row.ssim_high) == pytest.approx((ss.value, ss.low, ss.high))
    assert row.sanity == vn.sanity_verdict((ab.low, ab.high), (ss.low, ss.high))
    assert head.sanity == "fails" and ref.sanity == ""  # unchanged by the head: fails; the reference: no verdict
    with pytest.raises(ValueError, match="seeds"):
        vn.evaluate.cascade_intervals(vit, x, seeds=[1, 1])


def test_agreement_intervals_by_hand():
    torch.manual_seed(1)
    ref = torch.rand(6, 4, 4)
    maps = {"close": ref + 0.1 * torch.rand(6, 4, 4), "noise": torch.rand(6, 4, 4)}
    t = vn.evaluate.agreement_intervals(maps, ref, against="noise", n_boot=400)
    close = vn.stats.rank_correlation(maps["close"], ref).numpy()
    noise = vn.stats.rank_correlation(maps["noise"], ref).numpy()
    iv, d = vn.bootstrap(close, n_boot=400), vn.bootstrap(close - noise, n_boot=400)
    r = t.set_index("map")
    assert (r.loc["close", "spearman"], r.loc["close", "low"], r.loc["close", "high"]) == pytest.approx(
        (iv.value, iv.low, iv.high)
    )
    assert (r.loc["close", "diff"], r.loc["close", "diff_low"], r.loc["close", "diff_high"]) == pytest.approx(
        (d.value, d.low, d.high)
    )
    assert np.isnan(r.loc["noise", "diff"]) and r.loc["close", "n"] == 6
    with pytest.raises(ValueError, match="is not one of the maps"):
        vn.evaluate.agreement_intervals(maps, ref, against="random")
