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
# # 05 · What does patch size change?
#
# A ViT {cite:p}`dosovitskiy2021vit` cuts the image into $p \times p$ patches, so the patch size fixes how fine its attention
# maps can be and how many tokens every layer must mix. ViT-B/16 and ViT-B/32 on 224-pixel photos
# have 14x14 and 7x7 grids; the book's two Fashion-MNIST ViTs have the same two grids on
# 28-pixel Fashion-MNIST images {cite:p}`xiao2017fmnist`: `fmnist-vit-p2` (2x2 patches, 196 patches) and `fmnist-vit-p4` (4x4 patches, 49
# patches). Everything else — 12 layers of 12 heads, width 192 — is the same.
#
# One caveat before any comparison: the two models are not independent. Their cards (printed
# under the model cell) say that `fmnist-vit-p2` *started from* `fmnist-vit-p4` (the patch kernel
# split into 2x2 pieces, the position embeddings interpolated) and was then trained further at the
# finer grid. Differences below mix the effect of the grid with that extra training.
#
# We compare the same test images under both models: the maps (granularity), accuracy, how spread
# out the {term}`CLS token`'s attention is per layer, how far heads look, and what the finer grid costs.
# Every headline number comes with a 95 % {term}`bootstrap interval` over the test images
# (`vn.bootstrap`).

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
_ = torch.set_grad_enabled(False)  # we only read the models here

# %%
models = [vn.load(vn.pick("fmnist-vit-p2", hub="google/vit-base-patch16-224")),
          vn.load(vn.pick("fmnist-vit-p4", hub="google/vit-base-patch32-224"))]
models = {f"p{m.geometry.patch_size}": m for m in models}  # keyed by patch size: "p2", "p4"
fine, coarse = models  # the finer grid, the coarser one
for m in models.values():
    print(vn.provenance(m))  # how each model was trained, from its card
models

# %% [markdown]
# ## Accuracy
#
# Each model classifies the first 1000 test images; `vn.evaluate.timed_predict` also times the forward
# passes (used in the cost section). The cards hold the accuracy on all 10,000 test images and,
# as a check, on the same first 1000.

# %%
images, labels, objects = vn.data.examples()
N_ACC = min(1000, len(labels))
timed = {k: vn.evaluate.timed_predict(m, m.preprocess(images[:N_ACC])) for k, m in models.items()}  # (logits, s/image)
cards = {k: vn.card(m.name) for k, m in models.items() if vn.pick(True, hub=False)}  # hub models have no card
accuracy = pd.DataFrame.from_dict({
    k: {"patch size": m.geometry.patch_size, "grid": "{}x{}".format(*m.geometry.grid),
        f"accuracy, first {N_ACC} (here)": float((timed[k][0].argmax(-1).numpy() == labels[:N_ACC]).mean()),
        **({f"accuracy, first {N_ACC} (card)": cards[k]["metrics"]["test_subset_accuracy"],
            "accuracy, all 10,000 (card)": cards[k]["metrics"]["test_accuracy"],
            "training epochs (card)": vn.train.card_epochs(cards[k])} if cards else {})}
    for k, m in models.items()
}, orient="index")
accuracy.round(4)

# %%
if cards:  # the zoo: the cards hold the accuracy on all 10,000 test images
    for k in models:
        assert abs(accuracy.loc[k, f"accuracy, first {N_ACC} (here)"] - accuracy.loc[k, f"accuracy, first {N_ACC} (card)"]) < 1e-3
    acc_gap = accuracy.loc[fine, "accuracy, all 10,000 (card)"] - accuracy.loc[coarse, "accuracy, all 10,000 (card)"]
    on = "all 10,000 test images"
else:  # hub models: the photos, measured here
    acc_gap = accuracy.loc[fine, f"accuracy, first {N_ACC} (here)"] - accuracy.loc[coarse, f"accuracy, first {N_ACC} (here)"]
    on = f"the {N_ACC} photos"
