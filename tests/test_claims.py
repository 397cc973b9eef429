"""vitnotes.evaluate.claims (notebook 10): per-image profiles against hand loops on a tiny random ViT,
per-image ablation losses against vn.ablate, the crossed bootstrap against a naive loop, the verdict rule."""

import math

import numpy as np
import pytest
import torch
from conftest import make_vit

import vitnotes as vn
from vitnotes.data.chirps import REGIONS
from vitnotes.evaluate import claims as C
from vitnotes.methods.rollout import rollout


def _hand_entropy(p):
    p = p / p.sum()
    return -sum(float(v) * math.log(float(v)) for v in p if v > 0)


def test_image_profile_matches_hand_loops(vit, pixels):
    rng = np.random.default_rng(0)
    masks = rng.integers(0, len(REGIONS), size=(3, 16, 16))
    out = C.image_profile(vit, pixels, masks, k=3, batch_size=2)  # two chunks: the chunk bookkeeping is exercised
    att = vn.capture(vit, pixels)  # [layer, image, head, T, T], T = 1 + 16
    assert out["entropy"].shape == (3, 3, 4) and out["outputs"].shape == (3, 5)
    centres = [(r * 4.0, c * 4.0) for r in range(4) for c in range(4)]
    code = REGIONS.index("chirp")
    for layer, i, h in [(0, 0, 0), (2, 2, 3), (1, 1, 2)]:
        a = att.probs[layer, i, h].double()
        cls = a[0, 1:] / a[0, 1:].sum()
        assert abs(out["entropy"][layer, i, h] - _hand_entropy(cls)) < 1e-5
        assert abs(out["entropy_norm"][layer, i, h] - _hand_entropy(cls) / math.log(16)) < 1e-5
        assert abs(out["top3"][layer, i, h] - float(cls.sort(descending=True).values[:3].sum())) < 1e-5
        dist = 0.0
        for q in range(16):
            row = a[1 + q, 1:] / a[1 + q, 1:].sum()
            dist += sum(float(row[j]) * math.dist(centres[q], centres[j]) for j in range(16)) / 16
        assert abs(out["distance_px"][layer, i, h] - dist) < 1e-4
        block = lambda r, c: masks[i, r * 4 : r * 4 + 4, c * 4 : c * 4 + 4]  # noqa: E731, B023
        share = [float((block(r, c) == code).mean()) for r in range(4) for c in range(4)]
        assert abs(out["mass_chirp"][layer, i, h] - sum(float(cls[j]) * share[j] for j in range(16))) < 1e-6
    assert np.allclose(out["area_chirp"], (masks == code).mean((1, 2)))
    roll = rollout(att)[:, 0, 1:].double()  # [image, patches]
    hand = [_hand_entropy(r) for r in roll]
    assert np.allclose(out["rollout_entropy"], hand, atol=1e-5)
    assert np.allclose(out["outputs"], vit(pixels).logits.detach().numpy(), atol=1e-5)


@torch.no_grad()
def test_head_losses_match_ablate(pixels):
    net = make_vit(num_labels=3, id2label=None, label2id=None, problem_type="regression")
    y = torch.randn(3, 3)
    heads = [(2, 3), (0, 1), (2, 0)]  # not in the sweep's order
    losses, base = C.head_losses(net, pixels, y, heads)
    assert losses.shape == (3, 3)
    for i in range(3):
        assert abs(base[i] - float(((net(pixels[i : i + 1]).logits - y[i]) ** 2).mean())) < 1e-6
        for j, head in enumerate(heads):
            with vn.ablate(net, [head]):
                hand = float(((net(pixels[i : i + 1]).logits - y[i]) ** 2).mean())
            assert abs(losses[i, j] - hand) < 1e-6
    with pytest.raises(ValueError, match="at least one"):
        C.head_losses(net, pixels, y, [])


def test_crossed_bootstrap_one_model_is_the_image_bootstrap():
    v = np.random.default_rng(1).normal(size=40)
    iv = C.crossed_bootstrap({"v": v[None]}, lambda m: float(m["v"]), n_boot=300, seed=5)
    ref = vn.bootstrap(v, n_boot=300, seed=5)
    assert (iv.value, iv.low, iv.high, iv.n) == pytest.approx((ref.value, ref.low, ref.high, ref.n))


def test_crossed_bootstrap_against_a_naive_loop():
    g = np.random.default_rng(2)
    a, b = g.normal(size=(3, 10, 2)), g.normal(size=(1, 10))  # three models; one shared (a starting point)
    stat = lambda m: float(m["a"][1] - m["b"])  # noqa: E731
    iv = C.crossed_bootstrap({"a": a, "b": b}, stat, n_boot=200, seed=7)
    rng, stats = np.random.default_rng(7), []
    for _ in range(200):
        ms, im = rng.integers(0, 3, size=3), rng.integers(0, 10, size=10)
        total = 0.0
        for s in ms:
            for i in im:
                total += a[s, i, 1]
        stats.append(total / 30 - np.mean([b[0, i] for i in im]))
    low, high = np.percentile(stats, [2.5, 97.5])
    assert iv.value == pytest.approx(a[..., 1].mean() - b.mean())
    assert (iv.low, iv.high) == pytest.approx((low, high))
    with pytest.raises(ValueError, match="same images"):
        C.crossed_bootstrap({"a": a, "b": g.normal(size=(2, 10))}, stat)


