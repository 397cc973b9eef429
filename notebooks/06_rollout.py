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
# A single layer's {term}`attention map` from the {term}`CLS token` says where the CLS token looks in
# that layer, but the {term}`patch tokens <patch token>` it reads have themselves been mixing with other
# patches in every layer below. **{term}`Attention rollout <attention rollout>`** {cite:p}`abnar2020rollout`
# tries to follow the information back to the input: it treats
# each layer's head-averaged attention $W_\ell$ plus the residual connection as a mixing matrix
#
# $$
# A_\ell = \tfrac12 W_\ell + \tfrac12 I \quad(\text{rows renormalised}),\qquad R = A_{L-1} \cdots A_1 A_0 ,
# $$
#
# and reads row 0 of $R$ (the CLS token) over the patches. The promise is a map that summarises
# all layers. This chapter checks what that map is made of on the book's ViT: which layers it
# resembles, which layers decide it, how its knobs (head fusion, discard ratio, start layer)
# move it, how it compares with attention flow, whether it passes a basic {term}`sanity check` —
# does it change when the weights it claims to explain are replaced by random ones? — and whether it
# ranks the patches as {term}`occlusion` does, the check its authors used.

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
# rollout. Every map sums to 1 over the 196 patches. Each row shares one colour scale from 0 with
# its colour bar, so within a row brighter means more; the cyan mark on each colour bar is the
# {term}`uniform reference` 1/196, what every patch gets from a map that does not choose. Rows
# differ in scale: read a row's colour bar before comparing it with another row.