vn.check(0 < acc_gap < 0.02, f"{fine} is ahead of {coarse} by less than two points")
correct = {k: (timed[k][0].argmax(-1).numpy() == labels[:N_ACC]).astype(float) for k in models}
acc_iv = {k: vn.bootstrap(v) for k, v in correct.items()}
gap_iv = vn.bootstrap(correct[fine] - correct[coarse])  # paired: the same images
print(f"{fine} - {coarse} on {on}: {acc_gap * 100:+.2f} percentage points")
print(f"on the first {N_ACC}: " + ", ".join(f"{k} {iv.value:.1%} [{iv.low:.1%}, {iv.high:.1%}]" for k, iv in acc_iv.items())
      + f"; paired difference {gap_iv.value * 100:+.2f} [{gap_iv.low * 100:+.2f}, {gap_iv.high * 100:+.2f}] points")

# %% [markdown]
# The accuracy we measure matches the cards, with the caveat above: p2 is p4 plus more training
# at the finer grid (the table gives each card's epochs). On the first 1000 images, the paired
# interval of the difference says whether either model's lead is more than the luck of these images.

# %% [markdown]
# ## Granularity: the same images, two grids
#
# Full attention for the same test images under both models; the maps are drawn patch by patch
# (nearest-neighbour upsampling to 28x28 pixels, so each block is one patch). Rows: the last
# layer's CLS map (head mean) and the {term}`attention rollout` {cite:p}`abnar2020rollout`, for each
# model. A 7x7 map puts about four times the weight on each patch that a 14x14 map does, so the
# raw weights are not comparable across grids. Each map is drawn as attention relative to uniform:
# a patch's weight times the number of patches (1 = what uniform attention gives every patch, on
# either grid), on one colour scale for every panel.

# %%
N = 24  # images for the attention statistics (a full capture of p2 holds 12 x 12 x 197 x 197 per image)
att = {k: vn.capture(m, m.preprocess(images[:N])) for k, m in models.items()}  # [layer, batch, head, T, T]
last = {k: a.cls_grid(-1).mean(1) for k, a in att.items()}  # [batch, rows, cols]
roll = {k: vn.rollout_grid(a) for k, a in att.items()}
size = images.shape[1]  # the image's pixels: one grid for both models' maps
blocks = {f"{k} {what}": vn.evaluate.resize_maps(maps[k][:6] * maps[k][0].numel(), size, mode="nearest")  # x uniform
          for what, maps in (("last layer", last), ("rollout", roll)) for k in models}
vn.show.map_panel(images[:6], blocks, titles=[models[fine].labels[i] for i in labels[:6]], shared=True, size=0.9,
             label="attention / uniform")

# %% [markdown]
# On the 14x14 grid a bright patch is a 2x2-pixel spot; on the 7x7 grid it is a 4x4-pixel block,
# a 49th of the image. The finer grid can point at small details, the coarse one only at regions.
# Do the two models at least rank the image's regions alike? Both maps are brought to one 28x28 pixel grid (bilinear) and compared by Spearman
# rank correlation, per image.
#
# A number like this needs a reference. The best one would be the agreement between two
# independently trained p4 models (how much two runs of the *same* recipe agree); the zoo has no
# second p4 seed (the cell below checks). The reference we can compute: the two models' maps of
# *different* images (image i under p2 against image i + 1 under p4), which is what the shared
# layout of Fashion-MNIST images alone gives, as in chapter 09; random maps would give 0.

# %% [markdown]
# ```{admonition} Predict before you run
# :class: tip
# p2 started from p4's weights. Will their maps of the same image agree much more than their maps
# of two different garments?
# ```

# %%
def spearman(maps, shift=0):
    """Per-image Spearman between p2's map of image i and p4's map of image i + shift, on 28x28 pixels."""
    other = torch.roll(vn.evaluate.resize_maps(maps[coarse], size), -shift, dims=0)
    return vn.stats.rank_correlation(vn.evaluate.resize_maps(maps[fine], size), other).numpy()


