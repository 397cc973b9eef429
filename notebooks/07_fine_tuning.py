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
# # 07 · How does fine-tuning change attention?
#
# A common story about fine-tuning a pretrained ViT goes like this: after fine-tuning, the CLS
# token's attention in the last layer becomes much more concentrated (lower entropy, most of
# it on a handful of patches), the late layers change most while the early ones barely move,
# the late layers become more local, and attention rollout, which mixes all layers, hardly
# changes. One public write-up (a ViT-B/16 fine-tuned on galaxy images, in the book's seeds)
# reports exactly this, with numbers we quote below.
#
# We test it on this book's own fine-tuning: `fmnist-vit-p4`, trained on Fashion-MNIST, was
# fine-tuned into `spectro-vit`, which reads a rendered spectrogram (a chirp plus a title,
# axis labels and a colour bar that carry no information) and regresses three numbers: the
# chirp's start time, start frequency and end frequency. Both models see the same 196-patch
# grid (14x14, as ViT-B/16 does), so entropies compare directly with the quoted ones. And
# since every spectrogram comes with a pixel mask of where the chirp and each distractor
# are, we can also ask the question the story implies: does fine-tuning move attention onto
# the part of the image that matters?

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
from vitnotes import train

vn.setup(seed=0)
_ = torch.set_grad_enabled(False)  # we only read the models here

# %% [markdown]
# "Before" is not `fmnist-vit-p4` itself but the network the fine-tuning run starts from:
# its weights moved onto the spectrogram geometry (56-pixel RGB input, patch 4, the 7x7
# position embeddings interpolated to 14x14, the grey patch kernel spread over three colour
# channels, a new three-output regression head). `vitnotes.train.starting_point()` rebuilds
# it exactly as `python -m vitnotes.train spectro-vit` does. "After" is the zoo model.

# %%
RECIPE = vn.pick("spectro-vit", hub="spectro-vit-b16")  # the hub recipe starts from google/vit-base-patch16-224
before = train.starting_point(recipe=RECIPE)
after = train.trained(RECIPE)
models = {"before": before, "after": after}
before, after

# %% [markdown]
# ## How the fine-tuning is done
#
# The zoo's `spectro-vit` was made by the zoo's first recipe: every weight fine-tuned with
# `transformers.Trainer` on an MSE loss over the z-scored targets (AdamW, a warm-up then cosine
# learning-rate schedule, bfloat16 autocast, 8,000 training spectrograms (seed 1), 500 for
# validation (seed 2) and a fixed test set (seed 3)). Here is that recipe, from the model's card.
# The zoo's second recipe trains the same way in the project's own loop, for longer, and logs the
# attention as it goes; its model replaces this one when its run ends (the book's page "How was
# the zoo trained" follows it).

# %%
card = vn.card(after.name)
pd.Series({k: v for k, v in card["recipe"].items()}, name=f"{RECIPE} recipe").to_frame()

# %% [markdown]
# The full run is one command, `python -m vitnotes.train spectro-vit`; it writes the weights
# and the model card into `vitnotes/zoo/spectro-vit/`. To see the machinery without waiting
# for it, `train.demo_finetune` runs the same code on a handful of images per split, in a
# temporary folder that it deletes (the zoo is not touched). One optimiser step cannot teach
# the model anything: the point is the path, not the numbers. The losses and the time depend
# on the machine, so this cell's output is not part of the book's regression test.

# %% tags=["nbval-ignore-output"]
demo = train.demo_finetune(limit=16, recipe=RECIPE)
print(f"demo: {demo['steps']} optimiser step(s) on {demo['settings']['n_train']} images in {demo['seconds']:.0f} s; "
      f"training loss {demo['train_loss']:.3f}, test MSE {demo['metrics']['mse']:.3f}")

# %%
assert demo["steps"] >= 1 and np.isfinite(demo["metrics"]["mse"])  # the recipe ran: holds for any model
print(f"demo ran the recipe: {demo['steps']} step(s), {demo['settings']['n_train']} training images, "
      f"lr {demo['settings']['lr']:g}, batch {demo['settings']['batch']}")

