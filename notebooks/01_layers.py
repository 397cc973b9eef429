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
# # 01 · How does attention change from layer to layer?
#
# A ViT {cite:p}`dosovitskiy2021vit` has 12 layers, and each one lets the {term}`CLS token` read
# from the {term}`patch tokens <patch token>` again. Does the CLS token look at the same places all
# the way up, or does it start broad and narrow down onto the object? We draw the CLS row of every
# layer over the same Fashion-MNIST {cite:p}`xiao2017fmnist` images and measure, per layer
# (definitions in the introduction):
#
# - **entropy** of the CLS row over the patches, divided by $\log N$: the
#   {term}`normalised entropy` (1 = uniform), and the {term}`top-10 share`;
# - **{term}`mean attention distance`**: how far, in pixels, each patch reaches when it attends to
#   other patches (local heads have small distances, global heads large ones);
# - what the tokens themselves hold: the **position embeddings** the model learnt, and whether some
#   patch tokens grow an outsized norm and collect attention ({term}`register tokens <register token>`).
#
# Every headline number comes with a {term}`bootstrap interval <bootstrap interval>` over images
# (95 %, percentile bootstrap, `vn.bootstrap`).

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

# %%
vit = vn.load(vn.pick("fmnist-vit-p2", hub="google/vit-base-patch16-224"))
vit4 = vn.load(vn.pick("fmnist-vit-p4", hub="google/vit-base-patch32-224"))  # the last section's model
vit, vit4

# %% [markdown]
# We use the first 256 Fashion-MNIST test images for the CLS statistics, and the first `N_DIST` of
# them for the statistics that need the full $T \times T$ matrices (12 layers x 12 heads x
# $197^2$ numbers per image, streamed a few images at a time by `vn.attention_distances`).

# %%
images, labels, objects = vn.data.examples()
x = vit.preprocess(images[:256])  # pixel_values [256, 1, 28, 28]
cls = vn.capture(vit, x, cls_only=True)  # CLS rows: [layer, batch, head, key]
N_DIST = vn.pick(64, hub=8)
dist, cls_share = vn.attention_distances(vit, x[:N_DIST])  # from the full matrices: [layer, N_DIST, head] each
print(cls)
print(f"distances and CLS shares: {tuple(dist.shape)} (layer, image, head)")

# %% [markdown]
# ## The CLS row, layer by layer
#
# Each figure is one image; each panel is one layer's CLS {term}`attention map <attention map>`
# averaged over the 12 heads, drawn over the image (two rows of six: layers 0-5, then 6-11), all
# panels on one colour scale (the bar on the right); each title gives the map's H / log N.

# %%
maps = cls.cls_grids().mean(2)  # mean over heads: [layer, batch, 14, 14]
for i in vn.pick((0, 2, 9), hub=(0, 4, 7)):
    fig = vn.show.layer_strip(images[i], maps[:, i], labels=[f"L{layer}" for layer in cls.layers])
    fig.suptitle(f"{vn.pick('test image', hub='photo')} {i}: {vit.labels[labels[i]]}", fontsize=10)
    display(fig)

# %% [markdown]
# ## Entropy and attention distance by layer
#
# `vn.cls_summary` gives one row per (layer, head), averaged over images; `vn.by_layer`
# averages over heads.

# %%
heads_cls = vn.cls_summary(cls)  # 256 images, CLS statistics
table = vn.by_layer(heads_cls)[["entropy", "entropy_norm", "top10"]]
table["distance_px"] = dist.mean((1, 2)).numpy()  # N_DIST images
table["cls_share"] = cls_share.mean((1, 2)).numpy()
table.round(3)

# %% [markdown]
# The same numbers per image give intervals: for each image, the mean over heads of its H / log N
# and top-10 share (256 images), and of its mean attention distance (`N_DIST` images: the full
# matrices hold a row per token where the CLS statistics need one, so this is a runtime choice).

