"""Notebooks 07-08: the fine-tuning starting point, the demo run, attention profiles with region
masses, head types and the per-head heatmap. Tiny random models only; no network."""

import math
import tempfile

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from conftest import make_vit
from matplotlib.figure import Figure

import vitnotes as vn
from vitnotes import train
from vitnotes.data.chirps import REGIONS


@pytest.fixture
def masks():
    rng = np.random.default_rng(0)
    return rng.integers(0, len(REGIONS), size=(5, 16, 16)).astype(np.uint8)


@pytest.fixture
def x5():
    torch.manual_seed(5)
    return torch.randn(5, 3, 16, 16)


@pytest.mark.parametrize("batch_size", [2, 16])
def test_attention_profile_equals_summary_and_brute_force_mass(vit, x5, masks, batch_size):
    prof = vn.profile.attention_profile(vit, x5, masks, batch_size=batch_size)
    att = vn.capture(vit, x5)
    ref = vn.cls_summary(att)
    assert list(prof[["layer", "head"]].itertuples(index=False)) == list(ref[["layer", "head"]].itertuples(index=False))
    for col in ("entropy", "entropy_norm", "top10", "top5pct", "distance_px", "cls_share"):
        np.testing.assert_allclose(prof[col], ref[col], rtol=1e-5, atol=1e-6, err_msg=col)
    # mass: a loop over images, heads and patches, counting each patch by its share of mask pixels
    grids = att.cls_grids().double()  # [layer, batch, head, 4, 4]
    for code, name in enumerate(REGIONS):
        expect = np.zeros((grids.shape[0], grids.shape[2]))
        for b in range(5):
            inside = masks[b] == code
            for r in range(4):
                for c in range(4):
                    share = inside[4 * r : 4 * r + 4, 4 * c : 4 * c + 4].mean()
                    expect += grids[:, b, :, r, c].numpy() * share / 5
        np.testing.assert_allclose(prof[f"mass_{name}"], expect.ravel(), rtol=1e-5, atol=1e-7, err_msg=name)
        assert prof.attrs["area"][name] == pytest.approx((masks == code).mean())
    total = prof[[f"mass_{n}" for n in REGIONS]].sum(1)
    np.testing.assert_allclose(total, 1.0, atol=1e-5)  # every pixel lies in exactly one region


def test_attention_profile_cls_only_and_no_masks(vit, x5):
    full = vn.profile.attention_profile(vit, x5)
    cls = vn.profile.attention_profile(vit, x5, full=False, batch_size=3)
    assert "distance_px" not in cls.columns and not any(c.startswith("mass_") for c in cls.columns)
    np.testing.assert_allclose(cls["entropy"], full["entropy"], rtol=1e-5)
    assert cls.attrs["images"] == 5 and cls.attrs["area"] == {}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(masks=np.zeros((4, 16, 16), np.uint8)), "batch=5"),
        (dict(masks=np.zeros((5, 16, 16), np.float32)), "integer region codes"),
        (dict(masks=np.full((5, 16, 16), 9, np.uint8)), "codes must lie"),
        (dict(k=99), "k must lie"),
        (dict(batch_size=0), "batch_size"),
    ],
)
def test_attention_profile_bad_input(vit, x5, kwargs, match):
    with pytest.raises(ValueError, match=match):
        vn.profile.attention_profile(vit, x5, **kwargs)


def test_attention_profile_refuses_a_cnn(resnet, x5):
    with pytest.raises(Exception, match="ViT"):
        vn.profile.attention_profile(resnet, x5)


def _profile(masses: list[dict], area: dict) -> pd.DataFrame:
    df = pd.DataFrame(
        [{"layer": 0, "head": h, **{f"mass_{r}": m.get(r, 0.0) for r in area}} for h, m in enumerate(masses)]
    )
    df.attrs["area"] = area
    return df


def test_head_types_by_enrichment_over_area():
    area = {"chirp": 0.05, "plot": 0.45, "text": 0.1, "colorbar": 0.1, "axes": 0.1, "background": 0.2}
    uniform = dict(area)  # mass = area share: enrichment 1 everywhere
    chirp = dict(area, chirp=0.20, plot=0.30)  # 4x on the chirp
    text = dict(area, text=0.35, background=0.0, chirp=0.0)  # 3.5x on text
    both = dict(area, text=0.25, colorbar=0.25, plot=0.15, background=0.0, chirp=0.0)  # 2.5x on both
    big = dict(area, text=0.19, colorbar=0.01)  # 1.9x: just under the threshold
    df = vn.profile.head_types(_profile([uniform, chirp, text, both, big], area))
    assert df["type"].tolist() == ["diffuse", "chirp", "text", "polysemantic", "diffuse"]
    assert df.loc[1, "enrich_chirp"] == pytest.approx(4.0) and df.loc[2, "enrich_text"] == pytest.approx(3.5)
    assert df.loc[4, "top_region"] == "text"
    lower = vn.profile.head_types(_profile([big], area), threshold=1.5)
    assert lower["type"].tolist() == ["text"] and lower.attrs["threshold"] == 1.5


def test_head_types_needs_masses_and_a_sensible_threshold(vit, x5):
    with pytest.raises(ValueError, match="pass masks"):
        vn.profile.head_types(vn.profile.attention_profile(vit, x5, full=False))
    area = dict.fromkeys(("chirp", "plot", "text", "colorbar", "axes"), 0.2)
    with pytest.raises(ValueError, match="threshold must exceed 1"):
        vn.profile.head_types(_profile([area], area), threshold=1.0)
    with pytest.raises(TypeError):
        vn.profile.head_types([1, 2, 3])


