# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 08 · Which heads does the model need?
#
# Attention maps show where a head looks, not whether the model uses what it sees. Ablation
# asks the second question directly: zero one head's output, run the model, and measure how
# much worse the loss gets. Doing this for every head gives a map of what the model needs.
#
# A study of ViTs fine-tuned on spectrogram images with irrelevant content (axis labels,
# titles, colour bars) — the setup `spectro-vit` reproduces, see the book's references —
# reports that ablating a head of the early layers 1-3 raises the MSE by 0.11 % on average
# (sd 0.09 %), while deeper heads matter more, e.g. layer 6 at 0.34 % (sd 0.02 %), three
# times as much. It also describes heads by what they attend to: chirp-focused heads in the
# intermediate and late layers, and text or edge detectors among the early ones. We run the
# same experiment on `spectro-vit`, sort its heads with the ground-truth masks, and then
# repeat the sweep on the Fashion-MNIST classifier it was fine-tuned from.

# %% tags=["remove-cell"]
# Binder and Colab: install vitnotes when it is missing (here, and wherever it is installed, a no-op).
import importlib.util, subprocess, sys  # noqa: E401
if importlib.util.find_spec("vitnotes") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "vitnotes @ git+https://github.com/vitnotes/vitnotes"], check=True)

# %%
import numpy as np
import pandas as pd
import torch

import vitnotes as vn
from vitnotes import train

vn.setup(seed=0)
_ = torch.set_grad_enabled(False)  # we only read the models here

# %%
RECIPE = vn.pick("spectro-vit", hub="spectro-vit-b16")  # the hub recipe: ViT-B/16 fine-tuned on spectrograms
spectro = train.trained(RECIPE)
fmnist = vn.load(vn.pick("fmnist-vit-p4", hub="google/vit-base-patch16-224"))  # the model it started from
spectro, fmnist

# %% [markdown]
# ## Ablating every head of `spectro-vit`
#
# `vn.ablate` zeros a head's slice of the attention output just before the output projection
# (transformers 5 dropped `head_mask`); `vn.sweep` does this for each of the 144 heads alone
# and returns the loss and its relative increase over the intact model. Its fast path
# computes the residual stream entering a layer once for all of that layer's heads and runs
# only the rest of the network per head, with the same losses as one full forward per head.
# That is still about 66 full forward passes per image, so we use a modest number of test
# spectrograms.

# %%
N_SPECTRO = 32
x, y = train.spectro_split("test", N_SPECTRO, RECIPE)  # pixel_values [N, 3, 56, 56], z-scored targets [N, 3]
size = spectro.geometry.image_size
masks = np.stack(vn.data.spectrograms(N_SPECTRO, seed=3, size=size)["mask"])  # [N, 56, 56] region codes
sweep = vn.sweep(spectro, x, y, progress=vn.show_progress())  # MSE, from the model's problem_type
print(f"{sweep.attrs['n']} images, loss {sweep.attrs['loss']}, intact MSE {sweep.attrs['baseline']:.4f}, "
      f"{len(sweep)} heads ablated one at a time")

# %%
sweep["increase (%)"] = 100 * sweep["rel_increase"]
vn.head_heatmap(sweep, "increase (%)", fmt=".2f", symlog=0.1, label="MSE increase when the head is zeroed (%, symlog)")

# %% [markdown]
# Most cells are small; a few heads of layer 0 are not: zeroing one of them raises the MSE by
# tens of percent. Some cells are negative: zeroing those heads makes the model slightly
# *better* on these images. Per layer (mean, standard deviation across the 12 heads, the
# largest and the smallest single head):

# %%
per_layer = sweep.groupby("layer")["increase (%)"].agg(["mean", "std", "max", "min"])
worst = sweep.loc[sweep["increase (%)"].idxmax()]
vn.check(worst["layer"] == 0 and (sweep["increase (%)"] < 0).any(), "the most needed head is in layer 0; some heads help when zeroed")
vn.check(per_layer.loc[1:, "max"].max() < worst["increase (%)"] / 5, "layer 0's worst head dwarfs all others")
print(f"most needed head: layer {int(worst['layer'])}, head {int(worst['head'])} (+{worst['increase (%)']:.1f} % MSE); "
      f"{int((sweep['increase (%)'] < 0).sum())} heads lower the MSE when zeroed")
per_layer.round(3)

