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
# # 06 · Does rollout show more than one layer?
#
# A single layer's CLS map says where the CLS token looks in that layer, but the patch tokens it
# reads have themselves been mixing with other patches in every layer below. **Attention
# rollout** (Abnar & Zuidema 2020) tries to follow the information back to the input: it treats
# each layer's head-averaged attention $W_\ell$ plus the residual connection as a mixing matrix
#
# $$
# A_\ell = \tfrac12 W_\ell + \tfrac12 I \quad(\text{rows renormalised}),\qquad R = A_{L-1} \cdots A_1 A_0 ,
# $$
#
# and reads row 0 of $R$ (the CLS token) over the patches. The promise is a map that summarises
# all layers. This chapter checks what that map is made of on the book's ViT: which layers it
# resembles, which layers decide it, how its knobs (head fusion, discard ratio, start layer)
# move it, how it compares with attention flow, and whether it passes a basic sanity check —
# does it change when the weights it claims to explain are replaced by random ones?

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
_ = torch.set_grad_enabled(False)  # gradient rollout switches gradients on for itself

# %% [markdown]
# The main model is `fmnist-vit-p2` (14x14 patches + CLS = 197 tokens). Attention flow solves a
# max-flow problem per input token, which is tractable for the 50 tokens of `fmnist-vit-p4`
# (7x7 grid), so that section uses the smaller grid.

# %%
vit = vn.load(vn.pick("fmnist-vit-p2", hub="google/vit-base-patch16-224"))
vit4 = vn.load(vn.pick("fmnist-vit-p4", hub="google/vit-base-patch32-224"))
vit, vit4

# %%
images, labels, _ = vn.data.examples()
N = min(16, len(images))  # test images for the rollout analyses (full attention: 12 layers x 12 heads x 197 x 197 each)
L = vit.geometry.layers  # 12
x = vit.preprocess(images[:N])
att = vn.capture(vit, x)  # probs [layer, batch, head, query, key] = [12, 16, 12, 197, 197]
roll = vn.rollout_grid(att)  # [batch, 14, 14], sums to 1
layer_maps = {f"layer {layer}": att.cls_grid(layer).mean(1) for layer in range(vit.geometry.layers)}  # head mean
print(att, "| rollout maps", tuple(roll.shape))

# %% [markdown]
# ## Rollout next to single layers
#
# Each column is a test image; the rows are the head-averaged CLS map of five layers and the
# rollout. Colours are scaled per panel (they show *where*, not *how much*).

