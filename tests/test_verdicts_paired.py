"""vitnotes.evaluate.paired (chapter 09's verdicts) and the sanity rule of vitnotes.evaluate.sanity
(chapters 06 and 09) against independent computations: a hand loop for the paired mean and its
bootstrap interval, scipy's permutation test, a hand Holm, scipy's Spearman and skimage's SSIM."""

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import permutation_test, spearmanr
from skimage.metrics import structural_similarity

import vitnotes as vn
from vitnotes.evaluate.paired import PAIRED_RULE, holm, paired_verdicts, per_image, sign_flip_pvalues
from vitnotes.evaluate.sanity import SANITY_THRESHOLD, chance_abs_spearman, map_ssim, sanity_verdict, unit_maps
from vitnotes.evaluate.trust import leaders, metric_disagreements, scorecard, verdicts


def table_of(values, metric="srg", baseline="black", family="faithfulness"):
    """A per-image table of ``{method: values}`` as evaluation_table(per_image=True) makes it."""
    return vn.evaluate.interval_rows(values, metric, family=family, baseline=baseline, per_image=True)


def hand_bootstrap(d, n_boot=1000, seed=0, level=0.95):
    rng = np.random.default_rng(seed)
    means = [d[rng.integers(0, len(d), size=len(d))].mean() for _ in range(n_boot)]
    return np.percentile(means, [100 * (1 - level) / 2, 100 * (1 + level) / 2])


def test_paired_difference_interval_effect_and_wins_by_hand():
    rng = np.random.default_rng(3)
    base = rng.normal(0.5, 0.3, 24)
    a, b = base + rng.normal(0.1, 0.05, 24), base
    a[5] = np.nan  # an image without a value leaves the pair
    p = paired_verdicts(table_of({"a": a, "random": b}), against=("random",), n_boot=500)
    row = p.iloc[0]
    assert (row.method, row.other, row.metric, row.baseline) == ("a", "random", "srg", "black")
    d = (a - b)[~np.isnan(a)]
    assert row.n == 23 and row.difference == pytest.approx(d.mean())
    assert (row.low, row.high) == pytest.approx(tuple(hand_bootstrap(d, n_boot=500)))
    assert row.d_z == pytest.approx(d.mean() / d.std(ddof=1))
    assert row.wins == pytest.approx(np.mean(d > 0))
    assert row.verdict == "better" and row.p_adjusted == row.p  # one comparison: nothing to correct


@pytest.mark.parametrize("n", [6, 11])
def test_sign_flip_p_equals_scipys_exact_permutation_test(n):
    rng = np.random.default_rng(n)
    d = rng.normal(0.4, 1.0, n)
    want = permutation_test((d,), np.mean, permutation_type="samples", n_resamples=np.inf).pvalue
    assert sign_flip_pvalues(d)[0] == pytest.approx(want)
    # a NaN image is left out: the same p as the test on the defined images alone
    assert sign_flip_pvalues(np.append(d, np.nan))[0] == pytest.approx(want)


def test_sign_flip_monte_carlo_is_close_to_the_exact_p():
    rng = np.random.default_rng(0)
    d = rng.normal(0.25, 1.0, 20)  # 2**20 patterns > n_perm: Monte Carlo
    exact = permutation_test((d,), np.mean, permutation_type="samples", n_resamples=np.inf).pvalue
    got = sign_flip_pvalues(d, n_perm=20_000, seed=1)[0]
    assert abs(got - exact) < 0.01 and sign_flip_pvalues(d, n_perm=20_000, seed=1)[0] == got  # fixed seed
    assert sign_flip_pvalues(np.zeros(12))[0] == 1.0  # no difference at all


def test_holm_by_hand():
    p = np.array([0.01, 0.04, 0.03, 0.005, np.nan])
    got = holm(p)
    order = np.argsort(p[:4])
    want, running = np.empty(4), 0.0
    for k, i in enumerate(order):  # step down: the k-th smallest times (m - k), never decreasing
        running = max(running, min(1.0, p[i] * (4 - k)))
        want[i] = running
    assert np.allclose(got[:4], want) and np.isnan(got[4])
    assert np.allclose(got[:4], [0.03, 0.06, 0.06, 0.02])


