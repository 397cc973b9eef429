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
# # 00 · What does one attention layer compute?
#
# Every map in this book is a row of an attention matrix. Before we read any of them, we
# recompute one layer's attention by hand from the model's weights — queries, keys, values,
# the scaled softmax, the heads and the output projection — and check that it matches what
# the model itself computes and what `vitnotes` captures.
#
# For one image, a ViT {cite:p}`dosovitskiy2021vit` turns the picture into $N$ patches, embeds each
# as a vector (a {term}`patch token`), and puts a learned {term}`CLS token` in front: $T = N + 1$
# tokens of width $D$. Layer $\ell$ normalises them ($X = \mathrm{LN}(h)$) and, for each of its $H$
# {term}`heads <attention head>` with width $d = D / H$, computes
#
# $$
# Q_h = X W^Q_h + b^Q_h,\quad K_h = X W^K_h + b^K_h,\quad V_h = X W^V_h + b^V_h,
# $$
#
# $$
# A_h = \mathrm{softmax}\!\left(\frac{Q_h K_h^\top}{\sqrt{d}}\right),
# $$
#
# a $T \times T$ matrix whose row $i$ says how token $i$ spreads its attention over all
# tokens (each row sums to 1). The heads' outputs $A_h V_h$ are concatenated and mixed by
# the output projection: $\mathrm{out} = [A_1 V_1, \dots, A_H V_H]\, W^O + b^O$.
# Row 0 of $A_h$ is the **CLS row**: where the token that feeds the classifier looks. The
# {term}`attention maps <attention map>` of later chapters are that row, without its first entry,
# laid out on the patch grid.

# %% tags=["remove-cell"]
# Binder and Colab: install vitnotes when it is missing (here, and wherever it is installed, a no-op).
import importlib.util, subprocess, sys  # noqa: E401
if importlib.util.find_spec("vitnotes") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "vitnotes @ git+https://github.com/vitnotes/vitnotes"], check=True)

# %%
import torch

import vitnotes as vn

vn.setup(seed=0)
_ = torch.set_grad_enabled(False)  # we only read the model here

# %% [markdown]
# The model is the book's main ViT, `fmnist-vit-p2`: 12 layers of 12 heads, width 192, on
# 28-pixel Fashion-MNIST images {cite:p}`xiao2017fmnist` cut into 2x2 patches, a 14x14 grid like ViT-B/16 on
# 224-pixel photos (see [the zoo](../book/zoo.md)). The line under the cell, read from its card,
# says how it was trained. `vn.pick` chooses between the offline zoo and the hub models by one setting,
# `VITNOTES_MODELS` (`vn.family()` says which is active). Your own model loads the same way: any
# transformers ViT by its name or folder (`vn.load`), CLIP or SigLIP as a classifier over your text
# prompts (`vn.prompts(model, ["a photo of a cat", ...])`), your own PyTorch ViT once you name its parts
# (`vn.describe(model, blocks=...)`); the book's page [Running on other models](../book/other_models.md)
# shows each.

# %%
vit = vn.load(vn.pick("fmnist-vit-p2", hub="google/vit-base-patch16-224"))
print(vn.provenance(vit))  # how it was trained, read from its card
vit

# %%
images, labels, objects = vn.data.examples()
x = vit.preprocess(images[:4])  # pixel_values [batch, channels, height, width]
g = vit.geometry
print("pixel_values", tuple(x.shape), "| tokens T =", g.tokens, "| width D =", g.hidden,
      "| heads H =", g.heads, "| head width d =", g.head_dim)

# %% [markdown]
# ## Queries, keys and values by hand
#
# `vn.attention_io` returns what the attention of a layer reads (the normalised tokens $X$)
# and what it writes (its output after $W^O$). We take layer 3 and rebuild everything in
# between from the weight matrices. PyTorch's `Linear` stores $W$ as `[out, in]`, so
# $X W$ is `X @ weight.T`.

# %%
LAYER = 3
X, out_model = vn.attention_io(vit, x, LAYER)  # both [batch, T, D]
attn = vit.net.vit.layers[LAYER].attention


def heads(t):  # [batch, T, D] -> [batch, H, T, d]
    return t.reshape(t.shape[0], t.shape[1], g.heads, g.head_dim).transpose(1, 2)


