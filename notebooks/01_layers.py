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
# A ViT has 12 layers, and each one lets the CLS token read from the patches again. Does the
# CLS token look at the same places all the way up, or does it start broad and narrow down
# onto the object? We draw the CLS row of every layer over the same images and measure two
# things per layer (definitions in the introduction):
#
# - **entropy** of the CLS row over the patches, and entropy divided by $\log N$ (1 = uniform);
# - **mean attention distance**: how far, in pixels, each patch reaches when it attends to
#   other patches (local heads have small distances, global heads large ones).

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
# We use the first 256 Fashion-MNIST test images for the CLS statistics, and the first 16 of
# them for the statistics that need the full $T \times T$ matrices (12 layers x 12 heads x
# $197^2$ numbers per image).

# %%
images, labels, objects = vn.data.examples()
x = vit.preprocess(images[:256])  # pixel_values [256, 1, 28, 28]
cls = vn.capture(vit, x, cls_only=True)  # CLS rows: [layer, batch, head, key]
full = vn.capture(vit, x[:16])  # full matrices: [layer, batch, head, query, key]
print(cls)
print(full)

# %% [markdown]
# ## The CLS row, layer by layer
#
# Each strip is one image; each panel is one layer's CLS attention averaged over the 12
# heads, drawn over the image. Colours are scaled per panel, so look at *where* the bright
# patches are, and at the numbers below for *how concentrated* they are.

# %%
maps = cls.cls_grids().mean(2)  # mean over heads: [layer, batch, 14, 14]
for i in vn.pick((0, 2, 9), hub=(0, 4, 7)):
    fig = vn.layer_strip(images[i], maps[:, i], labels=[f"L{layer}" for layer in cls.layers], size=1.15)
    fig.suptitle(f"{vn.pick('test image', hub='photo')} {i}: {vit.labels[labels[i]]}", fontsize=10)
    display(fig)

# %% [markdown]
# ## Entropy and attention distance by layer
#
# `vn.cls_summary` gives one row per (layer, head), averaged over images; `vn.by_layer`
# averages over heads.

# %%
heads_cls = vn.cls_summary(cls)  # 256 images, CLS statistics
heads_full = vn.cls_summary(full)  # 16 images, adds distance_px and cls_share
table = vn.by_layer(heads_cls)[["entropy", "entropy_norm", "top10"]]
table = table.join(vn.by_layer(heads_full)[["distance_px", "cls_share"]])
table.round(3)

# %%
vn.metric_by_layer(heads_cls, "entropy_norm", ylabel="CLS entropy / log N (1 = uniform)")

# %% [markdown]
# For the distance, the grey line is what uniform attention over the 14x14 grid would give. In
# large ViTs trained on ImageNet, the ViT paper found *local* heads in the early layers (small
# distances) next to global ones; this is where to look for them.

# %%
uniform_px = vn.uniform_distance(vit.geometry.grid, vit.geometry.patch_size)
fig = vn.metric_by_layer(heads_full, "distance_px", ylabel="mean attention distance (pixels)")
fig.axes[0].axhline(uniform_px, color="grey", lw=1, ls="--")
fig

# %%
spread = heads_full.groupby("layer")["distance_px"].agg(["min", "max"])
closest = heads_full.loc[heads_full["distance_px"].idxmin()]
print(f"mean distance under uniform attention: {uniform_px:.2f} pixels (image diagonal {np.hypot(*images.shape[1:3]):.1f})")
print(f"most local head: layer {int(closest['layer'])}, head {int(closest['head'])}, {closest['distance_px']:.2f} pixels "
      f"({closest['distance_px'] / uniform_px:.0%} of uniform)")
local = bool(closest['distance_px'] < 0.5 * uniform_px)
print("any head reaching on average less than half as far as uniform attention:", local)

# %% [markdown]
# ## Does the CLS token look at the garment?
#
# Fashion-MNIST garments sit on a black background. If attention "looks at the object", the
# CLS row should put more weight on garment patches than their share of the image. We take
# the pixels that are exactly 0 as background and compare, per layer, the CLS attention that
# lands on the background with the background's share of the image.

# %%
background = torch.from_numpy(~objects[:256])  # [256, 28, 28] bool: the pixels that are 0 (hub: outside the box)
area = float(vn.mask_coverage(background, vit.geometry.grid).mean())
on_bg = vn.mask_mass(maps, background, batch_axis=1).mean(1)  # [layer]
bg = pd.DataFrame({"layer": cls.layers, "CLS attention on background": on_bg.numpy(),
                   "background share of the patches": area}).set_index("layer")
bg["ratio"] = bg.iloc[:, 0] / area
bg.round(3)

# %%
low, high = int(table["entropy_norm"].idxmin()), int(table["entropy_norm"].idxmax())
garment_layers = [layer for layer in cls.layers if bg.loc[layer, "ratio"] < 1]
bg_layers = [layer for layer in cls.layers if bg.loc[layer, "ratio"] > 1]
vn.check(table["entropy_norm"].max() < 1, "every layer's CLS attention is more focused than uniform")
obj = vn.pick("garment", hub="object")
print(f"layers that favour the {obj} (ratio < 1):", garment_layers)
print("layers that favour the background (ratio > 1):", bg_layers)

