"""vn.evaluate.interval_rows (notebooks 03, 04): per-image values as evaluation_table rows with bootstrap intervals."""

import numpy as np
import pytest

import vitnotes as vn
from vitnotes.evaluate.summary import COLUMNS


def test_rows_are_means_with_percentile_bootstrap_intervals():
    rng = np.random.default_rng(1)
    values = {"a": rng.normal(size=30), "b": rng.normal(1.0, 2.0, size=30)}
    t = vn.evaluate.interval_rows(values, "mass", family="f", n_boot=300, seed=4)
    assert list(t.columns) == COLUMNS and list(t["method"]) == ["a", "b"]
    for name, v in values.items():
        idx = np.random.default_rng(4).integers(0, 30, size=(300, 30))  # the resamples, drawn by hand
        low, high = np.percentile(v[idx].mean(1), [2.5, 97.5])
        row = t.set_index("method").loc[name]
        np.testing.assert_allclose([row["value"], row["low"], row["high"]], [v.mean(), low, high])
        assert row["n"] == 30 and row["metric"] == "mass" and row["family"] == "f" and row["baseline"] == ""
    shown = vn.evaluate.interval_table(t)
    assert shown.loc["a", "mass"] == f"{values['a'].mean():.3f} [{t.loc[0, 'low']:.3f}, {t.loc[0, 'high']:.3f}]"


def test_bad_input():
    with pytest.raises(ValueError, match="non-empty"):
        vn.evaluate.interval_rows({}, "m")


def test_group_intervals_resample_each_group_separately():
    import pandas as pd

    rng = np.random.default_rng(2)
    df = pd.DataFrame({"ok": rng.random(40) < 0.7, "s": rng.normal(size=40)})
    df.loc[3, "s"] = np.nan  # left out
    t = vn.evaluate.group_intervals(df, "ok", ["s"], n_boot=200, seed=7).set_index("metric")
    a = df.loc[df["ok"], "s"].dropna().to_numpy()
    b = df.loc[~df["ok"], "s"].dropna().to_numpy()
    r = np.random.default_rng(7)
    ma, mb = [], []
    for _ in range(200):  # by hand: the first group, then the second, per resample
        ma.append(np.mean([a[i] for i in r.integers(0, len(a), len(a))]))
        mb.append(np.mean([b[i] for i in r.integers(0, len(b), len(b))]))
    ma, mb = np.array(ma), np.array(mb)
    for metric, value, boot in (("mean (ok)", a.mean(), ma), ("mean (not ok)", b.mean(), mb),
                                ("difference", a.mean() - b.mean(), ma - mb)):  # fmt: skip
        np.testing.assert_allclose(t.loc[metric, ["value", "low", "high"]].to_numpy(float),
                                   [value, *np.percentile(boot, [2.5, 97.5])])  # fmt: skip
    assert t.loc["mean (ok)", "n"] == len(a) and t.loc["difference", "n"] == len(a) + len(b)
    with pytest.raises(ValueError, match="boolean"):
        vn.evaluate.group_intervals(df, "s")