# %%
p = cls.cls_grids().flatten(-2)  # [layer, batch, head, patches]
per_image = {"entropy_norm": vn.normalized_entropy(p).mean(-1), "top10": vn.stats.topk_share(p, 10).mean(-1),
             "distance_px": dist.mean(-1)}  # each [layer, image]
iv = {name: vn.evaluate.interval_frame(v, cls.layers) for name, v in per_image.items()}
def fmt(t, layer, f=".3f"):  # "value [low, high]"
    return f"{t.loc[layer, 'value']:{f}} [{t.loc[layer, 'low']:{f}}, {t.loc[layer, 'high']:{f}}]"

pd.DataFrame({f"{name} [95 % interval] (n={int(t['n'].iloc[0])})": [fmt(t, layer) for layer in cls.layers]
              for name, t in iv.items()}, index=pd.Index(cls.layers, name="layer"))

# %%
vn.show.metric_by_layer(heads_cls, "entropy_norm", ylabel="CLS entropy / log N (1 = uniform)", reference=1.0, zero=True)

# %% [markdown]
# ## How far does each head reach?
#
# The ViT paper's Fig. 11 {cite:p}`dosovitskiy2021vit`: every head's mean attention distance as one
# dot per layer. The dashed line is the {term}`uniform reference`: what attention spread evenly over
# the 14x14 grid would give. In large ViTs trained on ImageNet the paper found *local* heads in the
# early layers (dots far below the line) next to global ones. {cite:t}`raghu2021vitsee` showed that
# this locality is learnt from data: with less pre-training data the lower layers' heads attend
# more globally, and the local heads of the ViT paper need large pre-training sets to appear. A small
# ViT trained on Fashion-MNIST alone is the small-data end of that comparison.
#
# ```{admonition} Predict before you run
# :class: tip
# This model sees 28-pixel images through 2-pixel patches. Will its first layer have heads that
# reach much less far than uniform attention, as ImageNet ViTs do?
# ```

# %%
uniform_px = vn.stats.uniform_distance(vit.geometry.grid, vit.geometry.patch_size)
heads_dist = heads_cls[["layer", "head"]].assign(distance_px=dist.mean(1).flatten().numpy())  # N_DIST images
vn.show.distance_dots(heads_dist, uniform_px)

# %%
closest = heads_dist.loc[heads_dist["distance_px"].idxmin()]
cl, ch = int(closest["layer"]), int(closest["head"])
closest_iv = vn.bootstrap(dist[cl, :, ch].numpy())
print(f"mean distance under uniform attention: {uniform_px:.2f} pixels (image diagonal {np.hypot(*images.shape[1:3]):.1f})")
print(f"most local head: layer {cl}, head {ch}, {closest_iv.value:.2f} pixels [{closest_iv.low:.2f}, {closest_iv.high:.2f}] "
      f"({closest_iv.value / uniform_px:.0%} of uniform; {closest_iv.n} images)")
local = bool(closest_iv.high < 0.5 * uniform_px)
print("a head reaching less than half as far as uniform attention (interval below half):", local)

# %% [markdown]
# ## What did the position embeddings learn?
#
# A ViT is told where each patch sits only by a learnt vector added to it, its position embedding.
# Nothing in training forces those vectors to encode a 2-D layout; the ViT paper's Fig. 7
# {cite:p}`dosovitskiy2021vit` shows that they do: each small map below is one patch's cosine
# similarity with every other patch's embedding, drawn at that patch's place on the grid, all on one
# -1..1 scale.

# %%
sim = vn.stats.position_similarity(vn.profile.position_embeddings(vit), vit.geometry.grid)  # [rows, cols, rows, cols]
vn.show.position_similarity_plot(sim)

# %%
steps = vn.stats.patch_distances(vit.geometry.grid, 1).reshape(sim.shape)  # distance in patches, [rows, cols, rows, cols]
near, far = float(sim[steps == 1].mean()), float(sim[steps >= vit.geometry.grid[0] / 2].mean())
print(f"mean cosine similarity: neighbours {near:.3f}, patches at least {vit.geometry.grid[0] // 2} apart {far:.3f}")
layout = near > far + 0.1