# %%
show = [f"layer {layer}" for layer in (0, L // 4, L // 2, 3 * L // 4, L - 1)]  # layers 0, 3, 6, 9, 11
PATCHES = roll[0].numel()  # 196: the uniform reference is 1 / 196
vn.show.shared_maps(images[:6], {**{k: layer_maps[k][:6] for k in show}, "rollout": roll[:6]},
               titles=[vit.labels[i] for i in labels[:6]], reference=1 / PATCHES)

# %% [markdown]
# How much does the rollout map resemble each layer's map? We rank the 196 patches of both maps
# and correlate the ranks (Spearman), per image, and average over the images. Entropy divided by
# $\log N$ says how spread out each map is (1 = uniform). The last row is a reference: the rollout
# of each image against the rollout of a *different* image.

# %%
def row(name, maps):
    return {"map": name, "spearman_with_rollout": float(vn.stats.rank_correlation(maps, roll).mean()),
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
uniform = rollout_entropy > 0.95
flatter = int((per_layer["entropy_norm"] >= rollout_entropy).sum())
vn.check(rollout_entropy > per_layer["entropy_norm"].iloc[5:].max(), "the rollout is flatter than every later layer")
print(f"closest layer: {best_layer['map']} (Spearman {best_layer['spearman_with_rollout']:.3f}); "
      f"rollout of another image: {other_image:.3f}; rollout entropy / log N = {rollout_entropy:.3f}; "
      f"layers at least as flat: {flatter}")

# %% tags=["hide-input"]
from IPython.display import Markdown

Markdown("The rollout is not a blend that looks like the late layers. It agrees "
         + vn.claim(weak_layers, "weakly with *every* single layer", "with some single layers")
         + f" (best: {best_layer['map']}, Spearman {best_layer['spearman_with_rollout']:.2f}), it is "
         + vn.claim(uniform, "almost uniform", "far from uniform")
         + f" (entropy {rollout_entropy:.3f} of log N; {flatter} of the {len(per_layer)} layers' head-averaged maps are "
         "as flat), and it agrees "
         + vn.claim(other_image > best_layer["spearman_with_rollout"],
                    "more with the rollout of an unrelated image than with any layer of its own image",
                    f"less with the rollout of an unrelated image ({other_image:.2f}) than with its best layer, but "
                    "still noticeably: part of every rollout is the same map")
         + ". So what decides it?")

# %% [markdown]
# ## Where the rollout map is made
#
# `vn.evaluate.rollout_by_depth` stops the product after layer $e$ and reports, for each $e$: how well the
# partial rollout's CLS map already agrees with the full one; the **row spread** (mean
# total-variation distance between a patch token's rollout row and the CLS token's row: 0 means
# every token's row is the same map); and the **identity share** $R_{jj}$ (what the residual
# path keeps of a patch's own input).

# %%
depth = vn.evaluate.rollout_by_depth(att)
depth.round(3)

# %%
vn.show.metric_by_layer(depth.melt(id_vars="end_layer", value_vars=["agreement", "row_spread", "identity_share"],
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
# residual term keeps half of each token on itself in layer 0 (identity share 0.5), but each
# layer's head-averaged attention spreads every query's weight over many of the same patches (the
# entropy column of the first table shows how spread the CLS row is), so each further layer
# averages the rows of $R$ together. Once all rows of $R$
# are the same vector $\pi$, any row-stochastic $A$ maps them to $\pi$ again: **the later layers
# cannot change the rollout at all**. The map the method returns is fixed by the first few layers,
# and the CLS row is no longer special — every token's rollout row is the same map.
#
# How fast the rows merge depends on how spread each layer's attention is, and that depends on the
# training data. {cite:t}`raghu2021vitsee` found that ViTs pre-trained on large data sets have local
# heads in their lower layers, which keep a patch's attention near the patch, while ViTs trained on
# less data attend globally there too. A rollout built from broad attention in every layer, as in this
# small model, is expected to flatten and collapse sooner than one built from a large pre-trained ViT.

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
     "spearman_with_full_rollout": float(vn.stats.rank_correlation(m, roll).mean()),
     "spearman_with_last_layer": float(vn.stats.rank_correlation(m, last).mean())}
    for s, m in started.items()
])
from_start.round(3)

# %%
assert from_start["spearman_with_last_layer"].iloc[-1] > 0.99  # one layer: the last layer's map itself

# %% [markdown]
# The second row says how much layer 0 alone decides (the findings below give the number); the
# sanity check at the end of the chapter asks the converse, whether destroying the layers *above* it changes the map at all. Starting at the last
# layer gives back that layer's map (the identity term adds the same constant to every patch, so the
# ranking is unchanged).

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
depths = {(f, d): vn.evaluate.rollout_by_depth(att, head_fusion=f, discard_ratio=d) for f, d in variants}
fusion = pd.DataFrame([
    {"head_fusion": f, "discard_ratio": d,
     "spearman_with_default": float(vn.stats.rank_correlation(m, roll).mean()),
     "spearman_with_last_layer": float(vn.stats.rank_correlation(m, last).mean()),
     "entropy_norm": float(vn.normalized_entropy(m.flatten(1)).mean()),
     "settles_at": int(depths[(f, d)].query("agreement > 0.95")["end_layer"].min()),
     "row_spread": depths[(f, d)]["row_spread"].iloc[-1]}
    for (f, d), m in variants.items()
])
fusion.round(3)

# %%
vn.show.shared_maps(images[:6], {f"{f}, discard {d}": variants[(f, d)][:6]
                            for f, d in [("mean", 0.0), ("mean", 0.9), ("max", 0.0), ("max", 0.9), ("min", 0.0)]},
               titles=[vit.labels[i] for i in labels[:6]], reference=1 / PATCHES)

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
# input token). On 50 tokens this takes about a tenth of a second per image. The figure below shows
# the eight images' maps in two blocks of four, each row on one colour scale from 0 across both blocks.

# %%
N_FLOW = min(8, len(images))
x4 = vit4.preprocess(images[:N_FLOW])
att4 = vn.capture(vit4, x4)  # [12, 8, 12, 50, 50]
maps4 = {"last layer": att4.cls_grid(-1).mean(1), "rollout": vn.rollout_grid(att4),
         "attention flow": vn.attention_flow_grid(att4)}
flow_table = vn.agreement(maps4)  # mean Spearman over the images, every pair
flow_table.round(3)

# %%
vn.show.shared_maps(images[:N_FLOW], maps4, titles=[vit4.labels[i] for i in labels[:N_FLOW]],
               reference=1 / maps4["rollout"][0].numel())  # 1 / 49 on this grid

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
# even flatter than the rollout: on its row's shared scale its maps stay close to the uniform
# reference marked on the colour bar, while the last layer's row spans a much wider range. Its close
# agreement with rollout suggests that the same early layers decide it; we do not test that here
# (exercise 2).

# %% [markdown]
# ## Sanity check: randomise the model from the top
#
# {cite:t}`adebayo2018sanity` proposed a test every explanation method should pass: replace the
# trained weights by random ones, cascading from the output layer down, and check that the map
# changes. A map that stays the same when the weights it should explain are destroyed is explaining
# something else (the input's edges, the architecture). `vn.interventions.randomized(model, L, seed)` returns a
# copy whose classifier head and blocks $\ge L$ are redrawn from the initial distribution; the last
# step also redraws the embeddings (a fully random model). `vn.evaluate.cascade_intervals` runs the cascade
# for three random draws (seeds 0, 1, 2) and compares three maps with the trained model's, image by
# image: the rollout, the last layer's CLS map (head mean), and {term}`gradient rollout`
# {cite:p}`chefer2021generic` for the true class. Per step and map the table gives the mean Spearman
# over the images with its 95 % {term}`bootstrap interval <bootstrap interval>` (each image's value
# averaged over the three seeds first) and, after "seeds", the lowest and highest per-seed mean. The
# reference row, "trained, another image", is how well the trained maps of two *different* images
# agree. The verdicts come after, by Adebayo et al.'s own measures: the *absolute* Spearman (a
# ranking that survives inverted has survived) and the SSIM of the two maps.
#
# The cascade costs a forward and a backward pass per image, step and seed (22 per image). On the
# 197-token model that is too slow for 64 images and three seeds on a laptop's CPU, so we measure
# on `fmnist-vit-p4` (50 tokens, an order of magnitude cheaper per pass) with 64 test images. The
# verdicts below are about that model. First: does its rollout collapse as the 14x14 model's does?

# %%
N_SANITY = min(64, len(images))
xs = vit4.preprocess(images[:N_SANITY])
att4s = vn.capture(vit4, xs)  # [12, 64, 12, 50, 50]
depth4 = vn.evaluate.rollout_by_depth(att4s)
settled4 = int(depth4.loc[depth4["agreement"] > 0.95, "end_layer"].min())
drop0_4 = float(vn.stats.rank_correlation(vn.rollout_grid(att4s, start_layer=1), vn.rollout_grid(att4s)).mean())
print(f"{vit4.name}, {N_SANITY} images: the rollout through layer {settled4} agrees "
      f"{depth4['agreement'].iloc[settled4]:.3f} with the full one; row spread after the last layer "
      f"{depth4['row_spread'].iloc[-1]:.4f}; without layer 0 the map agrees {drop0_4:.3f} with the full rollout")

# %% [markdown]
# ```{admonition} Predict before you run
# :class: tip
# The next cell replaces the classifier and blocks 3-11 of this model by random weights (a model at
# chance), then more. Will the rollout map still rank the patches like the trained model's? And the
# last layer's map?
# ```

# %%
from_layers = [L, L - 1, L // 2, L // 4, 1, 0]  # the head (12), then blocks 11, 6, 3, 1, 0 and up
cascade, per_image, cascade_maps = vn.evaluate.cascade_intervals(vit4, xs, labels[:N_SANITY].tolist(),
                                                        from_layers=from_layers, seeds=(0, 1, 2),
                                                        progress=vn.show_progress())
REF = "trained, another image"
steps = list(dict.fromkeys(cascade["step"]))
cell = cascade.apply(lambda r: f"{r.spearman:.2f} [{r.low:.2f}, {r.high:.2f}] seeds {r.seed_min:.2f}-{r.seed_max:.2f}",
                     axis=1)
shown = cascade.assign(cell=cell).pivot(index="step", columns="method", values="cell").loc[steps]
shown["accuracy"] = cascade.groupby("step")["accuracy"].first().loc[steps].round(3)
shown

# %% [markdown]
# The figure shows the same numbers: a line per map, the error bars the intervals over images, the
# shaded band the spread over the three seeds, the dashed lines the reference (trained maps of two
# different images, in the map's colour). Below it, one image's maps along the cascade for seed 0, the
# eight steps in two blocks of four (read the upper block, then the lower): each row on one colour scale
# from 0 with its colour bar (the same scale in both blocks), the uniform reference 1/49 marked on it.

# %%
reference = cascade[cascade["step"] == REF].set_index("method")
vn.show.cascade_plot(cascade[cascade["step"] != REF], reference["spearman"].to_dict())

# %%
vn.show.cascade_panel(images[0], cascade_maps, index=0)

# %%
at = cascade.set_index(["step", "method"])
NINE = f"head + blocks {L // 4}-{L - 1}"  # 9 of 12 blocks and the classifier random
first_step = {"rollout": NINE, "last layer": f"head + block {L - 1}", "gradient rollout": "head"}


def word(step, method):
    """vn.sanity_verdict on the map's |Spearman| and SSIM intervals at one step."""
    return at.loc[(step, method), "sanity"]


said_at_first = {m: word(s, m) for m, s in first_step.items()}  # at the first step that should change each map
order = [st for st in steps if st != REF]
passes_at = {m: next((st for st in order if word(st, m) == "passes"), "never") for m in first_step}
chance = at.loc[(NINE, "rollout"), "accuracy"]
full_random = at.loc[("all + embeddings", "rollout")]
random_last_entropy = float(vn.normalized_entropy(cascade_maps[f"head + block {L - 1}"]["last layer"].flatten(1)).mean())
assert at.loc[("head", "rollout"), "spearman"] > 0.999  # a map that never reads the classifier cannot change with it
print(f"accuracy of the copies with 9 of 12 blocks random: {chance:.3f} (chance 0.1); "
      f"random block {L - 1}: its CLS map's entropy / log N = {random_last_entropy:.4f}")
print("verdict at its first step:", said_at_first, "| first step where it passes:", passes_at)

# %% [markdown]
# The verdict uses Adebayo et al.'s two measures between the trained and the randomised map of each
# image, each averaged over the three seeds and then over the images with its 95 % interval: the
# *absolute* Spearman rank correlation and the SSIM of the two maps scaled to [0, 1]. One rule,
# `vn.sanity_verdict`, the same as chapter 09's, turns them into a word:

# %%
print(vn.evaluate.SANITY_RULE)
cells4 = int(vit4.geometry.grid[0] * vit4.geometry.grid[1])
print(f"Two independent maps of {cells4} cells reach a mean |Spearman| of about {vn.evaluate.chance_abs_spearman(cells4):.2f}.")
word_cell = lambda r: (f"|rho| {r.abs_spearman:.2f} [{r.abs_low:.2f}, {r.abs_high:.2f}], SSIM {r.ssim:.2f} "  # noqa: E731
                       f"[{r.ssim_low:.2f}, {r.ssim_high:.2f}]: {r.sanity}")
judged = cascade[cascade["step"] != REF]
judged.assign(cell=judged.apply(word_cell, axis=1)).pivot(index="step", columns="method", values="cell").loc[
    [st for st in steps if st != REF]]

# %% [markdown]
# Each map is judged at the first step that should change it: the last layer's map once block 11
# is random, gradient rollout (the one map that reads the class score) once the classifier is, and
# the rollout, which reads every layer, once 9 of the 12 blocks are random and the model is at
# chance.

# %%
def measured(step, m):
    r = at.loc[(step, m)]
    return (f"|Spearman| {r['abs_spearman']:.2f} [{r['abs_low']:.2f}, {r['abs_high']:.2f}] and SSIM "
            f"{r['ssim']:.2f} [{r['ssim_low']:.2f}, {r['ssim_high']:.2f}] with its trained map at step '{step}'")


def verdict_sentence(name, m, what):
    """One sentence per map: its verdict at its first step, in the words of the rule."""
    w, tail = said_at_first[m], measured(first_step[m], m)
    later = (f"; it first passes at step '{passes_at[m]}'" if passes_at[m] != "never"
             else "; it passes at no step of the cascade")
    if w == "passes":
        return f"{name} **passes** as soon as {what} is random ({tail})."
    if w == "fails":
        return (f"{name} **fails**: with {what} random it keeps more of its ranking, upright or inverted, than "
                f"the rule allows ({tail}){later}.")
    return f"{name}: with {what} random these images cannot tell ({tail}){later}."


rollout_said = verdict_sentence("The rollout", "rollout", f"the classifier and blocks {L // 4}-{L - 1}")
last_said = verdict_sentence("The last layer's map", "last layer", "its own block")
grad_said = verdict_sentence("Gradient rollout", "gradient rollout", "the classifier")
vn.check(said_at_first["rollout"] == "fails", "the rollout keeps its ranking with 9 of 12 blocks random")
sanity_said = " ".join([rollout_said, last_said, grad_said])
print(sanity_said)

# %% [markdown]
# Why the rollout can survive: this is the collapse seen above. Random blocks have almost uniform
# attention (small random weights make $QK^\top$ nearly constant), and a uniform layer plus the
# identity only re-averages rows that are already equal, so whatever the first trained layers fixed
# stays. The panel shows a second trap: the last layer's map of a random block is uniform to a few
# decimals (its row sits at the uniform reference), yet, scaled on its own, it would still rank the
# garment's patches above the background, because the residual stream entering it carries the
# trained lower layers' features. A plausible-looking map is not evidence that the map reflects
# learning; a shared scale with the uniform reference on it shows how little such a map chooses.
# Neither test says a map is *right*; they only rule out maps that could not be reporting what the
# model learned.

# %% [markdown]
# ## Does rollout rank the patches as occlusion does?
#
# {cite:t}`abnar2020rollout` validated rollout against importance measured by intervention: they correlated
# rollout's scores with those of blanking out input tokens and with input gradients, and found
# rollout closer to them than raw attention. We repeat that check with {term}`occlusion`
# {cite:p}`zeiler2014occlusion`: hide one patch at a time (filled with the image's mean) and record
# the drop in the true class's score. Per image, the Spearman between the occlusion map and each
# map; controls: a random map (what chance gives; its interval is the grey band) and the plain
# last-layer CLS attention (what rollout is meant to improve on). Same 64 images and 7x7 model
# (occlusion costs one forward per patch, 50 per image).

# %%
occ = vn.explain(vit4, xs, "occlusion", labels[:N_SANITY].tolist())  # [64, 7, 7] drop in the true class's score
trained4 = cascade_maps["trained"]
candidates = {"rollout": trained4["rollout"], "last layer": trained4["last layer"],
              "gradient rollout": trained4["gradient rollout"], "random": vn.explain(vit4, xs, "random", seed=0)}
vs_occ = vn.evaluate.agreement_intervals(candidates, occ, against="random")
roll_minus_last = vn.bootstrap(vn.stats.rank_correlation(candidates["rollout"], occ).numpy()
                               - vn.stats.rank_correlation(candidates["last layer"], occ).numpy())
print(f"rollout minus last layer, per image: {roll_minus_last.value:.3f} "
      f"[{roll_minus_last.low:.3f}, {roll_minus_last.high:.3f}] ({roll_minus_last.n} images)")
vs_occ.round(3)

# %%
tidy = vs_occ.rename(columns={"map": "method", "spearman": "value"}).assign(metric="Spearman with occlusion",
                                                                            baseline="")
vn.show.interval_plot(tidy, [("Spearman with occlusion", "")], controls=("random", "last layer"), width=3.2)

# %% [markdown]
# Six of the images: occlusion on a diverging scale about 0 (red: hiding the patch lowers the true
# class's score), the attention maps each on one scale from 0 per row.

# %%
vn.show.shared_maps(images[:6], {"occlusion": occ[:6], "rollout": candidates["rollout"][:6],
                            "last layer": candidates["last layer"][:6]},
               titles=[vit4.labels[i] for i in labels[:6]])

# %%
v = vs_occ.set_index("map")
beats_random = {m: bool(v.loc[m, "diff_low"] > 0) for m in ("rollout", "last layer", "gradient rollout")}
roll_over_last = roll_minus_last.low > 0
roll_under_last = roll_minus_last.high < 0
occ_said = " ".join([
    vn.claim(beats_random["rollout"],
             f"Rollout ranks the patches more like occlusion than a random map does "
             f"({v.loc['rollout', 'spearman']:.2f} [{v.loc['rollout', 'low']:.2f}, {v.loc['rollout', 'high']:.2f}] "
             f"against {v.loc['random', 'spearman']:.2f} [{v.loc['random', 'low']:.2f}, {v.loc['random', 'high']:.2f}]),",
             f"Rollout does not rank the patches more like occlusion than a random map does "
             f"({v.loc['rollout', 'spearman']:.2f} [{v.loc['rollout', 'low']:.2f}, {v.loc['rollout', 'high']:.2f}] "
             f"against {v.loc['random', 'spearman']:.2f}),"),
    vn.claim(roll_over_last,
             f"and more than the last layer's attention does (difference {roll_minus_last.value:.2f} "
             f"[{roll_minus_last.low:.2f}, {roll_minus_last.high:.2f}]): Abnar & Zuidema's finding holds here.",
             vn.claim(roll_under_last,
                      f"but less than the last layer's attention does (difference {roll_minus_last.value:.2f} "
                      f"[{roll_minus_last.low:.2f}, {roll_minus_last.high:.2f}]): Abnar & Zuidema's finding does "
                      f"not hold here.",
                      f"and no better than the last layer's attention (difference {roll_minus_last.value:.2f} "
                      f"[{roll_minus_last.low:.2f}, {roll_minus_last.high:.2f}]): the intervals do not separate them.")),
])
print(occ_said)

# %% tags=["hide-input"]

# the sentences that state a finding follow the numbers: on other models a claim may not hold
where = vn.pick(f"On `fmnist-vit-p2` ({N} test images; zoo v2's model, see its card):",
                hub=f"On `{vit.name}` ({N} labelled photos):")
where4 = vn.pick(f"On `fmnist-vit-p4` ({N_SANITY} test images, 7x7 grid):", hub=f"On `{vit4.name}` ({N_SANITY} photos):")
drop0 = from_start["spearman_with_full_rollout"].iloc[1]
settled_from, settled_to = fz.loc[("mean", 0.0), "settles_at"], fz.loc[("mean", 0.9), "settles_at"]
moves = vn.claim(settled_to != settled_from,
                 f"moves the layer after which the map\n  is settled from {settled_from} to {settled_to}",
                 f"leaves the layer after which the map\n  is settled at {settled_from}")
flat = vn.claim(uniform, "nearly uniform", "not uniform")
weak = vn.claim(weak_layers, "only weakly with any single layer", "with some single layers")
early = vn.claim(settled <= 4, f"It is decided by the first layers: the rollout through layer {settled} already agrees",
                 f"It is not decided by the first layers: the rollout through layer {settled} is the first to agree")
rows_same = vn.claim(collapsed, "After the last layer every token's rollout row is the same map",
                     "After the last layer the tokens' rollout rows still differ")
Markdown(f"""
## What we found

{where}

- The rollout map is {flat} (entropy {rollout_entropy:.3f} of $\\log N$; the last layer's map:
  {per_layer['entropy_norm'].iloc[-1]:.3f}) and agrees {weak}: the best is
  {best_layer['map']} (Spearman {best_layer['spearman_with_rollout']:.3f}), while the rollouts of two
  different images agree {other_image:.3f}.
- {early} {depth['agreement'].iloc[settled]:.3f} with the full one. {rows_same} (row spread
  {depth['row_spread'].iloc[-1]:.4f}). Dropping layer 0 alone gives a map that agrees {drop0:.3f} with the full rollout.
- Max fusion gives {vn.claim(max_same, "much the same map as", "a different map from")} mean fusion
  ({fz.loc[('max', 0.0), 'spearman_with_default']:.3f}), min fusion {vn.claim(min_apart, "a different one", "a similar one")}
  ({fz.loc[('min', 0.0), 'spearman_with_default']:.3f}); discarding 90 % of the weights gives
  {fz.loc[('mean', 0.9), 'spearman_with_default']:.3f} and {moves}. No variant agrees better than
  {fusion['spearman_with_last_layer'].max():.3f} with the last layer's map.
- On the {grid4} model ({N_FLOW} images) attention flow agrees {flow_vs_rollout:.3f} with rollout and
  {flow_vs_last:.3f} with the last layer.

{where4} its rollout, too, is settled after layer {settled4} (row spread {depth4['row_spread'].iloc[-1]:.4f} after the last layer).

- Cascading randomisation (seeds 0, 1, 2; the trained map against the randomised one by |Spearman| and SSIM,
  means over images [95 % intervals], judged by the rule of chapter 09; the copies with {L - L // 4} of {L}
  blocks random reach {chance:.0%} accuracy). {sanity_said}
- Against occlusion (per-image Spearman, mean [95 % interval]): {occ_said} Gradient rollout:
  {v.loc['gradient rollout', 'spearman']:.2f} [{v.loc['gradient rollout', 'low']:.2f}, {v.loc['gradient rollout', 'high']:.2f}];
  the last layer: {v.loc['last layer', 'spearman']:.2f} [{v.loc['last layer', 'low']:.2f}, {v.loc['last layer', 'high']:.2f}].
""")

# %% [markdown]
# **On ImageNet-scale ViTs.** We expect the near-uniform rollout, and how early it is fixed, to change
# most. The collapse is linear algebra and happens in any ViT, but its speed depends on how spread each
# layer's attention is: {cite:t}`raghu2021vitsee` found local heads in the lower layers of ViTs
# pre-trained on large data, and the ViT paper's rollout maps of a large ViT {cite:p}`dosovitskiy2021vit`
# pick out the object. On ViT-B/16 the rollout should be less flat and settled by later layers, and its
# agreement with occlusion and its sanity-check verdict may change with it; these are expectations from
# the mechanism, not measurements. Check it with
# `VITNOTES_MODELS=hub jupyter execute --output=../hub_06 notebooks/06_rollout.ipynb`; it writes the
# executed copy to `hub_06.ipynb` at the repository's root, whose "What we found" is computed for the hub
# models.

# %% [markdown]
# ## Exercises
#
# 1. Lower the residual weight with `vn.evaluate.rollout_by_depth(att, residual=0.0)` (the bare product of
#    attention matrices). Does the row spread still go to zero? Why does the identity term slow the
#    collapse down but not stop it?
#
# ````{admonition} Solution
# :class: dropdown
# ```python
# bare = vn.evaluate.rollout_by_depth(att, residual=0.0)
# print(pd.DataFrame({"residual 0": bare["row_spread"], "residual 0.5": depth["row_spread"]}).round(3).T)
# ```
# Without the identity the rows of $R$ are averaged by every layer's full attention, so the spread
# falls faster. With it, each $A_\ell = \tfrac12 W_\ell + \tfrac12 I$ is still row-stochastic with a
# positive part shared by all rows whenever $W_\ell$ is nearly uniform: each layer shrinks the
# differences between rows by a factor below 1 (only closer to 1 than without the identity). A product
# of such contractions still drives every row to the same vector; the identity only slows it down.
# ````
#
# 2. Compute attention flow through layers 0-3 only of `fmnist-vit-p4`
#    (`vn.attention_flow_grid(vn.capture(vit4, x4, layers=[0, 1, 2, 3]))`). How well does it agree
#    with the flow through all 12 layers?
#
# ````{admonition} Solution
# :class: dropdown
# ```python
# early = vn.attention_flow_grid(vn.capture(vit4, x4, layers=[0, 1, 2, 3]))
# print(f"flow through layers 0-3 vs all 12: {float(vn.stats.rank_correlation(early, maps4['attention flow']).mean()):.3f}")
# ```
# A value close to 1 says that, like rollout, the flow is decided by the first layers: the max-flow
# runs through the same residual-augmented, nearly uniform matrices, so the later layers pass on
# whatever the early ones fixed.
# ````
#
# 3. Repeat the cascade of the sanity check with `from_layers=[12, 2, 1, 0]` and one seed
#    (`seeds=(3,)`). Which single block does the rollout depend on most?
#
# ````{admonition} Solution
# :class: dropdown
# ```python
# t, _, _ = vn.evaluate.cascade_intervals(vit4, xs, labels[:N_SANITY].tolist(), from_layers=[12, 2, 1, 0], seeds=(3,))
# print(t.query("method == 'rollout'")[["step", "spearman", "low", "high"]].round(3).to_string(index=False))
# ```
# Each step randomises one more block than the one before, so the fall in Spearman from one row to the
# next is what that block contributed. The collapse predicts the largest fall where block 0 is
# randomised: the later blocks only re-average rows that layer 0 has already fixed. A different seed
# draws different random weights; a fall that is much larger than the intervals is not an accident of
# one draw.
# ````
