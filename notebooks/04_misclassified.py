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
#    last layer's {term}`CLS token` attention (its entropy and its {term}`top-10 share`), the
#    spread of {term}`attention rollout` {cite:p}`abnar2020rollout`, and how much of the attention
#    falls on the garment, between right and wrong predictions.
# 2. **What do single errors look like?** For a few errors we draw the attention maps next to
#    class-specific maps ({term}`gradient rollout` {cite:p}`chefer2021generic`) for the predicted and
#    for the true class, and write a short diagnosis from the measured numbers.
#
# Every headline number comes with a 95 % {term}`bootstrap interval <bootstrap interval>` over the
# images it is a mean of, and the sample size beside it.

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
# The model is `fmnist-vit-p2` (12 layers x 12 heads, a 14x14 grid of 2x2-pixel patches), zoo v2's.
# The line under the cell, read from its card, says how it was trained and its accuracy on the whole
# test set; its accuracy on the images used here is measured below. Its errors are those of a small
# model at that accuracy.

# %%
vit = vn.load(vn.pick("fmnist-vit-p2", hub="google/vit-base-patch16-224"))
print(vn.provenance(vit))  # how it was trained, read from its card
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
accuracy = vn.evaluate.interval_rows({"accuracy": correct}, "share of the images").iloc[0]
print(f"{N} images: accuracy {accuracy['value']:.3f} [{accuracy['low']:.3f}, {accuracy['high']:.3f}], "
      f"{int((~correct).sum())} errors")

# %%
cm = vn.evaluate.confusion_matrix(y, pred, names)  # rows: true class, columns: predicted class
cm.loc[cm.sum(axis=1) > 0, cm.sum(axis=0) > 0]  # the classes that occur (Fashion-MNIST: all ten)

# %% [markdown]
# The largest off-diagonal cells: `of_true` is the share of that true class sent to the wrong
# class, `of_errors` the share of all errors.

# %%
pairs = vn.evaluate.confusion_pairs(cm, top=8)
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
upper_errors = is_upper[~correct] & np.isin(pred[~correct], [names.index(c) for c in upper])  # [errors] bool
recall = vn.evaluate.interval_rows({n: correct[y == names.index(n)] for n in per_class.index}, "recall")
r_int = recall.set_index("method")
if upper and (~correct).any():
    u = vn.bootstrap(upper_errors)
    print(f"errors with both the true and the predicted class in {sorted(upper)}: {u.value:.3f} "
          f"[{u.low:.3f}, {u.high:.3f}] of {u.n}")
vn.check(len(in_upper) > 0 and in_upper.iloc[:3].all(), "the three largest confusions are between upper-body garments")
shirt_lowest = per_class.idxmin() == "Shirt" and r_int.loc["Shirt", "high"] < r_int.drop("Shirt")["low"].min()
vn.check(per_class.idxmin() == "Shirt", "shirts are the class with the lowest recall")
vn.evaluate.interval_table(recall).T  # recall per class, with its interval over the class's images

# %% [markdown]
# As expected for Fashion-MNIST, the model mixes up the garments worn on the upper body — shirts,
# T-shirts, pullovers and coats look alike at 28 pixels — and shirts are the hardest class.

# %% [markdown]
# ## Is attention different when the prediction is wrong?
#
# Per image we compute (`vn.evaluate.attention_stats`, `vn.evaluate.garment_mass`):
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
# subset: the first `N_ROLL` errors and the first `N_ROLL` correct predictions.

# %% [markdown]
# ```{admonition} Predict before you run
# :class: tip
# When the ViT gets an image wrong, is its last-layer CLS attention more spread out (higher
# entropy) than when it gets it right? Which of the statistics above will separate the two groups
# best?
# ```

# %%
stats = vn.evaluate.attention_stats(cls, logits, k=10)
stats["cls_on_garment"] = vn.evaluate.garment_mass(cls.mean(1), obj).numpy()
stats["garment_area"] = obj.mean((1, 2))
N_ROLL = vn.pick(128, hub=8)  # per group
sub = np.concatenate([np.flatnonzero(~correct)[:N_ROLL], np.flatnonzero(correct)[:N_ROLL]])
roll = vn.explain(vit, x[sub], "rollout")  # CLS row over the patches, renormalised: [len(sub), 14, 14]
stats.loc[sub, "rollout_entropy"] = vn.entropy(roll.flatten(1)).numpy()
stats.loc[sub, "rollout_on_garment"] = vn.evaluate.garment_mass(roll, obj[sub]).numpy()
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
# The same means with their 95 % bootstrap intervals (each group resampled on its own), and the
# difference correct minus wrong: an interval that excludes 0 is a difference these images resolve.

