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
# # 04 · What does the ViT look at when it gets it wrong?
#
# A classifier's mistakes say more about it than its successes. Here we collect the ViT's
# errors on Fashion-MNIST, find which classes it confuses, and ask two questions of its
# attention:
#
# 1. **Is attention different when the prediction is wrong?** We compare the spread of the
#    last layer's CLS attention (its entropy and the share of its 10 largest weights), the
#    spread of attention rollout, and how much of the attention falls on the garment, between
#    right and wrong predictions.
# 2. **What do single errors look like?** For a few errors we draw the attention maps next to
#    class-specific maps for the predicted and for the true class, and write a short diagnosis
#    from the measured numbers.

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
_ = torch.set_grad_enabled(False)  # gradients are switched on inside the functions that need them

# %% [markdown]
# The model is `fmnist-vit-p2` (12 layers x 12 heads, a 14x14 grid of 2x2-pixel patches). It was
# trained for one epoch on two CPU cores, and its test accuracy (on its card, and measured below) is well
# below what the architecture can do: some of its errors are those of an under-trained model.

# %%
vit = vn.load(vn.pick("fmnist-vit-p2", hub="google/vit-base-patch16-224"))
vit

# %% [markdown]
# ## Predictions on 2000 test images
#
# `vn.predict_with_attention` runs the model once and keeps the last layer's CLS attention on the
# way (one query row per head, recomputed from the layer's own queries and keys), so the
# statistics below cost no second pass.

# %%
images, labels, objects = vn.data.examples()  # objects: the garment's pixels (the photos: the object's box)
N = min(2000, len(images))  # the hub's labelled photos: 8
imgs, y, obj = images[:N], labels[:N], objects[:N]  # raw uint8 [N, 28, 28], labels [N], masks [N, 28, 28]
x = vit.preprocess(imgs)  # [N, 1, 28, 28]
logits, cls = vn.predict_with_attention(vit, x, layer=-1, progress=vn.show_progress())  # [N, 10], [N, 12, 14, 14]
probs = logits.softmax(-1)
pred = logits.argmax(-1).numpy()
correct = pred == y
names = vit.labels
print(f"{N} images: accuracy {correct.mean():.3f}, {int((~correct).sum())} errors")

# %%
cm = vn.confusion_matrix(y, pred, names)  # rows: true class, columns: predicted class
cm.loc[cm.sum(axis=1) > 0, cm.sum(axis=0) > 0]  # the classes that occur (Fashion-MNIST: all ten)

# %% [markdown]
# The largest off-diagonal cells: `of_true` is the share of that true class sent to the wrong
# class, `of_errors` the share of all errors.

# %%
pairs = vn.confusion_pairs(cm, top=8)
pairs.round(3) if len(pairs) else print(f"no errors among the {N} images: no class is confused with another")

# %%
upper = vn.pick({"T-shirt/top", "Pullover", "Coat", "Shirt"}, hub=set())  # the photos form no such group
occurs = cm.sum(axis=1).to_numpy() > 0  # the classes among the images
per_class = pd.Series(np.diag(cm)[occurs] / cm.sum(axis=1).to_numpy()[occurs],
                      index=[n for n, o in zip(names, occurs) if o], name="recall")
in_upper = (pairs.apply(lambda r: r["true"] in upper and r["predicted"] in upper, axis=1) if len(pairs)
            else pd.Series(dtype=bool))
is_upper = np.isin(y, [names.index(c) for c in upper])
upper_share = (float(np.mean(is_upper[~correct] & np.isin(pred[~correct], [names.index(c) for c in upper])))
               if (~correct).any() else float("nan"))
print(f"recall per class: {per_class.round(3).to_dict()}")
if upper:
    print(f"errors with both the true and the predicted class in {sorted(upper)}: {upper_share:.3f}")
vn.check(len(in_upper) > 0 and in_upper.iloc[:3].all(), "the three largest confusions are between upper-body garments")
vn.check(per_class.idxmin() == "Shirt", "shirts are the class with the lowest recall")

# %% [markdown]
# As expected for Fashion-MNIST, the model mixes up the garments worn on the upper body — shirts,
# T-shirts, pullovers and coats look alike at 28 pixels — and shirts are the hardest class.