# %% [markdown]
# ## Do some tokens become registers?
#
# {cite:t}`darcet2024registers` found that large ViTs turn a few background patch tokens into
# scratch space: those tokens' norms grow far above the rest, and attention piles onto them, so
# attention maps light up on empty background. Three things have to hold together: high-norm tokens
# exist, they sit on background patches, and the CLS token gives them much more than their share of
# the tokens.
#
# The rule for "high norm": a token whose norm is more than **twice the median** norm of the patch
# tokens of the same image and layer. The registers Darcet et al. describe form a separate mode of
# norms far above the rest; a multiple of the median finds such a mode and stays silent when there is
# none, whereas a rule like median + k MAD flags a share of ordinary tokens in any skewed distribution
# (the column `max_over_median` shows how far the largest token of an image gets). The norm is
# that of the tokens the layer's attention reads (the residual stream entering the block). A patch is
# background when more than half its pixels are 0. "Enrichment" is the CLS mass on the high-norm
# tokens divided by their share of the tokens (1 = what uniform attention gives), per image.
#
# ```{admonition} Predict before you run
# :class: tip
# Registers appeared in ViT-L and ViT-g trained for long on large data sets, not in small ones.
# Will a 12-layer, 192-wide ViT trained for minutes on Fashion-MNIST grow them?
# ```

# %%
norms = vn.evaluate.token_norms(vit, x)  # [layer, batch, patches]: the stream each layer's attention reads
patch_bg = vn.stats.mask_coverage(torch.from_numpy(~objects[:256]), vit.geometry.grid)  # [256, 14, 14]
reg = vn.evaluate.register_table(norms, maps, patch_bg, factor=2.0, layers=cls.layers)
bg_patches = float((patch_bg > 0.5).double().mean())
print(f"{reg.attrs['images']} images, {reg.attrs['patches']} patches each; background patches: {bg_patches:.3f} of all")
reg[["median_norm", "max_norm", "max_over_median", "outliers", "images_with", "on_background",
     "cls_mass", "token_share", "enrichment", "enrichment_low", "enrichment_high", "n_enrichment"]].round(3)

# %%
def register_layer(row) -> bool:  # high-norm tokens in a quarter of the images, mostly on background, CLS mass >= 2x share
    return bool(row["images_with"] >= 0.25 and row["on_background"] > 0.5 and row["enrichment_low"] > 2)

register_layers = [layer for layer in cls.layers if register_layer(reg.loc[layer])]
peak = reg["max_over_median"].idxmax()
print("layers with a register effect:", register_layers)
print(f"largest norm / median in one image: {reg.loc[peak, 'max_over_median']:.2f} (layer {peak}); "
      f"images with a high-norm token, most in one layer: {reg['images_with'].max():.3f}")

# %% [markdown]
# ## Does the CLS token look at the garment?
#
# Fashion-MNIST garments sit on a black background. If attention "looks at the object", the
# CLS row should put more weight on garment patches than their share of the image. We take
# the pixels that are exactly 0 as background and compare, per layer, the CLS attention that
# lands on the background with the background's share of the image.

# %%
background = torch.from_numpy(~objects[:256])  # [256, 28, 28] bool: the pixels that are 0 (hub: outside the box)
area_i = vn.stats.mask_coverage(background, vit.geometry.grid).mean((-2, -1))  # [256] each image's background share
area = float(area_i.mean())
mass_bg = vn.stats.mask_mass(maps, background, batch_axis=1)  # [layer, 256] CLS attention on the background
excess = vn.evaluate.interval_frame(mass_bg - area_i, cls.layers)  # per image: mass minus the area's share
bg = pd.DataFrame({"layer": cls.layers, "CLS attention on background": mass_bg.mean(1).numpy(),
                   "background share of the patches": area}).set_index("layer")
bg["ratio"] = bg.iloc[:, 0] / area
bg["excess [95 % interval]"] = [fmt(excess, layer) for layer in cls.layers]
bg.round(3)