# %% [markdown]
# What the full run reached, from the model card (`card.json`). MSE is on z-scored targets,
# so predicting the mean of every target scores about 1.

# %%
m = card["metrics"]
metrics = pd.DataFrame({
    "value": [m["mse"], m["mse_mean_predictor"], m["improvement_over_mean"], *m["r2"].values()],
}, index=["test MSE", "MSE of predicting the mean", "improvement (x)", *[f"R^2 {k}" for k in m["r2"]]])
print(f"test set: {m['test_subset']}; {card['recipe']['epochs']} epochs, "
      f"{card['train_seconds'] / 60:.0f} min on {card['machine'].split(',')[0]}")
metrics.round(3)

# %% [markdown]
# `spectro-vit` is **under-trained**: it got two epochs on two CPU cores. It learned the
# two frequencies fairly well but not the start time, where its $R^2$ is close to zero (it
# predicts little better than the average start time). Keep that in mind below: this is a
# model part-way through learning its task, not a converged one.

# %%
r2 = m["r2"]
vn.check(r2["start_time"] < 0.1 < 0.5 < min(r2["start_freq"], r2["end_freq"]),
         "the frequencies are learned (R^2 > 0.5), the start time is not (R^2 < 0.1)")
vn.check(m["improvement_over_mean"] > 1.5, "the model beats predicting the mean by more than 1.5x")

# %% [markdown]
# ## The test spectrograms and their regions
#
# Both models see the same test images: `train.spectro_split("test", n)` gives the pixel
# values and targets, and `vn.data.spectrograms(n, seed=3, size=56)` the same images with
# their masks. Each pixel belongs to exactly one region: the chirp, the rest of the
# spectrogram ("plot"), the text (title, tick and axis labels), the colour bar, the axes
# (frame and ticks) and the background.

# %%
N = 64
x, y = train.spectro_split("test", N, RECIPE)  # pixel_values [N, 3, 56, 56], z-scored targets [N, 3]
ds = vn.data.spectrograms(N, seed=3, size=after.geometry.image_size)
masks = np.stack(ds["mask"])  # [N, 56, 56] region codes
print("pixel_values", tuple(x.shape), "| masks", masks.shape)
vn.show_regions(ds[0]["image"], masks[0])

# %% [markdown]
# ## Attention, layer by layer, before and after
#
# `vn.attention_profile` streams each model's attention over the $N$ images and returns, per
# (layer, head), the CLS entropy, the top-10 share, the mean attention distance and the share
# of the CLS attention that lands in each region (averaged over images). The definitions are
# the book's (a patch counts toward a region by the fraction of its pixels inside it).

# %%
prof = {name: vn.attention_profile(model, x, masks) for name, model in models.items()}
both = pd.concat([p.assign(model=name) for name, p in prof.items()], ignore_index=True)
layer = {name: vn.by_layer(p) for name, p in prof.items()}
area = prof["after"].attrs["area"]  # each region's share of the pixels: what a uniform map puts there
patches = prof["after"].attrs["patches"]
print(f"{N} images, {patches} patches; uniform entropy log {patches} = {np.log(patches):.3f} nats")

# %%
vn.metric_by_layer(both, "entropy", hue="model", ylabel="CLS entropy (nats)")

# %% [markdown]
# Each dot is one head, each line the mean over heads. The two curves share their shape:
# near-uniform attention in layers 1-5 and more concentrated attention in layer 0 and the
# late layers. Fine-tuning lowers the entropy in most layers, but it does not reshape the
# profile. The table adds the top-10 share and the mean attention distance (over all query
# patches, not just CLS): the late layers become more local by about a pixel, layers 1-4
# slightly more global, on patches whose attention reaches about half the image's width.

