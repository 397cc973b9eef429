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
# # 03 · Do a CNN and a ViT look at the same pixels?
#
# A convolutional network and a Vision Transformer can reach similar accuracy on the same
# images. Do they use the same pixels to get there? We cannot ask them directly, so we ask
# their explanation maps: Grad-CAM for the CNN, and for the ViT four maps that are often shown
# as "where it looks" — last-layer CLS attention, attention rollout, gradient-weighted rollout
# and Grad-CAM on the transformer's tokens.
#
# Two questions keep the comparison honest:
#
# 1. **Do the maps agree?** Rank correlation and top-pixel overlap between every pair of maps,
#    on one common pixel grid.
# 2. **Do the maps point at pixels the model needs?** A map is only an explanation if deleting
#    the pixels it ranks highest hurts the model it explains. Deletion curves measure that, with
#    a random order as the control.

# %% tags=["remove-cell"]
# Binder and Colab: install vitnotes when it is missing (here, and wherever it is installed, a no-op).
import importlib.util, subprocess, sys  # noqa: E401
if importlib.util.find_spec("vitnotes") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "vitnotes @ git+https://github.com/vitnotes/vitnotes"], check=True)

# %%
import numpy as np
import torch

import vitnotes as vn

vn.setup(seed=0)
_ = torch.set_grad_enabled(False)  # gradients are switched on inside the functions that need them

# %% [markdown]
# The ViT is the book's main model, `fmnist-vit-p2` (12 layers x 12 heads, a 14x14 patch grid
# on 28-pixel images). The CNN is `fmnist-resnet`, a small ResNet that reads the same images
# upsampled to 56 pixels (its own `preprocess` does that), so that its last stage is a 7x7 grid
# that Grad-CAM can use. Both are under-trained on two CPU cores (see the zoo's cards): the
# ResNet is clearly the stronger classifier, which matters when we compare their maps.

# %%
vit = vn.load(vn.pick("fmnist-vit-p2", hub="google/vit-base-patch16-224"))
resnet = vn.load(vn.pick("fmnist-resnet", hub="microsoft/resnet-50"))
vit4 = vn.load(vn.pick("fmnist-vit-p4", hub="google/vit-base-patch32-224"))  # a second ViT, for the CKA reference
vit, resnet

# %% [markdown]
# ## The images and what each model predicts
#
# We take the first four test images of each class: 40 images, balanced over the ten classes.
# The figures show the first image of each class. Each model's maps explain its own
# prediction, which is not always the true class.

# %%
images, labels, objects = vn.data.examples()  # objects: the garment's pixels (the photos: the object's box)
idx = vn.data.per_class(labels, 4)  # 4 per class, class order (the hub's photos: one each)
imgs, y, obj = images[idx], labels[idx], objects[idx]  # raw uint8 [40, 28, 28], labels [40], masks [40, 28, 28]
x, x_cnn = vit.preprocess(imgs), resnet.preprocess(imgs)  # [40, 1, 28, 28] and [40, 1, 56, 56]
pred_vit, pred_cnn = vit.predict(x).argmax(-1).numpy(), resnet.predict(x_cnn).argmax(-1).numpy()
shown = np.unique(y, return_index=True)[1]  # the first image of each class
names = vit.labels
print(f"{len(idx)} images | accuracy: ViT {np.mean(pred_vit == y):.3f}, ResNet {np.mean(pred_cnn == y):.3f} | "
      f"the two models predict the same class on {np.mean(pred_vit == pred_cnn):.3f} of them")