# %% [markdown]
# The sentences below are checked, not typed: `vn.check(condition, sentence)` stops the notebook when a
# statement the text relies on no longer holds, and `vn.claim(condition, if_true, if_false)` returns the
# sentence that holds, so "What we found" stays true when the numbers move (`vn.claims()` lists every
# claim a notebook made and whether it held).

# %%
low, high = int(table["entropy_norm"].idxmin()), int(table["entropy_norm"].idxmax())
garment_layers = [layer for layer in cls.layers if excess.loc[layer, "high"] < 0]  # interval below the area's share
bg_layers = [layer for layer in cls.layers if excess.loc[layer, "low"] > 0]
vn.check(iv["entropy_norm"]["high"].max() < 1, "every layer's CLS attention is more focused than uniform")
obj = vn.pick("garment", hub="object")
print(f"layers that favour the {obj} (interval of the excess below 0):", garment_layers)
print("layers that favour the background (interval above 0):", bg_layers)

# %% [markdown]
# Where the ratio exceeds 1, the CLS token reads *more* from empty black patches than their
# area would give them. That alone is not the register effect of the previous section: a
# background patch's token also carries where the garment is *not*, and its position. Whether
# the background attention goes to a few outsized tokens is what the register table measures.

# %% [markdown]
# ## When does the class become readable?
#
# Attention maps show where the CLS token reads from, not what it knows by then. Two standard
# tools ask each layer's CLS token directly which class the image belongs to:
#
# - the {term}`logit lens` {cite:p}`nostalgebraist2020lens` hands the residual stream after a layer to the
#   model's own final layer norm and classifier, as if the blocks above were skipped. It trains
#   nothing, and it can only read a class that the layer writes in the directions the classifier
#   reads at the end;
# - a {term}`linear probe` {cite:p}`alain2016probes` fits a new linear classifier (a multinomial logistic
#   regression on the standardised CLS token) per layer on training images, and is scored on test
#   images. It finds the class in whatever directions that layer keeps it.
#
# `emb` is the token sequence entering the first block; `L11` is the last block's output, which
# the classifier reads. We use `fmnist-vit-p4` here (50 tokens instead of 197, so a forward pass is
# cheap); the intervals are percentile-bootstrap 95 % intervals over the test images.

# %%
N_TRAIN, N_TEST = vn.pick((1000, 500), hub=(200, 100))
train_images, train_labels = vn.data.fashion_mnist_arrays("train")
test_images, test_labels = vn.data.fashion_mnist_arrays("test")
# a list of grey images: a colour model (the hub's) gets each replicated to three channels
x_train, y_train = vit4.preprocess(list(train_images[:N_TRAIN])), train_labels[:N_TRAIN]  # [1000, 1, 28, 28]
x_test, y_test = vit4.preprocess(list(test_images[:N_TEST])), test_labels[:N_TEST]  # [500, 1, 28, 28]
# the lens needs the model's own classes: ImageNet's for the hub models, so there it reads the labelled photos
lens_x, lens_y = vn.pick((x_test, y_test), hub=(vit4.preprocess(images), labels))
lens = vn.logit_lens(vit4, lens_x, lens_y)  # one row per layer: accuracy, low, high, p_true
probes = vn.linear_probes(vit4, x_train, y_train, x_test, y_test)  # adds last_probe, chance
def with_interval(t, digits=3):  # "accuracy [low, high]"
    return [f"{a:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]" for a, lo, hi in zip(t["accuracy"], t["low"], t["high"])]

# the probes at 2 decimals: a probe refitted on another CPU's features moves a few of the 500 test images
# (0.002 each), well inside the intervals (about +-0.04)

readable = pd.DataFrame({"lens accuracy [95 % interval]": with_interval(lens), "lens p(true)": lens["p_true"].round(3),
                         "probe accuracy [95 % interval]": with_interval(probes, 2),
                         "last layer's probe": probes["last_probe"].round(2)}, index=lens.index)