Q = heads(X @ attn.q_proj.weight.T + attn.q_proj.bias)
K = heads(X @ attn.k_proj.weight.T + attn.k_proj.bias)
V = heads(X @ attn.v_proj.weight.T + attn.v_proj.bias)
scores = Q @ K.transpose(-1, -2) / g.head_dim**0.5  # [batch, H, T, T]
A = scores.softmax(-1)
context = (A @ V).transpose(1, 2).reshape(X.shape)  # heads concatenated: [batch, T, D]
out_hand = context @ attn.o_proj.weight.T + attn.o_proj.bias
print("Q, K, V", tuple(Q.shape), "| A", tuple(A.shape))

# %% [markdown]
# Three checks: every row of $A$ is a probability distribution; our output equals the
# model's; and our $A$ equals what `vn.capture` returns. (The model runs PyTorch's fused
# SDPA kernel, which never materialises $A$; `vn.capture` recomputes it from the model's
# own $Q$ and $K$.) The asserts make the notebook fail loudly if any of this stops being true.

# %% [markdown]
# ```{admonition} Predict before you run
# :class: tip
# The model computes attention with a fused kernel in a different order of floating-point
# operations. Will our hand-made $A$ match it exactly (bit for bit), or only to some tolerance, and
# how large a difference would still count as "the same"?
# ```

# %%
captured = vn.capture(vit, x, layers=[LAYER]).get(LAYER)  # [batch, H, T, T]
row_sums = A.sum(-1)
out_err = ((out_hand - out_model).abs().max() / out_model.abs().max()).item()
cap_err = (A - captured).abs().max().item()
assert torch.allclose(row_sums, torch.ones_like(row_sums), atol=1e-5)
assert out_err < 1e-5 and cap_err < 1e-5
print(f"rows of A sum to 1: {bool(torch.allclose(row_sums, torch.ones_like(row_sums), atol=1e-5))}")
print(f"output by hand vs model: relative error below 1e-5: {out_err < 1e-5}")
print(f"A by hand vs vn.capture: max difference below 1e-5: {cap_err < 1e-5}")

# %% [markdown]
# ## The CLS row on the patch grid
#
# Row 0 of $A_h$ has $T = 197$ entries: one for CLS itself and 196 for the patches. Dropping
# the first and reshaping the rest to 14x14 gives the picture every later chapter shows.
# Here are the 12 heads of layer 3 for the first test image (two rows of six: heads 0-5, then 6-11),
# on one colour scale shared by all twelve panels (the colour bar), so a brighter patch means more
# weight in any panel.

# %%
cls_row = A[0, :, 0, 1:]  # [H, N]: image 0, every head, the CLS query, patch keys
maps = cls_row.reshape(g.heads, *g.grid)  # [H, 14, 14]
vn.show.head_grid(images[0], maps[None], layers=[LAYER])

# %% [markdown]
# How much of the CLS row lands on CLS itself, and how spread out is the rest? Entropy
# $H = -\sum_j p_j \log p_j$ (in nats) of the renormalised patch weights is $\log N$ for
# {term}`uniform attention <uniform reference>` and 0 when one patch takes everything; dividing by
# $\log N$ gives the {term}`normalised entropy`, a number in $[0, 1]$ that compares grids of
# different sizes (chapter 05).

# %% [markdown]
# ```{admonition} Predict before you run
# :class: tip
# Look at the twelve maps above. Layer 3 is early in the network: will the CLS row's normalised
# entropy be close to 1 (nearly uniform) or close to 0 (a few patches take everything)?
# ```

# %%
cls_self = A[:, :, 0, 0]  # [batch, H]
H_cls = vn.entropy(A[:, :, 0, 1:])  # [batch, H], renormalised over patches
print(f"mean CLS->CLS weight in layer {LAYER}: {cls_self.mean():.3f}")
print(f"entropy of the CLS row over patches: {H_cls.mean():.3f} nats (uniform: log {g.grid[0] * g.grid[1]} = "
      f"{torch.tensor(float(g.grid[0] * g.grid[1])).log():.3f}); normalised {vn.normalized_entropy(A[:, :, 0, 1:]).mean():.3f}")
print("per head (image 0):", [f"{h:.2f}" for h in H_cls[0].tolist()])

# %% tags=["hide-input"]
from IPython.display import Markdown