# %% [markdown]
# ## Five maps on one grid
#
# - **ResNet Grad-CAM**: the last stage's 7x7 feature maps, weighted by the mean gradient of the
#   predicted class's logit and passed through a ReLU.
# - **ViT CLS attention**: the last layer's attention from the CLS token to the 196 patches,
#   averaged over the 12 heads (chapters 01 and 02 look at layers and heads one by one).
# - **ViT rollout**: attention rollout (Abnar & Zuidema 2020), the CLS row of the product of
#   every layer's head-averaged attention with the residual added (chapter 06).
# - **ViT gradient rollout**: the same product with each layer's attention weighted by the
#   gradient of the predicted class (Chefer et al. 2021), so it is class-specific.
# - **ViT Grad-CAM**: Grad-CAM on the tokens entering the last block, laid out on the patch grid.
#
# The ViT maps live on a 14x14 grid and the ResNet's on 7x7. `vn.resize_maps` brings all of
# them to the 28x28 pixel grid (bilinear), where they can be ranked pixel by pixel. As a
# reference that explains nothing, we add the image's own **brightness** as a sixth "map":
# Fashion-MNIST garments are bright on a black background, so a map that correlates with
# brightness is, at least partly, a garment detector.

# %%
side = imgs.shape[1]  # the pixel grid: 28
grid = vit.geometry.grid  # (14, 14)
raw = {
    "ResNet Grad-CAM": vn.gradcam(resnet, x_cnn, stage=-1),  # [40, 7, 7]
    "ViT CLS attention": vn.capture(vit, x, layers=[-1], cls_only=True).cls_grid(-1).mean(1),  # [40, 14, 14]
    "ViT rollout": vn.explain(vit, x, "rollout"),  # CLS row over the patches, renormalised: [40, 14, 14]
    "ViT grad. rollout": vn.gradient_rollout(vit, x),  # [40, 14, 14], predicted class
    "ViT Grad-CAM": vn.gradcam(vit, x),  # [40, 14, 14], predicted class
}
# each [40, 28, 28]; model= places a map where that model looked (ResNet-50 keeps the centre 7/8)
maps = {name: vn.resize_maps(m, side, model=resnet if name.startswith("ResNet") else vit) for name, m in raw.items()}
lum = imgs @ np.array([0.299, 0.587, 0.114]) if imgs.ndim == 4 else imgs  # colour photos: luminance
maps["brightness"] = torch.as_tensor(lum, dtype=torch.float32)
print({name: tuple(m.shape) for name, m in raw.items()})

# %%
vn.map_panel(imgs[shown], {k: v[shown] for k, v in maps.items()}, titles=[names[c] for c in y[shown]])

# %% [markdown]
# Each panel's colours span its own range, so the figure shows *where* each map is high, not
# how high. Look at the rows one at a time. The ResNet's Grad-CAM is a blob over the garment.
# The ViT's last-layer CLS attention is a handful of bright spots, often on the garment's edge
# or on the black background. Rollout spreads further; the two class-specific ViT maps are
# patchy. How much of each map's mass falls on the garment (pixels brighter than black), against
# the share of the image the garment covers?

# %%
import pandas as pd

thing = vn.pick("garment", hub="object")
garment_area = float(obj.mean())
on_garment = pd.Series({name: vn.garment_mass(m, obj).mean().item() for name, m in maps.items()},
                       name=f"mass on {thing}")
print(f"the {thing} covers {garment_area:.3f} of the pixels on average")
on_garment.round(3).to_frame()

# %%
vn.check(on_garment["ResNet Grad-CAM"] > garment_area, "the CNN's map is concentrated on the garment")
vn.check(on_garment["ViT CLS attention"] < on_garment["ResNet Grad-CAM"],
         "last-layer CLS attention puts less mass on the garment than the CNN's Grad-CAM")
vn.check(on_garment.drop("brightness").idxmax() == "ResNet Grad-CAM",
         "of the five maps, the CNN's Grad-CAM puts the most mass on the garment")

# %% [markdown]
# ## Do the maps agree?
#
# Two numbers per pair of maps, per image, averaged over the 40 images:
#
# - **Spearman rank correlation** over the 784 pixels: 1 = the same ranking, 0 = unrelated.
# - **Top-10 % overlap**: of the 10 % of pixels each map ranks highest, the share both maps pick.
#   Two unrelated maps share 0.1 on average.
#
# Bilinear upsampling makes neighbouring pixels similar, which inflates both numbers a little
# for every pair alike; the comparisons between pairs are what to read.