# %% [markdown]
# ## Is attention different when the prediction is wrong?
#
# Per image we compute (`vn.attention_stats`, `vn.garment_mass`):
#
# - `cls_entropy`: entropy in nats of the last layer's CLS attention over the 196 patches,
#   averaged over heads (lower = more focused; uniform is $\log 196$);
# - `cls_top10`: the share of the 10 largest weights, averaged over heads;
# - `cls_on_garment`: the share of the head-averaged CLS attention on garment pixels
#   (brighter than black);
# - `confidence`: the top softmax probability, and `margin` over the second;
# - `garment_area`: the share of the image the garment covers. Not an attention statistic, but
#   a property of the image that the share on the garment depends on.
#
# Rollout needs every layer's full attention matrices and costs more than a plain forward
# pass, so its two statistics (`rollout_entropy`, `rollout_on_garment`) are computed on a
# subset: the first 60 errors and the first 60 correct predictions.

# %%
stats = vn.attention_stats(cls, logits, k=10)
stats["cls_on_garment"] = vn.garment_mass(cls.mean(1), obj).numpy()
stats["garment_area"] = obj.mean((1, 2))
sub = np.concatenate([np.flatnonzero(~correct)[:60], np.flatnonzero(correct)[:60]])
roll = vn.explain(vit, x[sub], "rollout")  # CLS row over the patches, renormalised: [120, 14, 14]
stats.loc[sub, "rollout_entropy"] = vn.entropy(roll.flatten(1)).numpy()
stats.loc[sub, "rollout_on_garment"] = vn.garment_mass(roll, obj[sub]).numpy()
stats["correct"] = correct
columns = ["cls_entropy", "cls_top10", "cls_on_garment", "rollout_entropy", "rollout_on_garment", "confidence",
           "margin", "garment_area"]


def shown(table):  # rounded, with p-values in two significant digits
    return table.round(3).assign(p_mannwhitney=table["p_mannwhitney"].map("{:.2g}".format))


def compared(table):  # right vs wrong, when there are both (a few photos may all be right, or all wrong)
    n_right = int(table["correct"].sum())
    if 0 < n_right < len(table):
        return vn.compare_groups(table, "correct", columns)
    print(f"{len(table)} images, {n_right} predicted right: no two groups to compare")
    return None


comparison = compared(stats)
shown(comparison) if comparison is not None else None

# %% [markdown]
# `rank_biserial` is an effect size for the Mann-Whitney test: the probability that a correct
# prediction's value exceeds a wrong one's, rescaled to $[-1, 1]$ (0 = no difference). Wrong
# predictions are not a random sample of images, though: they come mostly from the upper-body
# classes. The same comparison within those four classes only removes most of that confound.

# %%
within = compared(stats[is_upper]) if upper else None
shown(within) if within is not None else None

# %%
vn.group_distributions(stats, "correct", columns, labels=("correct", "wrong"))

# %%
attention_cols = ["cls_entropy", "cls_top10", "cls_on_garment", "rollout_entropy", "rollout_on_garment"]
if comparison is not None:
    r = comparison["rank_biserial"]
    print("effect sizes (all classes):", r.round(3).to_dict())
    vn.check(r["confidence"] > 0.5 and comparison.loc["confidence", "p_mannwhitney"] < 1e-3,
             "errors are less confident (rank-biserial > 0.5, p < 0.001)")
    vn.check(r[attention_cols].abs().max() < r["confidence"],
             "attention separates right from wrong less than confidence does")
    vn.check(max(comparison.loc[c, "p_mannwhitney"] for c in ["cls_entropy", "cls_top10", "rollout_entropy"]) > 0.05,
             "the spread of attention does not separate right from wrong")
if within is not None:
    r_in = within["rank_biserial"]
    print("effect sizes (upper-body classes):", r_in.round(3).to_dict())
    # the share on the garment flips sign within the upper-body classes: it follows the class mix
    vn.check(r["cls_on_garment"] < 0 < r_in["cls_on_garment"],
             "the share of attention on the garment flips sign within the upper-body classes")
    for effect in (r, r_in):  # ... and so does the garment's area
        vn.check(np.sign(effect["garment_area"]) == np.sign(effect["cls_on_garment"]),
                 "the garment's area has the same sign of effect as the share of attention on it")

# %% [markdown]
# ## Looking at single errors
#
# For each of the three largest confusions we take the most confident error and the least
# confident one (`vn.pick_errors`). Rows: the last layer's CLS attention (mean over heads),
# rollout, and gradient-weighted rollout (chapter 03) for the **predicted** class and for the
# **true** class. Each panel has its own colour scale.