print(f"lens: {len(lens_y)} {vn.pick('test images', hub='labelled photos')} | probes: fitted on {N_TRAIN} training "
      f"images, scored on {N_TEST} test images | every probe converged: {bool(probes['converged'].all())}")
readable

# %%
vn.show.readability_plot({"logit lens": lens, "linear probe": probes,
                     "last layer's probe, read at each layer": probes["last_probe"]},
                    chance=float(probes["chance"].iloc[0]), ylabel="accuracy (shaded: 95 % interval)")

# %% [markdown]
# The third line is the disagreement's explanation. It takes the probe fitted on the last layer
# and reads every earlier layer with it (each layer's features standardised by their own mean and
# s.d.), which is what the lens does with the model's classifier. Where a layer's own probe reads
# the class and the last layer's probe does not, the class is there, written in other directions
# than the ones the final readout uses: the lens then reports a layer as knowing less than it does.

# %%
def first_readable(t):  # the first layer reaching 90 % of that readout's accuracy at the last layer
    return t.index[int(np.argmax(t["accuracy"].to_numpy() >= 0.9 * t["accuracy"].iloc[-1]))]

gap = probes["accuracy"] - lens["accuracy"]
gap_at = gap.idxmax()  # the layer where the two disagree most
apart = bool(probes.loc[gap_at, "low"] > lens.loc[gap_at, "high"])  # the intervals do not overlap
basis = bool(probes.loc[gap_at, "last_probe"] < probes.loc[gap_at, "low"])
order = list(lens.index)
probe_first = order.index(first_readable(probes)) < order.index(first_readable(lens))
same_time = first_readable(probes) == first_readable(lens)
print(f"readable (90 % of the last layer's accuracy) from: probe {first_readable(probes)}, lens {first_readable(lens)}")
print(f"largest gap at {gap_at}: probe {probes.loc[gap_at, 'accuracy']:.2f} "
      f"[{probes.loc[gap_at, 'low']:.2f}, {probes.loc[gap_at, 'high']:.2f}], lens {lens.loc[gap_at, 'accuracy']:.3f} "
      f"[{lens.loc[gap_at, 'low']:.3f}, {lens.loc[gap_at, 'high']:.3f}], last layer's probe {probes.loc[gap_at, 'last_probe']:.2f}")
print(f"before the first block (emb): lens {lens.loc['emb', 'accuracy']:.3f}, probe {probes.loc['emb', 'accuracy']:.2f}, "
      f"chance {probes['chance'].iloc[0]:.3f}")

# %% [markdown]
# ## Is it under-training? Attention while the model learned
#
# Zoo v1's models had stopped after their first, short training stage, well below the accuracy they
# reach now, so a reader could not tell what ViT attention does from what a ViT part-way through
# training does. The zoo's training runs answer
# with numbers: while `fmnist-vit-p4` trained, the loop measured every layer's attention on the
# same 256 test images at fixed epochs, from random weights to the end (the zoo page,
# {doc}`90_zoo_training`, has every model's log). Hub models have no such log: under them this
# section prints a note instead. Below: the log (a line per layer, dark = early; dashed grey =
# uniform attention), then each layer's statistics at the epoch where zoo v1 stopped (the end of
# `fmnist-vit-p4`'s first stage, printed below), against the end of training.
#
# ```{admonition} Predict before you run
# :class: tip
# Between the epoch where zoo v1 stopped and the end, does the CLS attention of the last layers get
# sharper, flatter, or stay as it was?
# ```

# %%

card4 = vn.pick(vn.card("fmnist-vit-p4"), hub=None)  # the offline zoo's training log; hub models have none
V1_EPOCH = card4["recipe"]["stages"][0]["epochs"] if card4 else None  # zoo v1 stopped here: the end of stage 1
if card4:
    display(vn.show.training_plot(card4))
    moved = vn.show.log_change(card4, V1_EPOCH)
    display(moved.round(3))
