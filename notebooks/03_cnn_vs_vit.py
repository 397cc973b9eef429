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
# # 03 · Do a CNN and a ViT look at the same pixels?
#
# A convolutional network and a Vision Transformer can reach similar accuracy on the same
# images. Do they use the same pixels to get there? We cannot ask them directly, so we ask
# their explanation maps: {term}`Grad-CAM` {cite:p}`selvaraju2017gradcam` for the CNN, and for the ViT
# four maps that are often shown as "where it looks" — the last layer's {term}`CLS token`
# attention, {term}`attention rollout` {cite:p}`abnar2020rollout`, {term}`gradient rollout`
# {cite:p}`chefer2021generic` and Grad-CAM on the transformer's tokens.
#
# Two questions keep the comparison honest:
#
# 1. **Do the maps agree?** Rank correlation and top-pixel overlap between every pair of maps,
#    on one common pixel grid, with a random map as the reference for "unrelated".
# 2. **Do the maps point at pixels the model needs?** A map is only an explanation if replacing
#    the pixels it ranks highest hurts the model it explains. {term}`Deletion curves <deletion curve>`
#    {cite:p}`petsiuk2018rise` measure that. On Fashion-MNIST {cite:p}`xiao2017fmnist` the obvious
#    version — delete to black — is confounded: about half of every image is already black, so any
#    map that ranks the bright garment first looks good, whatever the model does. We therefore use
#    the tools of chapter 09: replace pixels by the data set's **mean grey** or by a **blurred** copy,
#    delete only **inside the garment**, and score each map by the
#    {term}`symmetric relevance gain` {cite:p}`blucher2024srg`, which is 0 for a random order. The
#    controls — a random map and the image's brightness — go through every test beside the methods.
#
# Every headline number is a mean over images with a 95 % {term}`bootstrap interval <bootstrap interval>`
# over the images. Whether a map beats the random map (or another map) is decided image by image, by
# the paired rule of chapter 09: each image's difference between the two maps, a sign-flip test, and
# one Holm correction over each model's table of comparisons; where that test cannot decide, these
# images *cannot tell* the two apart.
#
# One confound comes before any comparison, and it is stated under the model cell, read from the
# models' cards: the zoo's ViTs learned in part from this very ResNet.

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

vn.setup(seed=0)
_ = torch.set_grad_enabled(False)  # gradients are switched on inside the functions that need them

# %% [markdown]
# The ViT is `fmnist-vit-p4` (12 layers x 12 heads, a 7x7 grid of 4-pixel patches on 28-pixel
# images, {cite:t}`dosovitskiy2021vit`'s architecture at a small width) rather than the book's main
# model `fmnist-vit-p2` (a 14x14 grid): with 50 tokens instead of 197 its forward pass costs about a
# fifth as much, which is what lets every paired test below use well over a hundred images, and it is the
# architecture of the control ViT trained without a teacher (below). `fmnist-vit-p2` comes back as the
# second ViT of the layer-by-layer comparison. The CNN is
# `fmnist-resnet`, a small ResNet {cite:p}`he2016resnet` that reads the same images upsampled to 56
# pixels (its own `preprocess` does that), so that its last stage is a 7x7 grid that Grad-CAM can
# use. The lines under the next cell, read from the models' cards, say how each was trained and its
# test accuracy; the book's page on the zoo shows how the ViT's attention changed while it trained.

# %%
vit = vn.load(vn.pick("fmnist-vit-p4", hub="google/vit-base-patch16-224"))
resnet = vn.load(vn.pick("fmnist-resnet", hub="microsoft/resnet-50"))
vit2 = vn.load(vn.pick("fmnist-vit-p2", hub="google/vit-base-patch32-224"))  # a second ViT, for the CKA reference
for m in (vit, resnet, vit2):
    print(vn.provenance(m))  # how each model was trained, from its card
vit, resnet

# %% tags=["hide-input"]
from IPython.display import Markdown


def taught(model):
    """The stages of a zoo model's recipe that learned from a teacher: [(stage, teacher, epochs, weight)],
    and its number of stages; a hub model has no card: ([], 0)."""
    if model.name not in vn.zoo_names():
        return [], 0
    recipe = vn.card(model.name)["recipe"]
    stages = recipe.get("stages") or [recipe]
    return [(i, s["teacher"], s["epochs"], s["distill"]) for i, s in enumerate(stages, 1) if s.get("teacher")], len(stages)


def taught_said(model):
    stages, n = taught(model)
    total, taught_epochs = vn.train.card_epochs(vn.card(model.name)), sum(e for _, _, e, _ in stages)
    weights = "/".join(sorted({f"{w:g}" for *_, w in stages}))
    if len(stages) == n:
        return f"`{model.name}` in all {total:g} of its epochs (weight {weights} on the teacher)"
    return (f"`{model.name}` in stage{'s' * (len(stages) > 1)} {' and '.join(str(i) for i, *_ in stages)} of its {n} "
            f"({taught_epochs:g} of its {total:g} epochs, weight {weights} on the teacher)")


vit_teachers = {t for m in (vit, vit2) for _, t, _, _ in taught(m)[0]}
p2_init = vn.card(vit2.name)["recipe"].get("init") if vit2.name in vn.zoo_names() else None
confound = vn.claim(
    resnet.name in vit_teachers,
    f"**A confound, before any comparison.** The zoo's ViTs were trained in part to imitate this very ResNet: soft "
    f"distillation (as in DeiT) from `{resnet.name}`'s softened predictions, "
    f"{' and '.join(taught_said(m) for m in (vit, vit2) if taught(m)[0])}"
    + (f"; and `{vit2.name}` started from `{p2_init}`'s weights" if p2_init else "")
    + ". So every agreement between a ViT and the ResNet below (maps that rank pixels alike, the ResNet's Grad-CAM as "
    "a guide to the ViT, CKA between their layers) may be inflated by the distillation, by an amount this chapter "
    "cannot measure. The control will be a ViT trained from scratch with no teacher, `fmnist-vit-p4-scratch` (its "
    "recipe is in `vitnotes/train/recipes.py`; it is training now): until it is in the zoo, no ViT-ResNet agreement "
    "here can be credited to the two architectures alone.",
    "No card says that the ViTs learned from this ResNet"
    + (" (hub models have no vitnotes card; whether a hub ViT was distilled from a CNN is for its hub page to say)"
       if vit.name not in vn.zoo_names() else "")
    + ", so the comparisons below are not confounded by distillation from it as far as the cards tell.")