# %%
table = pd.DataFrame({
    "entropy before": layer["before"]["entropy"], "entropy after": layer["after"]["entropy"],
    "top-10 before": layer["before"]["top10"], "top-10 after": layer["after"]["top10"],
    "distance before (px)": layer["before"]["distance_px"], "distance after (px)": layer["after"]["distance_px"],
})
table["entropy change"] = table["entropy after"] - table["entropy before"]
table["distance change (px)"] = table["distance after (px)"] - table["distance before (px)"]
table.round(3)

# %%
change = table["entropy change"]
biggest = int(change.abs().idxmax())
early, late = change.loc[0:3].abs().mean(), change.loc[8:11].abs().mean()
dist = table["distance change (px)"]
vn.check((change < 0).sum() >= 9, "lower entropy in most layers")
vn.check((dist.loc[8:11] < 0).all() and (dist.loc[1:4] > 0).all(), "layers 8-11 become more local, layers 1-4 more global")
print(f"largest entropy change: layer {biggest} ({change[biggest]:+.3f} nats); last layer {change[11]:+.3f}")
print(f"mean |entropy change|: layers 0-3 {early:.3f}, layers 8-11 {late:.3f}")
print(f"distance change: layers 0-1 {dist.loc[0:1].mean():+.2f} px, layers 10-11 {dist.loc[10:11].mean():+.2f} px")

# %% [markdown]
# ## The seed's table, with our numbers
#
# The seed's numbers are for a ViT-B/16 fine-tuned on galaxy images (entropy in nats over 196
# patches, like ours). Rollout is Abnar & Zuidema's (mean over heads, half identity for the
# residual), its CLS row over the patches. "Last layer" values are means over the 12 heads
# and the $N$ images.

# %%
roll = {name: vn.explain(model, x, "rollout").flatten(1) for name, model in models.items()}  # [N, 196] CLS rows
ours = {name: {
    "last-layer CLS entropy (nats)": layer[name].loc[11, "entropy"],
    "last-layer top-10 share": layer[name].loc[11, "top10"],
    "rollout CLS entropy (nats)": float(vn.entropy(roll[name]).mean()),
} for name in models}
seed = {"last-layer CLS entropy (nats)": (4.81, 3.09), "last-layer top-10 share": (0.208, 0.794),
        "rollout CLS entropy (nats)": (4.85, 4.74)}
seed_table = pd.DataFrame({
    "seed before": {k: v[0] for k, v in seed.items()}, "seed after": {k: v[1] for k, v in seed.items()},
    "ours before": {k: ours["before"][k] for k in seed}, "ours after": {k: ours["after"][k] for k in seed},
})
seed_table["seed change"] = seed_table["seed after"] - seed_table["seed before"]
seed_table["our change"] = seed_table["ours after"] - seed_table["ours before"]
seed_table.round(3)

# %% [markdown]
# The direction agrees (the last layer gets more concentrated, rollout barely moves), the
# size does not: our last layer loses a fraction of the entropy the seed reports and its
# top-10 share rises by a few points, not from a fifth to four fifths. Our "before" model is
# also already far from uniform in its last layer, unlike the seed's ImageNet model on galaxy
# images. The layer that changes most is not the last one either.

# %%
d_last = seed_table.loc["last-layer CLS entropy (nats)", "our change"]
d_top = seed_table.loc["last-layer top-10 share", "our change"]
d_roll = seed_table.loc["rollout CLS entropy (nats)", "our change"]
same_direction = d_last < 0 and d_top > 0
smaller = abs(d_last) < 0.5 * abs(seed["last-layer CLS entropy (nats)"][1] - seed["last-layer CLS entropy (nats)"][0]) \
    and d_top < 0.5 * (seed["last-layer top-10 share"][1] - seed["last-layer top-10 share"][0])
