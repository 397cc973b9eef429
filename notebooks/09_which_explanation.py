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
# # 09 · Which explanation can you trust?
#
# The question readers ask most often of every attribution tool is "which map is right?". The
# earlier chapters compared a few maps with one test, deletion to black, and on Fashion-MNIST that
# test is confounded: about half of every image is already black, so deleting background pixels
# changes nothing, and any map that ranks the bright garment first looks good. Here every map
# method in the library goes through four tests at once, each with controls that an explanation
# must beat:
#
# 1. **Faithfulness.** Delete the pixels a map ranks highest: how fast does the model's score fall
#    ({term}`deletion <deletion curve>`)? Start from a blank image and put the highest-ranked pixels
#    back first: how fast does it recover ({term}`insertion <insertion curve>`)
#    {cite:p}`petsiuk2018rise`? "Deleted" means replaced by a **baseline**: black, the data
#    set's mean grey, or a blurred copy of the image, because the ranking of the methods can change
#    with it. A fourth run deletes only the **object's pixels**, so that the black background
#    cannot help. The **{term}`Symmetric Relevance Gain <symmetric relevance gain>`** (SRG)
#    {cite:p}`blucher2024srg` is the area between the curves of deleting the least and the most
#    relevant pixels first: 0 for a random order.
# 2. **Sanity.** Replace the model's weights with random ones, the {term}`sanity check` of
#    {cite:t}`adebayo2018sanity`: a map that stays the same cannot be explaining what the model
#    learned.
# 3. **Ground truth.** On the spectrograms only the chirp carries information, and every pixel's
#    region is known: does a map put its mass on the chirp, its top patch on the chirp (the
#    {term}`pointing game`), and how
#    much on the text, colour bar and axes?
# 4. **Cost.** Forward passes per image (a count, the same on every machine) and images per
#    second (on this machine).
#
# The **controls** are a *random* map and the image's *brightness* (a "map" that knows nothing of
# the model), and on the spectrograms a *uniform* map. Every number is a mean over images with a
# 95 % {term}`bootstrap interval` over the images. Every verdict compares two maps *image by
# image*: every map is scored on the same images, so "does A beat the random map?" is a question
# about the per-image differences A − random, tested with one rule and one correction for the
# number of comparisons (stated below, where the first verdicts are made). Areas under the curves use the
# trapezoid rule over the fraction of pixels replaced, from 0 (the unperturbed image, included)
# to 1.

# %% tags=["remove-cell"]
# Binder and Colab: install vitnotes when it is missing (here, and wherever it is installed, a no-op).
import importlib.util, subprocess, sys  # noqa: E401
if importlib.util.find_spec("vitnotes") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "vitnotes @ git+https://github.com/vitnotes/vitnotes"], check=True)

# %%
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown

import vitnotes as vn

vn.setup(seed=0)
_ = torch.set_grad_enabled(False)  # the methods switch gradients on where they need them

# %% [markdown]
# Three models: the Fashion-MNIST {cite:p}`xiao2017fmnist` ViT with a 7x7 patch grid (50 tokens,
# so that every method, attention flow included, runs in seconds), the ResNet {cite:p}`he2016resnet`
# on the same images (for the methods that explain a CNN), and `spectro-vit`, the ViT fine-tuned on the spectrograms, for the ground truth.

# %%
vit = vn.load(vn.pick("fmnist-vit-p4", hub="google/vit-base-patch32-224"))
resnet = vn.load(vn.pick("fmnist-resnet", hub="microsoft/resnet-50"))
RECIPE = vn.pick("spectro-vit", hub="spectro-vit-b16")
spectro = vn.train.trained(RECIPE)
vit, resnet, spectro

# %% [markdown]
# ## The methods
#
# Every method is one file in `vitnotes/methods/` and takes one signature; `vn.evaluate.method_table` lists
# the registry. Attention-based maps ({term}`attention rollout` and attention flow
# {cite:p}`abnar2020rollout`, the last layer's CLS attention, value-weighted attention
# {cite:p}`kobayashi2020norm`) never look at the class; the gradient-based ones
# ({term}`gradient rollout` {cite:p}`chefer2021generic`, {term}`Grad-CAM`
# {cite:p}`selvaraju2017gradcam`,
# LeGrad {cite:p}`bousselham2025legrad`, CP-LRP {cite:p}`achtibat2024attnlrp`,
# {term}`integrated gradients` {cite:p}`sundararajan2017ig`) and {term}`occlusion`
# {cite:p}`zeiler2014occlusion` explain one class. Occlusion, the drop in the score when one patch
# is replaced by the image's mean, is the causal reference: it
# measures directly what the model uses, patch by patch, at the price of one forward pass per
# patch.

# %%
vn.evaluate.method_table()

# %% [markdown]
# The sample sizes are set by the time the book may take (every chapter re-executes on two CPU
# cores): every Fashion-MNIST metric and the randomisation check use the same first test images,
# the perturbation curves a few steps (the fractions 0, 1/4, ... 1 of the pixels), and integrated
# gradients few interpolation steps. The perturbation curves are the bill: every map, every
# baseline and both orders of deletion cost forward passes per image (`2 x (STEPS - 1)` per map and
# baseline, plus the intact and the fully replaced image, which every map shares), so the
# Fashion-MNIST verdicts use `N_F` images (128) and the randomisation check, which recomputes every map
# on randomised models, the first `N_SANITY` (32) of them; the line printed with the faithfulness table says what each
# image costs on this machine. The intervals and the paired tests say what these sample sizes can and
# cannot resolve.