rho = {(what, ref): vn.bootstrap(spearman(maps, shift))
       for what, maps in (("last layer", last), ("rollout", roll))
       for ref, shift in (("same image", 0), ("other image (reference)", 1))}
same = pd.DataFrame({f"{what}: {ref}": {"Spearman": iv.value, "low": iv.low, "high": iv.high, "images": iv.n}
                     for (what, ref), iv in rho.items()}).T
second_p4 = [n for n in vn.zoo_names() if n.startswith("fmnist-vit-p4-s")]
print(vn.claim(bool(second_p4), f"a second p4 seed is in the zoo ({second_p4}): compare with it",
               "missing: a second, independently trained p4 model, the reference this comparison should have"))
same.round(3)

# %% [markdown]
# ## How spread out is the CLS attention?
#
# `vn.cls_summary` gives, per layer and head and averaged over the images, the entropy of the CLS
# row over the patches divided by $\log N$ (the {term}`normalised entropy`) (so 196 and 49 patches compare: 1 = uniform), the share
# of the top 5 % of patches (10 of 196, 2 of 49), and the mean attention distance of the patch
# queries in pixels.

# %%
summary = pd.concat([vn.cls_summary(a).assign(model=k) for k, a in att.items()], ignore_index=True)
per_layer = summary.groupby(["layer", "model"])[["entropy_norm", "top5pct", "distance_px", "cls_share"]].mean()
per_layer.unstack("model").round(3)

# %%
fig = vn.show.metric_by_layer(summary, "entropy_norm", hue="model", ylabel="CLS entropy / log N")
fig.axes[0].axhline(1.0, ls="--", lw=1, color="grey")  # the uniform reference: H / log N = 1
fig.axes[0].set_ylim(0, 1.05)
fig

# %%
vn.show.metric_by_layer(summary, "top5pct", hue="model", ylabel="share of the top 5 % of patches")

# %%
ent = per_layer["entropy_norm"].unstack("model")
top = per_layer["top5pct"].unstack("model")
beyond_middle = {k: bool((ent.iloc[-4:][k] < ent.iloc[1:5][k].min()).all()) for k in models}  # vs layers 1-4
for k in models:
    vn.check(beyond_middle[k], f"{k}: each of the last four layers is more focused than layers 1-4")
# the most focused layer by each measure, layer 0 included: lowest H / log N, largest top-5 % share
most = {k: {"entropy": int(ent[k].idxmin()), "top5": int(top[k].idxmax())} for k in models}
n_layers = len(ent)
focused_last = {k: all(v >= n_layers - 4 for v in most[k].values()) for k in models}  # both among the last four
for k in models:
    print(f"{k}: lowest H/log N in layer {most[k]['entropy']} ({ent[k].min():.3f}; last four layers "
          f"{ent[k].iloc[-4:].min():.3f} to {ent[k].iloc[-4:].max():.3f}, layer 0 {ent[k].iloc[0]:.3f}); largest top-5 % "
          f"share in layer {most[k]['top5']} ({top[k].max():.3f}; layer 0 {top[k].iloc[0]:.3f})")
last_grid = {k: a.cls_grid(-1).flatten(-2) for k, a in att.items()}  # [image, head, patches]
ent_iv = {k: vn.bootstrap(vn.normalized_entropy(g).mean(-1).numpy()) for k, g in last_grid.items()}
top_iv = {k: vn.bootstrap(vn.stats.topk_share(g, max(1, round(0.05 * g.shape[-1]))).mean(-1).numpy())
          for k, g in last_grid.items()}
iv_text = lambda iv: f"{iv.value:.3f} [{iv.low:.3f}, {iv.high:.3f}]"  # noqa: E731
print(f"last layer ({N} images), entropy / log N: {fine} {iv_text(ent_iv[fine])}, {coarse} {iv_text(ent_iv[coarse])}; "
      f"top-5 % share: {fine} {iv_text(top_iv[fine])}, {coarse} {iv_text(top_iv[coarse])}")

# %% tags=["hide-input"]
from IPython.display import Markdown