Markdown(confound)

# %% [markdown]
# ## The images and what each model predicts
#
# We take the first `PER_CLASS` test images of each class, balanced over the ten classes; the
# figures show the first image of each class. Each model's maps explain its own prediction,
# which is not always the true class. The sample size is set by what the book may cost on two CPU
# cores: every perturbation curve costs `2 x (STEPS - 1)` forward passes per image, map and baseline
# (plus two per image and baseline that every map shares), so `PER_CLASS` x 10 images take a few minutes
# on one CPU thread (the cost per image is printed with the tables). Every map and every test uses all of
# them, on both models; the intervals and the paired tests say what this sample can and cannot resolve.

# %%
PER_CLASS = vn.pick(13, hub=1)  # 130 Fashion-MNIST test images (the hub's photos: one per class)
STEPS = 4  # perturbation curves at the fractions 0, 1/4, 1/2, 3/4, 1 of the pixels
MEAN = vn.pick(0.2860 * 255, hub=None)  # the mean-grey baseline: Fashion-MNIST's training mean (photos: their own)
images, labels, objects = vn.data.examples()  # objects: the garment's pixels (the photos: the object's box)
idx = vn.data.per_class(labels, PER_CLASS)  # class order...
idx = idx.reshape(-1, PER_CLASS).T.reshape(-1) if len(idx) % PER_CLASS == 0 else idx  # ... interleaved: 0, 1, .., 9, 0, ..
imgs, y, obj = images[idx], labels[idx], objects[idx]  # raw uint8 [N, 28, 28], labels [N], masks [N, 28, 28]
x, x_cnn = vit.preprocess(imgs), resnet.preprocess(imgs)  # [N, 1, 28, 28] and [N, 1, 56, 56]
pred_vit, pred_cnn = vit.predict(x).argmax(-1).numpy(), resnet.predict(x_cnn).argmax(-1).numpy()
shown = np.unique(y, return_index=True)[1]  # the first image of each class
names = vit.labels
acc = vn.evaluate.interval_rows({"ViT": pred_vit == y, "ResNet": pred_cnn == y, "same class": pred_vit == pred_cnn},
                       "share of the images")
print(f"{len(idx)} images ({vn.pick(f'{PER_CLASS} per class', hub='the photos')}); accuracy and the share on which "
      "the two models predict the same class:")
vn.evaluate.interval_table(acc)

# %% [markdown]
# ## Five maps on one grid
#
# - **ResNet Grad-CAM**: the last stage's 7x7 feature maps, weighted by the mean gradient of the
#   predicted class's logit and passed through a ReLU.
# - **ViT CLS attention**: the last layer's {term}`attention map <attention map>` from the CLS token
#   to the 49 {term}`patch tokens <patch token>`, averaged over the 12 heads (chapters 01 and 02
#   look at layers and heads one by one).
# - **ViT rollout**: the CLS row of the product of every layer's head-averaged attention with the
#   residual added (chapter 06).
# - **ViT gradient rollout**: the same product with each layer's attention weighted by the
#   gradient of the predicted class, so it is class-specific.
# - **ViT Grad-CAM**: Grad-CAM on the tokens entering the last block, laid out on the patch grid.
#
# The ViT's maps and the ResNet's both live on a 7x7 grid, of different cells: a ViT patch is 4x4
# pixels, a cell of the ResNet's last stage sees far more than its 4x4 pixels. `vn.evaluate.resize_maps` brings all of
# them to the 28x28 pixel grid (bilinear), where they can be ranked pixel by pixel. Two controls
# explain nothing: a **random** map (uniform noise, one per image) and the image's own
# **brightness** — Fashion-MNIST garments are bright on a black background, so a map that
# correlates with brightness is, at least partly, a garment detector.
#
# Every map comes from one call, `vn.explain(model, x, name)`, with the method's name from the registry:
# `vn.methods()` lists them (`vn.methods("cnn")`: those that explain a CNN), and a new method is one file
# whose function carries `@vn.method("its name")`.

# %%
side = imgs.shape[1]  # the pixel grid: 28
raw = {
    "ResNet Grad-CAM": vn.explain(resnet, x_cnn, "grad-cam", stage=-1),  # [N, 7, 7]
    "ViT CLS attention": vn.capture(vit, x, layers=[-1], cls_only=True).cls_grid(-1).mean(1),  # [N, 7, 7]
    "ViT rollout": vn.explain(vit, x, "rollout"),  # CLS row over the patches, renormalised: [N, 7, 7]
    "ViT grad. rollout": vn.explain(vit, x, "gradient rollout"),  # [N, 7, 7], predicted class
    "ViT Grad-CAM": vn.explain(vit, x, "grad-cam"),  # [N, 7, 7], predicted class
}
# each [N, 28, 28]; model= places a map where that model looked (ResNet-50 keeps the centre 7/8)
maps = {name: vn.evaluate.resize_maps(m, side, model=resnet if name.startswith("ResNet") else vit) for name, m in raw.items()}
maps |= vn.evaluate.control_maps(imgs, seed=0)  # "random" and "brightness", [N, 28, 28]
vit_maps = ["ViT CLS attention", "ViT rollout", "ViT grad. rollout", "ViT Grad-CAM"]
print({name: tuple(m.shape) for name, m in raw.items()})

# %% [markdown]
# A row per map kind, on **one colour scale per row** with its colour bar, so that within a row
# brighter means more, across the ten images; the cyan line outlines the garment. Look at the rows
# one at a time. The ResNet's Grad-CAM is a blob over the garment. The ViT's last-layer CLS
# attention is a handful of spots, often on the garment's edge or on the black background. Rollout
# spreads further; the two class-specific ViT maps are patchy.

# %%
vn.show.shared_maps(imgs[shown], {k: v[shown] for k, v in maps.items()}, outline=obj[shown],
               titles=[names[c] for c in y[shown]], size=0.9)