heads_differ = (H_cls[0].max() - H_cls[0].min()).item() > 0.1  # nats: the heads' CLS entropies differ
Markdown(f"""
## What we found

- Recomputing layer {LAYER} by hand from its weights reproduces the model's attention output
  (relative error below 1e-5) and the matrices `vn.capture` returns (difference below 1e-5),
  so the maps in this book are the model's own attention, not an approximation.
- In this layer the CLS query keeps {cls_self.mean():.1%} of its weight on itself, on average
  over heads and {x.shape[0]} images; the rest has an entropy of {H_cls.mean():.2f} nats over
  {g.grid[0] * g.grid[1]} patches, {vn.normalized_entropy(A[:, :, 0, 1:]).mean():.2f} of the uniform value.
- {"The heads differ" if heads_differ else "The heads hardly differ here"}: on the first image their CLS entropies range from {H_cls[0].min():.2f} to
  {H_cls[0].max():.2f} nats{", which is why" if heads_differ else "; in trained models they do, and"} chapter 02 looks at heads one by one.
""")

# %% [markdown]
# **On ImageNet-scale ViTs.** The first finding is arithmetic, not a property of training: recomputing a
# layer from its weights should reproduce the attention of any ViT, ViT-B/16 included. What the layer's
# numbers describe (how much weight the CLS query keeps on itself, how spread its row is, how much the
# heads differ) belongs to this small model, trained briefly on 28-pixel garments and in part on the
# ResNet's predictions, and we expect all three to differ on a ViT-B/16 pre-trained on ImageNet-21k, in a
# direction this page cannot predict. Check it with
# `VITNOTES_MODELS=hub jupyter execute --output=../hub_00 notebooks/00_attention_math.ipynb`; it writes
# the executed copy to `hub_00.ipynb` at the repository's root, whose "What we found" is computed for the
# hub models.

# %% [markdown]
# ## Exercises
#
# 1. Remove the $1/\sqrt{d}$ scaling and recompute $A$. How does the CLS entropy change, and why?
#
# ````{admonition} Solution
# :class: dropdown
# The entropy falls. Without the scaling every score is $\sqrt{d}$ times larger
# (`g.head_dim ** 0.5`), and a softmax of scores multiplied by a factor above 1 is sharper: the
# largest weights grow at the expense of the others. The entropy of $\mathrm{softmax}(\beta z)$ never
# increases with $\beta$, and dropping CLS and renormalising leaves a softmax over the patch
# scores alone, so the same holds for the CLS row over the patches.
#
# ```python
# A_unscaled = (Q @ K.transpose(-1, -2)).softmax(-1)
# with_scaling = vn.entropy(A[:, :, 0, 1:]).mean()
# without = vn.entropy(A_unscaled[:, :, 0, 1:]).mean()
# print(f"CLS entropy: {with_scaling:.3f} nats with the scaling, {without:.3f} without")
# ```
# ````
#
# 2. Recompute layer 0 and layer 11. Which has the more spread-out CLS row?
#
# ````{admonition} Solution
# :class: dropdown
# Wrap the hand computation in a function of the layer and compare the normalised entropies
# (closer to 1 is more spread out); the captured matrices must agree with it.
#
# ```python
# def cls_spread(layer):
#     X, _ = vn.attention_io(vit, x, layer)
#     attn = vit.net.vit.layers[layer].attention
#     Q = heads(X @ attn.q_proj.weight.T + attn.q_proj.bias)
#     K = heads(X @ attn.k_proj.weight.T + attn.k_proj.bias)
#     A = (Q @ K.transpose(-1, -2) / g.head_dim**0.5).softmax(-1)
#     captured = vn.capture(vit, x, layers=[layer]).get(layer)
#     assert (A - captured).abs().max() < 1e-5
#     return vn.normalized_entropy(A[:, :, 0, 1:]).mean().item()
#
#
# spread = {layer: cls_spread(layer) for layer in (0, 11)}
# print({layer: round(h, 3) for layer, h in spread.items()},
#       "-> more spread out: layer", max(spread, key=spread.get))
# ```
#
# Which layer spreads more is a property of the trained model, not of the architecture; chapter 01
# measures it for every layer, with intervals.
# ````
#
# 3. The model's `attn.scaling` holds the scale it uses. Check that it equals $d^{-1/2}$.
#
# ````{admonition} Solution
# :class: dropdown
# ```python
# print(attn.scaling, g.head_dim**-0.5)
# assert abs(attn.scaling - g.head_dim**-0.5) < 1e-12
# ```
# With $d = D / H$, the scale is $1/\sqrt{d}$, not $1/\sqrt{D}$: each head's scores are
# dot products of $d$-dimensional vectors.
# ````