# %%
err = vn.pick_errors(y, pred, stats["confidence"], pairs.head(3), names, per_pair=2)
xe = x[err]
if len(err):  # (a few photos may bring no errors at all)
    maps = {
        "CLS attention": cls[err].mean(1),  # [6, 14, 14]
        "rollout": vn.explain(vit, xe, "rollout"),
        "grad. rollout: predicted": vn.gradient_rollout(vit, xe, target=pred[err].tolist()),
        "grad. rollout: true": vn.gradient_rollout(vit, xe, target=y[err].tolist()),
    }
    titles = [f"{names[y[i]]}\n→ {names[pred[i]]} ({probs[i, pred[i]]:.2f})" for i in err]
vn.map_panel(imgs[err], maps, titles=titles, size=1.6) if len(err) else print(f"no errors among the {N} images")

# %% [markdown]
# The diagnoses below are written by `vn.describe_error` from the measured numbers: the
# probabilities, the attention's share on the garment against the garment's share of the image,
# and the top-10 % overlap between the class-specific maps for the predicted and the true class.

# %%
from IPython.display import Markdown

thing = vn.pick("garment", hub="object")
typical = float(stats.loc[correct, "cls_entropy"].median()) if correct.any() else float("nan")
if len(err):
    overlap = vn.topk_overlap(maps["grad. rollout: predicted"], maps["grad. rollout: true"], frac=0.1)
    rollout_garment = vn.garment_mass(maps["rollout"], obj[err])
    notes = [
        vn.describe_error(names, int(y[i]), int(pred[i]), probs[i], cls_garment=float(stats.loc[i, "cls_on_garment"]),
                          rollout_garment=float(rollout_garment[j]), garment_area=float(obj[i].mean()),
                          class_overlap=float(overlap[j]), cls_entropy=float(stats.loc[i, "cls_entropy"]),
                          typical_entropy=typical, region=thing)
        for j, i in enumerate(err)
    ]
which = vn.pick("test image", hub="photo")
(Markdown("\n".join(f"{j + 1}. ({which} {i}) {note}" for j, (i, note) in enumerate(zip(err, notes))))
 if len(err) else print("no errors to describe"))

# %%
if len(err):
    print(f"top-10 % overlap of the predicted- and true-class maps: mean {overlap.mean():.3f} "
          f"(unrelated maps: 0.1); CLS attention on the {thing} for these errors: "
          f"{stats.loc[err, 'cls_on_garment'].mean():.3f}, {thing} area {obj[err].mean():.3f}")
    vn.check(overlap.mean() < 0.5, "the evidence for the predicted and the true class sits mostly on different pixels")

# %% tags=["hide-input"]
# every sentence that states a finding follows the numbers: on other models a claim may not hold
n_err = int((~correct).sum())
lowest = "shirts have" if per_class.idxmin() == "Shirt" else f"{per_class.idxmin()} has"
if n_err and upper:
    errors_text = f""" {upper_share:.0%} of
  its {n_err} errors are confusions among shirts, T-shirts, pullovers and coats; the
  largest pair is {pairs.loc[0, 'true']} -> {pairs.loc[0, 'predicted']} ({int(pairs.loc[0, 'count'])} images),
  and {lowest} the lowest recall ({per_class.min():.0%})."""
elif n_err:
    errors_text = f" Its {n_err} errors: " + ", ".join(
        f"{t} -> {q}" + (f" ({c} images)" if c > 1 else "") for t, q, c in pairs[["true", "predicted", "count"]].values
    ) + ("" if len(pairs) == n_err else ", ...") + "."
else:
    errors_text = " It makes no errors, so there is nothing to diagnose."
bullets = [f"- On {vn.pick(f'the first {N} test images', hub=f'the {N} labelled photos')} the ViT is right "
           f"{correct.mean():.1%} of the time.{errors_text}"]