def focus_said(k):
    """Where model ``k``'s CLS attention is most focused, layer 0 included, in words from the table."""
    at = most[k]
    if focused_last[k]:
        return (f"{k} is most focused in its last layers (lowest $H / \\log N$ in layer {at['entropy']}, "
                f"{ent[k].min():.3f}; largest top-5 % share in layer {at['top5']}, {top[k].max():.3f})")
    where = (f"layer {at['entropy']}" if at["entropy"] == at["top5"]
             else f"layers {at['entropy']} (entropy) and {at['top5']} (top-5 % share)")
    return (f"{k}'s most focused layer is {where}, not one of the last: $H / \\log N$ {ent[k].min():.3f} there "
            f"against {ent[k].iloc[-4:].min():.3f} at best in the last four layers, and a top-5 % share of "
            f"{top[k].max():.3f} against {top[k].iloc[-4:].max():.3f}")


flattest = {k: int(ent[k].idxmax()) for k in models}
n_patches = {k: m.geometry.grid[0] * m.geometry.grid[1] for k, m in models.items()}
flat_where = f"layer {' and '.join(f'{flattest[k]} in {k}' for k in models)}, $H / \\log N$ " + " and ".join(
    f"{ent[k].max():.3f}" for k in models)
Markdown(vn.claim(all(v < 5 for v in flattest.values()),
                  f"In both models the CLS attention is closest to uniform in an early layer ({flat_where}),",
                  f"The CLS attention is closest to uniform in {flat_where},")
         + " and each of the last four layers is more focused than layers 1 to 4. Counting layer 0 too: "
         + "; ".join(focus_said(k) for k in models)
         + ". Normalised entropy and the top-5 % share remove the trivial effect of the patch count, but they do "
         f"not make the two grids equivalent: 5 % of {n_patches[coarse]} patches is "
         f"{max(1, round(0.05 * n_patches[coarse]))} patches, of {n_patches[fine]} it is "
         f"{max(1, round(0.05 * n_patches[fine]))}.")

# %% [markdown]
# ## How far do the heads look?
#
# The ViT paper's Fig. 11 {cite:p}`dosovitskiy2021vit` plots, per head, the {term}`mean attention distance`: the mean distance between a query patch and the
# patches it attends to, weighted by attention, in pixels. Small values are local heads (like a
# convolution), large values global ones. The dashed lines mark what uniform attention (the {term}`uniform reference`) over
# each grid would give: the mean distance between two patch centres. Local heads are not built into
# the architecture: {cite:t}`raghu2021vitsee` found that ViTs learn them in their lower layers only
# from large pre-training data, and attend more globally there when trained on less.

# %%
uniform = {k: vn.stats.uniform_distance(m.geometry.grid, m.geometry.patch_size) for k, m in models.items()}
fig = vn.show.metric_by_layer(summary, "distance_px", hue="model", ylabel="mean attention distance (px)")
for line, (k, v) in zip(fig.axes[0].get_lines(), uniform.items()):  # the models' lines, in order
    fig.axes[0].axhline(v, ls="--", lw=1, color=line.get_color())
top_px = vn.pick(20, hub=max(1.4 * max(uniform.values()), 1.05 * summary["distance_px"].max()))
fig.axes[0].set_ylim(0, top_px)  # from 0, as in the paper: a local head would sit near the bottom
fig

# %%
dist = per_layer["distance_px"].unstack("model")
heads = summary.assign(uniform=summary["model"].map(uniform))
heads["off_uniform"] = heads["distance_px"] - heads["uniform"]
spread = heads.groupby("model")["off_uniform"].agg(["min", "max"])
depth_change = (dist.max() - dist.min()).max()
near_uniform = {  # the zoo's claims, in pixels
    "every layer's mean: within half a pixel of uniform": all((dist[k] - uniform[k]).abs().max() < 0.5 for k in models),
    "every single head: within 1.5 px of uniform": spread.abs().max().max() < 1.5,
    "the layer means move by less than half a pixel from the first layer to the last": depth_change < 0.5,
}
for claim, holds in near_uniform.items():
    print(f"{'holds' if holds else 'does not hold'}: {claim}")