# %% [markdown]
# ## Against the paper's numbers
#
# The paper numbers its layers from 1, we from 0, so its "layers 1-3" are our layers 0-2 and
# its "layer 6" is our layer 5. (Read with 0-based numbers instead, its claim would be about
# our layers 1-3 and 6; both readings are in the table.)

# %%
def layer_stats(layers):
    v = sweep.loc[sweep["layer"].isin(layers), "increase (%)"]
    return {"mean (%)": v.mean(), "sd (%)": v.std()}


compare = pd.DataFrame({
    "paper": {"early mean (%)": 0.11, "early sd (%)": 0.09, "layer 6 mean (%)": 0.34, "layer 6 sd (%)": 0.02},
    "ours, 1-based reading (0-2 vs 5)": {
        "early mean (%)": layer_stats([0, 1, 2])["mean (%)"], "early sd (%)": layer_stats([0, 1, 2])["sd (%)"],
        "layer 6 mean (%)": layer_stats([5])["mean (%)"], "layer 6 sd (%)": layer_stats([5])["sd (%)"]},
    "ours, 0-based reading (1-3 vs 6)": {
        "early mean (%)": layer_stats([1, 2, 3])["mean (%)"], "early sd (%)": layer_stats([1, 2, 3])["sd (%)"],
        "layer 6 mean (%)": layer_stats([6])["mean (%)"], "layer 6 sd (%)": layer_stats([6])["sd (%)"]},
})
compare.loc["deep / early"] = compare.loc["layer 6 mean (%)"] / compare.loc["early mean (%)"]
compare.round(3)

# %% [markdown]
# Our model disagrees with the paper, in both readings: its early heads matter *more* than
# its deep ones, not three times less. The mean increase falls with depth, from layer 0
# (where a few heads carry the task) to a few hundredths of a percent in the second half of
# the network. The deep layers' spread across heads is also much larger than the paper's
# 0.02 %, relative to their mean.

# %%
early_ours, deep_ours = layer_stats([0, 1, 2])["mean (%)"], layer_stats([5])["mean (%)"]
late = per_layer.loc[6:11, "mean"].mean()
top_layer = int(per_layer["mean"].idxmax())
vn.check((compare.loc["deep / early", compare.columns[1:]] < 1).all(), "deep heads matter less than early ones (the opposite of the paper)")
vn.check(top_layer == 0 and per_layer.loc[6:11, "mean"].max() < per_layer.loc[0:2, "mean"].min(), "layer 0 matters most; every late layer less than every early one")
vn.check((per_layer.loc[6:11, "std"] > per_layer.loc[6:11, "mean"].abs() / 2).all(), "late layers' spread across heads exceeds half their mean")
print(f"mean increase: layers 0-2 {early_ours:.3f} %, layer 5 {deep_ours:.3f} %, layers 6-11 {late:.3f} %")
print(f"layer with the largest mean increase: {top_layer} ({per_layer.loc[top_layer, 'mean']:.3f} %)")

# %% [markdown]
# ## What kind of head is it?
#
# The masks say, for every pixel, whether it is chirp, the rest of the spectrogram ("plot"),
# text, colour bar, axes or background. For each head, `vn.attention_profile` measures the
# share of its CLS attention that lands in each region (mean over the same images), and
# `vn.head_types` divides it by the region's share of the pixels: the **enrichment**, 1 for a
# head that spreads its attention uniformly, whatever the region's size. A region counts for
# a head when its enrichment is at least 2 (the head gives it twice its area share). A head
# is then a *chirp* head, a *text*, *colorbar*, *axes* or *plot* detector when exactly one
# region counts, *polysemantic* when two or more do, and *diffuse* when none does. The
# threshold is a choice: the table after this one shows how the counts move with it.

# %%
profile = vn.attention_profile(spectro, x, masks, full=False)
types = vn.head_types(profile, threshold=2.0)
print("area shares:", ", ".join(f"{r} {a:.3f}" for r, a in profile.attrs["area"].items()))
pd.crosstab(types["layer"], types["type"]).T

# %%
pd.DataFrame({t: vn.head_types(profile, threshold=t)["type"].value_counts() for t in (1.5, 2.0, 3.0)}).fillna(0).astype(int)

# %% [markdown]
# Most heads are diffuse at this threshold: their CLS attention is spread over the image
# roughly in proportion to area. The chirp heads sit in layer 0, not in the intermediate
# and late layers where the paper found them; besides them, a few heads pick out the colour
# bar, and no head is a text detector at a threshold of 2. At the looser threshold of 1.5 a
# few late heads lean toward the chirp as well, but none gives it twice its area share.
# (We sort heads by their CLS row only, the query that feeds the regression head; the
# paper looked at attention maps more broadly.)