# %%
rho = vn.agreement(maps, "spearman")
overlap = vn.agreement(maps, "topk", frac=0.1)
rho.round(3)

# %%
overlap.round(3)

# %%
vn.agreement_heatmap({"Spearman rank correlation": rho, "top-10 % overlap": overlap})

# %%
vit_maps = ["ViT CLS attention", "ViT rollout", "ViT grad. rollout", "ViT Grad-CAM"]
cnn_vs_vit = rho.loc["ResNet Grad-CAM", vit_maps]
within_vit = rho.loc[vit_maps, vit_maps].to_numpy()[np.triu_indices(len(vit_maps), 1)]
print(f"Spearman, ResNet Grad-CAM vs each ViT map: {cnn_vs_vit.round(3).to_dict()}")
print(f"Spearman between ViT maps: mean {within_vit.mean():.3f} (range {within_vit.min():.3f} to {within_vit.max():.3f})")
print(f"Spearman with brightness: ResNet Grad-CAM {rho.loc['ResNet Grad-CAM', 'brightness']:.3f}, "
      f"ViT maps {rho.loc[vit_maps, 'brightness'].round(3).to_dict()}")
vn.check(cnn_vs_vit.max() < 0.5, "the CNN's map and the ViT's maps rank pixels differently (Spearman < 0.5)")
vn.check(rho.loc["ResNet Grad-CAM", "brightness"] > rho.loc[vit_maps, "brightness"].max(),
         "the CNN's Grad-CAM correlates with brightness more than any ViT map")
vn.check(cnn_vs_vit.idxmax() == "ViT rollout", "rollout is the ViT map closest to the CNN's")

# %% [markdown]
# ## Which maps point at pixels the model needs?
#
# A deletion curve (Petsiuk et al. 2018) takes a map, deletes the pixels it ranks highest first
# — sets them to 0, black, which is Fashion-MNIST's background — in steps of 1/8 of the image,
# and follows the model's probability for the class it predicted on the intact image. The area
# under the curve (AUC) summarises it: **lower = the map found the pixels the model relies on**.
# Ties (the zeros of a Grad-CAM, the four pixels of one ViT patch) are broken at random.
#
# The control is a random order. Deleting random pixels is not harmless either — it peppers
# the garment with black holes, an image neither model was trained on — so a map has to beat
# random, not zero. Each map is evaluated on the model it explains, and, because the ResNet
# is cheap, every map is also evaluated on the other model.

# %%
maps["random"] = vn.random_maps(len(idx), side, seed=0)
curves, aucs = vn.deletion_study({"ViT": vit, "ResNet": resnet}, imgs, maps, steps=8,
                                 progress=vn.show_progress())
vn.deletion_plot(curves)

# %%
summary = vn.deletion_summary(aucs, control="random")
summary.round(3)

# %% [markdown]
# `below_random` is the share of the 40 images on which the map's AUC is lower than the random
# order's; `p_wilcoxon` is a paired signed-rank test against random on the same images.

# %%
auc = summary["auc"].unstack("map")  # [model, map]
own = pd.Series({**{m: auc.loc["ViT", m] for m in vit_maps}, "ResNet Grad-CAM": auc.loc["ResNet", "ResNet Grad-CAM"]},
                name="AUC on the model it explains")
print(own.round(3).to_dict())
print(f"random order: ViT {auc.loc['ViT', 'random']:.3f}, ResNet {auc.loc['ResNet', 'random']:.3f}")
cam_explains = auc.loc["ResNet", "ResNet Grad-CAM"] < auc.loc["ResNet", "random"]
cls_worse = auc.loc["ViT", "ViT CLS attention"] > auc.loc["ViT", "random"]
cam_on_vit = auc.loc["ViT", "ResNet Grad-CAM"] < auc.loc["ViT", vit_maps].min()
vn.check(cam_explains, "Grad-CAM finds the CNN's pixels (deletion AUC below random)")
vn.check(cls_worse, "last-layer CLS attention deletes the ViT's evidence slower than random")
vn.check(cam_on_vit, "the CNN's map hurts the ViT more than any of the ViT's own maps")
p_vit = summary.loc["ViT", "p_wilcoxon"]
beats_random = [m for m in vit_maps if auc.loc["ViT", m] < auc.loc["ViT", "random"] and p_vit[m] < 0.05]
print(f"ViT maps that beat random on the ViT at p < 0.05: {beats_random}")
vn.check(not beats_random, "no ViT map beats random on the ViT at p < 0.05")