print("uniform attention:", {k: round(v, 2) for k, v in uniform.items()}, "px; per-head distance minus uniform (px):")
print(spread.round(2))
# a local head looks less than half as far as uniform attention would (chapter 01's test)
heads["of_uniform"] = heads["distance_px"] / heads["uniform"]
closest = heads.loc[heads["of_uniform"].idxmin()]  # the most local head of either model
local_heads = heads[heads["of_uniform"] < 0.5]
print(f"most local head: {closest['model']} layer {int(closest['layer'])} head {int(closest['head'])}, "
      f"{closest['distance_px']:.2f} px = {closest['of_uniform']:.1%} of the uniform distance; heads below half: {len(local_heads)}")
vn.check(local_heads.empty, "no head of either model looks less than half as far as uniform attention (exercise 2)")

# %% tags=["hide-input"]
from IPython.display import Markdown

layer_off = max((dist[k] - uniform[k]).abs().max() for k in models)
Markdown("The usual story for ViTs trained on large data sets (the ViT paper's Fig. 11) is that some early heads "
         "are local and distances grow with depth. " + vn.claim(all(near_uniform.values()),
         "These two models do not show it: averaged over heads, every layer sits within half a pixel of the "
         "uniform-attention value in both models, no single head is more than 1.5 px away from it (there is no "
         "local head at all), and the layer means barely move with depth. Patch size does not change that.",
         f"Here the layer means sit up to {layer_off:.2f} px from the uniform value, single heads from "
         f"{spread['min'].min():+.2f} to {spread['max'].max():+.2f} px, and the layer means move by up to "
         f"{depth_change:.2f} px between layers.")
         + " A distance near the uniform value does not by itself mean that a head spreads its attention evenly: a "
         "head whose queries all look at the same few patches gives a similar number (an \"attention sink\" that "
         "every query shares).")

# %% [markdown]
# ## What the finer grid costs
#
# Per image: the number of tokens $T = N + 1$, the attention probabilities each layer computes
# (heads x $T^2$), and the floating-point operations of one forward pass counted from the shapes
# (`vn.vit_cost`: the matrix products, 2 FLOPs per multiply-add; softmax, layer norms and GELU are
# left out).

# %%
cost = pd.DataFrame({k: vn.vit_cost(m) for k, m in models.items()}).T
cost["MFLOPs"] = cost["flops"] / 1e6
layers = pd.Series({k: m.geometry.layers for k, m in models.items()})
cost["attention share of FLOPs"] = layers * cost["flops_attention"] / cost["flops"]
table = cost[["patches", "tokens", "attention_entries", "MFLOPs", "attention share of FLOPs"]]
table = pd.concat([table, (table.loc[fine] / table.loc[coarse]).to_frame(f"{fine} / {coarse}").T])
table.round(3)

# %%
ratio = table.loc[f"{fine} / {coarse}"]
vn.check(15 < ratio["attention_entries"] < 16.5, "the finer grid has 15-16.5x the attention entries")  # ~(197/50)^2
vn.check(4 < ratio["MFLOPs"] < 5, "the finer grid costs 4-5x the FLOPs")
vn.check(table.loc[fine, "attention share of FLOPs"] < 0.5,
         "the linear layers dominate the FLOPs even at the finer grid's token count")
print(f"{ratio['patches']:.0f}x the patches: {ratio['tokens']:.2f}x the tokens, {ratio['attention_entries']:.1f}x the attention entries, "
      f"{ratio['MFLOPs']:.2f}x the FLOPs")

# %% [markdown]
# The attention entries grow with the square of the token count, but at width 192 the linear
# layers (projections and MLP, linear in $T$) still do most of the work, so the FLOPs grow by a
# factor between 4 and 5. The measured time per image below depends on the machine and on what else runs on it (it
# is not compared when the notebook is re-run).