else:
    print("hub models have no training log: run this notebook under the offline zoo to see this section")

# %%
if card4:
    accuracy_at = {e["epoch"]: e["test_accuracy"] for e in card4["training_log"]}
    end_epoch = max(accuracy_at)
    biggest = {stat: moved[(stat, "change")].abs().idxmax()
               for stat in ("entropy_norm", "top10", "distance_px", "rollout_entropy_norm")}
    for stat, layer in biggest.items():
        print(f"{stat}: largest change in layer {layer}: {moved.loc[layer, (stat, 'start')]:.3f} -> "
              f"{moved.loc[layer, (stat, 'end')]:.3f}")
    print(f"test accuracy: {accuracy_at[V1_EPOCH]:.4f} at epoch {V1_EPOCH}, {accuracy_at[end_epoch]:.4f} at epoch {end_epoch:g}")

# %% tags=["hide-input"]
from IPython.display import Markdown

first, last = cls.layers[0], cls.layers[-1]
en, t10, dpx = iv["entropy_norm"], iv["top10"], iv["distance_px"]
trend = vn.claim(table["entropy_norm"].is_monotonic_decreasing, "falls steadily", "does not fall steadily")
focused = vn.claim(en["high"].max() < 1, "is", "is not")
def where(layers): return f"layers {layers}" if layers else "no layer"
def pm(t, layer, f=".2f"): return f"{t.loc[layer, 'value']:{f}} [{t.loc[layer, 'low']:{f}}, {t.loc[layer, 'high']:{f}}]"
common = reg["images_with"].idxmax()  # the layer where high-norm tokens are most frequent
rc = reg.loc[common]
reg_text = vn.claim(register_layers, f"Layers {register_layers} show the register effect: high-norm tokens in at least a quarter "
    "of the images, mostly on background, and CLS attention on them at least twice their share of the tokens (lower end of "
    "the interval).", "There is no register effect by that test. " + vn.claim(rc["images_with"] >= 0.25,
    f"Tokens over twice the median norm are most frequent entering layer {common} ({rc['images_with']:.0%} of the images, "
    f"{rc['outliers']:.1f} per image), but {rc['on_background']:.0%} of them lie on background patches and the CLS token gives "
    f"them {rc['enrichment']:.2f} [{rc['enrichment_low']:.2f}, {rc['enrichment_high']:.2f}] times their share of the tokens.",
    f"Tokens over twice the median norm are rare, in at most {rc['images_with']:.0%} of the images in any layer; the largest "
    f"token of an image reaches {reg['max_over_median'].max():.2f} times its median.") + f" After layer 0 the largest token of "
    f"an image reaches at most {reg['max_over_median'].iloc[1:].max():.2f} times the median.")
undertrain = (f"""- **Under-training** (`fmnist-vit-p4`, its training log on 256 test images): from epoch {V1_EPOCH} (zoo v1's model,
  {accuracy_at[V1_EPOCH]:.1%} test accuracy) to epoch {end_epoch:g} ({accuracy_at[end_epoch]:.1%}), a layer's normalised CLS
  entropy moved by up to {moved[('entropy_norm', 'change')].abs().max():.3f} (layer {biggest['entropy_norm']}:
  {moved.loc[biggest['entropy_norm'], ('entropy_norm', 'start')]:.3f} to {moved.loc[biggest['entropy_norm'], ('entropy_norm', 'end')]:.3f}),
  the top-10 share by up to {moved[('top10', 'change')].abs().max():.3f}, the mean attention distance by up to
  {moved[('distance_px', 'change')].abs().max():.2f} px and the rollout entropy by up to
  {moved[('rollout_entropy_norm', 'change')].abs().max():.3f}. {vn.claim(moved[[(s, 'change') for s in ('entropy_norm', 'top10', 'rollout_entropy_norm')]].abs().max().max() <= 0.02,
  f"Attention had settled by epoch {V1_EPOCH}: what zoo v1's model showed was not an artefact of stopping early.",
  f"So attention kept changing long after epoch {V1_EPOCH}: read zoo v1's attention as that of a model part-way through training.")}
  Over the last quarter of training the largest change was {max(card4['plateau']['max_change'].values()):.3f} (the zoo's
  "trained" criterion asks for at most {card4['plateau']['tolerance']}: {vn.claim(card4['plateau']['held'], "held", "not quite held")}).""" if card4 else "")