# %%
groups = vn.evaluate.group_intervals(stats, "correct", columns) if comparison is not None else None
vn.evaluate.interval_table(groups, index=("method",)) if groups is not None else None

# %% [markdown]
# `rank_biserial` is an effect size for the Mann-Whitney test: the probability that a correct
# prediction's value exceeds a wrong one's, rescaled to $[-1, 1]$ (0 = no difference). Wrong
# predictions are not a random sample of images, though: they come mostly from the upper-body
# classes. The same comparison within those four classes only removes most of that confound.

# %%
within = compared(stats[is_upper]) if upper else None
shown(within) if within is not None else None

# %%
# every axis from 0; the dashed lines: the uniform map's entropy (log 196) and top-10 share (10/196)
patches = cls[0, 0].numel()
vn.show.group_distributions(stats, "correct", columns, labels=("correct", "wrong"), zero=True,
                       references={"cls_entropy": np.log(patches), "rollout_entropy": np.log(patches),
                                   "cls_top10": 10 / patches})

# %%
attention_cols = ["cls_entropy", "cls_top10", "cls_on_garment", "rollout_entropy", "rollout_on_garment"]
if comparison is not None:
    r = comparison["rank_biserial"]
    print("effect sizes (all classes):", r.round(3).to_dict())
    vn.check(r["confidence"] > 0.5 and comparison.loc["confidence", "p_mannwhitney"] < 1e-3,
             "errors are less confident (rank-biserial > 0.5, p < 0.001)")
    vn.check(r[attention_cols].abs().max() < r["confidence"],
             "attention separates right from wrong less than confidence does")
if within is not None:
    r_in = within["rank_biserial"]
    print("effect sizes (upper-body classes):", r_in.round(3).to_dict())

# %% [markdown]
# ## Looking at single errors
#
# For each of the three largest confusions we take the most confident error and the least
# confident one (`vn.pick_errors`). Rows: the last layer's CLS attention (mean over heads),
# rollout, and gradient-weighted rollout (chapter 03) for the **predicted** class and for the
# **true** class. Each row has one colour scale shared by its six images, with its colour bar, so
# that brighter means more across the row; the two gradient-rollout rows share one scale between
# them too, so the predicted and the true class's maps compare directly. The cyan line outlines the
# garment. The maps are drawn as their 14x14 cells.

# %%
err = vn.pick_errors(y, pred, stats["confidence"], pairs.head(3), names, per_pair=2)
xe = x[err]
if len(err):  # (a few photos may bring no errors at all)
    maps = {
        "CLS attention": cls[err].mean(1),  # [6, 14, 14]
        "rollout": vn.explain(vit, xe, "rollout"),
        "grad. rollout: predicted": vn.explain(vit, xe, "gradient rollout", target=pred[err].tolist()),
        "grad. rollout: true": vn.explain(vit, xe, "gradient rollout", target=y[err].tolist()),
    }
    titles = [f"{names[y[i]]}\n→ {names[pred[i]]} ({probs[i, pred[i]]:.2f})" for i in err]
(vn.show.shared_maps(imgs[err], maps, outline=obj[err], titles=titles, size=1.3,
                together=[("grad. rollout: predicted", "grad. rollout: true")])
 if len(err) else print(f"no errors among the {N} images"))

# %% [markdown]
# The diagnoses below are written by `vn.evaluate.describe_error` from the measured numbers: the
# probabilities, the attention's share on the garment against the garment's share of the image,
# and the top-10 % overlap between the class-specific maps for the predicted and the true class.
# A share of attention within a stated tolerance of the garment's area (`AREA_TOL`, printed with the
# list) is called equal to it, not more or less.

# %%
import re

from IPython.display import Markdown

AREA_TOL = 0.01  # attention on the garment within this of the garment's share of the image counts as equal to it
TOL_SAID = f"{AREA_TOL * 100:g} percentage point{'s' * (AREA_TOL != 0.01)}"


