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
# # 02 · Do the heads of a layer look at different things?
#
# Chapter 01 averaged the 12 heads of each layer. Here we take them apart: all 144 CLS maps
# of one image, a picker to browse them one by one, and numbers that sort the heads by what
# they do:
#
# - **positional or content-driven**: does a head look at the same places whatever the image
#   (`vn.map_consistency`: the mean correlation between each image's map and the head's average
#   map; near 1 = positional), or does its map follow the image?
# - **garment or background**: how much of its CLS attention lands on the garment, relative to
#   the garment's share of the patches;
# - **local or global**: its mean attention distance against uniform attention's.

# %% tags=["remove-cell"]
# Binder and Colab: install vitnotes when it is missing (here, and wherever it is installed, a no-op).
import importlib.util, subprocess, sys  # noqa: E401
if importlib.util.find_spec("vitnotes") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "vitnotes @ git+https://github.com/vitnotes/vitnotes"], check=True)

# %%
import pandas as pd
import torch

import vitnotes as vn

vn.setup(seed=0)

# %%
vit = vn.load(vn.pick("fmnist-vit-p2", hub="google/vit-base-patch16-224"))
vit

# %%
images, labels, objects = vn.data.examples()
x = vit.preprocess(images[:256])  # pixel_values [256, 1, 28, 28]
cls = vn.capture(vit, x, cls_only=True)  # [layer, batch, head, key]
grids = cls.cls_grids()  # [layer, batch, head, 14, 14]
print(tuple(grids.shape))

# %% [markdown]
# ## All 144 heads of one image
#
# One row per layer, one column per head, each panel scaled to its own range.

# %%
vn.head_grid(images[0], grids[:, 0], size=0.95)

# %% [markdown]
# ## Browse them: the layer and head picker
#
# The picker below holds every layer's 12 heads and their mean for test image 0 (an ankle
# boot). It works in this static page with no kernel running: the images are stored in the
# page and the menus switch between them in the browser.

# %%
vn.head_picker(images[0], grids[:, 0], size=160)

# %% [markdown]
# ## Sorting the heads
#
# We compute three numbers for every head over the 256 images, and the mean attention
# distance over the first 16 (it needs the full matrices).

# %%
full = vn.capture(vit, x[:16])
OBJ = vn.pick("garment", hub="object")  # what the images show
garment = torch.from_numpy(objects[:256])  # [256, 28, 28] non-black pixels (hub: the object's box)
garment_area = float(vn.mask_coverage(garment, cls.grid).mean())
uniform_px = vn.uniform_distance(cls.grid, vit.geometry.patch_size)

heads = vn.cls_summary(cls)[["layer", "head", "entropy_norm", "top10"]]
heads["consistency"] = vn.map_consistency(grids).flatten().numpy()
heads["garment_ratio"] = (vn.mask_mass(grids, garment).mean(1) / garment_area).flatten().numpy()
heads["distance_rel"] = (vn.cls_summary(full)["distance_px"] / uniform_px).to_numpy()
print(f"{OBJ} share of the patches: {garment_area:.3f}; uniform attention distance: {uniform_px:.2f} px")
heads.describe().loc[["mean", "min", "max"]].round(3)

# %% [markdown]
# The groups. The thresholds are choices, stated here so you can change them:
# a head is **positional** when its maps correlate with its own average at 0.6 or more (the
# heads of layer 0 stand apart from the rest at about that level, see the figure below);
# otherwise it is **garment-following** when it gives the garment at least 1.2 times the
# garment's share of the patches, **background** when it gives it at most 0.8 times, and
# **mixed** in between. It is **local** when its patches reach, on average, less than 75 % of
# uniform attention's distance.

# %%
def group(row) -> str:
    if row.consistency >= 0.6:
        return "positional"
    if row.garment_ratio >= 1.2:
        return f"{OBJ}-following"
    if row.garment_ratio <= 0.8:
        return "background"
    return "mixed"


heads["group"] = heads.apply(group, axis=1)
heads["local"] = heads["distance_rel"] < 0.75
by_layer_consistency = heads.groupby("layer")["consistency"].mean()
first_positional = bool(by_layer_consistency[0] > by_layer_consistency[1:].max())
vn.check(first_positional, "layer 0 is the most positional layer")
counts = pd.crosstab(heads["layer"], heads["group"])
counts