# %%
N_F = vn.pick(128, hub=8)  # test images for every map, every metric and every paired verdict
N_SANITY = vn.pick(32, hub=4)  # the first of them, for the randomisation check
N_S = vn.pick(16, hub=2)  # test spectrograms
STEPS = 4  # perturbation curves at the fractions 0, 1/4, 1/2, 3/4, 1 of the pixels
MEAN = vn.pick(0.2860 * 255, hub=None)  # the mean-grey baseline: Fashion-MNIST's training mean (photos: their own)
OPTIONS = {"integrated gradients": {"n_steps": 8}}
images, labels, objects = vn.data.examples()
imgs, y, obj = images[:N_F], labels[:N_F], objects[:N_F]  # raw [N, 28, 28] uint8, labels, garment pixels
x = vit.preprocess(imgs)  # [N, 1, 28, 28]
maps, cost = vn.evaluate.every_map(vit, x, options=OPTIONS)  # every registered ViT method: {name: [N, 7, 7]}
maps["brightness"] = vn.evaluate.brightness_maps(imgs)  # the control: each pixel's brightness, [N, 28, 28]
print(f"{N_F} images, {len(maps)} maps each: {', '.join(maps)}")

# %% [markdown]
# Six of the images, a row per method. Each row has **one colour scale** shared by its images,
# with its colour bar: within a row, brighter means more. Maps with negative values (CP-LRP,
# integrated gradients and occlusion can say "against") are drawn red for and blue against, about
# 0. The cyan line outlines the garment.

# %%
SHOW = 6
vn.show.shared_maps(imgs[:SHOW], {k: v[:SHOW] for k, v in maps.items()}, outline=obj[:SHOW],
               titles=[vit.labels[c] for c in y[:SHOW]])

# %% [markdown]
# ## Faithfulness
#
# `vn.evaluation_table` runs deletion (most relevant first and least relevant first) and insertion
# for every map with each baseline, and deletion inside the garment with the black baseline. The
# score is the probability of the class the model predicts on the intact image. Lower deletion
# AUC, higher insertion AUC and higher SRG are better. The random map and the brightness control
# join every run. The tables print two decimals: the third decimal of an interval's ends moves
# when another CPU sums in another order.

# %% [markdown]
# ```{admonition} Predict before you run
# :class: tip
# Brightness knows nothing of the model. With the black baseline, will it beat the random map on
# deletion, and will it still do so when deleted pixels become the mean grey instead?
# ```

# %%
table = vn.evaluation_table(maps, vit, imgs, baselines=("black", "mean", "blur"), mean=MEAN, restrict=obj,
                            restrict_name="object", restrict_baselines=("black",), steps=STEPS,
                            progress=vn.show_progress(), per_image=True)
FAITH = [(m, b) for b in ("black", "mean", "blur") for m in ("deletion_auc", "insertion_auc", "srg")]
FAITH += [("deletion_auc", "black, object"), ("srg", "black, object")]
vn.evaluate.interval_table(table, FAITH, digits=2)

# %% tags=["nbval-ignore-output"]
per_image_s = table.attrs["total_seconds"] / N_F  # a time: it differs from machine to machine
print(f"the perturbation curves took {per_image_s:.1f} s per image here, {N_F * per_image_s / 60:.0f} minutes "
      f"for the {N_F} images of this table")

# %% [markdown]
# The mean curves with the black baseline (left: deleting the most relevant pixels first; right:
# putting them back first):

# %%
vn.show.curve_plot(table.attrs["curves"], "black", ylabel="p(predicted class)")

# %% [markdown]
# Every method's interval on four of the columns; the grey band is the random map's interval, the
# controls are grey. The bars show each map's own spread over the images; whether a map beats random is
# decided by the paired test below, not by whether its bar clears the band.

# %%
vn.show.interval_plot(table, [("deletion_auc", "black"), ("deletion_auc", "black, object"), ("srg", "mean"),
                         ("srg", "blur")])

# %% [markdown]
# ## Verdicts, image by image
#
# Whether two intervals overlap is the wrong question for two maps scored on the same images: the
# images differ far more from one another than the maps do, so two intervals can overlap although
# one map wins on nearly every image, and among many comparisons some separate by chance.
# `vn.paired_verdicts` takes each comparison's per-image differences, their mean with its bootstrap
# interval, the effect size $d_z$ (mean difference over its standard deviation) and the share of
# images the first map wins, tests the mean difference with a two-sided sign-flip permutation test
# (is each image's difference as likely to have the other sign?), and corrects every p-value of
# the table together by Holm's method {cite:p}`holm1979`. The rule, stated once:

# %%
print(vn.evaluate.PAIRED_RULE)

# %% [markdown]
# The table holds every map against the random map and against brightness, and each column's
# leader against its runner-up, on every column: the correction counts all of them. (The search
# for contradictions below asks a question of its own, every two methods on every column, and
# gets a table and a correction of its own.) Each map against the random map, column by column:

# %%
by_mean = vn.evaluate.leaders(table, family="faithfulness")  # who leads each column, by its mean
paired = vn.paired_verdicts(table, against=("random", "brightness"),
                            pairs=list(zip(by_mean["best"], by_mean["runner-up"])))
pv = paired.set_index(["method", "other", "metric", "baseline"])["verdict"]
FLIP = {"better": "worse", "worse": "better", "cannot tell": "cannot tell"}


def said(a, b, col):
    """The paired verdict of map a against map b on one (metric, baseline) column."""
    return pv[(a, b, *col)] if (a, b, *col) in pv.index else FLIP[pv[(b, a, *col)]]


CONTROLS = ("random", "brightness", "uniform")
methods_only = [m for m in maps if m not in CONTROLS]
print(f"{len(paired)} paired comparisons on {N_F} images, Holm-corrected together; "
      f"{(paired['verdict'] != 'cannot tell').sum()} of them decided")
pd.DataFrame({vn.evaluate.column_label(*c): [said(m, "random", c) for m in [*methods_only, "brightness"]] for c in FAITH},
             index=pd.Index([*methods_only, "brightness"], name="against random"))

# %% [markdown]
# One column in full: deletion to black, each map minus the random map (lower is better here, so
# a negative difference favours the map).

# %%
one_col = paired[(paired["other"] == "random") & (paired["metric"] == "deletion_auc")
                 & (paired["baseline"] == "black")].set_index("method")
one_col[["n", "difference", "low", "high", "d_z", "wins", "p_adjusted", "verdict"]].round(2)

# %%
beats = {c: [m for m in methods_only if said(m, "random", c) == "better"] for c in FAITH}
bright = {c: said("brightness", "random", c) for c in FAITH}
lead = vn.evaluate.leaders(table, family="faithfulness", paired=paired)  # the controls compete too
lead.loc[[vn.evaluate.column_label(*c) for c in FAITH]].round(2)

# %%
confound = bright[("deletion_auc", "black")] == "better" and bright[("deletion_auc", "mean")] != "better"
bright_top_black = lead.loc["deletion_auc [black]", "best"] == "brightness" or \
    lead.loc["deletion_auc [black]", "runner-up"] == "brightness"
every_column = [m for m in methods_only if all(m in beats[c] for c in FAITH)]
no_column = [m for m in methods_only if not any(m in beats[c] for c in FAITH)]
leaders_differ = lead.loc[[vn.evaluate.column_label(*c) for c in FAITH], "best"].nunique()
print("leader better than the runner-up (paired):", int(lead.loc[[vn.evaluate.column_label(*c) for c in FAITH], "clear"].sum()),
      f"of {len(FAITH)} columns")
print("beats random on deletion [black]:", ", ".join(beats[("deletion_auc", "black")]) or "none")
print("beats random on deletion inside the garment:", ", ".join(beats[("deletion_auc", "black, object")]) or "none")
print("brightness against random, column by column:", {vn.evaluate.column_label(*c): w for c, w in bright.items()})
print(f"{leaders_differ} different maps lead the {len(FAITH)} columns")

# %%
Markdown(" ".join([
    vn.claim(confound,
             "The confound is there: brightness, which knows nothing of the model, beats the random map on "
             "deletion to black but not with the mean-grey baseline, where deleting a bright pixel is no longer "
             "the largest possible change.",
             "Brightness does not show the black baseline's confound here: it does not beat random on deletion to "
             "black while failing with the mean-grey baseline."),
    vn.claim(bright_top_black, "With black, brightness is among the two best maps of all.",
             "With black, brightness is not among the two best maps."),
    vn.claim(every_column, f"Only {', '.join(every_column)} beat{'s' if len(every_column) == 1 else ''} the random "
             f"map on every one of the {len(FAITH)} columns.",
             f"No method beats the random map on all {len(FAITH)} columns."),
    vn.claim(no_column, f"{', '.join(no_column).capitalize()} beat{'s' if len(no_column) == 1 else ''} it on none.",
             "Every method beats it on at least one column."),
    vn.claim(leaders_differ > 1, f"The best map changes with the baseline and the metric: {leaders_differ} "
             "different maps lead the columns.", "One map leads every column."),
]))

# %% [markdown]
# ## Where two metrics disagree
#
# If the metrics measured one thing, they would rank the methods alike. `vn.evaluate.metric_disagreements`
# gives the Spearman correlation over the methods (controls left out) between every two columns,
# each oriented so that higher is better, and lists every pair of methods that two columns order
# in opposite ways *with a paired verdict in both*: contradictions, not noise. The paired verdicts
# here compare every two methods (controls left out) on every column, Holm-corrected together.

# %%
allpairs = vn.paired_verdicts(table[~table["method"].isin(CONTROLS)], against=(), pairs="all")
print(f"{len(allpairs)} paired comparisons between methods, {(allpairs['verdict'] != 'cannot tell').sum()} decided")
agree, contradictions = vn.evaluate.metric_disagreements(table, paired=allpairs)
labels9 = [vn.evaluate.column_label(*c) for c in FAITH]
agree.loc[labels9, labels9].round(2)

# %%
print(f"{len(contradictions)} contradictions between two columns (a paired verdict both ways)")
contradictions.head(12)

