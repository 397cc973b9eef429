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
# Chapter 01 averaged the 12 heads of each layer. Here we take each {term}`attention head` apart:
# all 144 {term}`CLS <CLS token>` {term}`attention maps <attention map>` of one image, a picker to browse them one by one,
# a picker for where any patch (not only CLS) looks, and numbers that sort the heads by what they do:
#
# - **positional or content-driven**: does a head look at the same places whatever the image
#   (`vn.map_consistency`: the mean correlation between each image's map and the head's average
#   map; near 1 = a {term}`positional head`), or does its map follow the image? A control then moves
#   the image under the heads to tell the two apart directly;
# - **garment or background**: how much of its CLS attention lands on the garment, relative to
#   the garment's share of the patches;
# - **local or global**: its {term}`mean attention distance` {cite:p}`dosovitskiy2021vit` against the
#   {term}`uniform reference`.
#
# Headline numbers come with 95 % {term}`bootstrap intervals <bootstrap interval>` over images.

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
# One row per layer, one column per head, all panels on one colour scale (the bar on the right):
# a head whose panel stays dark spreads its attention thinly.

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
# ## Where does a given patch look?
#
# The CLS row is one query among 197. Every patch token also attends, and its row says where that
# patch gathers information from. Choose a query patch (outlined in cyan) and a layer to see its
# map: the mean over the heads, or one head (set `Q_HEAD`). On this 14x14 grid the picker offers
# every third patch in each direction (25 patches) to keep the page light. All views share one
# colour scale, the bar under the picture. Like the head picker, it works in this static page.

# %%
full = vn.capture(vit, x[:16])  # full matrices: [layer, batch, head, query, key]
Q_HEAD = None  # None: the mean over heads; or a head index
per_head = torch.stack([vn.query_grids(full, layer, image=0) for layer in full.layers])  # [layer, head, query, 14, 14]
query_maps = per_head.mean(1) if Q_HEAD is None else per_head[:, Q_HEAD]  # [layer, query, 14, 14]
rows, cols = full.grid
offered = [r * cols + c for r in range(1, rows, 3) for c in range(1, cols, 3)]  # every third patch
picker = vn.query_picker(images[0], query_maps, queries=offered)
print(f"page weight of this picker: {vn.state_bytes(picker) / 1e6:.2f} MB ({len(offered)} patches x {len(full.layers)} layers)")
picker

# %% [markdown]
# And one whole matrix: every query token (rows) against every key token (columns) for one layer
# and head of image 0. Row and column 0 are the CLS token (past the cyan lines: the patches in raster
# order, one grid row after another). A square-root colour scale keeps small weights visible; the bar gives the
# probabilities.

# %%
M_LAYER, M_HEAD = vn.pick((6, 0), hub=(6, 0))
vn.attention_matrix(full.get(M_LAYER, M_HEAD)[0], prefix=vit.geometry.prefix,
                    title=f"layer {M_LAYER}, head {M_HEAD}, test image 0: attention [query, key]")

# %% [markdown]
# ## Sorting the heads
#
# We compute three numbers for every head over the 256 images, and the mean attention
# distance over the first `N_DIST` (it needs the full matrices, streamed by `vn.attention_distances`).

# %%
OBJ = vn.pick("garment", hub="object")  # what the images show
garment = torch.from_numpy(objects[:256])  # [256, 28, 28] non-black pixels (hub: the object's box)
garment_area = float(vn.mask_coverage(garment, cls.grid).mean())
uniform_px = vn.uniform_distance(cls.grid, vit.geometry.patch_size)

N_DIST = vn.pick(64, hub=8)
consistency = vn.map_consistency(grids, per_image=True)  # [layer, batch, head]
garment_ratio = vn.mask_mass(grids, garment) / garment_area  # [layer, batch, head]
distance_rel = vn.attention_distances(vit, x[:N_DIST])[0] / uniform_px  # [layer, N_DIST, head]
heads = vn.cls_summary(cls)[["layer", "head", "entropy_norm", "top10"]]
heads["consistency"] = consistency.mean(1).flatten().numpy()
heads["garment_ratio"] = garment_ratio.mean(1).flatten().numpy()
heads["distance_rel"] = distance_rel.mean(1).flatten().numpy()
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

# %% [markdown]
# ## Move the garment: which maps follow it?
#
# Consistency across images can mislead: garments in Fashion-MNIST {cite:p}`xiao2017fmnist` are centred, so a head that
# follows the garment also looks at about the same place in every image. A direct control moves
# the content and leaves the positions alone. We shift every image right by `SHIFT` whole patches
# (`torch.roll`, so each patch keeps its pixels and only its place changes; the black columns that
# leave on the right come back on the left), and mirror it left-right. For each head and image,
# `vn.content_following` correlates the map on the moved image with the original map twice: as it
# stands (**fixed**: high for a positional head, which keeps its map in image coordinates) and moved
# back on the grid (**moved**: high for a head that follows the content). The score is moved - fixed:
# above 0 the head follows the content, below 0 it stays in place; a head counts when the interval
# over images excludes 0. The mirror also mirrors the pixels inside each patch, and garments are
# nearly symmetric, so it is the weaker of the two tests.
#
# ```{admonition} Predict before you run
# :class: tip
# Layer 0's heads had the most consistent maps. Will they stay in place when the garment moves?
# ```