def against_area(note, on, area):
    """``note`` with its "(more/less than its area)" said with the tolerance: "about equal" within ``AREA_TOL``."""
    said = re.search(r"\((?:more|less) than its area\)", note)
    assert said, "vn.evaluate.describe_error no longer compares the attention with the area in these words"
    if abs(on - area) > AREA_TOL:
        return note
    return note.replace(said.group(0), f"(equal to its area within {TOL_SAID}: {on:.1%} vs {area:.1%})")


thing = vn.pick("garment", hub="object")
typical = float(stats.loc[correct, "cls_entropy"].median()) if correct.any() else float("nan")
if len(err):
    overlap = vn.stats.topk_overlap(maps["grad. rollout: predicted"], maps["grad. rollout: true"], frac=0.1)
    rollout_garment = vn.evaluate.garment_mass(maps["rollout"], obj[err])
    notes = [
        against_area(
            vn.evaluate.describe_error(names, int(y[i]), int(pred[i]), probs[i], cls_garment=float(stats.loc[i, "cls_on_garment"]),
                              rollout_garment=float(rollout_garment[j]), garment_area=float(obj[i].mean()),
                              class_overlap=float(overlap[j]), cls_entropy=float(stats.loc[i, "cls_entropy"]),
                              typical_entropy=typical, region=thing),
            float(stats.loc[i, "cls_on_garment"]), float(obj[i].mean()))
        for j, i in enumerate(err)
    ]
which = vn.pick("test image", hub="photo")
(Markdown("\n".join(f"{j + 1}. ({which} {i}) {note}" for j, (i, note) in enumerate(zip(err, notes)))
          + f"\n\nAttention on the {thing} within {TOL_SAID} of the {thing}'s share of the image is called equal to it.")
 if len(err) else print("no errors to describe"))

# %% [markdown]
# Six errors are anecdotes. The overlap between the predicted- and the true-class maps is measured
# on the first `N_OV` errors, with its interval; two unrelated maps share 0.1 of their top-10 %
# pixels on average.

# %%
N_OV = vn.pick(32, hub=8)  # gradient rollout costs several forward passes per image and class
ev = np.flatnonzero(~correct)[:N_OV]  # the first errors
if len(ev):
    ov = vn.stats.topk_overlap(vn.explain(vit, x[ev], "gradient rollout", target=pred[ev].tolist()),
                         vn.explain(vit, x[ev], "gradient rollout", target=y[ev].tolist()), frac=0.1)  # [len(ev)]
    ov_iv = vn.bootstrap(ov.numpy())
    on_err = vn.bootstrap(stats.loc[ev, "cls_on_garment"].to_numpy())
    print(f"{ov_iv.n} errors: top-10 % overlap of the predicted- and true-class maps {ov_iv.value:.3f} "
          f"[{ov_iv.low:.3f}, {ov_iv.high:.3f}] (unrelated maps: 0.1); CLS attention on the {thing} "
          f"{on_err.value:.3f} [{on_err.low:.3f}, {on_err.high:.3f}], {thing} area {obj[ev].mean():.3f}")
    apart = ov_iv.high < 0.5
    print(vn.claim(apart, "The evidence for the predicted and the true class sits mostly on different pixels (interval < 0.5).", "Not so: the evidence for the predicted and the true class sits mostly on different pixels (interval < 0.5)."))

# %% tags=["hide-input"]
# every sentence that states a finding follows the numbers: on other models a claim may not hold
n_err = int((~correct).sum())
ci = lambda r, f=".2f": f"{r['value']:{f}} [{r['low']:{f}}, {r['high']:{f}}]"  # noqa: E731
g = groups.set_index(["method", "metric"]) if groups is not None else None
lowest = "shirts have" if per_class.idxmin() == "Shirt" else f"{per_class.idxmin()} has"
if n_err and upper:
    errors_text = f""" {u.value:.0%} [{u.low:.0%}, {u.high:.0%}] of
  its {n_err} errors are confusions among shirts, T-shirts, pullovers and coats; the
  largest pair is {pairs.loc[0, 'true']} -> {pairs.loc[0, 'predicted']} ({int(pairs.loc[0, 'count'])} images),
  and {lowest} the lowest recall ({ci(r_int.loc[per_class.idxmin()], '.0%')}{", clear of every other class's interval" if shirt_lowest else ""})."""