# %%
pair = agree.loc[labels9, labels9].stack()
pair = pair[[a < b for a, b in pair.index]]
worst = pair.idxmin()  # the two columns that rank the methods least alike
print(f"least alike: {worst[0]} and {worst[1]} (Spearman over methods {pair.min():.2f})")
split = lambda label: (label.split(" [")[0], label.split(" [")[1].rstrip("]"))  # noqa: E731
vn.show.metric_scatter(table, split(worst[0]), split(worst[1]))

# %% [markdown]
# In the scatter, two metrics that agree would put the methods along the rising diagonal (both
# axes point towards "better"). The black and the mean-grey baselines ask different questions:
# black asks "which pixels must stay lit?", mean grey "which pixels must differ from the average
# garment?", and the object-restricted deletion asks the first question only where there is
# something to delete. A method's faithfulness score is an answer to one of these questions, not a
# property of the method.

# %% [markdown]
# ## Sanity: randomise the model
#
# `vn.evaluate.randomisation_check` redraws every weight of the ViT (blocks, classifier and embeddings) and
# computes each method's map again, for the class the trained model predicted. As
# {cite:t}`adebayo2018sanity` do, it compares the trained and the randomised map of each image by
# the *absolute* Spearman rank correlation over the cells (a ranking that survives turned upside
# down has survived as much as one that survives upright) and by the SSIM of the two maps, each
# scaled to [0, 1]. Each is a mean over the images with its interval, and one rule
# (`vn.sanity_verdict`, the same in chapter 06) turns them into a word:

# %% [markdown]
# ```{admonition} Predict before you run
# :class: tip
# Which maps will look the same on a model with random weights: those computed from attention
# alone, those that follow gradients to the class score, or occlusion? Pick one method you expect
# to fail and one you expect to pass.
# ```

# %%
cells = int(np.prod(maps["rollout"].shape[-2:]))
print(vn.evaluate.SANITY_RULE)
print(f"Two independent maps of {cells} cells reach a mean |Spearman| of about {vn.evaluate.chance_abs_spearman(cells):.2f}.")

# %% [markdown]
# The random map and brightness do not depend on the model at all, so they fail by construction.

# %%
sanity, randomised = vn.evaluate.randomisation_check(vit, x[:N_SANITY], {k: v[:N_SANITY] for k, v in maps.items()},
                                            options=OPTIONS)
sanity_words = vn.scorecard(sanity)["sanity"]
SANITY = [("randomisation_abs_spearman", ""), ("randomisation_ssim", ""), ("randomisation_spearman", "")]
vn.evaluate.interval_table(sanity, SANITY, digits=2).assign(verdict=sanity_words)

# %%
t = sanity.set_index(["method", "metric"])["value"]
vn.check(all(t[(c, m)] == 1 for c in ("random", "brightness") for m in ("randomisation_abs_spearman",
                                                                        "randomisation_ssim")),
         "the random map and brightness are unchanged by randomising the model")
hi = sanity.set_index(["method", "metric"])["high"]
passes = [m for m in methods_only if sanity_words[m] == "passes"]
fails = [m for m in methods_only if sanity_words[m] == "fails"]
unclear = [m for m in methods_only if sanity_words[m] == "cannot tell"]
inverted = [m for m in methods_only if hi[(m, "randomisation_spearman")] < 0]  # significantly negative Spearman
print(f"passes: {', '.join(passes) or 'none'} | cannot tell: {', '.join(unclear) or 'none'} | "
      f"fails: {', '.join(fails) or 'none'} | ranking survives inverted: {', '.join(inverted) or 'none'}")

# %% [markdown]
# Three of the maps on the trained model and on the randomised one (each row with its own colour
# bar):

# %%
pick3, shown = ["rollout", "gradient rollout", "cp-lrp"], min(SHOW, N_SANITY)
vn.show.shared_maps(imgs[:shown], {f"{m}{s}": (maps if s == "" else randomised)[m][:shown] for m in pick3
                              for s in ("", ", random model")}, outline=obj[:shown])

# %% [markdown]
# ## Ground truth on the spectrograms
#
# `spectro-vit` regresses the chirp's start time, start frequency and end frequency from a
# spectrogram drawn with a title, tick labels, a colour bar and axes around it. We explain the
# output it predicts best (by its card's $R^2$). The chirp is a thin line, a few per cent of the
# pixels, so a uniform map is the reference (the {term}`uniform reference`): its mass on a region
# is the region's share of the
# pixels, and its pointing game is chance. Occlusion here replaces 8x8-pixel squares (2x2
# patches), a quarter of the forward passes of patch-by-patch occlusion on this 14x14 grid.

# %%
ds = vn.data.spectrograms(N_S, seed=3, size=spectro.geometry.image_size)  # the test split's first N_S
simgs, masks = np.stack(ds["image"]), np.stack(ds["mask"])  # [N_S, 56, 56, 3] uint8, region codes
xs = spectro.preprocess(list(simgs))
r2 = vn.card(spectro.name)["metrics"]["r2"]
TARGET = int(np.argmax([r2[k] for k in vn.data.TARGET_NAMES]))
S_OPTIONS = {**OPTIONS, "occlusion": {"patch": 2 * spectro.geometry.patch_size}}
smaps, scost = vn.evaluate.every_map(spectro, xs, TARGET, options=S_OPTIONS)  # 197 tokens: attention flow is left out
smaps["brightness"] = vn.evaluate.brightness_maps(simgs)
smaps["uniform"] = torch.ones_like(smaps["random"])
chirp = vn.evaluate.region_stack(masks)["chirp"]
print(f"explaining output {TARGET} ({vn.data.TARGET_NAMES[TARGET]}, R^2 {r2[vn.data.TARGET_NAMES[TARGET]]:.2f}); "
      f"{N_S} spectrograms; left out: {', '.join(scost.attrs['skipped']) or 'none'}")