def test_overlapping_intervals_with_a_clear_paired_difference():
    """Every image is better by a little: the two intervals overlap (the interval rule says tied),
    the paired test sees the difference on every image."""
    rng = np.random.default_rng(1)
    base = rng.uniform(0.0, 1.0, 30)
    t = table_of({"a": base + 0.05 + rng.normal(0, 0.005, 30), "random": base})
    assert verdicts(t).set_index("method").loc["a", "vs random"] == "tied"
    p = paired_verdicts(t)
    assert p.iloc[0].verdict == "better" and p.iloc[0].wins == 1.0 and p.iloc[0].low > 0


def test_separated_intervals_that_five_images_cannot_tell():
    """Five images, each clearly apart: the intervals separate, but no sign-flip p-value over five
    images can fall below 2 / 2**5 > 0.05, so the paired rule cannot tell."""
    rng = np.random.default_rng(2)
    t = table_of({"a": 1 + rng.normal(0, 0.01, 5), "random": rng.normal(0, 0.01, 5)})
    assert verdicts(t).set_index("method").loc["a", "vs random"] == "better"
    row = paired_verdicts(t).iloc[0]
    assert row.p == pytest.approx(2 / 32) and row.verdict == "cannot tell"


def test_the_correction_changes_a_verdict_at_the_margin():
    d = np.array([0.9, 0.8, 0.7, -0.2, 0.6, 0.5, -0.3, 0.4, 0.35, 0.3])  # exact p 18 / 1024
    p_one = sign_flip_pvalues(d)[0]
    assert p_one < 0.05 < 3 * p_one  # below alpha alone, above it once three such comparisons share the table
    base = np.linspace(0, 1, 10)
    one = paired_verdicts(table_of({"a": base + d, "random": base}))
    assert one.set_index("method").loc["a", "verdict"] == "better"
    three = paired_verdicts(table_of({"a": base + d, "b": base + d[::-1], "c": base + np.roll(d, 3), "random": base}))
    row = three.set_index("method").loc["a"]
    assert row.p == pytest.approx(p_one) and row.p_adjusted == pytest.approx(min(1, 3 * p_one))
    assert row.verdict == "cannot tell"


def test_direction_pairs_and_the_rule_once():
    rng = np.random.default_rng(4)
    base = rng.uniform(0.2, 0.8, 40)
    t = pd.concat(
        [
            table_of({"a": base - 0.1, "b": base + 0.1, "random": base}, metric="deletion_auc"),  # lower is better
            table_of({"a": base, "random": base + rng.normal(0, 0.01, 40)}, metric="srg"),
        ]
    )
    p = paired_verdicts(t, against=("random",), pairs=[("a", "b")])
    got = {(r.method, r.other, r.metric): r.verdict for r in p.itertuples()}
    assert got[("a", "random", "deletion_auc")] == "better" and got[("b", "random", "deletion_auc")] == "worse"
    assert got[("a", "b", "deletion_auc")] == "better" and got[("a", "random", "srg")] == "cannot tell"
    assert len(p) == 4 and p.attrs["comparisons"] == 4
    assert np.allclose(p["p_adjusted"], holm(p["p"]))  # one correction across the whole table
    everything = paired_verdicts(t, pairs="all")
    assert len(everything) == 4  # a-b, a-random, b-random on deletion; a-random on srg
    assert "Holm" in PAIRED_RULE and "0.05" in PAIRED_RULE
    long = per_image(t)
    assert len(long) == 5 * 40 and set(long.columns) == {"method", "family", "metric", "baseline", "image", "value"}
    with pytest.raises(ValueError, match="per-image"):
        paired_verdicts(t.drop(columns="values"))


def test_directions_for_any_measurement():
    """A metric without a direction is not compared; better= gives it one, and -1 turns the words around."""
    rng = np.random.default_rng(5)
    base = rng.uniform(0.2, 0.8, 30)
    t = table_of({"cam": base + 0.2, "area": base}, metric="mass on garment", baseline="", family="")
    assert len(paired_verdicts(t, against=("area",))) == 0
    up = paired_verdicts(t, against=("area",), better={"mass on garment": 1})
    down = paired_verdicts(t, against=("area",), better={"mass on garment": -1})
    assert up.iloc[0].verdict == "better" and down.iloc[0].verdict == "worse"
    assert up.iloc[0].difference == pytest.approx(0.2) and up.iloc[0].wins == 1.0 and down.iloc[0].wins == 0.0
    with pytest.raises(ValueError, match="better must map"):
        paired_verdicts(t, better={"mass on garment": 2})