def test_head_heatmap_draws_every_cell():
    df = pd.DataFrame([{"layer": layer, "head": h, "v": layer + h / 10} for layer in range(3) for h in range(4)])
    fig = vn.show.head_heatmap(df, "v", scale=100, fmt=".0f")
    assert isinstance(fig, Figure)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert len(texts) == 12 and "120" in texts  # layer 1, head 2 -> 1.2 * 100
    with pytest.raises(ValueError, match="not in the table"):
        vn.show.head_heatmap(df, "missing")


@pytest.fixture
def base_folder(tmp_path):
    base = make_vit(seed=2, image_size=28, patch_size=4, num_channels=1)
    return vn.train.save(base, tmp_path / "base", vn.core.Preprocessing(28, (0.5,), (0.5,), 1)), base


def test_starting_point_is_the_transferred_base(base_folder):
    folder, base = base_folder
    start = train.starting_point(init=folder)
    assert isinstance(start, vn.core.Model) and not start.net.training
    g = start.geometry
    assert (g.image_size, g.channels, g.grid) == (56, 3, (14, 14))
    assert start.net.config.problem_type == "regression" and start.labels == list(vn.data.TARGET_NAMES)
    sb, ss = base.state_dict(), start.net.state_dict()
    blocks = [k for k in sb if ".layers." in k or k.startswith("vit.layernorm")]
    assert blocks and all(torch.equal(sb[k].float(), ss[k]) for k in blocks)
    w = sb["vit.embeddings.patch_embeddings.projection.weight"].float()
    torch.testing.assert_close(ss["vit.embeddings.patch_embeddings.projection.weight"], torch.cat([w / 3] * 3, 1))
    pos = sb["vit.embeddings.position_embeddings"].float()  # [1, 1 + 49, D]
    grid = pos[:, 1:].reshape(1, 7, 7, -1).permute(0, 3, 1, 2)
    grid = (
        F.interpolate(grid, size=(14, 14), mode="bicubic", align_corners=False).permute(0, 2, 3, 1).reshape(1, 196, -1)
    )
    torch.testing.assert_close(ss["vit.embeddings.position_embeddings"], torch.cat([pos[:, :1], grid], 1))
    assert ss["classifier.weight"].shape[0] == 3
    again = train.starting_point(init=folder)  # the new head is seeded: the same start every time
    assert torch.equal(again.net.classifier.weight, start.net.classifier.weight)
    with pytest.raises(ValueError, match="seed"):
        train.starting_point(init=folder, seed=-1)


def test_demo_finetune_runs_the_recipe_and_leaves_nothing(base_folder, tmp_path, monkeypatch):
    folder, _ = base_folder
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    before = dict(train.RECIPES["spectro-vit"])
    from vitnotes.train import loop

    taken, real_step = [], loop._step
    monkeypatch.setattr(loop, "_step", lambda *a: taken.append(1) or real_step(*a))
    res = train.demo_finetune(limit=4, init=folder)
    assert train.RECIPES["spectro-vit"] == before  # the recipe table is restored
    assert list(scratch.iterdir()) == []  # the temporary run folder is gone
    # every stage ran (4 images: one step per epoch) and the count says so
    assert res["steps"] == len(taken) == sum(s["epochs"] for s in res["recipe"]["stages"]) > 1
    assert res["settings"]["epochs"] == len(taken) and res["recipe"]["n_train"] == 4
    assert res["recipe"]["stages"][-1]["lr"] == before["stages"][-1]["lr"]
    assert "train_loss" in res["history"][-1] and all("mse" in h and "layers" in h for h in res["history"])
    assert set(res["metrics"]["r2"]) == set(vn.data.TARGET_NAMES) and math.isfinite(res["metrics"]["mse"])
    with pytest.raises(ValueError, match="limit"):
        train.demo_finetune(limit=0)


def test_demo_finetune_is_quiet(base_folder, capsys):
    folder, _ = base_folder
    with torch.no_grad():  # as in a notebook that switched gradients off: training still works
        res = train.demo_finetune(limit=4, init=folder)
    assert res["steps"] == sum(s["epochs"] for s in res["recipe"]["stages"])
    out = capsys.readouterr()
    assert out.out == ""


def test_show_regions_legend_gives_area_shares():
    ds = vn.data.spectrograms(1, seed=3, size=56)
    mask = np.asarray(ds[0]["mask"])
    fig = vn.show.show_regions(ds[0]["image"], mask)
    assert isinstance(fig, Figure)
    legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert legend[2] == f"chirp ({(mask == REGIONS.index('chirp')).mean():.0%})" and len(legend) == len(REGIONS)
    with pytest.raises(ValueError, match="differ in size"):
        vn.show.show_regions(np.zeros((28, 28, 3), np.uint8), mask)
    with pytest.raises(ValueError, match="2-D integer"):
        vn.show.show_regions(ds[0]["image"], mask.astype(float))


def test_head_heatmap_symlog_scale():
    df = pd.DataFrame(
        [{"layer": layer, "head": h, "v": (-1) ** h * 10.0 ** (layer - 1)} for layer in range(3) for h in range(2)]
    )
    fig = vn.show.head_heatmap(df, "v", symlog=0.1)
    norm = fig.axes[0].collections[0].norm
    assert type(norm).__name__ == "SymLogNorm" and norm.vmin == -10 and norm.vmax == 10
    with pytest.raises(ValueError, match="symlog"):
        vn.show.head_heatmap(df, "v", symlog=0)