# %% [markdown]
# ## Do the layers compute alike?
#
# The maps compare where the two models look. Their layers can also be compared directly, by
# what they compute: two layers are alike if they lay out the same images alike, whatever the
# units. **Linear CKA** (centred kernel alignment, Kornblith et al. 2019) measures that from each
# layer's representation of the same images: 1 = the same up to a rotation and a scale, 0 =
# unrelated. Raghu et al. (2021) used it to compare ViTs with ResNets layer by layer.
#
# One vector per image and layer: for the ViTs the mean of the patch tokens after each block
# (`emb` = the embeddings), for the ResNet its stem and each residual block averaged over space
# (global average pooling, what its classifier reads). With about as many features as images,
# the plain CKA estimate is biased upwards (two unrelated wide representations score well above
# 0), so we use the **debiased** estimator (Song et al.'s unbiased HSIC), which may dip slightly
# below 0. As a reference for "alike", the second ViT (`fmnist-vit-p4`, patch 4) is compared with
# the first, and the first with itself.

# %%
N_CKA = vn.pick(256, hub=32)  # the hub models' photos are too few: the Fashion-MNIST test images there too
cka_images = vn.data.fashion_mnist_arrays("test")[0][:N_CKA]  # [256, 28, 28] uint8
reps = {name: vn.representations(m, m.preprocess(list(cka_images)))  # {layer: [256, features]}, in forward order
        for name, m in (("ViT", vit), ("ViT p4", vit4), ("ResNet", resnet))}
name_vit4 = vn.pick("ViT p4", hub="ViT-B/32")
panels = {"ViT vs itself": vn.cka(reps["ViT"], reps["ViT"], debiased=True, names=("ViT", "ViT")),
          f"ViT vs {name_vit4}": vn.cka(reps["ViT"], reps["ViT p4"], debiased=True, names=("ViT", name_vit4)),
          "ViT vs ResNet": vn.cka(reps["ViT"], reps["ResNet"], debiased=True, names=("ViT", "ResNet"))}
plain = vn.cka(reps["ViT"], reps["ResNet"])  # the biased estimate, for comparison
print(f"{N_CKA} test images | layers: ViT {len(reps['ViT'])}, {name_vit4} {len(reps['ViT p4'])}, ResNet {len(reps['ResNet'])} "
      f"| plain minus debiased CKA, ViT vs ResNet: mean {(plain - panels['ViT vs ResNet']).to_numpy().mean():.3f}")
vn.cka_heatmap(panels)

# %%
cross = panels["ViT vs ResNet"]  # [ViT layer, ResNet layer]
match, best_resnet = cross.idxmax(), cross.max()  # for each ResNet layer, the ViT layer most like it, and its CKA
best_vit4 = panels[f"ViT vs {name_vit4}"].max()  # for each layer of the second ViT, its best match in the first
vits_closer = bool(best_vit4.mean() > best_resnet.mean())
blocks = cross.iloc[1:, 1:]  # ViT blocks x ResNet blocks: the embeddings and the stem left out
spread = float((blocks.max() - blocks.min()).max())  # how much a ResNet block's CKA varies over the ViT's blocks
self_vit = panels["ViT vs itself"].to_numpy()
first_step, neighbours = self_vit[0, 1], np.diag(self_vit, 1)[1:]  # embeddings -> L0; then block -> next block
print(pd.DataFrame({"most alike ViT layer": match, "CKA": best_resnet.round(3)}).T.to_string())
print(f"mean best-match CKA: {name_vit4} -> ViT {best_vit4.mean():.3f}, ResNet -> ViT {best_resnet.mean():.3f}")
print(f"a ResNet block's CKA varies by at most {spread:.3f} over the ViT's blocks ({blocks.min().min():.3f} to "
      f"{blocks.max().max():.3f})")