# %%
vn.show.shared_maps(simgs[:SHOW], {k: v[:SHOW] for k, v in smaps.items() if k != "uniform"}, outline=chirp[:SHOW])

# %% [markdown]
# The cyan line outlines the chirp. `vn.evaluation_table` with the masks gives, per method, the
# share of its (positive) mass on the chirp against the chirp's share of the pixels, the pointing
# game (is the top cell on the chirp?) against chance, and the mass on each distractor.

# %%
gt = vn.evaluation_table(smaps, masks=masks, per_image=True)
GT = [(m, "") for m in ("mass_chirp", "area_chirp", "ratio", "pointing", "pointing_chance", "mass_text",
                        "mass_colorbar", "mass_axes")]
vn.evaluate.interval_table(gt, GT, digits=2)

# %%
vn.show.interval_plot(gt, [("mass_chirp", ""), ("pointing", ""), ("mass_text", ""), ("mass_colorbar", ""),
                      ("mass_axes", "")], reference="uniform")

# %%
smethods = [m for m in smaps if m not in CONTROLS]
sfaith = vn.evaluation_table({k: v for k, v in smaps.items() if k != "uniform"}, spectro, simgs,
                             baselines=("blur",), steps=STEPS, target=TARGET, progress=vn.show_progress(),
                             per_image=True)
# one table of paired verdicts for the spectrograms: every map against the uniform map (ground truth),
# against the random map (faithfulness) and against occlusion (the model's own use of a region)
spaired = vn.paired_verdicts(pd.concat([gt, sfaith]), against=("uniform", "random"),
                             pairs=[(m, "occlusion") for m in smethods])
spv = spaired.set_index(["method", "other", "metric", "baseline"])["verdict"]
sv = lambda m, other, metric, baseline="": spv.get((m, other, metric, baseline), "")  # noqa: E731
on_chirp = [m for m in smethods if sv(m, "uniform", "mass_chirp") == "better"]
points = [m for m in smethods if sv(m, "uniform", "pointing") == "better"]
bar_used = sv("occlusion", "uniform", "mass_colorbar") == "worse"  # occlusion: more than uniform
bar_lit = [m for m in smethods if sv(m, "uniform", "mass_colorbar") == "worse"]
bar_over_occ = [m for m in bar_lit if sv(m, "occlusion", "mass_colorbar") == "worse"]
print(f"{len(spaired)} paired comparisons on {N_S} spectrograms, Holm-corrected together")
print(f"more mass on the chirp than uniform: {', '.join(on_chirp) or 'none'}")
print(f"top cell on the chirp more often than chance: {', '.join(points) or 'none'}")
print(f"more mass on the colour bar than uniform: {', '.join(bar_lit) or 'none'} "
      f"(of those, more than occlusion: {', '.join(bar_over_occ) or 'none'})")

# %% [markdown]
# Faithfulness on the spectrograms, with the blurred image as the baseline (it erases the thin
# chirp and keeps the colours) and the score minus the squared change of the explained output:

# %%
vn.evaluate.interval_table(sfaith, [("deletion_auc", "blur"), ("insertion_auc", "blur"), ("srg", "blur")], digits=2)

# %%
both = pd.concat([gt, sfaith]).assign(family="spectrograms")
sagree, scontra = vn.evaluate.metric_disagreements(both, family="spectrograms", paired=spaired.assign(family="spectrograms"))
gt_vs_srg = sagree.loc["mass_chirp", "srg [blur]"]
sbeats = [m for m in smethods if sv(m, "random", "srg", "blur") == "better"]
print(f"Spearman over methods between mass on the chirp and SRG [blur]: {gt_vs_srg:.2f}; "
      f"SRG [blur] better than random: {', '.join(sbeats) or 'none'}")
scontra[scontra["first"].eq("mass_chirp") | scontra["second"].eq("mass_chirp")]

# %%
Markdown(" ".join([
    vn.claim(on_chirp, f"{', '.join(on_chirp).capitalize()} put{'s' if len(on_chirp) == 1 else ''} more mass on the "
             "chirp than a uniform map does;", "No method puts more mass on the chirp than a uniform map does;"),
    vn.claim(points, f"{', '.join(points)} point{'s' if len(points) == 1 else ''} at the chirp more often than chance.",
             "none points at the chirp more often than chance."),
    vn.claim(bar_used, "Occlusion finds that the model uses the colour bar (more of its mass there than uniform),",
             "Occlusion finds no use of the colour bar beyond its area,"),
    vn.claim(bar_over_occ, f"and {', '.join(bar_over_occ)} light{'s' if len(bar_over_occ) == 1 else ''} it up more "
             "than occlusion does: more than the model's use of it warrants.",
             "and no method lights it up more than occlusion does."),
    vn.claim(gt_vs_srg < 0.5, f"The ground truth and the faithfulness score rank the methods differently "
             f"(Spearman {gt_vs_srg:.2f} between mass on the chirp and SRG): a map can sit on the chirp without "
             "ranking the pixels the output is most sensitive to, and the other way round.",
             f"The ground truth and the faithfulness score rank the methods alike (Spearman {gt_vs_srg:.2f})."),
]))