# %% tags=["nbval-ignore-output"]
seconds = {k: t[1] for k, t in timed.items()}
print({k: f"{v * 1e3:.2f} ms/image" for k, v in seconds.items()},
      f"| {fine} / {coarse} = {seconds[fine] / seconds[coarse]:.1f}x (batch 64, {N_ACC} images, CPU threads: {torch.get_num_threads()})")

# %% tags=["hide-input"]

here = f"accuracy, first {N_ACC} (here)"
if cards:
    acc_text = (f"on all 10,000 test images (cards) {fine} reaches {accuracy.loc[fine, 'accuracy, all 10,000 (card)']:.1%}\n"
                f"  and {coarse} {accuracy.loc[coarse, 'accuracy, all 10,000 (card)']:.1%}; on the first {N_ACC}, measured here,\n"
                f"  {accuracy.loc[fine, here]:.1%} and {accuracy.loc[coarse, here]:.1%}.\n"
                f"  {fine} started from {coarse} ({vn.train.card_epochs(cards[coarse]):g} epochs) and trained "
                f"{vn.train.card_epochs(cards[fine]):g} more, so this is not a clean patch-size effect.")
else:
    acc_text = (f"on the {N_ACC} photos, measured here, {fine} gets {accuracy.loc[fine, here]:.1%} and {coarse}\n"
                f"  {accuracy.loc[coarse, here]:.1%}; that is too few images to rank the two models.")
gf, gc = (models[k].geometry for k in (fine, coarse))
near = all(near_uniform.values())
Markdown(f"""
## What we found

- **Accuracy**: {acc_text}
  Paired difference on the first {N_ACC}: {gap_iv.value * 100:+.2f} [{gap_iv.low * 100:+.2f}, {gap_iv.high * 100:+.2f}] points
  ({vn.claim(gap_iv.low > 0, "the finer grid's lead holds on these images", "these images cannot tell the two apart")}).
- **Granularity**: the {gf.grid[0]}x{gf.grid[1]} maps mark {gf.patch_size}x{gf.patch_size}-pixel spots, the {gc.grid[0]}x{gc.grid[1]} maps {gc.patch_size}x{gc.patch_size} blocks. On the same {len(att[fine].probs[0])}
  images the two models' last-layer maps agree with Spearman {iv_text(rho['last layer', 'same image'])}
  and their rollouts {iv_text(rho['rollout', 'same image'])} (on a common {size}x{size} grid); maps of different images
  give {iv_text(rho['last layer', 'other image (reference)'])} and {iv_text(rho['rollout', 'other image (reference)'])}, so
  {vn.claim(rho['last layer', 'same image'].low > rho['last layer', 'other image (reference)'].high, "the last layers agree on the image beyond the shared layout", "the last layers' agreement is not beyond what the shared layout gives")}.
  {vn.claim(bool(second_p4), "A second p4 seed gives the run-to-run reference.", "Missing: a second, independently trained p4 model, which would show how much two runs of one recipe agree.")}
- **Spread**: in the last layer the CLS entropy is {iv_text(ent_iv[fine])} ({fine}) and {iv_text(ent_iv[coarse])} ({coarse})
  of $\\log N$, and the top 5 % of patches hold {iv_text(top_iv[fine])} and {iv_text(top_iv[coarse])} of the
  attention. {vn.claim(all(focused_last.values()), "Both models are most focused in their last layers, layer 0 included",
  "Counting layer 0, " + "; ".join(focus_said(k) for k in models))}.
- **Distance**: the mean attention distance of every head lies within
  {spread.abs().max().max():.2f} px of what uniform attention gives ({uniform[fine]:.2f} px on the {gf.grid[0]}x{gf.grid[1]}
  grid, {uniform[coarse]:.2f} px on {gc.grid[0]}x{gc.grid[1]}), in both models, and the layer means change by at most
  {depth_change:.2f} px from the first layer to the last{": no local heads and no real growth with depth, unlike" if near else "."}
  {"the ViT paper's large models." if near else vn.claim(local_heads.empty,
  f"No head is local by chapter 01's test (less than half the uniform distance): the most local one, {closest['model']}'s "
  f"layer {int(closest['layer'])} head {int(closest['head'])}, still reaches {closest['of_uniform']:.0%} of the uniform "
  f"distance, and every layer's mean lies within {layer_off:.2f} px of the uniform value (the figure above).",
  f"{len(local_heads)} heads look less than half as far as uniform attention (the most local: {closest['model']}'s "
  f"layer {int(closest['layer'])} head {int(closest['head'])}, {closest['of_uniform']:.0%} of the uniform distance).")}
- **Cost**: the finer grid has {ratio['tokens']:.2f}x the tokens, {ratio['attention_entries']:.1f}x the attention
  entries per layer and {ratio['MFLOPs']:.2f}x the FLOPs per image ({cost.loc[fine, 'MFLOPs']:.0f} vs
  {cost.loc[coarse, 'MFLOPs']:.0f} MFLOPs).
""")