# %%
show = [f"layer {layer}" for layer in (0, L // 4, L // 2, 3 * L // 4, L - 1)]  # layers 0, 3, 6, 9, 11
vn.map_panel(images[:6], {**{k: layer_maps[k][:6] for k in show}, "rollout": roll[:6]},
             titles=[vit.labels[i] for i in labels[:6]])

# %% [markdown]
# How much does the rollout map resemble each layer's map? We rank the 196 patches of both maps
# and correlate the ranks (Spearman), per image, and average over the images. Entropy divided by
# $\log N$ says how spread out each map is (1 = uniform). The last row is a reference: the rollout
# of each image against the rollout of a *different* image.

# %%
def row(name, maps):
    return {"map": name, "spearman_with_rollout": float(vn.rank_correlation(maps, roll).mean()),
            "entropy_norm": float(vn.normalized_entropy(maps.flatten(1)).mean())}


vs_layers = pd.DataFrame([row(k, v) for k, v in layer_maps.items()] + [row("rollout", roll)]
                         + [row("rollout of another image", roll.roll(1, 0))])
vs_layers.round(3)

# %%
per_layer = vs_layers.iloc[: vit.geometry.layers]
best_layer = per_layer.loc[per_layer["spearman_with_rollout"].idxmax()]
other_image = vs_layers.iloc[-1]["spearman_with_rollout"]
rollout_entropy = vs_layers.loc[vs_layers["map"] == "rollout", "entropy_norm"].item()
weak_layers = per_layer["spearman_with_rollout"].abs().max() < 0.5
vn.check(weak_layers, "no single layer explains the rollout's ranking (Spearman < 0.5)")
early_entropy = per_layer["entropy_norm"].iloc[1:5]
uniform = rollout_entropy > 0.95
vn.check(uniform and early_entropy.min() > 0.95, "the rollout and the maps of layers 1-4 are nearly uniform")
vn.check(rollout_entropy > per_layer["entropy_norm"].iloc[5:].max(), "the rollout is flatter than every later layer")
vn.check(other_image > best_layer["spearman_with_rollout"],
         "the rollout is closer to another image's rollout than to any layer of its own image")
print(f"closest layer: {best_layer['map']} (Spearman {best_layer['spearman_with_rollout']:.3f}); "
      f"rollout of another image: {other_image:.3f}; rollout entropy / log N = {rollout_entropy:.3f}")

# %% [markdown]
# The rollout is not a blend that looks like the late layers. It agrees weakly with *every*
# single layer, it is almost uniform (only the head-averaged maps of layers 1-4, themselves close to
# uniform, are as flat), and it agrees more with the rollout of an unrelated image than with any
# layer of its own image. So what decides it?

# %% [markdown]
# ## Where the rollout map is made
#
# `vn.rollout_by_depth` stops the product after layer $e$ and reports, for each $e$: how well the
# partial rollout's CLS map already agrees with the full one; the **row spread** (mean
# total-variation distance between a patch token's rollout row and the CLS token's row: 0 means
# every token's row is the same map); and the **identity share** $R_{jj}$ (what the residual
# path keeps of a patch's own input).

# %%
depth = vn.rollout_by_depth(att)
depth.round(3)

# %%
vn.metric_by_layer(depth.melt(id_vars="end_layer", value_vars=["agreement", "row_spread", "identity_share"],
                              var_name="quantity").rename(columns={"end_layer": "layer"}),
                   "value", hue="quantity", heads=False, ylabel="value (rollout through this layer)")

# %%
settled = int(depth.loc[depth["agreement"] > 0.95, "end_layer"].min())
collapsed = depth["row_spread"].iloc[-1] < 0.01
vn.check(settled <= 4, "the first few layers (up to layer 4) already fix the full rollout's ranking")
vn.check(collapsed, "every token's rollout row is the same map after the last layer (row spread < 0.01)")
vn.check(depth["identity_share"].iloc[0] > 0.45 and depth["identity_share"].iloc[-1] < 0.05,
         "the identity share falls from about 0.5 after layer 0 to below 0.05")
print(f"rollout through layer {settled} already agrees {depth['agreement'].iloc[settled]:.3f} with the full rollout; "
      f"row spread after the last layer {depth['row_spread'].iloc[-1]:.4f}")

# %% [markdown]
# This is the mechanism, and it is plain linear algebra. Every $A_\ell$ is row-stochastic. The
# residual term keeps half of each token on itself in layer 0 (identity share 0.5), but the
# head-averaged attention of layers 1-4 here is nearly uniform (the entropy column of the first
# table shows it for the CLS row), so each further layer averages the rows of $R$ together. Once all rows of $R$
# are the same vector $\pi$, any row-stochastic $A$ maps them to $\pi$ again: **the later layers
# cannot change the rollout at all**. The map the method returns is fixed by the first few layers,
# and the CLS row is no longer special — every token's rollout row is the same map.

# %% [markdown]
# The other direction: start the product at a later layer (`start_layer`), dropping the early
# layers. Each start gives a different map; the table compares it with the full rollout and with
# the last layer's map.

# %%
starts = [0, 1, L // 4, L // 2, 3 * L // 4, L - 1]  # 0, 1, 3, 6, 9, 11
last = layer_maps[f"layer {L - 1}"]
started = {s: vn.rollout_grid(att, start_layer=s) for s in starts}
from_start = pd.DataFrame([
    {"start_layer": s,
     "spearman_with_full_rollout": float(vn.rank_correlation(m, roll).mean()),
     "spearman_with_last_layer": float(vn.rank_correlation(m, last).mean())}
    for s, m in started.items()
])
from_start.round(3)

# %%
vn.check(from_start["spearman_with_full_rollout"].iloc[1] < 0.6, "dropping layer 0 alone changes the map a lot")
assert from_start["spearman_with_last_layer"].iloc[-1] > 0.99  # one layer: the last layer's map itself

# %% [markdown]
# Dropping layer 0 alone changes the rollout more than randomising blocks 1-11 does (last
# section); starting at the last layer gives back that layer's map (the identity term adds the
# same constant to every patch, so the ranking is unchanged).

# %% [markdown]
# ## Head fusion and the discard ratio
#
# Rollout fuses the heads of each layer by their mean (the paper), or by their max or min (a
# popular variant), and optionally zeroes the smallest entries of each fused matrix (the discard
# ratio) before adding the identity. Each variant is compared with the default (mean, no discard)
# and with the last layer's map; `settles_at` is the first layer after which the partial rollout
# agrees better than 0.95 with the variant's full rollout, and `row_spread` is measured after the
# last layer (as in the previous section).

# %%
variants = {(f, d): vn.rollout_grid(att, head_fusion=f, discard_ratio=d)
            for f in ("mean", "max", "min") for d in (0.0, 0.5, 0.9)}
depths = {(f, d): vn.rollout_by_depth(att, head_fusion=f, discard_ratio=d) for f, d in variants}
fusion = pd.DataFrame([
    {"head_fusion": f, "discard_ratio": d,
     "spearman_with_default": float(vn.rank_correlation(m, roll).mean()),
     "spearman_with_last_layer": float(vn.rank_correlation(m, last).mean()),
     "entropy_norm": float(vn.normalized_entropy(m.flatten(1)).mean()),
     "settles_at": int(depths[(f, d)].query("agreement > 0.95")["end_layer"].min()),
     "row_spread": depths[(f, d)]["row_spread"].iloc[-1]}
    for (f, d), m in variants.items()
])
fusion.round(3)

# %%
vn.map_panel(images[:6], {f"{f}, discard {d}": variants[(f, d)][:6]
                          for f, d in [("mean", 0.0), ("mean", 0.9), ("max", 0.0), ("max", 0.9), ("min", 0.0)]},
             titles=[vit.labels[i] for i in labels[:6]])

# %%
fz = fusion.set_index(["head_fusion", "discard_ratio"])
max_same = fz.loc[("max", 0.0), "spearman_with_default"] > 0.8
min_apart = fz.loc[("min", 0.0), "spearman_with_default"] < 0.3
vn.check(max_same, "max fusion gives much the same map as mean fusion (Spearman > 0.8)")
vn.check(min_apart, "min fusion gives a different map (Spearman < 0.3)")
vn.check(fz.loc[("min", 0.0), "row_spread"] > 0.3, "the rows of the min-fusion rollout never collapse")
vn.check(fusion["spearman_with_last_layer"].max() < 0.3, "no rollout variant looks like the last layer (Spearman < 0.3)")
vn.check(fz.loc[("mean", 0.9), "settles_at"] > fz.loc[("mean", 0.0), "settles_at"] + 2,
         "discarding 90 % of the weights delays the collapse by more than two layers")
vn.check(fz.loc[("mean", 0.9), "entropy_norm"] < fz.loc[("mean", 0.0), "entropy_norm"],
         "discarding 90 % of the weights makes the map less uniform")
print(f"max fusion vs mean: {fz.loc[('max', 0.0), 'spearman_with_default']:.3f}; "
      f"min fusion vs mean: {fz.loc[('min', 0.0), 'spearman_with_default']:.3f}; "
      f"discard 0.9 vs none: {fz.loc[('mean', 0.9), 'spearman_with_default']:.3f}")

# %% [markdown]
# The knobs move the map, but none of them brings it close to the last layer's. Min fusion keeps
# the rows apart (the minimum over heads is tiny almost everywhere, so each layer is mostly the
# identity) and gives a different map. Discarding 90 % of the weights is the knob that changes how
# the map is made: it makes the map less uniform and delays the collapse, so later layers count for
# more.

# %% [markdown]
# ## Attention flow on the 7x7 grid
#
# Attention flow treats the same residual-augmented matrices as a layered graph with capacities
# and asks how much flow each input token can push to the CLS token at the top (a max-flow per
# input token). On 50 tokens this takes about a tenth of a second per image.

# %%
N_FLOW = min(8, len(images))
x4 = vit4.preprocess(images[:N_FLOW])
att4 = vn.capture(vit4, x4)  # [12, 8, 12, 50, 50]
maps4 = {"last layer": att4.cls_grid(-1).mean(1), "rollout": vn.rollout_grid(att4),
         "attention flow": vn.attention_flow_grid(att4)}
flow_table = vn.agreement(maps4)  # mean Spearman over the images, every pair
flow_table.round(3)

# %%
vn.map_panel(images[:N_FLOW], maps4, titles=[vit4.labels[i] for i in labels[:N_FLOW]])

# %%
flow_vs_rollout = flow_table.loc["attention flow", "rollout"]
flow_vs_last = flow_table.loc["attention flow", "last layer"]
flat4 = {k: float(vn.normalized_entropy(v.flatten(1)).mean()) for k, v in maps4.items()}
vn.check(flow_vs_rollout > 0.8 and flow_vs_rollout > flow_vs_last,
         "attention flow ranks the patches like rollout (Spearman > 0.8), more than like the last layer")
vn.check(flat4["attention flow"] > flat4["rollout"] > flat4["last layer"],
         "attention flow is flatter than rollout, which is flatter than the last layer's map")
grid4 = "x".join(map(str, vit4.geometry.grid))  # 7x7
print(f"attention flow vs rollout: {flow_vs_rollout:.3f}; vs the last layer: {flow_vs_last:.3f} "
      f"({N_FLOW} images, {grid4} grid)")
print("entropy / log N:", {k: round(v, 3) for k, v in flat4.items()})

# %% [markdown]
# Attention flow ranks the patches much like rollout — both are built from the same
# residual-augmented, head-averaged matrices — and just as differently from the last layer. It is
# even flatter than the rollout: the strong colours in its row above come from per-panel scaling of
# a map that is almost uniform. Its close agreement with rollout suggests that the same early layers
# decide it; we do not test that here (exercise 2).

# %% [markdown]
# ## Sanity check: randomise the model from the top
#
# Adebayo et al. (2018) proposed a test every explanation method should pass: replace the trained
# weights by random ones, cascading from the output layer down, and check that the map changes. A
# map that stays the same when the weights it should explain are destroyed is explaining
# something else (the input's edges, the architecture). `vn.randomized(vit, L, seed)` returns a
# copy whose classifier head and blocks $\ge L$ are redrawn from the initial distribution;
# `vn.cascading_randomization` runs the cascade and compares three maps with the trained model's:
# the rollout, the last layer's CLS map (head mean), and gradient-weighted rollout (Chefer et al.
# 2021) for the true class. Two agreement scores per map: Spearman over all patches, and the
# share of the top 10 % of patches the two maps have in common (0.1 = chance). The last step also
# randomises the embeddings: a fully random model.

# %%
N_CASCADE = 8  # gradient rollout on the 197-token model is the slow part
from_layers = [L, L - 1, L // 2, L // 4, 1, 0]  # the head (12), then blocks 11, 6, 3, 1, 0 and up
cascade, cascade_maps = vn.cascading_randomization(vit, x[:N_CASCADE], labels[:N_CASCADE].tolist(),
                                                   from_layers=from_layers, seed=0,
                                                   progress=vn.show_progress())
steps = list(cascade_maps)
step = dict(zip(from_layers, steps[1:]))  # first randomised block -> the step's name
table = cascade.pivot(index="step", columns="method", values="spearman").loc[steps]
top = cascade.pivot(index="step", columns="method", values="topk_overlap").loc[steps]
accuracy = cascade.groupby("step")["accuracy"].first().loc[steps]
pd.concat({"Spearman": table, "top-10 % overlap": top, "": accuracy.to_frame("accuracy")}, axis=1).round(3)

# %% [markdown]
# The dashed lines are a reference: how well the trained maps of two *different* images agree
# (for the rollout, as in the first section). Below, one image's maps along the cascade (colours
# per panel).

# %%
baseline = {k: float(vn.rank_correlation(v, v.roll(1, 0)).mean()) for k, v in cascade_maps["trained"].items()}
vn.cascade_plot(cascade, baseline)

# %%
vn.cascade_panel(images[0], cascade_maps, index=0)

# %%
rollout_kept = table.loc[step[L // 4], "rollout"]  # head + blocks 3-11 random
rollout_kept1 = table.loc[step[1], "rollout"]  # head + blocks 1-11 random
last_random = table.loc[step[L], "last layer"], table.loc[step[L - 1], "last layer"]
grad_head, grad_head_top = table.loc[step[L], "gradient rollout"], top.loc[step[L], "gradient rollout"]
random_last_entropy = float(vn.normalized_entropy(cascade_maps[step[L - 1]]["last layer"].flatten(1)).mean())
rollout_fails = rollout_kept > 0.9 and rollout_kept1 > 0.85
last_passes, grad_passes = abs(last_random[1]) < 0.2, grad_head < 0.5 and grad_head_top < 0.5
vn.check(accuracy.iloc[1:].max() < 0.3, "every randomised copy is at chance or below (accuracy < 0.3)")
vn.check(rollout_fails, "rollout survives randomising 9, even 11, of 12 blocks (Spearman > 0.9, > 0.85)")
vn.check(from_start["spearman_with_full_rollout"].iloc[1] < rollout_kept1,
         "dropping layer 0 changes the rollout more than randomising blocks 1-11")
vn.check(last_passes, "the last layer's map changes as soon as its block is random (|Spearman| < 0.2)")
vn.check(grad_passes, "gradient rollout changes as soon as the classifier head is random (Spearman, top-10 % < 0.5)")
# a map that never reads the classifier head cannot change when only the head is random: any model
assert table.loc[step[L], "last layer"] > 0.999 and table.loc[step[L], "rollout"] > 0.999
vn.check(abs(table.loc["all + embeddings", "rollout"]) < 0.3, "the rollout of a fully random model is unrelated")
vn.check(random_last_entropy > 0.999, "a random block's CLS map is uniform to three decimals")
print(f"random block 11: last-layer map entropy / log N = {random_last_entropy:.4f}; "
      f"gradient rollout with a random head keeps {grad_head_top:.3f} of its top-10 % patches")

# %% [markdown]
# The rollout **fails** the test. With the classifier and blocks 1-11 all random — a model no
# better than chance — its map keeps a rank correlation near 0.9 with the trained model's; only
# randomising block 0 too changes it. This is the collapse seen above: random blocks have almost
# uniform attention (small random weights make $QK^\top$ nearly constant), and a uniform layer plus
# the identity only re-averages rows that are already equal. What the rollout shows on this model
# is, in effect, layer 0.
#
# The last layer's map passes in the expected way: it is unchanged while only the classifier is
# random (attention never reads the classifier) and becomes unrelated as soon as its own block is
# random. The panel shows a trap, though: the random block's map is uniform to three decimals, yet
# it ranks the garment's patches above the background (the residual stream entering it still
# carries the trained lower layers' features), so a per-panel colour scale draws a clean
# silhouette. A plausible-looking map is not evidence that the map reflects learning.
#
# Gradient rollout, the one map here that reads the class score, changes as soon as the classifier
# head is random, though less completely than the Spearman suggests: it keeps part of its top
# patches. Neither test says a map is *right*; they only rule out maps that could not be reporting
# what the model learned.

# %% tags=["hide-input"]
from IPython.display import Markdown

# the sentences that state a finding follow the numbers: on other models a claim may not hold
where = vn.pick(f"On `fmnist-vit-p2` ({N} test images; the model is under-trained, see its card):",
                hub=f"On `{vit.name}` ({N} labelled photos):")
drop0 = from_start["spearman_with_full_rollout"].iloc[1]
settled_from, settled_to = fz.loc[("mean", 0.0), "settles_at"], fz.loc[("mean", 0.9), "settles_at"]
moves = (f"moves the layer after which the map\n  is settled from {settled_from} to {settled_to}" if settled_to != settled_from
         else f"leaves the layer after which the map\n  is settled at {settled_from}")
passes = {"rollout": rollout_kept <= 0.9, "last layer": last_passes, "gradient rollout": grad_passes}  # 9 random blocks
verdict = ("Rollout fails this sanity check; the other two pass it." if passes == {"rollout": False, "last layer": True,
                                                                                   "gradient rollout": True}
           else "; ".join(f"{m} {'passes' if ok else 'fails'}" for m, ok in passes.items()).capitalize()
           + " this sanity check.")
Markdown(f"""
## What we found

{where}

- The rollout map is {"nearly uniform" if uniform else "not uniform"} (entropy {rollout_entropy:.3f} of $\\log N$; the last layer's map:
  {per_layer['entropy_norm'].iloc[-1]:.3f}) and agrees {"only weakly with any single layer" if weak_layers else "with some single layers"}: the best is
  {best_layer['map']} (Spearman {best_layer['spearman_with_rollout']:.3f}), while the rollouts of two
  different images agree {other_image:.3f}.
- {"It is decided by the first layers: the rollout through layer " + str(settled) + " already agrees" if settled <= 4 else
   "It is not decided by the first layers: the rollout through layer " + str(settled) + " is the first to agree"}
  {depth['agreement'].iloc[settled]:.3f} with the full one. {"After the last layer every token's rollout row" if collapsed else "After the last layer the tokens' rollout rows"}
  {"is the same map" if collapsed else "still differ"} (row spread {depth['row_spread'].iloc[-1]:.4f}){", so later layers cannot change it" if collapsed else ""}.
  Dropping layer 0 alone gives a map that agrees{" only" if drop0 < 0.6 else ""} {drop0:.3f}
  with the full rollout.
- Max fusion gives {"much the same map as" if max_same else "a different map from"} mean fusion ({fz.loc[('max', 0.0), 'spearman_with_default']:.3f}),
  min fusion {"a different one" if min_apart else "a similar one"} ({fz.loc[('min', 0.0), 'spearman_with_default']:.3f}); discarding 90 % of the
  weights gives {fz.loc[('mean', 0.9), 'spearman_with_default']:.3f} and {moves}. No variant agrees
  better than {fusion['spearman_with_last_layer'].max():.3f} with the last layer's map.
- On the {grid4} model ({N_FLOW} images) attention flow agrees {flow_vs_rollout:.3f} with rollout and
  {flow_vs_last:.3f} with the last layer.
- Cascading randomisation ({N_CASCADE} images; the randomised copies reach at most {accuracy.iloc[1:].max():.0%}
  accuracy): with the head and blocks {L // 4}-{L - 1} random the rollout still correlates {rollout_kept:.3f} with the
  trained rollout, and {rollout_kept1:.3f} with blocks 1-{L - 1} random. The last layer's map drops to
  {last_random[1]:.3f} once block {L - 1} is random, and gradient rollout to {grad_head:.3f} (top-10 % overlap
  {grad_head_top:.3f}) once only the head is random. {verdict}
""")

# %% [markdown]
# ## Exercises
#
# 1. Lower the residual weight with `vn.rollout_grid(att, residual=0.0)` (the bare product of
#    attention matrices). Does the row spread still go to zero? Why does the identity term slow the
#    collapse down but not stop it?
# 2. Compute attention flow through layers 0-3 only of `fmnist-vit-p4`
#    (`vn.attention_flow_grid(vn.capture(vit4, x4, layers=[0, 1, 2, 3]))`). How well does it agree
#    with the flow through all 12 layers? And `vn.rollout_by_depth(att4)`: does the 7x7 model's
#    rollout settle after the same number of layers?
# 3. Repeat the cascade with another `seed` and with `from_layers=[12, 2, 1, 0]`. Which single block
#    does the rollout depend on most?