# %% [markdown]
# How much of each map's mass falls on the garment (pixels brighter than black), against the share
# of the image the garment covers (what a uniform map puts there)? Every map and the garment's area
# are measured on the same images, so each comparison below is paired, image by image, with chapter 09's
# rule (sign-flip test, Holm over this table); for a measurement without a "better" side the verdict
# reads "higher" or "lower".

# %%
thing = vn.pick("garment", hub="object")
MASS, area_row = f"mass on {thing}", f"{thing} area (uniform map)"
mass = vn.evaluate.interval_rows({**{name: vn.evaluate.garment_mass(m, obj).numpy() for name, m in maps.items()},
                         area_row: obj.mean((1, 2))}, MASS, per_image=True)
on_garment = mass.set_index("method")
vn.evaluate.interval_table(mass)

# %%
HIGHER = {"better": "higher", "worse": "lower", "cannot tell": "cannot tell"}  # the paired words, for a measurement
KEEP = ["method", "other", "n", "difference", "low", "high", "d_z", "p_adjusted", "verdict"]


def compared(p):
    """A paired table with the verdict read as higher / lower / cannot tell, keyed by (method, other, metric)."""
    return p.assign(verdict=p["verdict"].map(HIGHER)).set_index(["method", "other", "metric"])


mass_p = compared(vn.paired_verdicts(mass, against=(area_row,), pairs=[("ViT CLS attention", "ResNet Grad-CAM")],
                                     better={MASS: 1}))
detector = mass_p.loc[("ResNet Grad-CAM", area_row, MASS), "verdict"] == "higher"
cls_less = mass_p.loc[("ViT CLS attention", "ResNet Grad-CAM", MASS), "verdict"] == "lower"
print(vn.claim(detector, f"The CNN's map puts more of its mass on the {thing} than the {thing}'s area (paired).",
               f"The CNN's map is not shown to put more of its mass on the {thing} than its area (paired)."))
print(vn.claim(cls_less, f"Last-layer CLS attention puts less mass on the {thing} than the CNN's Grad-CAM (paired).",
               f"Last-layer CLS attention is not shown to put less mass on the {thing} than the CNN's Grad-CAM (paired)."))
mass_p.reset_index()[KEEP].round(2)

# %% [markdown]
# ## Do the maps agree?
#
# Two numbers per pair of maps, per image, averaged over the images:
#
# - **Spearman rank correlation** over the 784 pixels: 1 = the same ranking, 0 = unrelated.
# - **Top-10 % overlap**: of the 10 % of pixels each map ranks highest, the share both maps pick.
#   Two unrelated maps share 0.1 on average.
#
# Bilinear upsampling makes neighbouring pixels similar, which inflates both numbers a little
# for every pair alike; the random map's row shows what an unrelated map scores.

# %%
rho = vn.agreement(maps, "spearman")
overlap = vn.agreement(maps, "topk", frac=0.1)
vn.show.agreement_heatmap({"Spearman rank correlation": rho, "top-10 % overlap": overlap})

# %% [markdown]
# The headline pairs with their intervals: the CNN's map against each ViT map, against the random
# map (the control) and against brightness; and every map's correlation with brightness.

# %%
cam = maps["ResNet Grad-CAM"]
S_CAM, S_BRIGHT = "Spearman with ResNet Grad-CAM", "Spearman with brightness"
pairs = vn.evaluate.interval_rows({m: vn.stats.rank_correlation(cam, maps[m]).numpy() for m in [*vit_maps, "random", "brightness"]},
                         S_CAM, per_image=True)
pairs = pd.concat([pairs, vn.evaluate.interval_rows({m: vn.stats.rank_correlation(maps["brightness"], maps[m]).numpy()
                                            for m in [*vit_maps, "ResNet Grad-CAM", "random"]}, S_BRIGHT,
                                           per_image=True)])
vn.evaluate.interval_table(pairs)

# %% [markdown]
# Paired, with one Holm correction over this table: does each map correlate with the CNN's map (and with
# brightness) more than the random map does, and does the CNN's map follow brightness more than each ViT map?

# %%
agree_p = compared(vn.paired_verdicts(pairs, against=("random",), pairs=[("ResNet Grad-CAM", m) for m in vit_maps],
                                      better={S_CAM: 1, S_BRIGHT: 1}))
agree_p.reset_index()[["metric", *KEEP]].round(2)

# %%
with_cam = pairs[pairs["metric"] == "Spearman with ResNet Grad-CAM"].set_index("method")
cnn_vs_vit = with_cam.loc[vit_maps, "value"]
within_vit = rho.loc[vit_maps, vit_maps].to_numpy()[np.triu_indices(len(vit_maps), 1)]
print(f"Spearman between ViT maps (means over images): mean {within_vit.mean():.3f} "
      f"(range {within_vit.min():.3f} to {within_vit.max():.3f})")
disagree = bool(with_cam.loc[vit_maps, "high"].max() < 0.5)
over_chance = [m for m in vit_maps if agree_p.loc[(m, "random", S_CAM), "verdict"] == "higher"]
under_chance = [m for m in vit_maps if agree_p.loc[(m, "random", S_CAM), "verdict"] == "lower"]
cam_brighter = all(agree_p.loc[("ResNet Grad-CAM", m, S_BRIGHT), "verdict"] == "higher" for m in vit_maps)
print(vn.claim(disagree, "The CNN's map and the ViT's maps rank pixels differently (every interval below 0.5).",
               "The CNN's map and some ViT map rank pixels alike (an interval reaches 0.5)."))
print("ViT maps that agree with the CNN's map more than the random map does (paired):", ", ".join(over_chance) or "none")
print("ViT maps that rank pixels against the CNN's map, more than the random map does (paired):",
      ", ".join(under_chance) or "none")
print(vn.claim(cam_brighter, "The CNN's Grad-CAM correlates with brightness more than every ViT map (paired).",
               "The CNN's Grad-CAM is not shown to correlate with brightness more than every ViT map (paired)."))