elif n_err:
    errors_text = f" Its {n_err} errors: " + ", ".join(
        f"{t} -> {q}" + (f" ({c} images)" if c > 1 else "") for t, q, c in pairs[["true", "predicted", "count"]].values
    ) + ("" if len(pairs) == n_err else ", ...") + "."
else:
    errors_text = " It makes no errors, so there is nothing to diagnose."
bullets = [f"- On {vn.pick(f'the first {N} test images', hub=f'the {N} labelled photos')} the ViT is right "
           f"{ci(accuracy, '.1%')} of the time.{errors_text}"]
claims = []
if comparison is not None:
    c, r = comparison, comparison["rank_biserial"]
    conf_sep = bool(r["confidence"] > 0.5 and c.loc["confidence", "p_mannwhitney"] < 1e-3)
    spread_same = bool(min(c.loc[k, "p_mannwhitney"] for k in ["cls_entropy", "cls_top10", "rollout_entropy"]) > 0.05)
    spread_r = r[["cls_entropy", "cls_top10", "rollout_entropy"]].abs().max()
    head = (f"Confidence {'separates' if conf_sep else 'does not clearly separate'} right from wrong; "
            + ("the spread of attention does not" if spread_same
               else f"the spread of attention only weakly (rank-biserial at most {spread_r:.2f})" if spread_r < 0.3
               else "so does the spread of attention"))
    bullets.append(f"""- **{head}.** Correct predictions
  are {"more" if c.loc['confidence', 'difference'] > 0 else "less"} confident (mean {ci(g.loc[('confidence', 'mean (correct)')])} vs
  {ci(g.loc[('confidence', 'mean (not correct)')])}, rank-biserial {r['confidence']:.2f}). The
  last layer's CLS entropy ({ci(g.loc[('cls_entropy', 'mean (correct)')])} vs
  {ci(g.loc[('cls_entropy', 'mean (not correct)')])} nats, p = {c.loc['cls_entropy', 'p_mannwhitney']:.2f}),
  its top-10 share ({ci(g.loc[('cls_top10', 'mean (correct)')])} vs
  {ci(g.loc[('cls_top10', 'mean (not correct)')])}) and rollout's entropy
  ({ci(g.loc[('rollout_entropy', 'mean (correct)')])} vs {ci(g.loc[('rollout_entropy', 'mean (not correct)')])}, on
  {int(g.loc[('rollout_entropy', 'mean (correct)'), 'n'])} and {int(g.loc[('rollout_entropy', 'mean (not correct)'), 'n'])} images,
  close to the uniform {np.log(cls[0, 0].numel()):.2f}) {"are indistinguishable between the groups" if spread_same else
  "do not all agree between the groups: " + ", ".join(f"{k} rank-biserial {r[k]:.2f} (p = {c.loc[k, 'p_mannwhitney']:.3f})"
  for k in ["cls_entropy", "cls_top10", "rollout_entropy"])}.""")
    claims += [conf_sep, spread_same, r[attention_cols].abs().max() < r["confidence"]]
    if within is not None:
        follows = bool(r["cls_on_garment"] < 0 < r_in["cls_on_garment"]) and all(
            np.sign(e["garment_area"]) == np.sign(e["cls_on_garment"]) for e in (r, r_in))
        claims.append(follows)
    if within is not None and follows:
        bullets.append(f"""- **Where the attention falls follows the class, not the error.** Over all classes, wrong predictions
  put *more* of their CLS attention on the garment ({ci(g.loc[('cls_on_garment', 'mean (not correct)')], '.0%')}
  vs {ci(g.loc[('cls_on_garment', 'mean (correct)')], '.0%')}, rank-biserial {r['cls_on_garment']:.2f}), because
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
if len(ev):
    claims.append(apart)
    bullets.append(f"""- On the first {ov_iv.n} errors, the class-specific maps for the predicted and the true class share
  {ov_iv.value:.0%} [{ov_iv.low:.0%}, {ov_iv.high:.0%}] of their top-10 % pixels (unrelated maps share 10 %): """
                   + vn.claim(apart, "the evidence the model finds for the two classes sits mostly in different places.",
                              "the evidence the model finds for the two classes sits largely in the same places."))
if comparison is not None:
    strongest = r[attention_cols].abs().idxmax()
    closing = (f"""The common advice is to "look at the attention to see why the model failed". On this model the plain
softmax confidence {"flags" if conf_sep else "does not clearly flag"} an error (rank-biserial {r['confidence']:.2f}); the
strongest attention statistic, {strongest}, separates right from wrong {vn.claim(abs(r[strongest]) < abs(r['confidence']),
"less well", "better")} (rank-biserial {r[strongest]:.2f}). """
               + vn.claim(within is not None and follows, "Where the attention falls follows the class and the garment's size. ",
                          "Where the attention falls does not simply follow the garment's size: within the upper-body classes "
                          "the two effects are small and need not share a sign. ")
               + """Chapter 03 tests how far this ViT's maps explain what it uses (with baselines that do not reward the
black background), so read every map here with its verdict there in mind; some of the errors are simply those of a
small classifier at this accuracy.""")
else:
    closing = "Chapter 03's perturbation tests say how far this model's maps explain what it uses."
newline = "\n"
Markdown(f"""
## What we found