# %% [markdown]
# ## The ResNet
#
# Four of the methods explain a CNN: Grad-CAM (on the last stage), integrated gradients,
# occlusion (8x8-pixel squares of its 56-pixel input) and the random map (on the same squares).
# The same images, baselines and metrics. (`vn.interventions.randomized` redraws ViT blocks; the ResNet has no
# randomisation check here.)

# %%
R_OPTIONS = {**OPTIONS, "occlusion": {"patch": vn.pick(8, hub=32)}, "random": {"patch": vn.pick(8, hub=32)}}
cmaps, rcost = vn.evaluate.every_map(resnet, resnet.preprocess(imgs), options=R_OPTIONS)
cmaps = {k: vn.evaluate.resize_maps(v, imgs.shape[1:3], model=resnet) for k, v in cmaps.items()}  # where the CNN looked
cmaps["brightness"] = maps["brightness"]
rtable = vn.evaluation_table(cmaps, resnet, imgs, baselines=("black", "mean", "blur"), mean=MEAN, restrict=obj,
                             restrict_name="object", restrict_baselines=("black",), steps=STEPS,
                             progress=vn.show_progress(), per_image=True)
rpaired = vn.paired_verdicts(rtable, against=("random", "brightness"))  # its own table, its own correction
vn.evaluate.interval_table(rtable, FAITH, digits=2)

# %% [markdown]
# ## Everything in one table
#
# One row per model and map, one column per metric: faithfulness (every baseline and the
# object-restricted deletion), sanity (the absolute Spearman and the SSIM between the trained and
# the randomised map), ground truth and the forward passes per image (each backward pass costs
# about two more).

# %%
everything = pd.concat([pd.concat([table, sanity]).assign(model=vit.name),
                        pd.concat([gt, sfaith]).assign(model=spectro.name), rtable.assign(model=resnet.name)])
COLUMNS = FAITH + SANITY[:2] + GT
one = vn.evaluate.interval_table(everything, [c for c in COLUMNS if vn.evaluate.column_label(*c) in
                                     set(vn.evaluate.column_label(m, b) for m, b in zip(everything.metric, everything.baseline))],
                        index=("model", "method"), digits=2)
forwards = pd.concat({vit.name: cost, spectro.name: scost, resnet.name: rcost}).droplevel(1).set_index("method",
                                                                                                     append=True)
one["forwards / image"] = forwards["forwards"].reindex(one.index).map(lambda f: "" if pd.isna(f) else f"{f:g}")
one

# %% [markdown]
# And the verdicts, each model's from its own table of paired verdicts: on how many faithfulness
# columns a method is better or worse than the random map and than brightness, the sanity check,
# and on the spectrograms whether its mass on the chirp, its pointing game and its mass on each
# distractor are better or worse than the uniform map's, or cannot be told apart from it.

# %%
scorecards = pd.concat({vit.name: vn.scorecard(pd.concat([table, sanity]), paired=paired),
                        spectro.name: vn.scorecard(pd.concat([gt, sfaith]), paired=spaired),
                        resnet.name: vn.scorecard(rtable, paired=rpaired)})
scorecards.apply(lambda col: col.map(lambda v: "" if pd.isna(v) else f"{v:g}" if isinstance(v, float) else v))

# %% [markdown]
# What each map cost on this machine (wall clock, so it varies from run to run; the perturbation
# curves cost `2 x (steps - 1)` forward passes per image, map and baseline, plus two per image and
# baseline that every map shares):

# %% tags=["nbval-ignore-output"]
pd.concat({vit.name: cost, spectro.name: scost, resnet.name: rcost}).droplevel(1).set_index("method", append=True).round(
    {"seconds": 2, "images_per_s": 1})

# %% [markdown]
# ```{admonition} Why is my attention map empty or wrong?
# :class: tip
#
# - **SDPA returns no weights.** transformers runs attention through PyTorch's fused
#   `scaled_dot_product_attention` by default, which never forms the probability matrix: asking for
#   `output_attentions=True` then returns an empty tuple, with only a log line. Switch the model to
#   eager attention (`model.set_attn_implementation("eager")`), or register an attention function
#   that hands over the probabilities it computes anyway, as `vn.capture` does.
# - **The last block's patch tokens never reach a CLS classifier.** A ViT classifier reads the CLS
#   token after the last block and nothing else, so the gradient of the class score with respect to
#   the patch tokens the last block *outputs* is exactly zero: Grad-CAM there is an empty map. Use
#   the tokens *entering* the last block's attention (what `vn.explain(..., "grad-cam")` does), or a method that
#   follows the attention (gradient rollout, LeGrad).
# - **Per-panel colour scales.** `imshow` stretches every map to its own minimum and maximum, so a
#   map that is uniform to three decimals (a random block's CLS map, chapter 06) draws as
#   crisply as a peaked one. Share one scale per method and add a colour bar, as this chapter's
#   figures do, or print the map's entropy next to it.
# - **Prefix tokens.** The CLS token is a key too, and DeiT {cite:p}`touvron2021deit` adds a
#   distillation token, DINOv2 with {term}`registers <register token>` {cite:p}`darcet2024registers`
#   four more: a row of attention has prefix + patches entries. Drop every prefix column
#   (and renormalise) before laying the row out on the patch grid; `[:, 1:]` on a model with
#   registers shifts the whole map by four patches without an error.
# - **Hooks on the wrong module.** A hook on the attention module returns its output after the
#   output projection, not the probabilities; a hook on `q_proj` sees the queries before they are
#   split into heads; a module that a fused kernel replaced is never called. Check the shape of what
#   you capture: attention probabilities are `[batch, heads, tokens, tokens]` and each row sums to 1.
# ```