# %% [markdown]
# ## Which maps point at pixels the model needs?
#
# `vn.evaluation_table` (chapter 09 explains every convention) takes each map, replaces the pixels
# it ranks highest first — in steps of a quarter of the pixels — and follows the model's
# probability for the class it predicted on the intact image (*deletion*, most relevant first:
# **lower AUC = better**); it also replaces the least relevant first, and the SRG is the area
# between the two curves (**higher = better**, 0 for a random order). "Replaced" means set to a
# **baseline**:
#
# - `mean`: Fashion-MNIST's mean grey. Replacing a black background pixel by grey *is* a change,
#   so ranking the garment first no longer wins by default.
# - `blur`: a blurred copy of the image (Gaussian, 5 pixels): edges and texture go, the
#   silhouette's brightness mostly stays.
# - `black, garment`: deletion to black, but only of the garment's own pixels; the background is
#   never touched, so a map cannot score by ranking the background last.
#
# Each map is evaluated on the model it explains and on the other model, and the random map and
# brightness join every run as controls. Maps are ranked at pixel resolution; ties (such as the zeros of a
# Grad-CAM) are broken at random.

# %% [markdown]
# ```{admonition} Predict before you run
# :class: tip
# With the black background out of the game, which map will take the ViT's evidence away
# fastest: one of the ViT's own four maps, or the CNN's Grad-CAM? And will brightness still beat
# the random map?
# ```

# %%
FAITH = [("deletion_auc", "mean"), ("srg", "mean"), ("deletion_auc", "blur"), ("srg", "blur"),
         ("deletion_auc", f"black, {thing}"), ("srg", f"black, {thing}")]
options = dict(baselines=("mean", "blur"), mean=MEAN, restrict_name=thing, restrict_baselines=("black",), steps=STEPS,
               progress=vn.show_progress())
own = {k: v for k, v in maps.items() if k not in ("random", "brightness")}  # the controls are added anew
faith = {}
for name, model in (("ViT", vit), ("ResNet", resnet)):
    faith[name] = vn.evaluation_table(own, model, imgs, restrict=obj,
                                      per_image=True, **options)
N_V, N_R = (len(faith[name]["values"].iloc[0]) for name in ("ViT", "ResNet"))  # the images each table holds
print(f"perturbation tests on {N_V} images (ViT) and {N_R} (ResNet); on the ViT:")
vn.evaluate.interval_table(faith["ViT"], FAITH, digits=2)

# %% [markdown]
# What each image cost on this machine (wall clock, so it varies from run to run), and the same maps on
# the ResNet:

# %% tags=["nbval-ignore-output"]
print(", ".join(f"{name}: {t.attrs['total_seconds'] / len(t['values'].iloc[0]):.1f} s per image"
                for name, t in faith.items()))

# %%
vn.evaluate.interval_table(faith["ResNet"], FAITH, digits=2)

# %% [markdown]
# Every map's interval on the three SRG columns; the grey band is the random map's interval, the
# controls are grey. Top: on the ViT; bottom: on the ResNet. The bars show each map's own spread over
# the images; whether a map beats random is decided by the paired test below, not by whether its bar
# clears the band.

# %%
SRG = [c for c in FAITH if c[0] == "srg"]
vn.show.interval_plot(faith["ViT"], SRG)

# %%
vn.show.interval_plot(faith["ResNet"], SRG)

# %% [markdown]
# ## Verdicts, image by image
#
# Every map is scored on the same images, so each comparison is decided as in chapter 09
# (`vn.paired_verdicts`, where the rule is explained): the per-image difference between two maps, its mean
# with a bootstrap interval, the effect size $d_z$ (mean difference over its standard deviation), the share
# of images the first map wins, and a sign-flip test whose p-value is Holm-corrected over every comparison
# of that model's table. Each model has its own table: every map against the random map and against
# brightness on the six columns, and on the ViT also each of its four maps against the ResNet's Grad-CAM.

# %%
print(vn.evaluate.PAIRED_RULE)
in_faith = lambda t: t[[(m, b) in FAITH for m, b in zip(t["metric"], t["baseline"])]]  # noqa: E731  (the six columns)
paired = {"ViT": vn.paired_verdicts(in_faith(faith["ViT"]), against=("random", "brightness"),
                                    pairs=[(m, "ResNet Grad-CAM") for m in vit_maps]),
          "ResNet": vn.paired_verdicts(in_faith(faith["ResNet"]), against=("random", "brightness"))}
for name, p in paired.items():
    print(f"{name}: {len(p)} paired comparisons on {p['n'].max()} images, Holm-corrected together; "
          f"{(p['verdict'] != 'cannot tell').sum()} decided")
pv = {name: p.set_index(["method", "other", "metric", "baseline"])["verdict"] for name, p in paired.items()}
FLIP = {"better": "worse", "worse": "better", "cannot tell": "cannot tell"}


def said(name, a, b, col):
    """The paired verdict of map a against map b on one (metric, baseline) column, on model `name`."""
    return pv[name][(a, b, *col)] if (a, b, *col) in pv[name].index else FLIP[pv[name][(b, a, *col)]]


cols = [c for c in FAITH]
pd.concat({name: pd.DataFrame({vn.evaluate.column_label(*c): [said(name, m, "random", c) for m in [*own, "brightness"]]
                               for c in cols}, index=pd.Index([*own, "brightness"], name="against random"))
           for name in faith})

# %% [markdown]
# Every decided comparison with its effect: the mean paired difference (first map minus second, in the
# metric's units: lower deletion AUC and higher SRG are better) with its 95 % interval, $d_z$, the share
# of images the first map wins, and the Holm-adjusted p-value. Every comparison not listed is "cannot tell".

# %%
SHOW = ["method", "other", "metric", "baseline", "n", "difference", "low", "high", "d_z", "wins", "p_adjusted", "verdict"]
decided = pd.concat({name: p[p["verdict"] != "cannot tell"][SHOW].reset_index(drop=True) for name, p in paired.items()})
decided.round(2)

# %% [markdown]
# `vn.scorecard` counts these verdicts per map: on how many of the six columns it is better or worse
# than the random map and than brightness.

# %%
cards = pd.concat({name: vn.scorecard(in_faith(t), paired=paired[name])[["better than random", "worse than random",
                                                                          "better than brightness",
                                                                          "worse than brightness",
                                                                          "faithfulness columns"]]
                   for name, t in faith.items()})
cards

# %%
beats = {name: {m: [c for c in cols if said(name, m, "random", c) == "better"] for m in [*own, "brightness"]}
         for name in faith}