# %%
counts = types["type"].value_counts()
chirp_layers = sorted(types.loc[types["type"] == "chirp", "layer"].unique().tolist())
loose = vn.head_types(profile, threshold=1.5)
vn.check(counts.get("diffuse", 0) > len(types) / 2, "most heads are diffuse")
vn.check(chirp_layers and chirp_layers[0] == 0 and types.query("type == 'chirp' and layer >= 6").empty,
         "chirp heads start in layer 0, none in layers 6-11")
vn.check(counts.get("colorbar", 0) >= 1 and counts.get("text", 0) == 0, "some colour-bar heads, no text heads")
late_chirp = loose.query("type == 'chirp' and layer >= 6")
vn.check(not late_chirp.empty and (late_chirp["enrich_chirp"] < 2).all(), "at threshold 1.5 a few late heads lean to the chirp, below 2x")
loose_layers = sorted(loose.loc[loose["type"] == "chirp", "layer"].unique().tolist())
bar_layers = sorted(types.loc[types["type"] == "colorbar", "layer"].tolist())
print(f"chirp heads in layers {chirp_layers} (threshold 1.5: layers {loose_layers}); colour-bar heads in layers {bar_layers}")

# %% [markdown]
# ## Does the type predict the impact?
#
# We call a head *high impact* when its ablation raises the MSE more than three quarters of
# all heads do (the top quartile of the 144 increases), and compare with the type.

# %%
heads = types.merge(sweep, on=["layer", "head"])
cut = heads["increase (%)"].quantile(0.75)
heads["impact"] = np.where(heads["increase (%)"] > cut, "high (top 25 %)", "rest")
print(f"top-quartile cut: {cut:.3f} % MSE increase")
table = pd.crosstab(heads["type"], heads["impact"])
table["mean increase (%)"] = heads.groupby("type")["increase (%)"].mean()
table["max increase (%)"] = heads.groupby("type")["increase (%)"].max()
table.round(3)

# %% [markdown]
# Here the type does predict the impact: every chirp head is in the top quartile, and the
# heads the model needs most are layer-0 heads whose CLS attention is enriched on the chirp.
# The diffuse heads are mostly cheap to lose. So the one place where this model's attention
# has moved onto the task-relevant region (chapter 07 found it in layer 0) is also where
# ablation hurts.

# %%
chirp_mean = heads.loc[heads["type"] == "chirp", "increase (%)"].mean()
diffuse_mean = heads.loc[heads["type"] == "diffuse", "increase (%)"].mean()
top5 = heads.nlargest(5, "increase (%)")[["layer", "head", "type", "top_region", "increase (%)"]]
vn.check((heads.loc[heads["type"] == "chirp", "impact"] == "high (top 25 %)").all(), "every chirp head is high impact")
vn.check(chirp_mean > 10 * diffuse_mean and (top5["layer"] == 0).all() and (top5["top_region"] == "chirp").sum() >= 3,
         "chirp heads cost 10x diffuse ones; the top five heads are chirp-led layer-0 heads")
print(f"mean increase: chirp heads {chirp_mean:.3f} %, diffuse heads {diffuse_mean:.3f} %")
top5.round(3)

# %% [markdown]
# ## The same sweep on the Fashion-MNIST classifier
#
# `fmnist-vit-p4` is the model `spectro-vit` started from: the same 12 x 12 heads, here on
# 28-pixel garments (a 7x7 grid, 50 tokens, so the sweep is cheap) with cross-entropy as the
# loss. Does it need its heads in the same layers?

# %%
N_FMNIST = 128
images, labels, objects = vn.data.examples()
xf = fmnist.preprocess(images[:N_FMNIST])  # pixel_values [N, 1, 28, 28]
sweep_f = vn.sweep(fmnist, xf, labels[:len(xf)], batch_size=512, progress=vn.show_progress())  # 4 heads per pass
sweep_f["increase (%)"] = 100 * sweep_f["rel_increase"]
print(f"{sweep_f.attrs['n']} images, loss {sweep_f.attrs['loss']}, intact cross-entropy {sweep_f.attrs['baseline']:.4f}")

# %%
both = pd.concat([sweep.assign(model=f"{RECIPE} (MSE)"), sweep_f.assign(model=f"{fmnist.name} (CE)")])
fig = vn.metric_by_layer(both, "increase (%)", hue="model", ylabel="loss increase when zeroed (%, symlog)")
fig.axes[0].set_yscale("symlog", linthresh=0.1)  # layer 0 is 100x the rest: a log scale shows both
fig