# %%
SHIFT = 2  # patches (4 pixels here, 32 on ViT-B/16)
N_MOVE = vn.pick(128, hub=8)  # images: a runtime choice (two more forward passes each)
moves = vn.content_following(vit, x[:N_MOVE], shift=SHIFT, base=grids[:, :N_MOVE])
follow = vn.following_table(moves)  # one row per (layer, head)
follow["consistency_group"] = heads["group"].to_numpy()
verdict = {}
for kind in ("shift", "flip"):
    verdict[kind] = pd.Series("neither", index=follow.index)
    verdict[kind][follow[f"{kind}_low"] > 0] = "follows the content"
    verdict[kind][follow[f"{kind}_high"] < 0] = "stays in place"
    follow[f"{kind}_verdict"] = verdict[kind]
print(f"{int(follow['n'].iloc[0])} images; shift by {SHIFT} patches")
pd.concat({kind: pd.crosstab(follow["layer"], follow[f"{kind}_verdict"]) for kind in ("shift", "flip")}, axis=1)

# %%
display(vn.following_plot(follow, "shift"))
vn.following_plot(follow, "flip")

# %% [markdown]
# The heads at the two ends of the shift score, on test image 0 and on the same image shifted: a head
# that stays in place draws the same picture on both; a content head's picture moves with the garment.

# %%
stay = follow.loc[follow["shift"].idxmin()]
move = follow.loc[follow["shift"].idxmax()]
(sl, sh), (ml, mh) = (int(stay["layer"]), int(stay["head"])), (int(move["layer"]), int(move["head"]))
x_shift = vn.move_images(x[:1], "shift", SHIFT * vit.geometry.patch_size)
grids_shift = vn.capture(vit, x_shift, cls_only=True).cls_grids()  # [layer, 1, head, 14, 14]
pair_maps = torch.stack([grids[sl, 0, sh], grids_shift[sl, 0, sh], grids[ml, 0, mh], grids_shift[ml, 0, mh]])
shown = [vn.display_image(v, vit.preprocessing) for v in (x[0], x_shift[0])]  # what the model sees, [0, 1]
fig = vn.layer_strip(shown * 2, pair_maps, size=1.6, labels=[f"L{sl} h{sh}", "shifted", f"L{ml} h{mh}", "shifted"])
fig.suptitle(f"left pair: most in place (score {stay['shift']:.2f}); right pair: most content-following "
             f"(score {move['shift']:.2f})", fontsize=9)
fig

# %% [markdown]
# How the two tests of "positional" agree: the heads that chapter's consistency threshold calls
# positional, against the shift test's verdict.

# %%
pd.crosstab(follow["consistency_group"], follow["shift_verdict"])

# %% tags=["hide-input"]
from IPython.display import Markdown

n = len(heads)
by_group = heads["group"].value_counts()
pos_layers = sorted(heads.loc[heads["group"] == "positional", "layer"].unique().tolist())
following = heads[heads["group"] == f"{OBJ}-following"]
last = vit.geometry.layers - 1
top = examples[f"{OBJ}-following"]
most_pos = examples["positional"]
def iv_of(values): i = vn.bootstrap(values.numpy()); return f"{i.value:.2f} [{i.low:.2f}, {i.high:.2f}]"
def at(t, layer, head): return t[int(layer), :, int(head)]
layer_cons = vn.interval_frame(consistency.mean(-1), range(vit.geometry.layers))
pos_text = f"Positional heads sit in layers {pos_layers}" if pos_layers else "No head is positional"
n_local = int(heads["local"].sum())
closest = heads.loc[heads["distance_rel"].idxmin()]
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
shift_counts = follow["shift_verdict"].value_counts()
flip_counts = follow["flip_verdict"].value_counts()
layer0 = follow[follow["layer"] == 0]["shift_verdict"].value_counts()
pos_heads = follow[follow["consistency_group"] == "positional"]
agree = int((pos_heads["shift_verdict"] == "stays in place").sum())
def lc(layer): return f"{layer_cons.loc[layer, 'value']:.2f} [{layer_cons.loc[layer, 'low']:.2f}, {layer_cons.loc[layer, 'high']:.2f}]"
Markdown(f"""
## What we found

Intervals are 95 % bootstrap intervals over images ({grids.shape[1]} images; {N_DIST} for distances, {N_MOVE} for the moves).

- Of the {n} heads: positional {by_group.get('positional', 0)} (maps that correlate with their own average
  at 0.6 or more, whatever the image), {OBJ}-following {by_group.get(f'{OBJ}-following', 0)}, background
  {by_group.get('background', 0)}, mixed {by_group.get('mixed', 0)}. {pos_text}; the
  mean consistency {trend[0]} from {lc(0)} in layer 0 to {lc(last)} in layer {last}{trend[1]}
  {trend[2]}
- The most consistent head (layer {int(most_pos['layer'])}, head {int(most_pos['head'])})
  has a consistency of {iv_of(at(consistency, most_pos['layer'], most_pos['head']))}; the {f"most {OBJ}-following head" if len(following) else f"head that favours the {OBJ} most"}
  (layer {int(top['layer'])}, head {int(top['head'])}) gives the
  {OBJ} {iv_of(at(garment_ratio, top['layer'], top['head']))} times its share of the patches.
  {f"{OBJ.capitalize()}-following heads are in layers {sorted(following['layer'].unique().tolist())}." if len(following) else ""}
- Moving the content settles it more directly. Shifted by {SHIFT} patches, {shift_counts.get('follows the content', 0)} heads
  follow the content, {shift_counts.get('stays in place', 0)} stay in place and {shift_counts.get('neither', 0)} are
  undecided (interval across 0); mirrored: {flip_counts.get('follows the content', 0)}, {flip_counts.get('stays in place', 0)}
  and {flip_counts.get('neither', 0)}. In layer 0, {layer0.get('stays in place', 0)} of {vit.geometry.heads} heads stay in place
  under the shift. {vn.claim(len(pos_heads) > 0 and agree == len(pos_heads),
  f"Every head the consistency test calls positional also stays in place under the shift.",
  f"Of the {len(pos_heads)} heads the consistency test calls positional, {agree} stay in place under the shift: consistency across centred garments is not the same thing as keeping a map in image coordinates.")}
- Local heads by our threshold: {n_local}; the smallest relative distance is
  {iv_of(at(distance_rel, closest['layer'], closest['head']))} of uniform attention's (layer {int(closest['layer'])},
  head {int(closest['head'])}). Heads in this model differ in {differ[0]} {differ[1]}
- A mean over heads mixes these groups: read single heads before drawing conclusions from a layer's average.
""")