worse = {name: {m: [c for c in cols if said(name, m, "random", c) == "worse"] for m in [*own, "brightness"]}
         for name in faith}
half = len(cols) / 2
cam_explains = len(beats["ResNet"]["ResNet Grad-CAM"]) >= half and not worse["ResNet"]["ResNet Grad-CAM"]
vit_explaining = [m for m in vit_maps if len(beats["ViT"][m]) >= half and not worse["ViT"][m]]
vit_worse = [m for m in vit_maps if worse["ViT"][m]]
cam_over_vit = [c for c in cols if all(said("ViT", m, "ResNet Grad-CAM", c) == "worse" for m in vit_maps)]
vs_cam = {w: sum(said("ViT", m, "ResNet Grad-CAM", c) == w for m in vit_maps for c in cols) for w in FLIP}
bright_vit = beats["ViT"]["brightness"]
print("on the ViT, beats random on at least half the columns (worse on none):", ", ".join(vit_explaining) or "none")
print("on the ViT, worse than random on some column:", {m: [vn.evaluate.column_label(*c) for c in worse['ViT'][m]] for m in vit_worse})
print("columns where every ViT map is worse than the ResNet's Grad-CAM on the ViT:",
      [vn.evaluate.column_label(*c) for c in cam_over_vit])
print("brightness beats random on the ViT on:", [vn.evaluate.column_label(*c) for c in bright_vit])
print("the ViT's maps against the ResNet's Grad-CAM on the ViT:", vs_cam)
del_r = faith["ResNet"][(faith["ResNet"]["metric"] == "deletion_auc") & (faith["ResNet"]["baseline"] == "mean")]
random_deletes_best = del_r.set_index("method")["value"].idxmin() == "random"
print(f"on the ResNet, the lowest deletion AUC [mean]: {del_r.set_index('method')['value'].idxmin()}")
print(vn.claim(cam_explains, "Grad-CAM explains the CNN: better than random on at least half the columns, worse on none.",
               "Grad-CAM is not shown to explain the CNN: better than random on fewer than half the columns, or worse on one."))

# %% [markdown]
# ## Do the layers compute alike?
#
# The maps compare where the two models look. Their layers can also be compared directly, by
# what they compute: two layers are alike if they lay out the same images alike, whatever the
# units. **Linear {term}`CKA`** (centred kernel alignment, {cite:p}`kornblith2019cka`) measures that from each
# layer's representation of the same images: 1 = the same up to a rotation and a scale, 0 =
# unrelated. {cite:t}`raghu2021vitsee` used it to compare ViTs with ResNets layer by layer.
#
# One vector per image and layer: for the ViTs the mean of the patch tokens after each block
# (`emb` = the embeddings), for the ResNet its stem and each residual block averaged over space
# (global average pooling, what its classifier reads). With about as many features as images,
# the plain CKA estimate is biased upwards (two unrelated wide representations score well above
# 0), so we use the **debiased** estimator (the unbiased HSIC of {cite:t}`song2012hsic`), which may dip slightly
# below 0. As a reference for "alike", the second ViT (`fmnist-vit-p2`, patch 2) is compared with
# the first, and the first with itself; what the first of these references can and cannot show (the
# two ViTs share a training history, read from their cards) is stated with the result.

# %%
N_CKA = vn.pick(256, hub=32)  # the hub models' photos are too few: the Fashion-MNIST test images there too
cka_images = vn.data.fashion_mnist_arrays("test")[0][:N_CKA]  # [256, 28, 28] uint8
reps = {name: vn.representations(m, m.preprocess(list(cka_images)))  # {layer: [256, features]}, in forward order
        for name, m in (("ViT", vit), ("ViT p2", vit2), ("ResNet", resnet))}
name_vit2 = vn.pick("ViT p2", hub="ViT-B/32")
panels = {"ViT vs itself": vn.cka(reps["ViT"], reps["ViT"], debiased=True, names=("ViT", "ViT")),
          f"ViT vs {name_vit2}": vn.cka(reps["ViT"], reps["ViT p2"], debiased=True, names=("ViT", name_vit2)),
          "ViT vs ResNet": vn.cka(reps["ViT"], reps["ResNet"], debiased=True, names=("ViT", "ResNet"))}
plain = vn.cka(reps["ViT"], reps["ResNet"])  # the biased estimate, for comparison
print(f"{N_CKA} test images | layers: ViT {len(reps['ViT'])}, {name_vit2} {len(reps['ViT p2'])}, ResNet {len(reps['ResNet'])} "
      f"| plain minus debiased CKA, ViT vs ResNet: mean {(plain - panels['ViT vs ResNet']).to_numpy().mean():.3f}")
vn.show.cka_heatmap(panels, size=1.9)

# %%
cross = panels["ViT vs ResNet"]  # [ViT layer, ResNet layer]
match, best_resnet = cross.idxmax(), cross.max()  # for each ResNet layer, the ViT layer most like it, and its CKA
best_vit2 = panels[f"ViT vs {name_vit2}"].max()  # for each layer of the second ViT, its best match in the first
vits_closer = bool(best_vit2.mean() > best_resnet.mean())
blocks = cross.iloc[1:, 1:]  # ViT blocks x ResNet blocks: the embeddings and the stem left out
spread = float((blocks.max() - blocks.min()).max())  # how much a ResNet block's CKA varies over the ViT's blocks
self_vit = panels["ViT vs itself"].to_numpy()
first_step, neighbours = self_vit[0, 1], np.diag(self_vit, 1)[1:]  # embeddings -> L0; then block -> next block
print(pd.DataFrame({"most alike ViT layer": match, "CKA": best_resnet.round(3)}).T.to_string())
print(f"mean best-match CKA: {name_vit2} -> ViT {best_vit2.mean():.3f}, ResNet -> ViT {best_resnet.mean():.3f}")
print(f"a ResNet block's CKA varies by at most {spread:.3f} over the ViT's blocks ({blocks.min().min():.3f} to "
      f"{blocks.max().max():.3f})")
print(f"ViT with itself: embeddings vs L0 {first_step:.3f}; neighbouring blocks {neighbours.min():.3f} to "
      f"{neighbours.max():.3f}; any two blocks at least {self_vit[1:, 1:].min():.3f}")