Markdown(f"""
## What we found

Intervals are 95 % bootstrap intervals over images: {int(en['n'].iloc[0])} images for the CLS statistics, {N_DIST}
for the attention distances.

- CLS attention {focused} more concentrated than uniform in every layer, and its normalised entropy {trend} with
  depth: {pm(en, first)} in layer {first}, highest in layer {high} ({pm(en, high)}) and lowest in layer {low}
  ({pm(en, low)}); the last layer sits at {pm(en, last)}. The ten most-attended patches (of {cls.grid[0] * cls.grid[1]})
  take {pm(t10, first)} of the CLS weight in layer {first} and {pm(t10, last)} in layer {last}.
- Mean attention distance is {pm(dpx, first)} pixels in layer {first} and {pm(dpx, last)} in layer {last}, against
  {uniform_px:.2f} for uniform attention; the most local head (layer {cl}, head {ch}) reaches
  {closest_iv.value:.2f} [{closest_iv.low:.2f}, {closest_iv.high:.2f}] pixels.
  {vn.claim(local, "There are local heads, as in the ViT paper.", "Unlike the large ImageNet ViTs of the ViT paper, no head reaches less than half as far as uniform attention: patches attend about as far as uniform attention would, although (chapter 02) not uniformly.")}
- The position embeddings {vn.claim(layout, "learnt the grid", "did not clearly learn the grid")}: neighbouring patches'
  embeddings have a mean cosine similarity of {near:.2f}, patches at least {vit.geometry.grid[0] // 2} apart {far:.2f}.
- The CLS token gives the {obj} more than its area's share in {where(garment_layers)}, and the
  {vn.pick("empty background", hub="background")} more than its share in {where(bg_layers)} (the background covers {area:.0%} of
  the patches and receives up to {bg.iloc[:, 0].max():.0%} of the CLS attention; a layer counts when the interval of
  the per-image difference excludes 0).
- {reg_text}
{undertrain}
- **When the class becomes readable** ({vn.pick("fmnist-vit-p4", hub="the ViT-B/32")}; probes fitted on {N_TRAIN} training images and
  scored on {N_TEST} test images, the lens on {len(lens_y)} {vn.pick("test images", hub="labelled photos")}): a linear probe on the CLS token
  reaches 90 % of its last-layer accuracy from layer {first_readable(probes)}, the logit lens from
  {first_readable(lens)}: {"at the same layer" if same_time else vn.claim(probe_first, "the probe reads the class earlier",
  "the lens reads the class earlier")}. Before the first block neither can do better than name one class for
  every image ({lens.loc['emb', 'accuracy']:.2f} and {probes.loc['emb', 'accuracy']:.2f}): the CLS token is then the same learnt vector
  for every image. The two
  {vn.claim(apart, "disagree most", "differ most, though their intervals overlap,")} at {gap_at} (probe {probes.loc[gap_at, 'accuracy']:.2f}, lens
  {lens.loc[gap_at, 'accuracy']:.2f}), where the last layer's probe reads only {probes.loc[gap_at, 'last_probe']:.2f}: {vn.claim(basis,
  "the class is there, in directions the final readout does not use; the lens reads a layer only once the class is "
  "written where the last layer writes it",
  "a readout fitted on the last layer reads that layer about as well as its own probe, so the lens's shortfall "
  "there is not a matter of directions")}. The lens's probability of the true class {vn.claim(lens["p_true"].iloc[1:].is_monotonic_increasing,
  "rises with every layer", "does not rise with every layer")} from {lens.index[1]} to {lens.index[-1]} ({lens['p_true'].iloc[1]:.2f} to {lens['p_true'].iloc[-1]:.2f}).
""")