# %% tags=["hide-input"]
def mostly_faithful(card, names):  # better than random on at least half the columns, worse on none
    return [m for m in names if card.loc[m, "better than random"] >= card.loc[m, "faithfulness columns"] / 2
            and card.loc[m, "worse than random"] == 0]


faithful = mostly_faithful(vn.scorecard(table, paired=paired), methods_only)
best_sanity = [m for m in faithful if m in passes]
cnn_methods = [m for m in cmaps if m not in CONTROLS]
cnn_faithful = mostly_faithful(vn.scorecard(rtable, paired=rpaired), cnn_methods)
n_decided = int((paired["verdict"] != "cannot tell").sum())
Markdown(f"""
## What we found

On `{vit.name}` ({N_F} test images; the randomisation check on {N_SANITY}), `{spectro.name}` ({N_S} test
spectrograms) and `{resnet.name}` (the same {N_F} images), with perturbation curves of {STEPS} steps,
95 % bootstrap intervals over images and paired verdicts (sign-flip tests, Holm-corrected over each
model's table: {n_decided} of the {len(paired)} comparisons on `{vit.name}` decided):

- Faithfulness depends on the question asked. {vn.claim(confound, "Brightness beats the random map on deletion to black and not with a mean-grey baseline: deletion to black on Fashion-MNIST rewards ranking the garment first.", "Brightness does not show the confound of the black baseline on these images.")}
  {vn.claim(leaders_differ > 1, f"{leaders_differ} different maps lead the {len(FAITH)} faithfulness columns, and", "One map leads every faithfulness column, and")}
  {vn.claim(len(contradictions) > 0, f"{len(contradictions)} pairs of columns order two methods oppositely, each with a paired verdict.", "no two columns order two methods oppositely with a paired verdict in both.")}
- {vn.claim(every_column, f"Beating the random map on every column: {', '.join(every_column)}.", "No method beats the random map on every faithfulness column.")}
  {vn.claim(no_column, f"On none: {', '.join(no_column)}.", "Every method beats it on at least one column.")}
- Sanity (|Spearman| and SSIM with the map on a random model, both intervals below {vn.evaluate.SANITY_THRESHOLD:g} to pass): {vn.claim(passes, f"{', '.join(passes)} pass{'es' if len(passes) == 1 else ''}", "no method passes")};
  {vn.claim(fails, f"{', '.join(fails)} fail{'s' if len(fails) == 1 else ''}", "no method fails")};
  {vn.claim(unclear, f"for {', '.join(unclear)} these images cannot tell", "every method is decided")}.
  {vn.claim(inverted, f"{', '.join(inverted).capitalize()} keep{'s' if len(inverted) == 1 else ''} {'its' if len(inverted) == 1 else 'their'} ranking turned upside down (a Spearman whose whole interval lies below 0): structure that survives randomisation, not its absence.", "No map's ranking survives randomisation inverted (no Spearman interval lies wholly below 0).")}
  {vn.claim(best_sanity, f"Better than random on at least half the faithfulness columns (worse on none) and passing the sanity check: {', '.join(best_sanity)}.", "No method is better than random on at least half the faithfulness columns and passes the sanity check.")}
- Ground truth: {vn.claim(on_chirp, f"{', '.join(on_chirp)} put{'s' if len(on_chirp) == 1 else ''} more mass on the chirp than a uniform map", "no method puts more mass on the chirp than a uniform map")}
  and {vn.claim(points, f"{', '.join(points)} point{'s' if len(points) == 1 else ''} at it more often than chance", "none points at it more often than chance")}.
  {vn.claim(bar_over_occ, f"{', '.join(bar_over_occ)} light up the colour bar more than occlusion does.", "No method lights up the colour bar more than occlusion does.")}
  Mass on the chirp and SRG rank the methods with a Spearman of {gt_vs_srg:.2f}.
- On `{resnet.name}`: {vn.claim(cnn_faithful, f"{', '.join(cnn_faithful)} beat{'s' if len(cnn_faithful) == 1 else ''} the random map on at least half the columns (worse on none)", "no method beats the random map on half the columns")}.
- The cost spans {cost['forwards'].min():g} to {cost['forwards'].max():g} forward passes per image on `{vit.name}`:
  attention maps need one, integrated gradients one per step, occlusion one per patch.
""")