def test_verdict_rule_and_table():
    iv = lambda lo, hi: vn.evaluate.Interval((lo + hi) / 2, lo, hi, 10, 100, 0.95, 0)  # noqa: E731
    assert C.verdict(iv(-2, -1), "<", 0)[0] == "reproduced"
    assert C.verdict(iv(1, 2), ">", 0)[0] == "reproduced"
    assert C.verdict(iv(1, 2), "<", 0) == ("not reproduced", "the whole interval lies on the other side of 0")
    assert "cannot tell" in C.verdict(iv(-1, 1), "<", 0)[1]
    assert C.verdict("no such model", "<", 0) == ("not testable here", "no such model")
    with pytest.raises(ValueError, match="side"):
        C.verdict(iv(0, 1), "=", 0)
    measured = C.measure_claims({}, untestable={"polysemantic": "no criterion"})
    assert measured["polysemantic"] == "no criterion" and "missing" in measured["focus"]
    table = C.claims_table(measured)
    assert list(table.index) == list(C.SEED_CLAIMS) and (table["verdict"] == "not testable here").all()
    with pytest.raises(KeyError, match="no measurement"):
        C.claims_table({})


def test_claim_statistics_on_hand_made_means():
    layers, heads = 12, 2
    before = np.zeros((1, 4, layers, heads))
    after = before.copy()
    after[..., -1, :] = -0.5  # only the last layer changes
    m = C.measure_claims({"before/entropy_norm": before, "after/entropy_norm": after}, n_boot=50)
    assert m["focus"].value == pytest.approx(-0.5) and m["focus"].low == pytest.approx(-0.5)
    assert m["last_most"].value == pytest.approx(0.5) and m["early_still"].value == pytest.approx(-0.5 / 4)
    loss = np.ones((1, 3, len(C.ABLATED_LAYERS), heads))
    loss[..., C.ABLATED_LAYERS.index(5), :] = 1.01  # layer 5's heads: +1 %
    m = C.measure_claims({"ablation/loss": loss, "ablation/base": np.ones((1, 3))}, n_boot=20)
    assert m["ablation_depth"].value == pytest.approx(1.0) and m["ablation_depth_0"].value == pytest.approx(0.0)


def test_stack_profiles_shapes_and_errors(vit, pixels):
    p = C.image_profile(vit, pixels)
    y = np.zeros((3, 5))
    v = C.stack_profiles("after", [p, p], targets=y)
    assert v["after/entropy"].shape == (2, 3, 3, 4) and v["after/rollout_entropy"].shape == (2, 3)
    assert np.allclose(v["after/entropy"][1, 2, 1], p["entropy"][1, 2])
    assert np.allclose(v["after/mse"][0], (p["outputs"] ** 2).mean(-1)) and v["after/mse_mean"].shape == (1, 3)
    with pytest.raises(ValueError, match="do not match"):
        C.stack_profiles("after", [p], targets=np.zeros((3, 2)))


def test_chirp_claim_is_the_share_of_heads_above_a_half_by_hand():
    mass = np.zeros((1, 4, 12, 2))  # [model, image, layer, head]
    mass[0, :, 5, 0] = 0.9  # layer 6 (1-based), head 0: mean 0.9 > 0.5
    mass[0, :2, 6, 1] = 1.0  # layer 7, head 1: mean 0.5, not above
    mass[0, :, 11, :] = 1.0  # layer 12: outside layers 6-11
    m = C.measure_claims({"after/mass_chirp": mass}, n_boot=20)
    assert m["chirp_heads"].value == pytest.approx(1 / 12)  # 1 of the 6 x 2 heads of layers 6-11
    assert C.SEED_CLAIMS["chirp_heads"]["needs"] == ("after/mass_chirp",) and C.EXCLUSIVE == 0.5


def test_claims_over_runs_use_the_t_interval_over_runs():
    from scipy.stats import t

    before = np.zeros((1, 5, 12, 2))
    after = np.zeros((3, 5, 12, 2))
    for r, d in enumerate([-0.1, -0.2, -0.4]):
        after[r, :, -1, :] = d  # each run's last-layer change
    m = C.measure_claims({"before/entropy_norm": before, "after/entropy_norm": after})
    iv = m["focus"]
    assert isinstance(iv, C.RunInterval) and iv.runs == 3 and iv.n == 5
    assert iv.per_run == pytest.approx((-0.1, -0.2, -0.4))
    v = np.array([-0.1, -0.2, -0.4])
    half = t.ppf(0.975, 2) * v.std(ddof=1) / math.sqrt(3)
    assert (iv.value, iv.low, iv.high) == pytest.approx((v.mean(), v.mean() - half, v.mean() + half))
    table = C.claims_table(m)
    assert table.loc["focus", "over"] == "3 runs" and table.loc["focus", "runs"] == 3


def test_seed_size_rule():
    iv = lambda lo, hi: vn.evaluate.Interval((lo + hi) / 2, lo, hi, 10, 100, 0.95, 0)  # noqa: E731
    assert C.seed_size(iv(-0.4, -0.2), -0.3) == "of the seed's size"
    assert C.seed_size(iv(-0.25, -0.18), -0.33) == "smaller"
    assert C.seed_size(iv(0.4, 0.5), 0.3) == "larger"
    assert C.seed_size(iv(0.01, 0.02), -0.3) == "opposite"
    assert C.seed_size(iv(-0.1, 0.1), 0.05) == "cannot tell" and C.seed_size(iv(-0.1, 0.1), 0.3) == "cannot tell"
    assert C.seed_size(iv(0, 1), None) == "" and C.seed_size("not testable", 0.3) == ""
    assert C.seed_size(iv(0.03, 0.07), 0.18, threshold=1.0) == "larger"  # error ratio: further below 1 than the seed
    assert C.seed_size(iv(0.5, 0.9), 0.18, threshold=1.0) == "smaller"
