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
#   (`vn.stats.map_consistency`: the mean correlation between each image's map and the head's average
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
from IPython.display import Markdown

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
# ## Every head of one image
#
# Every head of four layers, from the first to the last (the picker below holds all 144): each layer
# takes two rows of six heads. Each map is drawn relative to uniform: a patch's weight
# divided by the uniform value $1/N$ ($N$ = 196 patches), so 1 is what uniform attention gives every
# patch. All panels share one logarithmic colour scale from 1/`REL` to `REL` (the bar on the right):
# white is uniform, red is more, blue is less, and each doubling is the same step of colour. Weights
# beyond the ends take the end colours, so one very bright patch cannot darken the other panels. Each
# panel's title gives its head and its map's {term}`normalised entropy` $H / \log N$ (1 = uniform, 0 = one patch).

# %%
REL = 16  # the colour scale: attention / uniform from 1/REL to REL (log), for the grid and the picker
L = grids.shape[0]
GRID_LAYERS = sorted({0, L // 3, 2 * L // 3, L - 1})  # layers 0, 4, 8 and 11 of 12
vn.show.head_grid(images[0], grids[GRID_LAYERS, 0], layers=GRID_LAYERS, relative=REL)

# %% tags=["hide-input"]
import math

rel0 = vn.show.relative_to_uniform(grids[:, 0])  # [layer, head, 14, 14]: 1 = uniform
h0 = vn.normalized_entropy(grids[:, 0].flatten(-2))  # [layer, head]
peak_layer, peak_head = divmod(int(rel0.flatten(-2).amax(-1).argmax()), rel0.shape[1])
dim = rel0.flatten(-2).amax(-1) < rel0.max() / 4  # [layer, head]: dark on a 0..max linear scale
pale = ((rel0 >= 0.5) & (rel0 <= 2)).flatten(-2).all(-1)  # [layer, head]: every patch within 2x of uniform
vn.check(bool(pale.any()) and float(h0[pale].min()) >= 0.9, "a head pale all over has H / log N of 0.9 or more")
Markdown(f"Over all {h0.numel()} heads of this image (the picker below shows every one): of their {rel0.numel():,} "
         f"patch weights, {float((rel0 > REL).float().mean()):.1%} lie above "
         f"{REL} times uniform and take the top colour (the largest, {float(rel0.max()):.0f} times uniform, is "
         f"layer {peak_layer}, head {peak_head}'s); on a linear scale from 0 to that one value, {int(dim.sum())} of the "
         f"{dim.numel()} maps would stay below a quarter of the scale, dark. {float((rel0 < 1 / REL).float().mean()):.0%} lie below 1/{REL} of uniform, where "
         f"the head gives a patch almost nothing. A panel that is pale all over belongs to a head that spreads its "
         f"attention almost evenly: the {int(pale.sum())} heads whose every patch lies within a factor of 2 of "
         f"uniform have $H / \\log N$ of {math.floor(float(h0[pale].min()) * 100) / 100:.2f} or more. A blue panel with a few red patches "
         f"belongs to a head that gathers its attention on those patches (the lowest $H / \\log N$ here: "
         f"{float(h0.min()):.2f}).")

# %% [markdown]
# ## Browse them: the layer and head picker
#
# The picker below holds every layer's 12 heads and their mean for test image 0 (an ankle
# boot), on the grid's colour scale (relative to uniform, 1/`REL` to `REL`, the bar under each view);
# each view's title gives its $H / \log N$. It works in this static page with no kernel running: the
# images are stored in the page and the menus switch between them in the browser.

# %%
vn.show.head_picker(images[0], grids[:, 0], size=160, relative=REL, alpha=0.6)

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
per_head = torch.stack([vn.profile.query_grids(full, layer, image=0) for layer in full.layers])  # [layer, head, query, 14, 14]
query_maps = per_head.mean(1) if Q_HEAD is None else per_head[:, Q_HEAD]  # [layer, query, 14, 14]
rows, cols = full.grid
offered = [r * cols + c for r in range(1, rows, 3) for c in range(1, cols, 3)]  # every third patch
picker = vn.show.query_picker(images[0], query_maps, queries=offered)
print(f"page weight of this picker: {vn.show.state_bytes(picker) / 1e6:.2f} MB ({len(offered)} patches x {len(full.layers)} layers)")
picker

# %% [markdown]
# And one whole matrix: every query token (rows) against every key token (columns) for one layer
# and head of image 0. Row and column 0 are the CLS token (past the cyan lines: the patches in raster
# order, one grid row after another). A square-root colour scale keeps small weights visible; the bar gives the
# probabilities.

# %%
M_LAYER, M_HEAD = vn.pick((6, 0), hub=(6, 0))
vn.show.attention_matrix(full.get(M_LAYER, M_HEAD)[0], prefix=vit.geometry.prefix,
                    title=f"layer {M_LAYER}, head {M_HEAD}, test image 0: attention [query, key]")

# %% [markdown]
# ## Sorting the heads
#
# We compute three numbers for every head over the 256 images, and the mean attention
# distance over the first `N_DIST` (it needs the full matrices, streamed by `vn.attention_distances`).

# %%
OBJ = vn.pick("garment", hub="object")  # what the images show
garment = torch.from_numpy(objects[:256])  # [256, 28, 28] non-black pixels (hub: the object's box)
garment_area = float(vn.stats.mask_coverage(garment, cls.grid).mean())
uniform_px = vn.stats.uniform_distance(cls.grid, vit.geometry.patch_size)

N_DIST = vn.pick(64, hub=8)
consistency = vn.stats.map_consistency(grids, per_image=True)  # [layer, batch, head]
garment_ratio = vn.stats.mask_mass(grids, garment) / garment_area  # [layer, batch, head]
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
# uniform attention's distance. (Local heads in the lower layers are learnt from large pre-training
# data, {cite:t}`raghu2021vitsee`; a small ViT trained on Fashion-MNIST may have none.)

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
vn.show.metric_by_layer(heads, "consistency", hue=None, ylabel="map consistency across images (1 = positional)")

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
    fig = vn.show.layer_strip([images[i] for i in picks], grids[layer, picks, head],
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
# leave on the right come back on the left). For each head and image, `vn.content_following`
# correlates the map on the shifted image with the original map twice: as it stands (**fixed**: high
# for a positional head, which keeps its map in image coordinates) and moved back on the grid
# (**moved**: high for a head that follows the content). The score is moved - fixed.
#
# Each head gets one of four verdicts, the rules fixed in `shift_verdict` below. If both mean
# correlations are below `WEAK` (0.3, our choice), the map on the shifted image resembles the original
# neither in place nor moved back: **neither** hypothesis describes the head. Otherwise it **follows
# the content** when the score's interval over images lies above 0, **stays in place** when it lies
# below 0, and is **undecided** when it contains 0.
#
# `vn.content_following` also mirrors the images left-right; we leave that test out (the cell
# prints why, measured): a garment that looks like its own mirror image gives a mirrored picture that is
# nearly the picture itself, so a head that stays in place and one that follows the garment draw the
# same map, and the mirror flips the pixels inside each patch as well.
#
# ```{admonition} Predict before you run
# :class: tip
# Layer 0's heads had the most consistent maps. Will they stay in place when the garment moves?
# ```

# %%
SHIFT = 2  # patches (4 pixels here, 32 on ViT-B/16)
N_MOVE = vn.pick(128, hub=8)  # images: a runtime choice (two more forward passes each)
WEAK = 0.3  # both mean correlations below this: the head's map fits neither hypothesis
VERDICTS = ["follows the content", "stays in place", "neither", "undecided"]


def shift_verdict(row) -> str:
    if max(row.shift_fixed, row.shift_moved) < WEAK:
        return "neither"
    if row.shift_low > 0:
        return "follows the content"
    if row.shift_high < 0:
        return "stays in place"
    return "undecided"


moves = vn.content_following(vit, x[:N_MOVE], shift=SHIFT, base=grids[:, :N_MOVE])
follow = vn.evaluate.following_table(moves)  # one row per (layer, head)
follow["consistency_group"] = heads["group"].to_numpy()
follow["shift_verdict"] = pd.Categorical(follow.apply(shift_verdict, axis=1), VERDICTS)
rest = [list(part) for part in torch.arange(1, vit.geometry.layers).tensor_split(3)]  # the later layers, in thirds
layer_groups = {"layer 0": [0]} | {f"layers {int(g[0])}-{int(g[-1])}": [int(i) for i in g] for g in rest if len(g)}
follow["layer_group"] = pd.Categorical(
    follow["layer"].map({i: name for name, ids in layer_groups.items() for i in ids}), list(layer_groups))
flat = x[:N_MOVE].flatten(1)
mirror = x[:N_MOVE].flip(-1).flatten(1)
self_mirror = torch.nn.functional.cosine_similarity(flat - flat.mean(1, keepdim=True), mirror - mirror.mean(1, keepdim=True))
print(f"{int(follow['n'].iloc[0])} images; shift by {SHIFT} patches; 'neither': both correlations below {WEAK}")
print(f"mirror test left out: {float((self_mirror >= 0.8).float().mean()):.0%} of these images correlate with their "
      f"own mirror image at 0.8 or more (median {float(self_mirror.median()):.2f})")
shift_table = pd.crosstab(follow["layer_group"], follow["shift_verdict"], margins=True, margins_name="all", dropna=False)
shift_table

# %%
vn.show.following_plot(follow, "shift", weak=WEAK)

# %% [markdown]
# The heads at the two ends of the shift score, on test image 0 and on the same image shifted: a head
# that stays in place draws the same picture on both; a content head's picture moves with the garment.

# %%
stay = follow.loc[follow["shift"].idxmin()]
move = follow.loc[follow["shift"].idxmax()]
(sl, sh), (ml, mh) = (int(stay["layer"]), int(stay["head"])), (int(move["layer"]), int(move["head"]))
x_shift = vn.evaluate.move_images(x[:1], "shift", SHIFT * vit.geometry.patch_size)
grids_shift = vn.capture(vit, x_shift, cls_only=True).cls_grids()  # [layer, 1, head, 14, 14]
pair_maps = torch.stack([grids[sl, 0, sh], grids_shift[sl, 0, sh], grids[ml, 0, mh], grids_shift[ml, 0, mh]])
shown = [vn.show.display_image(v, vit.preprocessing) for v in (x[0], x_shift[0])]  # what the model sees, [0, 1]
fig = vn.show.layer_strip(shown * 2, pair_maps, size=1.6, labels=[f"L{sl} h{sh}", "shifted", f"L{ml} h{mh}", "shifted"])
fig.suptitle(f"left pair: most in place (score {stay['shift']:.2f}); right pair: most content-following "
             f"(score {move['shift']:.2f})", fontsize=9)
fig

# %% [markdown]
# How the two tests of "positional" agree: the heads that chapter's consistency threshold calls
# positional, against the shift test's verdict.

# %%
pd.crosstab(follow["consistency_group"], follow["shift_verdict"])

# %% tags=["hide-input"]
n = len(heads)
by_group = heads["group"].value_counts()
pos_layers = sorted(heads.loc[heads["group"] == "positional", "layer"].unique().tolist())
following = heads[heads["group"] == f"{OBJ}-following"]
last = vit.geometry.layers - 1
top = examples[f"{OBJ}-following"]
most_pos = examples["positional"]
def iv_of(values): i = vn.bootstrap(values.numpy()); return f"{i.value:.2f} [{i.low:.2f}, {i.high:.2f}]"
def at(t, layer, head): return t[int(layer), :, int(head)]
layer_cons = vn.evaluate.interval_frame(consistency.mean(-1), range(vit.geometry.layers))
pos_text = f"Positional heads sit in layers {pos_layers}" if pos_layers else "No head is positional"
n_local = int(heads["local"].sum())
closest = heads.loc[heads["distance_rel"].idxmin()]
trend = "falls" if layer_cons.loc[last, "value"] < layer_cons.loc[0, "value"] else "rises"
if n_local:
    differ = ("*how far* they look", f"as well as in *where* (positions, {OBJ}, background).")
elif len(by_group) > 1:
    differ = ("*where* they look", f"(positions, {OBJ}, background), not in *how far*.")
else:
    differ = ("neither *where* they look", f"(every head is {by_group.index[0]}) nor *how far*.")
shift_counts = follow["shift_verdict"].value_counts()
def counts_of(name):
    c = shift_table.loc[name]
    return (f"{name}: {c['follows the content']} follow, {c['stays in place']} stay, {c['neither']} neither, "
            f"{c['undecided']} undecided")
later = follow[follow["layer"] > 0]
n_later, neither_later = len(later), int((later["shift_verdict"] == "neither").sum())
layer0 = follow[follow["layer"] == 0]["shift_verdict"].value_counts()
stay_by_layer = (follow["shift_verdict"] == "stays in place").groupby(follow["layer"]).sum()
mostly_in_place = [int(layer) for layer, k in stay_by_layer.items() if k > vit.geometry.heads / 2]
in_place = (f"Only in layer{'s' if len(mostly_in_place) > 1 else ''} "
            + " and ".join(str(layer) for layer in mostly_in_place)
            + " do most heads keep their maps in place ("
            + ", ".join(f"{int(stay_by_layer[layer])} of {vit.geometry.heads}" for layer in mostly_in_place) + ")."
            if mostly_in_place else "In no layer do most heads keep their maps in place.")
pos_heads = follow[follow["consistency_group"] == "positional"]
agree = int((pos_heads["shift_verdict"] == "stays in place").sum())
def lc(layer): return f"{layer_cons.loc[layer, 'value']:.2f} [{layer_cons.loc[layer, 'low']:.2f}, {layer_cons.loc[layer, 'high']:.2f}]"
Markdown(f"""
## What we found

Intervals are 95 % bootstrap intervals over images ({grids.shape[1]} images; {N_DIST} for distances, {N_MOVE} for the moves).

- Of the {n} heads: positional {by_group.get('positional', 0)} (maps that correlate with their own average
  at 0.6 or more, whatever the image), {OBJ}-following {by_group.get(f'{OBJ}-following', 0)}, background
  {by_group.get('background', 0)}, mixed {by_group.get('mixed', 0)}. {pos_text}; the
  mean consistency {trend} from {lc(0)} in layer 0 to {lc(last)} in layer {last}. Consistency alone cannot
  say whether a map sits at fixed places or follows centred garments; the shift test asks that.
- The most consistent head (layer {int(most_pos['layer'])}, head {int(most_pos['head'])})
  has a consistency of {iv_of(at(consistency, most_pos['layer'], most_pos['head']))}; the {f"most {OBJ}-following head" if len(following) else f"head that favours the {OBJ} most"}
  (layer {int(top['layer'])}, head {int(top['head'])}) gives the
  {OBJ} {iv_of(at(garment_ratio, top['layer'], top['head']))} times its share of the patches.
  {f"{OBJ.capitalize()}-following heads are in layers {sorted(following['layer'].unique().tolist())}." if len(following) else ""}
- The shift test (the content moved by {SHIFT} patches; "neither" when both mean correlations are below {WEAK}):
  {"; ".join(counts_of(name) for name in layer_groups)}. In all, {shift_counts.get('follows the content', 0)} of {n}
  heads follow the content and {shift_counts.get('stays in place', 0)} stay in place. {in_place}
  {vn.claim(neither_later > n_later / 2,
  f"In layers 1-{last}, most heads fit neither hypothesis: for {neither_later} of {n_later} the map on the shifted image "
  f"correlates below {WEAK} with the original both where it was and moved back (medians over all {n_later} heads of these layers: "
  f"{later['shift_fixed'].median():.2f} and {later['shift_moved'].median():.2f}). These maps neither stay at fixed "
  "places nor travel with the garment; what the heads attend to changes with the image in ways a shift does not describe.",
  f"In layers 1-{last}, {neither_later} of {n_later} heads fit neither hypothesis (both correlations below {WEAK}).")}
  {vn.claim(len(pos_heads) > 0 and agree == len(pos_heads),
  f"Every head the consistency test calls positional also stays in place under the shift.",
  f"Of the {len(pos_heads)} heads the consistency test calls positional, {agree} stay in place under the shift: consistency across centred garments is not the same thing as keeping a map in image coordinates.")}
- Local heads by our threshold: {n_local}; the smallest relative distance is
  {iv_of(at(distance_rel, closest['layer'], closest['head']))} of uniform attention's (layer {int(closest['layer'])},
  head {int(closest['head'])}). Heads in this model differ in {differ[0]} {differ[1]}
- A mean over heads mixes these groups: read single heads before drawing conclusions from a layer's average.
""")

# %% [markdown]
# **On ImageNet-scale ViTs.** Expect the head types to change most. {cite:t}`raghu2021vitsee` found
# local heads in the lower layers of ViTs pre-trained on large data and not in those trained on little,
# and photos are neither centred nor symmetric as these garments are, so positional heads, the shift
# test's "neither" heads and the absence of local heads are all findings of this small model on this
# data. Check them with
# `VITNOTES_MODELS=hub jupyter execute --output=../hub_02 notebooks/02_heads.ipynb`; it writes the
# executed copy to `hub_02.ipynb` at the repository's root (see [Running on hub models](../book/hub_models.md)).

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
# r = vn.stats.map_correlation(one, one.mean(1, keepdim=True).expand_as(one))  # [layer, head]
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
# follow1 = vn.evaluate.following_table(vn.content_following(vit, x[:64], shift=1))
# follow1["verdict"] = follow1.apply(shift_verdict, axis=1)  # the chapter's rules, WEAK included
# pd.crosstab(follow["shift_verdict"].rename("shift 2"), follow1["verdict"].rename("shift 1"))
# ```
# Two things change. A smooth map shifted by one patch still correlates well with itself, so
# "fixed" and "moved" move closer together and small differences decide the verdict. And less of the
# garment wraps around the border, so the shifted image is closer to the same garment in a new place,
# the situation the score is meant to test; with a larger shift, the model also sees garments in
# places it rarely saw in training. Fewer images (64) also widen every interval. The table shows which
# of these wins here: read the off-diagonal counts.
# ````