# %% [markdown]
# **On ImageNet-scale ViTs.** The finding we expect to change most is the absence of local heads.
# {cite:t}`raghu2021vitsee` found that ViTs learn local heads in their lower layers only from large
# pre-training data, and these models saw nothing but Fashion-MNIST's small, centred garments, for a short
# training and partly through the ResNet's predictions. A ViT-B/16 pre-trained on ImageNet-21k should have
# heads well below the uniform distance in its first layers, and distances that grow with depth; high-norm
# register tokens, which {cite:t}`darcet2024registers` saw in large ViTs trained long, are also more
# likely there than here. Check it with
# `VITNOTES_MODELS=hub jupyter execute --output=../hub_01 notebooks/01_layers.ipynb`; it writes the
# executed copy to `hub_01.ipynb` at the repository's root, whose "What we found" is computed for the hub
# models.

# %% [markdown]
# ## Exercises
#
# 1. Repeat the background analysis per class (use `labels[:256]`). Do sandals, with the most
#    background, behave differently?
#
# ````{admonition} Solution
# :class: dropdown
# Divide each image's CLS mass on the background by that image's background share, and average per class:
# ```python
# ratio = (mass_bg / area_i).numpy()  # [layer, 256]
# per_class = pd.DataFrame(ratio.T, columns=[f"L{layer}" for layer in cls.layers])
# per_class["class"] = [vit.labels[i] for i in labels[:256]]
# per_class.groupby("class").mean().round(2)
# ```
# Read the Sandal row against the others: a ratio above 1 means the CLS token reads the background
# more than its area; the sandals' background share is the largest, so the same attention gives them
# a smaller ratio unless the heads really prefer the background there.
# ````
#
# 2. Plot `top5pct` by layer for `fmnist-vit-p4`. Is the layer at which attention is sharpest
#    the same?
#
# ````{admonition} Solution
# :class: dropdown
# ```python
# heads4 = vn.cls_summary(vn.capture(vit4, vit4.preprocess(images[:256]), cls_only=True))
# display(vn.show.metric_by_layer(heads4, "top5pct", ylabel="top-5 % share (p4)"))
# print("sharpest layer, p4:", vn.by_layer(heads4)["top5pct"].idxmax(),
#       "| p2:", vn.by_layer(heads_cls)["top5pct"].idxmax())
# ```
# The top 5 % of patches is 2 patches on the 7x7 grid and 10 on the 14x14 one, so the shares
# compare across grids; whether the sharpest layer is the same is what the last line prints.
# ````
#
# 3. The CLS share of the patches' own attention (`cls_share` in the table) rises or falls with
#    depth? What would it mean for patches to read from CLS?
#
# ````{admonition} Solution
# :class: dropdown
# ```python
# table["cls_share"].round(3)
# ```
# The column is the weight each query patch gives the CLS token, averaged over patches. Where it is
# large, patch tokens copy what the CLS token has gathered (a summary of the whole image) back into
# themselves: the information flows both ways, so a patch's token in a late layer no longer holds
# only its own pixels.
# ````
#
# 4. Probe the mean patch token instead of CLS (`vn.linear_probes(..., pool="mean")`). Is the
#    class readable earlier from the patches than from the CLS token?
#
# ````{admonition} Solution
# :class: dropdown
# ```python
# mean_probes = vn.linear_probes(vit4, x_train, y_train, x_test, y_test, pool="mean")
# print("probe on CLS:", first_readable(probes), "| probe on the mean patch token:", first_readable(mean_probes))
# pd.DataFrame({"CLS": probes["accuracy"], "mean patch": mean_probes["accuracy"]}).round(3)
# ```
# Before the first block the CLS token is the same vector for every image (the accuracy of naming one
# class), while the mean patch token already carries the pixels: compare the two columns at `emb`.
# After it, the CLS probe can read the class only once attention has moved it into the CLS token;
# whether that happens in the first block is what the first printed line says.
# ````