print(f"ViT with itself: embeddings vs L0 {first_step:.3f}; neighbouring blocks {neighbours.min():.3f} to "
      f"{neighbours.max():.3f}; any two blocks at least {self_vit[1:, 1:].min():.3f}")

# %% tags=["hide-input"]
from IPython.display import Markdown

best_vit = auc.loc["ViT", vit_maps].idxmin()
# the sentences that state a finding follow the numbers: under other models a claim may not hold
sample = vn.pick("Fashion-MNIST test images (four per class)", hub="labelled photos (one per class)")
disagree, loose = cnn_vs_vit.max() < 0.5, within_vit.mean() < 0.5
detector = on_garment["ResNet Grad-CAM"] > garment_area
cls_less = on_garment["ViT CLS attention"] < on_garment["ResNet Grad-CAM"]
best_tie = p_vit[best_vit] >= 0.05 or np.isnan(p_vit[best_vit])
best_side = "better than" if auc.loc["ViT", best_vit] < auc.loc["ViT", "random"] else "worse than"
bright_on_vit = auc.loc["ViT", "brightness"] < auc.loc["ViT", vit_maps].min()
findings = [disagree, detector, cls_less, cam_explains, not beats_random, best_tie, cls_worse, cam_on_vit,
            bright_on_vit]
if cam_on_vit and bright_on_vit:
    third = f"""**The ViT needs the {thing}'s pixels, as the CNN does.** The ResNet's Grad-CAM
  ({auc.loc['ViT', 'ResNet Grad-CAM']:.3f}) and plain brightness ({auc.loc['ViT', 'brightness']:.3f})
  delete the ViT's evidence faster than any of the ViT's own maps. So "the ViT looks at
  different pixels" is a statement about its attention maps, not about what it uses."""
else:
    faster = [n for n, ok in (("the ResNet's Grad-CAM", cam_on_vit), ("plain brightness", bright_on_vit)) if ok]
    third = f"""**{"Only " + faster[0] if faster else "Neither the ResNet's Grad-CAM nor plain brightness"}
  deletes the ViT's evidence faster than the best of the ViT's own maps.** On the ViT: the ResNet's Grad-CAM
  {auc.loc['ViT', 'ResNet Grad-CAM']:.3f}, plain brightness {auc.loc['ViT', 'brightness']:.3f}, {best_vit}
  {auc.loc['ViT', best_vit]:.3f}."""
pairs = ", ".join(f"{r} -> {v}" for r, v in match.iloc[1:].items())
flat_said = vn.claim(
    spread < 0.1,
    f"Past them, each ResNet block is about as alike to one ViT block as to any other (its CKA varies by at most "
    f"{spread:.2f} over the ViT's blocks, {blocks.min().min():.2f} to {blocks.max().max():.2f} in all), so the two "
    "hierarchies do not line up block by block.",
    f"Past them, each ResNet block has ViT blocks it is most like ({pairs}; its CKA varies by up to {spread:.2f} "
    "over the ViT's blocks).")
step_said = vn.claim(
    first_step < neighbours.min(),
    f"the first block changes the representation most (CKA {first_step:.2f} between the embeddings and its output); "
    f"after it, neighbouring blocks are at {neighbours.min():.2f} to {neighbours.max():.2f}, and any two blocks at "
    f"least {self_vit[1:, 1:].min():.2f}",
    f"the embeddings and the first block's output are at CKA {first_step:.2f}, neighbouring blocks at "
    f"{neighbours.min():.2f} to {neighbours.max():.2f}")