# %% [markdown]
# ## Exercises
#
# 1. Lower the consistency threshold from 0.6 to 0.5, then raise it to 0.7. Which heads change group?
#
# ````{admonition} Solution
# :class: dropdown
# ```python
# for threshold in (0.5, 0.7):
#     changed = heads[(heads["consistency"] >= threshold) != (heads["consistency"] >= 0.6)]
#     print(threshold, [(int(r.layer), int(r.head)) for r in changed.itertuples()])
# ```
# Lowering the threshold can only add positional heads, raising it only remove them; the printed
# heads are those whose consistency lies between the two thresholds.
# ````
#
# 2. Use the picker to find a head whose map changes most between the mean and the single
#    heads of its layer. What does the mean hide?
#
# ````{admonition} Solution
# :class: dropdown
# Instead of clicking through 144 views, correlate each head's map of image 0 with its layer's mean:
# ```python
# one = grids[:, 0]  # [layer, head, 14, 14]
# r = vn.map_correlation(one, one.mean(1, keepdim=True).expand_as(one))  # [layer, head]
# layer, head = divmod(int(r.argmin()), r.shape[1])
# print(f"layer {layer}, head {head}: correlation with its layer's mean {float(r[layer, head]):.2f}")
# ```
# The head with the lowest correlation looks somewhere its layer's other heads do not: the mean
# dilutes it among the eleven others, so a layer's mean map shows where *most* heads look, not
# what any one head does.
# ````
#
# 3. Chapter 08 ablates every head. Before reading it, predict: will positional heads matter
#    less than garment-following ones?
#
# ````{admonition} Solution
# :class: dropdown
# There is no way to tell from the maps alone (and {cite:t}`michel2019sixteen` found many heads
# can be removed with little loss): a head whose map stays in place can still write
# something the classifier needs (e.g. where the garment's edges are, through its values), and a head
# that follows the garment can be redundant with others. Chapter 08's table answers it; put its
# relative loss increase beside `heads["group"]` and `follow["shift_verdict"]` to check your prediction.
# ````
#
# 4. Repeat the move test with a shift of one patch (2 pixels) on the first 64 images. Which heads
#    change verdict? What changes, for the two correlations, when the shift is smaller?
#
# ````{admonition} Solution
# :class: dropdown
# ```python
# follow1 = vn.following_table(vn.content_following(vit, x[:64], shift=1))
# follow1["verdict"] = "neither"
# follow1.loc[follow1["shift_low"] > 0, "verdict"] = "follows the content"
# follow1.loc[follow1["shift_high"] < 0, "verdict"] = "stays in place"
# pd.crosstab(follow["shift_verdict"].rename("shift 2"), follow1["verdict"].rename("shift 1"))
# ```
# Two things change. A smooth map shifted by one patch still correlates well with itself, so
# "fixed" and "moved" move closer together and small differences decide the verdict. And less of the
# garment wraps around the border, so the shifted image is closer to the same garment in a new place,
# the situation the score is meant to test; with a larger shift, the model also sees garments in
# places it rarely saw in training. Fewer images (64) also widen every interval. The table shows which
# of these wins here: read the off-diagonal counts.
# ````