vn.check(same_direction, "the last layer changes in the seed's direction (entropy down, top-10 share up)")
vn.check(smaller, "the change is less than half the seed's")
vn.check(abs(d_roll) < abs(d_last) and biggest != 11, "rollout moves less than the last layer; the last layer is not the one that changes most")
vn.check(ours["before"]["last-layer CLS entropy (nats)"] < np.log(patches) - 1, '"before" is far from uniform already')
print(f"last-layer entropy change: ours {d_last:+.3f} vs seed {seed_table.loc['last-layer CLS entropy (nats)', 'seed change']:+.3f}")
print(f"rollout entropy change: ours {d_roll:+.3f} vs seed {seed_table.loc['rollout CLS entropy (nats)', 'seed change']:+.3f}")

# %% [markdown]
# ## Does attention move onto the chirp?
#
# The chirp is all the model needs; the text, colour bar, axes and background are
# distractors. For each layer we take the CLS attention mass (mean over heads and images) in
# the chirp and in the four distractors together, and divide by the region's share of the
# pixels. A ratio of 1 is what a uniform map gets; above 1, the region draws more attention
# than its size.

# %%
distractors = ("text", "colorbar", "axes", "background")
d_area = sum(area[r] for r in distractors)
mass = pd.DataFrame({
    "chirp before": layer["before"]["mass_chirp"], "chirp after": layer["after"]["mass_chirp"],
    "distractors before": sum(layer["before"][f"mass_{r}"] for r in distractors),
    "distractors after": sum(layer["after"][f"mass_{r}"] for r in distractors),
})
ratio = pd.DataFrame({
    "chirp / area before": mass["chirp before"] / area["chirp"], "chirp / area after": mass["chirp after"] / area["chirp"],
    "distractors / area before": mass["distractors before"] / d_area,
    "distractors / area after": mass["distractors after"] / d_area,
})
print(f"area shares: chirp {area['chirp']:.3f}, distractors {d_area:.3f} "
      f"(text {area['text']:.3f}, colour bar {area['colorbar']:.3f}, axes {area['axes']:.3f}, background {area['background']:.3f})")
pd.concat([mass, ratio], axis=1).round(3)

# %%
both["chirp / area"] = both["mass_chirp"] / area["chirp"]
vn.metric_by_layer(both, "chirp / area", hue="model", ylabel="chirp mass / chirp area")

# %% [markdown]
# One layer stands out: after fine-tuning, layer 0's CLS attention puts several times the
# chirp's area share on the chirp (a few of its heads more than ten times), where before it
# was near 1. In every other layer, before and after, the CLS token gives the chirp about
# what a uniform map would. The distractors show no consistent shift: they lose attention in
# layer 0 and in some late layers and gain a little in layers 1-5. Note that the starting
# point already gave the distractors less than their area share in its late layers.

# %%
r_after, r_before = ratio["chirp / area after"], ratio["chirp / area before"]
vn.check(r_after[0] > 2 * max(1.0, r_before[0]), "layer 0 moves onto the chirp")
vn.check(r_after.loc[1:11].between(0.5, 2.0).all(), "layers 1-11 give the chirp about its area share")
lost = ratio["distractors / area after"] < ratio["distractors / area before"]
d_before = ratio["distractors / area before"]
vn.check(lost[0] and 3 <= lost.sum() <= 9, "layer 0 loses distractor attention; no consistent shift elsewhere")
vn.check((d_before.loc[8:11] < 0.85).all(), "the starting point already under-weights distractors in layers 8-11")
print(f"chirp / area in layer 0: {r_before[0]:.2f} before, {r_after[0]:.2f} after; "
      f"layers 1-11 after: {r_after.loc[1:11].min():.2f} to {r_after.loc[1:11].max():.2f}")
print(f"distractors lose attention in {int(lost.sum())} of 12 layers: {lost[lost].index.tolist()}")

# %% [markdown]
# ## Before and after, on one image
#
# The last layer's CLS map (mean over heads) on the first two test spectrograms, before and
# after fine-tuning, and the difference (red: gained, blue: lost). Then layer 0, the layer
# whose attention moved onto the chirp.

