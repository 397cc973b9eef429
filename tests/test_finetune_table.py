"""vn.evaluate.finetune_stats / vn.finetune_table (notebook 07) against naive computations on tiny random ViTs."""

import math

import numpy as np
import pytest
import torch
from conftest import make_vit
from scipy.stats import t as student_t

import vitnotes as vn
from vitnotes.evaluate.finetune import STATISTICS


@pytest.fixture
def tiny():
    torch.manual_seed(5)
    x = torch.randn(6, 3, 16, 16)
    masks = np.random.default_rng(0).integers(0, 6, size=(6, 16, 16))  # region codes; 2 = chirp
    return x, masks


def _naive(net, x, masks, layer0=0):
    """Per-image statistics from eager attention weights, by loops."""
    with torch.no_grad():
        att = net(pixel_values=x, output_attentions=True).attentions  # L x [batch, head, T, T]
    n, heads, tokens = x.shape[0], att[0].shape[1], att[0].shape[-1]
    out = {s: [] for s in STATISTICS}
    chirp = masks == vn.data.REGIONS.index("chirp")
    area = chirp.mean()
    for i in range(n):
        ent, top = [], []
        for h in range(heads):
            row = att[-1][i, h, 0, 1:].double()
            p = row / row.sum()
            ent.append(float(-(p * p.log()).sum()))
            top.append(float(p.sort(descending=True).values[:10].sum()))
        out[STATISTICS[0]].append(np.mean(ent))
        out[STATISTICS[1]].append(np.mean(top))
        r = torch.eye(tokens, dtype=torch.float64)
        for a in att:
            w = 0.5 * a[i].double().mean(0) + 0.5 * torch.eye(tokens, dtype=torch.float64)
            w = w / w.sum(-1, keepdim=True)
            r = w @ r
        p = r[0, 1:] / r[0, 1:].sum()
        out[STATISTICS[2]].append(float(-(p * p.log()).sum()))
        mass = 0.0
        for h in range(heads):
            row = att[layer0][i, h, 0, 1:].double()
            p = (row / row.sum()).reshape(4, 4)
            for pr in range(4):
                for pc in range(4):
                    mass += float(p[pr, pc]) * chirp[i, 4 * pr : 4 * pr + 4, 4 * pc : 4 * pc + 4].mean() / heads
        out[STATISTICS[3]].append(mass / area)
    return {k: np.array(v) for k, v in out.items()}


def test_stats_match_a_naive_loop(tiny):
    x, masks = tiny
    net = make_vit("eager", seed=1)
    got = vn.evaluate.finetune_stats(net, x, masks)
    want = _naive(net, x, masks)
    assert list(got.columns) == list(STATISTICS)
    for s in STATISTICS:
        np.testing.assert_allclose(got[s].to_numpy(), want[s], rtol=1e-4, atol=1e-6)


def test_one_run_intervals_are_bootstraps_over_images(tiny):
    x, masks = tiny
    before, after = make_vit("eager", seed=1), make_vit("eager", seed=2)
    t = vn.finetune_table(before, after, x, masks, n_boot=200).set_index(["statistic", "metric"])
    b, a = _naive(before, x, masks), _naive(after, x, masks)
    for s in STATISTICS:
        for metric, values in (("before", b[s]), ("after", a[s]), ("change", a[s] - b[s])):
            iv = vn.bootstrap(values, n_boot=200)
            row = t.loc[(s, metric)]
            np.testing.assert_allclose([row["value"], row["low"], row["high"]], [iv.value, iv.low, iv.high],
                                       rtol=1e-4, atol=1e-6)  # fmt: skip
            assert row["over"] == "images" and row["n"] == 6 and row["runs"] == 1


def test_two_runs_give_a_t_interval_over_runs(tiny):
    x, masks = tiny
    before, runs = make_vit("eager", seed=1), [make_vit("eager", seed=2), make_vit("eager", seed=3)]
    t = vn.finetune_table(before, runs, x, masks).set_index(["statistic", "metric"])
    b = _naive(before, x, masks)
    per_run = [_naive(m, x, masks) for m in runs]
    q = student_t.ppf(0.975, 1)
    for s in STATISTICS:
        means = np.array([r[s].mean() for r in per_run])
        for metric, v in (("after", means), ("change", means - b[s].mean())):
            half = q * v.std(ddof=1) / math.sqrt(2)
            row = t.loc[(s, metric)]
            np.testing.assert_allclose([row["value"], row["low"], row["high"]],
                                       [v.mean(), v.mean() - half, v.mean() + half], rtol=1e-4, atol=1e-6)  # fmt: skip
            assert row["over"] == "runs" and row["runs"] == 2
        assert t.loc[(s, "before"), "over"] == "images"  # one starting point: its interval stays over images
    shown = vn.evaluate.interval_table(t.reset_index(), index=("statistic",))
    assert list(shown.columns) == ["before", "after", "change"] and len(shown) == len(STATISTICS)


def test_bad_input():
    with pytest.raises(ValueError, match="at least 2 runs"):
        vn.evaluate.finetune.run_interval([1.0])
    net = make_vit("eager", seed=1)
    x = torch.randn(2, 3, 16, 16)
    with pytest.raises(ValueError, match="region codes"):
        vn.evaluate.finetune_stats(net, x, np.zeros((3, 16, 16), int))
    with pytest.raises(ValueError, match="no chirp"):
        vn.evaluate.finetune_stats(net, x, np.zeros((2, 16, 16), int))
    with pytest.raises(ValueError, match="non-empty"):
        vn.finetune_table(net, [], x)