# %% [markdown]
# **On ImageNet-scale ViTs.** The confound of deletion to black is a property of Fashion-MNIST's black
# background, not of the model, and should weaken on photos. The verdicts on single methods may change
# with the model: the attention-based maps (rollout, attention flow, the last layer) depend on how spread
# attention is in every layer, and {cite:t}`raghu2021vitsee` found that ViTs pre-trained on large data
# sets attend locally in their lower layers, unlike these small ones. That faithfulness depends on the
# question asked, and that no map wins every column, we expect to hold. Check it with
# `VITNOTES_MODELS=hub jupyter execute --output=../hub_09 notebooks/09_which_explanation.ipynb` after
# making the fine-tuned ViT-B/16 once with `python -m vitnotes.train spectro-vit-b16`
# ([Running on hub models](../book/hub_models.md)); it writes the executed copy to `hub_09.ipynb` at the
# repository's root, whose "What we found" is computed for the hub models.

# %% [markdown]
# ## Exercises
#
# 1. Re-run the faithfulness table with `steps=10` and twice the images. Which verdicts change,
#    and which intervals shrink the most?
#
# ````{admonition} Solution
# :class: dropdown
# Compute every map on twice the images, run the same table with ten steps, and compare the
# paired verdicts against the random map and the interval widths column by column. Twice the
# images narrow an interval by about $1/\sqrt{2}$ when the spread of the per-image values stays the
# same; ten steps instead of four change the areas themselves (a finer trapezoid rule resolves a
# fast early fall), so some columns' spread, and with it their intervals, can grow. The verdicts
# that flip are those whose corrected p-values sat near 0.05.
#
# ```python
# imgs2, obj2 = images[: 2 * N_F], objects[: 2 * N_F]
# maps2, _ = vn.evaluate.every_map(vit, vit.preprocess(imgs2), options=OPTIONS)
# maps2["brightness"] = vn.evaluate.brightness_maps(imgs2)
# table2 = vn.evaluation_table(
#     maps2, vit, imgs2, baselines=("black", "mean", "blur"), mean=MEAN,
#     restrict=obj2, restrict_name="object", restrict_baselines=("black",),
#     steps=10, per_image=True)
# key = ["method", "other", "metric", "baseline"]
# before = vn.paired_verdicts(table, against=("random",)).set_index(key)["verdict"]
# after = vn.paired_verdicts(table2, against=("random",)).set_index(key)["verdict"]
# after = after.reindex(before.index)
# changed = pd.DataFrame({"before": before, "after": after})
# print(changed[changed.before != changed.after])
#
#
# def width(t):  # the mean interval width of each column
#     return (t.high - t.low).groupby([t.metric, t.baseline]).mean()
#
#
# print((width(table2) / width(table)).sort_values().round(2))  # < 1: shrank
# ```
# ````
#
# 2. Occlusion is the causal reference, but with its own baseline (the image's mean) and cell size.
#    Compute it with `baseline="black"` and with `patch=2` on the spectrograms
#    (`vn.explain(spectro, xs, "occlusion", TARGET, patch=2)`): does its mass on the colour bar
#    change?
#
# ````{admonition} Solution
# :class: dropdown
# Score the variants with the ground-truth masks, next to the chapter's occlusion (the image's
# mean, 8x8-pixel squares). A black square is a larger change than the mean on a mostly dark
# spectrogram, and 2x2-pixel squares are too small to hide a tick label or the colour bar's
# gradient on their own, so both can move the mass occlusion finds there; compare the intervals
# before you call a difference a change.
#
# ```python
# cell = 2 * spectro.geometry.patch_size
# variants = {
#     "mean, 8 px": smaps["occlusion"],
#     "black, 8 px": vn.explain(spectro, xs, "occlusion", TARGET,
#                               baseline="black", patch=cell),
#     "mean, 2 px": vn.explain(spectro, xs, "occlusion", TARGET, patch=2),
# }
# vgt = vn.evaluation_table(variants, masks=masks)
# vn.evaluate.interval_table(vgt, [("mass_colorbar", ""), ("mass_text", ""),
#                         ("mass_chirp", "")])
# ```
# ````
#
# 3. Randomise only the classifier head
#    (`vn.evaluate.randomisation_check(..., from_layer=12, embeddings=False)`). Which maps cannot change,
#    whatever they explain, and why?
#
# ````{admonition} Solution
# :class: dropdown
# The maps computed from attention alone (rollout, the last layer's CLS attention, attention flow,
# value-weighted attention) cannot change: the blocks, and so every attention matrix and value
# vector, keep their trained weights, and these maps never read the classifier. Their Spearman
# with the trained maps is exactly 1 (and their SSIM too), like the random map's and brightness's:
# they fail. Every map that
# follows the class score (gradient rollout, Grad-CAM, LeGrad, CP-LRP, integrated gradients,
# occlusion) can change, because the score itself is now random. (`embeddings=False` matters: the
# check's default also redraws the patch and position embeddings, and then every map changes.)
#
# ```python
# head_only, _ = vn.evaluate.randomisation_check(
#     vit, x[:N_SANITY], {k: v[:N_SANITY] for k, v in maps.items()},
#     options=OPTIONS, from_layer=12, embeddings=False)
# rho = head_only.set_index(["method", "metric"])["value"]
# print(rho.xs("randomisation_abs_spearman", level="metric").round(3).sort_values())
# ```
# ````