# %% [markdown]
# **On ImageNet-scale ViTs.** The distance finding is the one we expect to change: no local head and
# hardly any growth with depth is what {cite:t}`raghu2021vitsee` found in ViTs trained without large
# pre-training data, and ViT-B/16 and ViT-B/32, pre-trained on ImageNet-21k, should have local heads in
# their lower layers at either patch size. The accuracy gap is not a clean patch-size effect here (the
# finer model started from the coarser one, and both learnt in part from the ResNet), so it may differ
# there too. The cost findings are arithmetic on the shapes and should hold, with the linear layers an
# even larger share of the work at ViT-B's width. Check it with
# `VITNOTES_MODELS=hub jupyter execute --output=../hub_05 notebooks/05_patch_size.ipynb`; it writes the
# executed copy to `hub_05.ipynb` at the repository's root, whose "What we found" is computed for the hub
# models.

# %% [markdown]
# ## Exercises
#
# 1. `vn.vit_cost(model, image_size=56)` counts the cost at a larger input (positions interpolated).
#    At what image size would attention take half of p4's FLOPs?
#
# ````{admonition} Solution
# :class: dropdown
# Try sizes until the attention share (as in the cost table) reaches one half:
# ```python
# for s in range(28, 400, 4):
#     c = vn.vit_cost(models[coarse], image_size=s)
#     if models[coarse].geometry.layers * c["flops_attention"] / c["flops"] >= 0.5:
#         print(s, "pixels"); break
# ```
# ````
#
# 2. Compare the per-head distances of layer 0 in both models (`summary.query("layer == 0")`). Is any
#    head clearly local (well below the uniform value)?
#
# ````{admonition} Solution
# :class: dropdown
# ```python
# first = heads.query("layer == 0")
# print(first.groupby("model")["of_uniform"].min().round(2))  # the most local layer-0 head, as a share of uniform
# ```
# No. A local head would look well under the uniform distance (chapter 01's test: less than half
# of it). The chapter's check that no head of any layer does so covers layer 0; the distance
# finding above names the most local head of all and the share of the uniform distance it reaches.
# ````
#
# 3. Classify the first 1000 test images with both models and find the images where only one of them
#    is right. Do their last-layer maps differ more on those images than on the rest?
#
# ````{admonition} Solution
# :class: dropdown
# The maps above were captured for the first 24 images only; capture the last layer for the 1000
# (CLS rows are cheap) and compare the per-image Spearman of the two groups:
# ```python
# x_all = {k: m.preprocess(images[:N_ACC]) for k, m in models.items()}
# maps = {k: vn.capture(m, x_all[k], layers=-1, cls_only=True).cls_grid(-1).mean(1) for k, m in models.items()}
# rho_all = vn.stats.rank_correlation(vn.evaluate.resize_maps(maps[fine], size), vn.evaluate.resize_maps(maps[coarse], size)).numpy()
# differ = correct[fine] != correct[coarse]
# print(differ.sum(), "images;", vn.bootstrap(rho_all[differ]), vn.bootstrap(rho_all[~differ]))
# ```
# ````