# %% tags=["hide-input"]
from IPython.display import Markdown

# the sentences that state a finding follow the numbers: under other models a claim may not hold
sample = vn.pick(f"Fashion-MNIST test images ({PER_CLASS} per class)", hub="labelled photos (one per class)")
iv = lambda t, m, c: t.set_index(["method", "metric", "baseline"]).loc[(m, *c)]  # noqa: E731
cell = lambda r, d=2: f"{r['value']:.{d}f} [{r['low']:.{d}f}, {r['high']:.{d}f}]"  # noqa: E731
best_vit = faith["ViT"][(faith["ViT"]["metric"] == "srg") & (faith["ViT"]["baseline"] == "mean")
                        & faith["ViT"]["method"].isin(vit_maps)].set_index("method")["value"].idxmax()
srg_mean = lambda name, m: cell(iv(faith[name], m, ("srg", "mean")))  # noqa: E731
acc_t = acc.set_index("method")
prow = lambda name, a, b, c: paired[name].set_index(["method", "other", "metric", "baseline"]).loc[(a, b, *c)]  # noqa: E731
pval = lambda p: "< 0.01" if p < 0.01 else f"{p:.2f}"  # noqa: E731  (2 decimals: a sign-flip p moves with the last bits)


def effect(name, a, b, c):
    """a minus b on one column of model `name`: the paired difference, its interval, d_z, wins and Holm p."""
    r = prow(name, a, b, c)
    return (f"difference {r['difference']:+.2f} [{r['low']:.2f}, {r['high']:.2f}], $d_z$ {r['d_z']:.2f}, "
            f"{a} ahead on {r['wins']:.0%} of the images, Holm p {pval(r['p_adjusted'])}")


def mass_said(a, b):
    """a minus b on the garment-mass table: the paired difference, its interval and the Holm p."""
    r = mass_p.loc[(a, b, MASS)]
    return f"difference {r['difference']:+.2f} [{r['low']:.2f}, {r['high']:.2f}], Holm p {pval(r['p_adjusted'])}"


def tally(name, m):
    """How map m fares against the random map on model `name`: better on .., worse on .., cannot tell on the rest."""
    b, w = beats[name][m], worse[name][m]
    labels = lambda cs: " (" + ", ".join(vn.evaluate.column_label(*c) for c in cs) + ")" if cs else ""  # noqa: E731
    return f"{m} better on {len(b)}{labels(b)}, worse on {len(w)}{labels(w)}, cannot tell on {len(cols) - len(b) - len(w)}"


SRG_MEAN = ("srg", "mean")
READ = {"better": "better than random", "worse": "worse than random", "cannot tell": "these images cannot tell it from random"}
findings = [disagree, detector, cls_less, cam_explains, cam_brighter]
pairs_said = ", ".join(f"{m} {cell(with_cam.loc[m])}" for m in vit_maps)
agree_said = vn.claim(
    disagree,
    f"**The CNN's and the ViT's maps do not agree.** The ResNet's Grad-CAM ranks pixels like the ViT maps at Spearman "
    f"{pairs_said}; like the random map at {cell(with_cam.loc['random'])}. Paired against the random map, "
    + (f"{', '.join(over_chance)} agree{'s' * (len(over_chance) == 1)} with it more than chance does, weakly"
       if over_chance else "none of the ViT's maps agrees with it more than a random map does")
    + (f"; {' and '.join(under_chance)} rank{'s' * (len(under_chance) == 1)} the pixels against it, more than a random "
       "map does." if under_chance else "."),
    f"**The CNN's and the ViT's maps agree in part.** Spearman with the ResNet's Grad-CAM: {pairs_said}; "
    f"the random map: {cell(with_cam.loc['random'])}; more than the random map (paired): {', '.join(over_chance) or 'none'}.")
detector_said = vn.claim(
    detector,
    f"Grad-CAM on the CNN leans towards the {thing}: {cell(on_garment.loc['ResNet Grad-CAM'])} of its mass lies on "
    f"it, which covers {cell(on_garment.loc[area_row])} of the image (paired: "
    f"{mass_said('ResNet Grad-CAM', area_row)}),",
    f"Grad-CAM on the CNN puts {cell(on_garment.loc['ResNet Grad-CAM'])} of its mass on the {thing}, not clearly more "
    f"than its area ({cell(on_garment.loc[area_row])}),")
cls_said = vn.claim(
    cls_less, f"and the ViT's last-layer CLS attention only {cell(on_garment.loc['ViT CLS attention'])} (paired against "
    f"the CNN's map: {mass_said('ViT CLS attention', 'ResNet Grad-CAM')}).",
    f"and the ViT's last-layer CLS attention {cell(on_garment.loc['ViT CLS attention'])}, not clearly less.")
everyone_worse = [c for c in cols if all(said("ResNet", m, "random", c) == "worse" for m in own)]  # on the ResNet
cam_b, cam_w = beats["ResNet"]["ResNet Grad-CAM"], worse["ResNet"]["ResNet Grad-CAM"]
cam_head = ("**Grad-CAM explains the CNN**" if cam_explains else
            "**Grad-CAM is only partly shown to explain the CNN**" if len(cam_b) >= half else
            "**Grad-CAM is not shown to explain the CNN**")
cam_said = (
    f"{cam_head}: on the ResNet ({N_R} images) {tally('ResNet', 'ResNet Grad-CAM')} of the {len(cols)} columns against "
    "the random map"
    + (f" (every map on the ResNet is worse than random on {', '.join(vn.evaluate.column_label(*c) for c in everyone_worse)}, "
       "see below)" if everyone_worse else "")
    + f". With the mean-grey baseline its SRG is {srg_mean('ResNet', 'ResNet Grad-CAM')} against random "
    f"{srg_mean('ResNet', 'random')}; paired: {effect('ResNet', 'ResNet Grad-CAM', 'random', SRG_MEAN)}, so "
    f"{READ[said('ResNet', 'ResNet Grad-CAM', 'random', SRG_MEAN)]} there.")
vit_said = (f"On the ViT ({N_V} images), against the random map: "
            + "; ".join(tally("ViT", m) for m in vit_maps) + ". "
            + vn.claim(vit_explaining,
                       f"So {', '.join(vit_explaining)} {'is' if len(vit_explaining) == 1 else 'are'} better than random on "
                       "at least half the columns and worse on none.",
                       "So none of the four is better than random on half the columns without being worse on another."))