# %%
profile_f = sweep_f.groupby("layer")["increase (%)"].agg(["mean", "std", "max"])
layers = pd.concat({RECIPE: per_layer[["mean", "std", "max"]], fmnist.name: profile_f}, axis=1)
rank_corr = per_layer["mean"].corr(profile_f["mean"], method="spearman")
print(f"Spearman correlation of the two per-layer mean profiles: {rank_corr:.2f}")
layers.round(3)

# %% [markdown]
# The Fashion-MNIST classifier has the same profile: layer 0 matters most, then the impact
# falls with depth to nearly nothing in the second half. So the shape is not something
# fine-tuning created; `spectro-vit` inherited it from the model it started from (and both
# are under-trained, which may be why their deep heads are so redundant).

# %%
f_top = int(profile_f["mean"].idxmax())
f_early, f_late = profile_f.loc[0:2, "mean"].mean(), profile_f.loc[6:11, "mean"].mean()
s_early = per_layer.loc[0:2, "mean"].mean()
falls = f_late < f_early / 10 and late < s_early / 10
vn.check(f_top == 0 and falls, "both models need layer 0 most and fall by over 10x with depth")
print(f"{fmnist.name}: layers 0-2 {f_early:.3f} %, layers 6-11 {f_late:.3f} %, largest layer {f_top}")

# %% tags=["hide-input"]
from IPython.display import Markdown

Markdown(f"""
## What we found

- Zeroing one head of `{RECIPE}` raises the test MSE by {sweep['increase (%)'].mean():.2f} % on average over
  the {len(sweep)} heads ({N_SPECTRO} spectrograms), from {sweep['increase (%)'].min():.2f} % to
  {sweep['increase (%)'].max():.2f} % (layer {int(worst['layer'])}, head {int(worst['head'])}); the worst head outside
  layer 0 costs {per_layer.loc[1:, 'max'].max():.2f} %{", so a few layer-0 heads carry much of the task" if per_layer.loc[1:, 'max'].max() < worst['increase (%)'] / 5 else ""}.
- The paper reports 0.11 % for layers 1-3 and 0.34 % for layer 6. Ours: {early_ours:.2f} % for layers 0-2 and
  {deep_ours:.2f} % for layer 5 (the same layers, numbered from 0); layers 6-11 average {late:.3f} %. The layer
  that matters most is layer {top_layer} ({per_layer.loc[top_layer, 'mean']:.2f} %): {"the impact *falls* with depth, the opposite of the paper's finding" if late < early_ours else "the impact does not fall with depth"}.
- Head types from the masks (enrichment at least 2x the region's area share): {counts.get('diffuse', 0)} of {len(types)}
  heads are diffuse, {counts.get('chirp', 0)} are chirp heads (in layers {', '.join(map(str, chirp_layers)) or 'none'});
  {"the paper's chirp-focused intermediate and late heads do not appear in this model" if types.query("type == 'chirp' and layer >= 6").empty else "some are in layers 6-11, as in the paper"}. Chirp heads raise the
  MSE by {chirp_mean:.1f} % on average when zeroed, diffuse heads by {diffuse_mean:.2f} %;
  {(heads.loc[heads["type"] == "chirp", "impact"] == "high (top 25 %)").mean():.0%} of chirp heads are in the top
  quartile of impact. {counts.get('text', 0)} heads are text detectors at this threshold.
- The classifier it started from, `{fmnist.name}` ({len(xf)} images, cross-entropy): layers 0-2
  {f_early:.2f} %, layers 6-11 {f_late:.3f} %, largest in layer {f_top}: {"the same falling profile, inherited rather than created by fine-tuning" if falls else "not the same falling profile"}
  (Spearman correlation of the two per-layer means {rank_corr:.2f}).
""")

# %% [markdown]
# ## Exercises
#
# 1. Ablate the three most important heads of `spectro-vit` together with `vn.ablate` and
#    `vn.evaluate_loss`. Is the increase the sum of the three single-head increases?
# 2. Re-run the sweep on a second set of test spectrograms (`train.spectro_split("test", 80)[0][40:]`).
#    Which heads keep their rank? How much of the per-head ranking is noise?
# 3. Sort the Fashion-MNIST heads in the same spirit: how much of each head's CLS attention falls on the
#    garment rather than the black background (`images > 0` as the mask)?