{newline.join(bullets)}

{closing}
""")

# %% [markdown]
# **On ImageNet-scale ViTs.** That the softmax confidence flags an error better than any attention
# statistic does not depend on the model's size, and we expect it to hold. The attention side may change:
# rollout is close to uniform here for right and wrong predictions alike, because this small model attends
# broadly in every layer, while {cite:t}`raghu2021vitsee` found that ViTs pre-trained on large data sets
# attend locally in their lower layers, which leaves rollout more room to differ between images. A handful
# of photos shows single errors but cannot compare right and wrong as this page does; that needs a
# labelled set such as ImageNet's validation split ([Whole data sets, many processes](../book/scale.md)).
# Check it with `VITNOTES_MODELS=hub jupyter execute --output=../hub_04 notebooks/04_misclassified.ipynb`;
# it writes the executed copy to `hub_04.ipynb` at the repository's root, whose "What we found" is
# computed for the hub models.

# %% [markdown]
# ## Exercises
#
# 1. Repeat the comparison per head: which head's CLS entropy differs most between right and
#    wrong predictions? (`cls[:, h]` is head `h`.)
#
# ````{admonition} Solution
# :class: dropdown
# ```python
# heads = pd.DataFrame({f"head {h}": vn.entropy(cls[:, h].flatten(1)).numpy() for h in range(cls.shape[1])})
# heads["correct"] = correct
# d = vn.evaluate.group_intervals(heads, "correct", [c for c in heads if c != "correct"])
# d = d[d["metric"] == "difference"].set_index("method")
# d.loc[d["value"].abs().sort_values(ascending=False).index[:3], ["value", "low", "high"]]
# ```
# The head with the largest difference is the candidate; it counts only if its interval excludes 0,
# and with twelve heads tested, one interval in twenty excluding 0 by chance is to be expected.
# ````
#
# 2. Take the eight errors the model makes with the highest confidence. Look at the images
#    themselves: how many would you call label noise?
#
# ````{admonition} Solution
# :class: dropdown
# ```python
# sure = np.argsort(-np.where(correct, 0, stats["confidence"].to_numpy()))[:8]  # the 8 most confident errors
# vn.show.shared_maps(imgs[sure], {"CLS attention": cls[sure].mean(1)}, outline=obj[sure],
#                titles=[f"{names[y[i]]}\n→ {names[pred[i]]}" for i in sure])
# ```
# There is no computed answer: it is a judgement per image. Look for shirts labelled as T-shirts
# or the reverse, where the 28-pixel image does not show the collar or buttons that decide the
# label, and count those you cannot decide yourself.
# ````
#
# 3. Run the same analysis on `fmnist-vit-p4` (a 7x7 grid). Are its confusions the same pairs?
#
# ````{admonition} Solution
# :class: dropdown
# ```python
# vit4 = vn.load(vn.pick("fmnist-vit-p4", hub="google/vit-base-patch32-224"))
# pred4 = vit4.predict(vit4.preprocess(imgs)).argmax(-1).numpy()
# vn.evaluate.confusion_pairs(vn.evaluate.confusion_matrix(y, pred4, names), top=5)
# ```
# Compare the `true` / `predicted` columns with the table at the top of this chapter.
# ````