alike_said = vn.claim(
    vits_closer,
    f"Two ViTs are more alike than a ViT and a ResNet: the second ViT's layers find a match in the first at CKA "
    f"{best_vit4.mean():.2f} on average, the ResNet's at {best_resnet.mean():.2f}.",
    f"A ViT and a ResNet are as alike as two ViTs here: the ResNet's layers find a match in the ViT at CKA "
    f"{best_resnet.mean():.2f} on average, the second ViT's at {best_vit4.mean():.2f}.")
verdict = ("This contradicts the usual reading of attention maps as explanations." if all(findings) else
           "Not all of the zoo's findings hold for these models (see the statements above and the notes).")
caveat = vn.pick("these\nmodels are small and under-trained", hub=f"{len(idx)} images\nare a small sample")
detector_of = vn.pick("a garment detector", hub="an object detector")
Markdown(f"""
## What we found

On {len(idx)} {sample}, with a ResNet at
{np.mean(pred_cnn == y):.0%} and a ViT at {np.mean(pred_vit == y):.0%} accuracy on them:

- **The CNN and the ViT maps {"do not agree" if disagree else "agree in part"}.** The ResNet's Grad-CAM correlates with the ViT maps
  at Spearman {cnn_vs_vit.min():.2f} to {cnn_vs_vit.max():.2f} (closest: {cnn_vs_vit.idxmax()}),
  and the ViT maps agree {"only loosely" if loose else "fairly well"} with each other (mean {within_vit.mean():.2f}). Grad-CAM on
  the CNN is {"largely" if detector else "not"} {detector_of}: {on_garment['ResNet Grad-CAM']:.0%} of its mass lies on
  the {thing}, which covers {garment_area:.0%} of the image, and it correlates with brightness at
  {rho.loc['ResNet Grad-CAM', 'brightness']:.2f}. The ViT's last-layer CLS attention puts{" only" if cls_less else ""}
  {on_garment['ViT CLS attention']:.0%} of its mass on the {thing}.
- **Grad-CAM {"explains" if cam_explains else "does not explain"} the CNN; {"the ViT's maps barely explain" if not beats_random else "some of the ViT's maps explain"} the ViT.** On the ResNet, deleting
  Grad-CAM's pixels first gives an AUC of {auc.loc['ResNet', 'ResNet Grad-CAM']:.3f} against
  {auc.loc['ResNet', 'random']:.3f} for random order. On the ViT, the best of its own maps is
  {best_vit} ({auc.loc['ViT', best_vit]:.3f} against {auc.loc['ViT', 'random']:.3f} for random, Wilcoxon
  p = {p_vit[best_vit]:.2f}: {"not distinguishable from" if best_tie else best_side} random on {len(idx)} images); last-layer CLS
  attention ({auc.loc['ViT', 'ViT CLS attention']:.3f}, p = {p_vit['ViT CLS attention']:.3f}) is {"*worse" if cls_worse else "not worse"}
  than random{"*" if cls_worse else ""}.
- {third}
- **Layer by layer** ({N_CKA} test images, debiased linear CKA on mean-pooled representations): the ResNet's stem is
  most like the ViT's {match.iloc[0]} (CKA {best_resnet.iloc[0]:.2f}). {flat_said} {alike_said} Within the ViT, {step_said}.

{verdict} Two caveats: {caveat}, and deletion produces images neither model saw in
training (random deletion already costs a lot), so the AUCs compare maps with each other
rather than measure a model's reasoning in absolute terms.
""")

# %% [markdown]
# ## Exercises
#
# 1. Repeat the deletion study with `steps=16`, and with deletions set to the garment's mean
#    grey instead of black. Does any ranking of the maps change?
# 2. Compute the last-layer CLS attention of each head separately (chapter 02) and run each
#    head's map through `vn.deletion_curve`. Is there a head whose map beats random on the ViT?
# 3. Use `vn.gradcam(vit, x, layer=L)` for earlier layers `L`. At which depth is the ViT's
#    Grad-CAM most faithful, and does it then agree better with the ResNet's?
# 4. Compute the CKA heatmaps with the CLS token instead of the mean patch token
#    (`vn.representations(vit, x, pool="cls")`), and with `debiased=False`. Which conclusions change?