worse_said = (f"The best of them by mean SRG [mean] is {best_vit} ({srg_mean('ViT', best_vit)}, random "
              f"{srg_mean('ViT', 'random')}; paired: {effect('ViT', best_vit, 'random', SRG_MEAN)}, so "
              f"{READ[said('ViT', best_vit, 'random', SRG_MEAN)]} there).")
cross_said = vn.claim(
    len(cam_over_vit) >= half,
    f"**The ViT needs pixels its own maps miss, and the CNN's map finds them**: on {len(cam_over_vit)} of the "
    f"{len(cols)} columns every ViT map is worse than the ResNet's Grad-CAM *on the ViT* (SRG [mean] "
    f"{srg_mean('ViT', 'ResNet Grad-CAM')}). So \"the ViT looks at different pixels\" is a statement about its "
    "attention maps, not about what it uses.",
    f"Is the ResNet's Grad-CAM a better guide to the ViT than the ViT's own maps? Of the {len(vit_maps) * len(cols)} "
    f"comparisons of a ViT map with it on the ViT ({len(vit_maps)} maps x {len(cols)} columns), the ViT map is better in "
    f"{vs_cam['better']}, worse in {vs_cam['worse']}, and these images cannot tell the two apart in {vs_cam['cannot tell']}"
    + (f"; on {len(cam_over_vit)} column{'s' * (len(cam_over_vit) != 1)} "
       f"({', '.join(vn.evaluate.column_label(*c) for c in cam_over_vit)}) every ViT map is worse" if cam_over_vit else
       "; on no column is every ViT map worse")
    + f" (SRG [mean] of the ResNet's Grad-CAM on the ViT: {srg_mean('ViT', 'ResNet Grad-CAM')}).")
bright_worse = worse["ViT"]["brightness"]
bright_said = vn.claim(
    bool(bright_vit),
    f"Brightness, which knows nothing of either model, is still better than the random map on the ViT on "
    f"{len(bright_vit)} column{'s' if len(bright_vit) != 1 else ''} ({', '.join(vn.evaluate.column_label(*c) for c in bright_vit)})"
    + (f" and worse on {len(bright_worse)} ({', '.join(vn.evaluate.column_label(*c) for c in bright_worse)})." if bright_worse
       else "."),
    "Brightness, which knows nothing of either model, is better than the random map on the ViT on none of these "
    "columns: the tests no longer reward ranking the garment first.")
flat_said = vn.claim(
    spread < 0.1,
    f"Past them, each ResNet block is about as alike to one ViT block as to any other (its CKA varies by at most "
    f"{spread:.2f} over the ViT's blocks, {blocks.min().min():.2f} to {blocks.max().max():.2f} in all), so the two "
    "hierarchies do not line up block by block.",
    f"Past them, each ResNet block has ViT blocks it is most like ({', '.join(f'{r} -> {v}' for r, v in match.iloc[1:].items())}; "
    f"its CKA varies by up to {spread:.2f} over the ViT's blocks).")
step_said = vn.claim(
    first_step < neighbours.min(),
    f"the first block changes the representation most (CKA {first_step:.2f} between the embeddings and its output); "
    f"after it, neighbouring blocks are at {neighbours.min():.2f} to {neighbours.max():.2f}, and any two blocks at "
    f"least {self_vit[1:, 1:].min():.2f}",
    f"the embeddings and the first block's output are at CKA {first_step:.2f}, neighbouring blocks at "
    f"{neighbours.min():.2f} to {neighbours.max():.2f}")
own_init = p2_init is not None and p2_init == vit.name  # the second ViT started from the first one's weights
init_said = (f" But the second ViT, `{vit2.name}`, started from `{vit.name}`'s weights (its card's initialisation), so "
             "this compares a ViT with one trained on from it, not two independently trained ViTs"
             + ("; and both ViTs learned from the ResNet (the confound above)." if resnet.name in vit_teachers else ".")
             if own_init else "")
alike_said = vn.claim(
    vits_closer,
    f"Two ViTs are more alike than a ViT and a ResNet: the second ViT's layers find a match in the first at CKA "
    f"{best_vit2.mean():.2f} on average, the ResNet's at {best_resnet.mean():.2f}.",
    f"A ViT and a ResNet are as alike as two ViTs here: the ResNet's layers find a match in the ViT at CKA "
    f"{best_resnet.mean():.2f} on average, the second ViT's at {best_vit2.mean():.2f}.") + init_said
DEL_MEAN = ("deletion_auc", "mean")
random_said = vn.claim(
    random_deletes_best,
    "On the ResNet the random map has the lowest mean deletion AUC with the mean-grey baseline of all maps (the "
    f"ResNet's Grad-CAM against it there: {effect('ResNet', 'ResNet Grad-CAM', 'random', DEL_MEAN)}, so "
    f"{READ[said('ResNet', 'ResNet Grad-CAM', 'random', DEL_MEAN)]}): grey pixels scattered over the whole image hurt the "
    "CNN fast. That is why the SRG, which subtracts the curve of deleting the least relevant pixels first, is the "
    "fairer score here.",
    "")
vit_vs_random = {w: sum(said("ViT", m, "random", c) == w for m in vit_maps for c in cols) for w in FLIP}
summary = vn.claim(
    all(findings) and not vit_explaining,
    f"By the paired rule, Grad-CAM is shown to be faithful to the CNN on these {N_R} images, while none of the ViT's maps "
    f"is shown to be faithful to the ViT on {N_V} (better than random on half the columns and worse on none): a map that "
    "looks like an explanation is not one until it beats the random map, and where the test cannot tell, these images "
    "do not settle it.",
    f"By the paired rule, {'Grad-CAM is' if cam_explains else 'Grad-CAM is not'} shown to be faithful to the CNN on these "
    f"{N_R} images (better than random on {len(cam_b)} of the {len(cols)} columns, worse on {len(cam_w)}), and "
    + (f"{', '.join(vit_explaining)} {'is' if len(vit_explaining) == 1 else 'are'}" if vit_explaining else
       "none of the ViT's maps is")
    + f" shown to be faithful to the ViT on {N_V}: of the {len(vit_maps) * len(cols)} comparisons of its four maps with "
    f"the random map, {vit_vs_random['better']} say better, {vit_vs_random['worse']} worse, and in "
    f"{vit_vs_random['cannot tell']} these images cannot tell. A map that looks like an explanation is not one until it "
    "beats the random map.")