# %% [markdown]
# Where the ratio exceeds 1, the CLS token reads *more* from empty black patches than their
# area would give them. That is not the model "looking at" the background in the everyday
# sense: empty patches carry no garment, so heads can use their tokens as scratch space to
# collect and pass on information (the "register" behaviour described for large ViTs by
# Darcet et al.). A map from such a layer shows where information is stored, not what the
# model attends to in the image. The bright patches in the late layers of the strips above
# are few and sit at the garment's edges or off it.

# %% [markdown]
# ## When does the class become readable?
#
# Attention maps show where the CLS token reads from, not what it knows by then. Two standard
# tools ask each layer's CLS token directly which class the image belongs to:
#
# - the **logit lens** (nostalgebraist 2020) hands the residual stream after a layer to the
#   model's own final layer norm and classifier, as if the blocks above were skipped. It trains
#   nothing, and it can only read a class that the layer writes in the directions the classifier
#   reads at the end;
# - a **linear probe** (Alain & Bengio 2016) fits a new linear classifier (a multinomial logistic
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
def with_interval(t):  # "accuracy [low, high]"
    return [f"{a:.3f} [{lo:.3f}, {hi:.3f}]" for a, lo, hi in zip(t["accuracy"], t["low"], t["high"])]

readable = pd.DataFrame({"lens accuracy [95 % interval]": with_interval(lens), "lens p(true)": lens["p_true"].round(3),
                         "probe accuracy [95 % interval]": with_interval(probes),
                         "last layer's probe": probes["last_probe"].round(3)}, index=lens.index)
print(f"lens: {len(lens_y)} {vn.pick('test images', hub='labelled photos')} | probes: fitted on {N_TRAIN} training "
      f"images, scored on {N_TEST} test images | every probe converged: {bool(probes['converged'].all())}")
readable

# %%
vn.readability_plot({"logit lens": lens, "linear probe": probes,
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
print(f"largest gap at {gap_at}: probe {probes.loc[gap_at, 'accuracy']:.3f} "
      f"[{probes.loc[gap_at, 'low']:.3f}, {probes.loc[gap_at, 'high']:.3f}], lens {lens.loc[gap_at, 'accuracy']:.3f} "
      f"[{lens.loc[gap_at, 'low']:.3f}, {lens.loc[gap_at, 'high']:.3f}], last layer's probe {probes.loc[gap_at, 'last_probe']:.3f}")
print(f"before the first block (emb): lens {lens.loc['emb', 'accuracy']:.3f}, probe {probes.loc['emb', 'accuracy']:.3f}, "
      f"chance {probes['chance'].iloc[0]:.3f}")

# %% tags=["hide-input"]
from IPython.display import Markdown

first, last = cls.layers[0], cls.layers[-1]
trend = "falls steadily" if table["entropy_norm"].is_monotonic_decreasing else "does not fall steadily"
focused = "is" if table["entropy_norm"].max() < 1 else "is not"
def where(layers): return f"layers {layers}" if layers else "no layer"
Markdown(f"""
## What we found

- CLS attention {focused} more concentrated than uniform in every layer, and its entropy {trend} with
  depth: normalised entropy is {table.loc[first, 'entropy_norm']:.2f} in layer {first},
  highest in layer {high} ({table.loc[high, 'entropy_norm']:.2f}) and lowest in layer {low}
  ({table.loc[low, 'entropy_norm']:.2f}); the last layer sits at {table.loc[last, 'entropy_norm']:.2f}.
  The ten most-attended patches (of {cls.grid[0] * cls.grid[1]}) take
  {table.loc[first, 'top10']:.0%} of the CLS weight in layer {first} and {table.loc[last, 'top10']:.0%}
  in layer {last}.
- Mean attention distance is {table.loc[first, 'distance_px']:.2f} pixels in layer {first} and
  {table.loc[last, 'distance_px']:.2f} in layer {last}, against {uniform_px:.2f} for uniform attention; the
  most local head (layer {int(closest['layer'])}, head {int(closest['head'])}) reaches {closest['distance_px']:.2f} pixels.
  {"There are local heads, as in the ViT paper." if local else "Unlike the large ImageNet ViTs of the ViT paper, this model has no local heads: patches attend about as far as uniform attention would, although (chapter 02) not uniformly."}
- The CLS token gives the {obj} more than its area's share {"only in " + where(garment_layers) if garment_layers else "in no layer"}; in
  {where(bg_layers)} it gives {vn.pick("empty background", hub="background")} patches more than their share (they cover {area:.0%} of
  the patches, and receive up to {bg.iloc[:, 0].max():.0%} of the CLS attention).
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
# ## Exercises
#
# 1. Repeat the background analysis per class (use `labels[:256]`). Do sandals, with the most
#    background, behave differently?
# 2. Plot `top5pct` by layer for `fmnist-vit-p4`. Is the layer at which attention is sharpest
#    the same?
# 3. The CLS share of the patches' own attention (`cls_share` in the table) rises or falls with
#    depth? What would it mean for patches to read from CLS?
# 4. Probe the mean patch token instead of CLS (`vn.linear_probes(..., pool="mean")`). Is the
#    class readable earlier from the patches than from the CLS token?