# %%
vn.metric_by_layer(heads, "consistency", hue=None, ylabel="map consistency across images (1 = positional)")

# %% [markdown]
# ## What the groups look like
#
# For each group, the head that fits it best, on four different test images. A positional
# head draws the same picture every time; a garment-following head moves with the garment.

# %%
others = heads[heads["group"] != "positional"]
others = others if len(others) else heads  # (every head positional: pick among all)
examples = {
    "positional": heads.loc[heads["consistency"].idxmax()],
    f"{OBJ}-following": heads.loc[others["garment_ratio"].idxmax()],
    "background": heads.loc[others["garment_ratio"].idxmin()],
}
picks = vn.pick([0, 1, 2, 9], hub=[0, 1, 4, 7])
for name, row in examples.items():
    layer, head = int(row["layer"]), int(row["head"])
    fig = vn.layer_strip([images[i] for i in picks], grids[layer, picks, head],
                         labels=[vit.labels[labels[i]] for i in picks], size=1.3)
    fig.suptitle(f"{name}: layer {layer}, head {head} (consistency {row['consistency']:.2f}, "
                 f"{OBJ} ratio {row['garment_ratio']:.2f})", fontsize=9)
    display(fig)

# %% tags=["hide-input"]
from IPython.display import Markdown

n = len(heads)
by_group = heads["group"].value_counts()
pos_layers = sorted(heads.loc[heads["group"] == "positional", "layer"].unique().tolist())
follow = heads[heads["group"] == f"{OBJ}-following"]
last = vit.geometry.layers - 1
top = examples[f"{OBJ}-following"]
pos_text = f"Positional heads sit in layers {pos_layers}" if pos_layers else "No head is positional"
n_local = int(heads["local"].sum())
if first_positional and 0 in pos_layers:
    trend = ("falls", ", so the first layer looks at fixed places and", "later layers follow the image.")
else:
    trend = ("goes", f"; layer 0 is {'' if first_positional else 'not '}the most",
             "positional layer" + ("." if pos_layers else ", but no head is positional by our threshold."))
if n_local:
    differ = ("*how far* they look", f"as well as in *where* (positions, {OBJ}, background).")
elif len(by_group) > 1:
    differ = ("*where* they look", f"(positions, {OBJ}, background), not in *how far*.")
else:
    differ = ("neither *where* they look", f"(every head is {by_group.index[0]}) nor *how far*.")
Markdown(f"""
## What we found

- Of the {n} heads: positional {by_group.get('positional', 0)} (maps that correlate with their own average
  at 0.6 or more, whatever the image), {OBJ}-following {by_group.get(f'{OBJ}-following', 0)}, background
  {by_group.get('background', 0)}, mixed {by_group.get('mixed', 0)}. {pos_text}; the
  mean consistency {trend[0]} from {heads[heads.layer == 0].consistency.mean():.2f} in layer 0 to
  {heads[heads.layer == last].consistency.mean():.2f} in layer {last}{trend[1]}
  {trend[2]}
- The most positional head (layer {int(examples['positional']['layer'])}, head {int(examples['positional']['head'])})
  has a consistency of {examples['positional']['consistency']:.2f}; the {f"most {OBJ}-following head" if len(follow) else f"head that favours the {OBJ} most"}
  (layer {int(top['layer'])}, head {int(top['head'])}) gives the
  {OBJ} {top['garment_ratio']:.2f} times its share of the patches.
  {f"{OBJ.capitalize()}-following heads are in layers {sorted(follow['layer'].unique().tolist())}." if len(follow) else ""}
- Local heads by our threshold: {n_local}; the smallest relative distance is
  {heads['distance_rel'].min():.2f} of uniform attention's. Heads in this model differ in {differ[0]}
  {differ[1]}
- A mean over heads mixes these groups: read single heads before drawing conclusions from a layer's average.
""")

# %% [markdown]
# ## Exercises
#
# 1. Lower the consistency threshold from 0.6 to 0.5, then raise it to 0.7. Which heads change group?
# 2. Use the picker to find a head whose map changes most between the mean and the single
#    heads of its layer. What does the mean hide?
# 3. Chapter 08 ablates every head. Before reading it, predict: will positional heads matter
#    less than garment-following ones?