claims = []
if comparison is not None:
    c, r = comparison, comparison["rank_biserial"]
    conf_sep = bool(r["confidence"] > 0.5 and c.loc["confidence", "p_mannwhitney"] < 1e-3)
    spread_same = bool(min(c.loc[k, "p_mannwhitney"] for k in ["cls_entropy", "cls_top10", "rollout_entropy"]) > 0.05)
    head = (f"Confidence {'separates' if conf_sep else 'does not clearly separate'} right from wrong; "
            + ("the spread of attention does not" if spread_same else "so does the spread of attention" if conf_sep
               else "the spread of attention does"))
    bullets.append(f"""- **{head}.** Correct predictions
  are {"more" if c.loc['confidence', 'difference'] > 0 else "less"} confident (mean {c.loc['confidence', 'mean (correct)']:.2f} vs
  {c.loc['confidence', 'mean (not correct)']:.2f}, rank-biserial {r['confidence']:.2f}). The
  last layer's CLS entropy ({c.loc['cls_entropy', 'mean (correct)']:.2f} vs
  {c.loc['cls_entropy', 'mean (not correct)']:.2f} nats, p = {c.loc['cls_entropy', 'p_mannwhitney']:.2f}),
  its top-10 share ({c.loc['cls_top10', 'mean (correct)']:.2f} vs
  {c.loc['cls_top10', 'mean (not correct)']:.2f}) and rollout's entropy
  ({c.loc['rollout_entropy', 'mean (correct)']:.2f} vs {c.loc['rollout_entropy', 'mean (not correct)']:.2f},
  close to the uniform {np.log(cls[0, 0].numel()):.2f}) {"are indistinguishable between the groups" if spread_same else "do not all agree between the groups"}.""")
    claims += [conf_sep, spread_same, r[attention_cols].abs().max() < r["confidence"]]
    if within is not None:
        follows = bool(r["cls_on_garment"] < 0 < r_in["cls_on_garment"]) and all(
            np.sign(e["garment_area"]) == np.sign(e["cls_on_garment"]) for e in (r, r_in))
        claims.append(follows)
    if within is not None and follows:
        bullets.append(f"""- **Where the attention falls follows the class, not the error.** Over all classes, wrong predictions
  put *more* of their CLS attention on the garment ({c.loc['cls_on_garment', 'mean (not correct)']:.0%}
  vs {c.loc['cls_on_garment', 'mean (correct)']:.0%}, rank-biserial {r['cls_on_garment']:.2f}), because
  errors come from large upper-body garments (garment area rank-biserial {r['garment_area']:.2f}). Within those
  four classes both signs flip (attention on the garment {r_in['cls_on_garment']:.2f}, garment area
  {r_in['garment_area']:.2f}): the share of attention on the garment tracks how much garment there is,
  not whether the answer is right.""")
    else:
        bullets.append(f"""- Wrong predictions put {c.loc['cls_on_garment', 'mean (not correct)']:.0%} of their CLS attention
  on the {thing}, correct ones {c.loc['cls_on_garment', 'mean (correct)']:.0%} (rank-biserial {r['cls_on_garment']:.2f};
  {thing} area rank-biserial {r['garment_area']:.2f})"""
                       + (f"; within the upper-body classes {r_in['cls_on_garment']:.2f} and {r_in['garment_area']:.2f}."
                          if within is not None else "."))
else:
    bullets.append(f"- **Right and wrong predictions cannot be compared here:** "
                   f"{'every' if correct.all() else 'no'} prediction is right.")
if len(err):
    apart = overlap.mean() < 0.5
    claims.append(apart)
    bullets.append(f"""- On the {len(err)} errors shown, the class-specific maps for the predicted and the true class share
  {overlap.mean():.0%} of their top-10 % pixels (unrelated maps share 10 %): the evidence the model finds
  for the two classes sits {"mostly in different places" if apart else "largely in the same places"}.""")
zoo_findings = within is not None and len(err) > 0 and all(claims)
closing = ("""This disagrees with the common advice to "look at the attention to see why the model failed":
on this model the spread of attention does not flag an error and its placement follows the
class and the garment's size, while the plain softmax confidence does. Chapter 03 found this ViT's maps to be poor explanations of what
it uses (deleting their top pixels first hurts it no more than a random order), so every map
here should be read with that caveat; the model is also under-trained, and some of its errors
are simply those of a weak classifier.""" if zoo_findings else
           f"""On {N} images these comparisons are too small to confirm or refute the zoo's findings (the notes
above name the claims that fail): read the numbers as a description of these images only. Chapter 03's
deletion test says how far this model's maps explain what it uses.""")
newline = "\n"
Markdown(f"""
## What we found

{newline.join(bullets)}

{closing}
""")

# %% [markdown]
# ## Exercises
#
# 1. Repeat the comparison per head: which head's CLS entropy differs most between right and
#    wrong predictions? (`cls[:, h]` is head `h`.)
# 2. Take the errors the model makes with confidence above 0.9. Look at the images themselves:
#    how many would you call label noise?
# 3. Run the same analysis on `fmnist-vit-p4` (a 7x7 grid). Are its confusions the same pairs?