n_decided = {name: int((p["verdict"] != "cannot tell").sum()) for name, p in paired.items()}
caveat = vn.pick("these models are small and see 28-pixel images", hub=f"{len(idx)} images are a small sample")
Markdown(f"""
## What we found

On {len(idx)} {sample}, the perturbation tests on the ViT on {N_V} of them and on the ResNet on {N_R}, with the ResNet
right on {cell(acc_t.loc['ResNet'])} and the ViT on {cell(acc_t.loc['ViT'])} of them; every number is a mean over images
with its 95 % bootstrap interval, and every "better", "worse", "more", "less" and "cannot tell" of a map against
another is a paired verdict (chapter 09's rule, Holm-corrected over each table: the mass table, the agreement table, and
each model's faithfulness table: {n_decided['ViT']} of the {len(paired['ViT'])}
comparisons on the ViT decided, {n_decided['ResNet']} of the {len(paired['ResNet'])} on the ResNet):

- {agree_said} {detector_said} {cls_said}
- {cam_said} {vit_said} {worse_said}
- {cross_said} {bright_said} {random_said}
- **Layer by layer** ({N_CKA} test images, debiased linear CKA on mean-pooled representations): the ResNet's stem is
  most like the ViT's {match.iloc[0]} (CKA {best_resnet.iloc[0]:.2f}). {flat_said} {alike_said} Within the ViT, {step_said}.

{summary}
Two caveats: {caveat}, and every baseline makes images neither model saw in training, so the AUCs and SRGs
compare maps with each other rather than measure a model's reasoning in absolute terms.
""")

# %% [markdown]
# **On ImageNet-scale ViTs.** The zoo's ViTs learnt in part from this very ResNet, so what this page finds
# about the ResNet's Grad-CAM as a guide to the ViT, and about how alike their layers are, may be inflated
# by that; ViT-B/16 and ResNet-50 were trained apart. With the same measure (CKA) on ImageNet-scale
# models, {cite:t}`raghu2021vitsee` found a ViT's lower layers most like a ResNet's lower layers, its
# higher layers like the higher ones, and the ViT's layers alike across depth: that is the pattern to
# expect at scale. Whether the ViT's own maps beat the random map depends on the model and the images, and
# may change either way. Check it with
# `VITNOTES_MODELS=hub jupyter execute --output=../hub_03 notebooks/03_cnn_vs_vit.ipynb`; it writes the
# executed copy to `hub_03.ipynb` at the repository's root, whose "What we found" is computed for the hub
# models.

# %% [markdown]
# ## Exercises
#
# 1. See the confound for yourself: run the ViT's perturbation test with the **black** baseline on
#    the whole image (no garment restriction). Where does brightness land against the random map,
#    and against the ViT's own maps?
#
# ````{admonition} Solution
# :class: dropdown
# ```python
# black = vn.evaluation_table(own, vit, imgs,
#                             baselines=("black",), steps=STEPS)
# vn.evaluate.interval_table(black, [("deletion_auc", "black"), ("srg", "black")])
# ```
# With black, deleting a background pixel changes nothing, so every map that ranks the garment
# first deletes "real" pixels sooner; brightness ranks exactly the garment first and moves up
# against the random map and the ViT's maps. Compare its rows with the `mean` and
# `black, garment` columns above, where that advantage is gone.
# ````
#
# 2. Use `vn.explain(vit, x, "grad-cam", layer=L)` for an earlier block `L`. Is the ViT's Grad-CAM more faithful
#    there (SRG with the mean-grey baseline), and does it agree better with the ResNet's map?
#
# ````{admonition} Solution
# :class: dropdown
# ```python
# L, n = 6, len(imgs)
# early = vn.evaluate.resize_maps(vn.explain(vit, x[:n], "grad-cam", layer=L), side, model=vit)
# t = vn.evaluation_table({f"ViT Grad-CAM L{L}": early, "ViT Grad-CAM": maps["ViT Grad-CAM"][:n]}, vit, imgs[:n],
#                         baselines=("mean",), mean=MEAN, steps=STEPS, controls=False, per_image=True)
# print(vn.evaluate.interval_table(t, [("srg", "mean")], digits=2))
# print(vn.paired_verdicts(t, against=(), pairs=[(f"ViT Grad-CAM L{L}", "ViT Grad-CAM")]).round(2))
# print("Spearman with ResNet Grad-CAM:", float(vn.stats.rank_correlation(cam[:n], early).mean()))
# ```
# Read the paired verdict on the SRG [mean] row: "cannot tell" means these images cannot tell the
# layers apart, whatever the two intervals look like. The Spearman with the ResNet's map is the number to compare with the table of the
# section "Do the maps agree?".
# ````
#
# 3. Compute the CKA heatmaps with the CLS token instead of the mean patch token
#    (`vn.representations(vit, x, pool="cls")`), and with `debiased=False`. Which conclusions change?
#
# ````{admonition} Solution
# :class: dropdown
# ```python
# cls_reps = vn.representations(vit, vit.preprocess(list(cka_images)), pool="cls")
# cls_reps = {k: v for k, v in cls_reps.items() if k != "emb"}  # the same vector for every image: no CKA
# vn.show.cka_heatmap({"ViT (CLS) vs ResNet": vn.cka(cls_reps, reps["ResNet"], debiased=True, names=("ViT", "ResNet")),
#                 "ViT vs ResNet, plain": vn.cka(reps["ViT"], reps["ResNet"], names=("ViT", "ResNet"))})
# ```
# Before the first block the CLS token is the same learned vector for every image (CKA is undefined
# for a representation that does not vary), so it is left out. After that, the CLS token carries
# only what the layers have written into it, so its early-layer CKA with
# the ResNet's pooled features differs from the mean patch token's. The plain (biased) estimate
# is higher everywhere by about the amount printed above the heatmaps ("plain minus debiased"):
# the ranking of the pairs moves less than their values.
# ````