def test_scorecard_leaders_and_contradictions_read_the_paired_verdicts():
    rng = np.random.default_rng(5)
    base = rng.uniform(0.2, 0.8, 32)
    t = pd.concat(
        [
            table_of({"a": base + 0.2, "b": base + 0.1, "random": base}, metric="srg"),
            table_of({"a": base + 0.1, "b": base - 0.1, "random": base}, metric="deletion_auc"),
        ]
    )
    p = paired_verdicts(t, against=("random",), pairs="all")
    card = scorecard(t, against=("random",), paired=p)
    assert card.loc["a", "better than random"] == 1 and card.loc["a", "worse than random"] == 1
    assert card.loc["b", "better than random"] == 2 and card.loc["a", "faithfulness columns"] == 2
    lead = leaders(t, paired=p)
    assert lead.loc["srg [black]", "best"] == "a" and bool(lead.loc["srg [black]", "clear"])
    _, contra = metric_disagreements(t, exclude=("random",), paired=p)
    assert len(contra) == 1 and set(contra.iloc[0][["better by first", "better by second"]]) == {"a", "b"}


# ------------------------------------------------------------------ the sanity rule
def sanity_of(trained, again):
    """The rule applied as the chapters apply it: bootstrap intervals of |Spearman| and SSIM."""
    rho = np.array([spearmanr(a.ravel(), b.ravel())[0] for a, b in zip(trained.numpy(), again.numpy())])
    unit = lambda m: (m - m.min()) / (m.max() - m.min())  # noqa: E731
    ssim = np.array(
        [
            structural_similarity(unit(a), unit(b), data_range=1.0, win_size=7)
            for a, b in zip(trained.double().numpy(), again.double().numpy())
        ]
    )
    ab, ss = vn.bootstrap(np.abs(rho)), vn.bootstrap(ssim)
    return sanity_verdict((ab.low, ab.high), (ss.low, ss.high)), rho, ssim


def test_sanity_rule_unchanged_inverted_and_independent_maps():
    torch.manual_seed(0)
    trained = torch.rand(40, 10, 10)
    word, rho, ssim = sanity_of(trained, trained.clone())
    assert word == "fails" and np.allclose(rho, 1) and np.allclose(ssim, 1)
    word, rho, ssim = sanity_of(trained, -trained)  # the ranking survives, inverted
    assert word == "fails" and np.allclose(rho, -1) and (ssim < 0).all()  # |rho| catches what SSIM does not
    word, rho, ssim = sanity_of(trained, torch.rand(40, 10, 10))
    assert word == "passes" and np.abs(rho).mean() == pytest.approx(chance_abs_spearman(100), abs=0.03)
    # map_ssim is skimage's SSIM on each map scaled to [0, 1]
    again = torch.rand(40, 10, 10)
    assert np.allclose(map_ssim(trained, again).numpy(), sanity_of(trained, again)[2])
    assert unit_maps(torch.ones(1, 3, 3)).abs().sum() == 0


def test_sanity_verdict_edges():
    t = SANITY_THRESHOLD
    assert sanity_verdict((0.05, t - 0.01), (-0.1, t - 0.01)) == "passes"
    assert sanity_verdict((0.05, t - 0.01), (0.1, t + 0.01)) == "cannot tell"  # SSIM not clearly low
    assert sanity_verdict((0.1, 0.3), (-0.1, 0.1)) == "cannot tell"
    assert sanity_verdict((t + 0.01, 0.5), (-0.1, 0.1)) == "fails"
    assert sanity_verdict((0.0, 0.1), (t + 0.01, 0.5)) == "fails"
    assert sanity_verdict((np.nan, np.nan), (0.0, 0.1)) == "cannot tell"
    assert "0.2" in vn.evaluate.SANITY_RULE
    with pytest.raises(ValueError, match="3x3"):
        map_ssim(torch.rand(2, 2, 2), torch.rand(2, 2, 2))