# %%
cls = {name: vn.capture(model, x[:2], cls_only=True) for name, model in models.items()}
vn.before_after(ds[0]["image"], cls["before"].cls_grid(-1)[0].mean(0), cls["after"].cls_grid(-1)[0].mean(0),
                titles=("before, layer 11", "after, layer 11"))

# %%
vn.before_after(ds[1]["image"], cls["before"].cls_grid(0)[1].mean(0), cls["after"].cls_grid(0)[1].mean(0),
                titles=("before, layer 0", "after, layer 0"))

# %% tags=["hide-input"]
from IPython.display import Markdown

st = seed_table
Markdown(f"""
## What we found

On {N} test spectrograms, comparing the fine-tuning run's starting point with `{RECIPE}`:

- The last layer's CLS entropy {"falls" if d_last < 0 else "rises"} from {st.loc['last-layer CLS entropy (nats)', 'ours before']:.2f} to
  {st.loc['last-layer CLS entropy (nats)', 'ours after']:.2f} nats ({d_last:+.2f}; the seed reports
  {st.loc['last-layer CLS entropy (nats)', 'seed change']:+.2f}), and its top-10 share {"rises" if d_top > 0 else "falls"} from
  {st.loc['last-layer top-10 share', 'ours before']:.1%} to {st.loc['last-layer top-10 share', 'ours after']:.1%}
  (seed: {seed['last-layer top-10 share'][0]:.1%} to {seed['last-layer top-10 share'][1]:.1%}).
  {"Same direction" if same_direction else "Not the seed's direction"}, {"a much smaller effect" if smaller else "an effect of comparable size"}.
- Rollout entropy {"barely moves" if abs(d_roll) < abs(d_last) else "moves more than the last layer's"} ({d_roll:+.3f} nats; seed
  {st.loc['rollout CLS entropy (nats)', 'seed change']:+.2f}){", as the seed found" if abs(d_roll) < abs(d_last) else ""}.
- The layer that changes most is layer {biggest} ({change[biggest]:+.2f} nats){", not the last one" if biggest != 11 else ""}; layers 0-3
  change by {early:.2f} nats on average and layers 8-11 by {late:.2f}{', so "early layers barely change" does not hold for layer 0' if abs(change[0]) > late else ""}.
- Mean attention distance changes by at most {dist.abs().max():.1f} px (out of about
  {table['distance after (px)'].mean():.0f} px): {dist.loc[10:11].mean():+.2f} px in layers 10-11 (the seed: more
  local), {dist.loc[1:4].mean():+.2f} px in layers 1-4, and {dist[0]:+.2f} px in layer 0 (the seed: layers 0-1
  slightly more global).
- In layer 0 the chirp gets {r_after[0]:.1f}x its area share of the CLS attention after fine-tuning, from
  {r_before[0]:.1f}x before; in layers 1-11 it gets {r_after.loc[1:11].min():.1f}x to
  {r_after.loc[1:11].max():.1f}x (a uniform map gives 1x). The distractors lose attention in
  {int(lost.sum())} of 12 layers{": fine-tuning did not teach the CLS token to ignore them" if lost.sum() <= 9 else ""}.
- R^2 for the start time is {r2['start_time']:.2f}{f", so `{RECIPE}` is under-trained and these are the changes of a partly fine-tuned model" if r2['start_time'] < 0.5 else ""}.
""")

# %% [markdown]
# ## Exercises
#
# 1. Fine-tune longer (`python -m vitnotes.train spectro-vit --epochs 10 --out /tmp/spectro-long`) and load
#    the result with `vn.load("/tmp/spectro-long")`. Does the last-layer entropy keep falling, and does the
#    chirp's share grow beyond layer 0?
# 2. The CLS row is only one query. Use `vn.capture` to measure how much attention the *chirp patches* (as
#    queries) give to the chirp, before and after.
# 3. Our "before" model has never seen a spectrogram. Compute the same table for `fmnist-vit-p4` on its own
#    Fashion-MNIST images: is its last layer already as concentrated as on spectrograms?
