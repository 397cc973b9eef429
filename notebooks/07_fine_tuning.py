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
# A common story about {term}`fine-tuning` a pretrained ViT {cite:p}`dosovitskiy2021vit` goes like
# this: after fine-tuning, the {term}`CLS token`'s attention in the last layer becomes much more
# concentrated (lower entropy, most of it on a handful of patches: a higher {term}`top-10 share`),
# the late layers change most while the early ones barely move, the late layers become more local
# (a shorter {term}`mean attention distance`), and {term}`attention rollout` {cite:p}`abnar2020rollout`,
# which mixes all layers, hardly changes. One public write-up (a ViT-B/16 fine-tuned on galaxy
# images, in the book's seeds, {cite:p}`galaxyzoo2025finetune`) reports exactly this, with numbers
# we quote below.
#
# We test it on this book's own fine-tuning: `fmnist-vit-p4`, trained on Fashion-MNIST, was
# fine-tuned into `spectro-vit`, which reads a rendered spectrogram (a chirp plus a title,
# axis labels and a colour bar that carry no information) and regresses three numbers: the
# chirp's start time, start frequency and end frequency (the task of {cite:t}`bahador2025spectro`,
# rebuilt with ground truth). Both models see the same 196-patch
# grid (14x14, as ViT-B/16 does), so entropies compare directly with the quoted ones. And
# since every spectrogram comes with a pixel mask of where the chirp and each distractor
# are, we can also ask the question the story implies: does fine-tuning move attention onto
# the part of the image that matters?
#
# One thing stands between `fmnist-vit-p4` and the fine-tuning: a transplant. Before the first
# fine-tuning step the run moves the Fashion-MNIST model onto the spectrogram geometry (a larger,
# three-channel input, position embeddings interpolated onto a finer grid, a new head). "Before"
# in this chapter is that transplant, so before/after measures the fine-tuning alone; the section
# "The transplant or the fine-tuning?" measures what the transplant itself did, by comparing
# `fmnist-vit-p4` reading the same test spectrograms in its own geometry with the transplant.
#
# Every headline number is a mean with a 95 % {term}`bootstrap interval <bootstrap interval>` over
# the test spectrograms, or, once the zoo holds several fine-tuning runs of the same recipe (seeds),
# an interval over the runs.

# %% tags=["remove-cell"]
# Binder and Colab: install vitnotes when it is missing (here, and wherever it is installed, a no-op).
import importlib.util, subprocess, sys  # noqa: E401
if importlib.util.find_spec("vitnotes") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "vitnotes @ git+https://github.com/vitnotes/vitnotes"], check=True)

# %%
import re

import numpy as np
import pandas as pd
import torch

import vitnotes as vn

vn.setup(seed=0)
_ = torch.set_grad_enabled(False)  # we only read the models here

# %% [markdown]
# "Before" is not `fmnist-vit-p4` itself but the network the fine-tuning run starts from, the
# transplant: its weights moved onto the spectrogram geometry (56-pixel RGB input, patch 4, the 7x7
# position embeddings interpolated to 14x14, the grey patch kernel spread over three colour
# channels, a new three-output regression head), before any fine-tuning step.
# `vitnotes.train.starting_point()` rebuilds it exactly as `python -m vitnotes.train spectro-vit`
# does (the same function makes the run's network). Only the new head depends on the run's seed,
# and the head reads the last layer's output, so every run starts from the same attention. "After"
# is the zoo model.

# %%
RECIPE = vn.pick("spectro-vit", hub="spectro-vit-b16")  # the hub recipe starts from google/vit-base-patch16-224
before = vn.train.starting_point(recipe=RECIPE)
after = vn.train.trained(RECIPE)
models = {"before": before, "after": after}
# further fine-tuning runs of the same recipe with other seeds, when the zoo holds them (spectro-vit-s1, ...)
RUNS = [RECIPE] + [n for n in vn.zoo_names() if re.fullmatch(rf"{re.escape(RECIPE)}-s\d+", n)]
afters = [after] + [vn.load(n) for n in RUNS[1:]]
print(f"fine-tuning runs of {RECIPE}: {len(RUNS)} ({', '.join(RUNS)})")
for name in RUNS:
    print(vn.provenance(name))  # how each run was trained, from its card
before, after

# %% [markdown]
# ## How the fine-tuning is done
#
# The model's card records how it was made. The paragraph below is read from it (and from the
# training code it names), and the table under it is the card's whole recipe; the book's page "How
# was the zoo trained" shows the attention the run logged as it went.

# %%
from IPython.display import Markdown

card = vn.card(after.name)
recipe = card["recipe"]
stages = recipe.get("stages") or [recipe]
own_loop = not recipe.get("hub")  # the zoo's recipes train in vitnotes.train.loop, hub recipes with transformers.Trainer
machines = [recipe["earlier_machine"]] if recipe.get("earlier_machine") else []
machines = list(dict.fromkeys(machines + [card["machine"]]))  # where the stages ran, in order, each once
on_gpu = any("GPU" in m for m in machines)
# vitnotes.train.loop autocasts to bfloat16 on a CUDA device whatever the stage's bf16 flag;
# transformers.Trainer (the hub recipes) only when the recipe asks for it and a GPU is there
in_bf16 = on_gpu if own_loop else bool(recipe.get("bf16")) and on_gpu
per_stage = "; ".join(
    f"{'stage ' + str(i) + ': ' if len(stages) > 1 else ''}{st['epochs']:g} epochs at learning rate {st['lr']:g}, "
    f"batch {st['batch']}, a linear warm-up over the first {st['warmup']:.0%} then a cosine decay"
    for i, st in enumerate(stages, 1))
precision = (
    ("Its recipe's `bf16` flag is off, but the project's loop autocasts to bfloat16 on any CUDA GPU, and the card "
     if own_loop and not recipe.get("bf16") else "The card ")
    + f"names {' and '.join(repr(m) for m in machines)} as where it ran: "
    + ("its forward passes ran under bfloat16 autocast (weights and optimiser state in float32)." if in_bf16
       else "it trained in float32."))
display(Markdown(
    f"`{after.name}` was fine-tuned from `{recipe.get('init', 'its starting point')}` (the starting point above) with "
    + ("the project's own training loop (`python -m vitnotes.train`, `vitnotes.train.loop`)" if own_loop
       else "`transformers.Trainer` (`vitnotes.train.trainer`)")
    + f", every weight trained (AdamW, weight decay {stages[0]['weight_decay']:g}, gradients clipped at norm 1) to "
    f"regress the z-scored targets, on {recipe['n_train']} training spectrograms: {len(stages)} "
    f"stage{'s' * (len(stages) > 1)}, {vn.train.card_epochs(card):g} epochs in all ({per_stage}). {precision}"))
pd.Series({k: v for k, v in recipe.items()}, name=f"{RECIPE} recipe").to_frame()

# %% [markdown]
# The full run is one command, `python -m vitnotes.train spectro-vit`; it writes the weights
# and the model card into `vitnotes/zoo/spectro-vit/`. To see the machinery without waiting
# for it, `vn.train.demo_finetune` runs the same code on a handful of images per split, in a
# temporary folder that it deletes (the zoo is not touched). Every stage runs, but with a handful
# of images an epoch is one optimiser step, and a dozen steps cannot teach the model anything:
# the point is the path, not the numbers. The losses and the time depend
# on the machine, so this cell's output is not part of the book's regression test.

# %% tags=["nbval-ignore-output"]
demo = vn.train.demo_finetune(limit=16, recipe=RECIPE)
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
print(f"test set: {m['test_subset']}; {vn.train.card_epochs(card):g} epochs, "
      f"{card['train_seconds'] / 60:.0f} min on {card['machine'].split(',')[0]}")
metrics.round(3)

# %% [markdown]
# How well did the fine-tune learn its three targets? Zoo v1's `spectro-vit`, a much shorter run on
# the CPU, had learned the two frequencies but not the start time ($R^2$ near zero). The start time
# is the target a ViT learns last (the zoo page shows it rising through the training stages), so we
# read its $R^2$ before any attention below.

# %%
r2 = m["r2"]
learned = vn.claim(min(r2.values()) >= 0.9,
                   f"all three targets are learned (R^2 >= 0.9; the start time's is {r2['start_time']:.3f})",
                   f"the weakest target is {min(r2, key=r2.get)} at R^2 {min(r2.values()):.3f}, short of the "
                   "project's 0.9")
print(learned)
vn.check(m["improvement_over_mean"] > 1.5, "the model beats predicting the mean by more than 1.5x")

# %% [markdown]
# ## The test spectrograms and their regions
#
# Both models see the same test images: `vn.train.spectro_split("test", n)` gives the pixel
# values and targets, and `vn.data.spectrograms(n, seed=3, size=56)` the same images with
# their masks. Each pixel belongs to exactly one region: the chirp, the rest of the
# spectrogram ("plot"), the text (title, tick and axis labels), the colour bar, the axes
# (frame and ticks) and the background.

# %%
N = vn.pick(128, hub=32)
x, y = vn.train.spectro_split("test", N, RECIPE)  # pixel_values [N, 3, 56, 56], z-scored targets [N, 3]
ds = vn.data.spectrograms(N, seed=3, size=after.geometry.image_size)
masks = np.stack(ds["mask"])  # [N, 56, 56] region codes
print("pixel_values", tuple(x.shape), "| masks", masks.shape)
vn.show.show_regions(ds[0]["image"], masks[0])

# %% [markdown]
# ## Attention, layer by layer, before and after
#
# `vn.profile.attention_profile` streams each model's attention over the $N$ images and returns, per
# (layer, head), the CLS entropy, the top-10 share, the mean attention distance and the share
# of the CLS attention that lands in each region (averaged over images). The definitions are
# the book's (a patch counts toward a region by the fraction of its pixels inside it).

# %%
prof = {name: vn.profile.attention_profile(model, x, masks) for name, model in models.items()}
both = pd.concat([p.assign(model=name) for name, p in prof.items()], ignore_index=True)
layer = {name: vn.by_layer(p) for name, p in prof.items()}
area = prof["after"].attrs["area"]  # each region's share of the pixels: what a uniform map puts there
patches = prof["after"].attrs["patches"]
print(f"{N} images, {patches} patches; uniform entropy log {patches} = {np.log(patches):.3f} nats")

# %%
vn.show.metric_by_layer(both, "entropy", hue="model", ylabel="CLS entropy (nats)", reference=np.log(patches),
                   reference_label=f"uniform map: log {patches}", zero=True)

# %% [markdown]
# Each dot is one head, each line the mean over heads; the dashed line is the uniform map's
# entropy, the top of the scale. Compare the two curves' shapes, then how far
# apart they are layer by layer. The table adds the top-10 share and the mean attention distance
# (over all query patches, not just CLS); the printed lines under it name the layers that change
# most.

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
print(vn.claim((dist.loc[8:11] < 0).all() and (dist.loc[1:4] > 0).all(), "Layers 8-11 become more local, layers 1-4 more global.", "Not so: layers 8-11 become more local, layers 1-4 more global."))
print(f"largest entropy change: layer {biggest} ({change[biggest]:+.3f} nats); last layer {change[11]:+.3f}")
print(f"mean |entropy change|: layers 0-3 {early:.3f}, layers 8-11 {late:.3f}")
print(f"distance change: layers 0-1 {dist.loc[0:1].mean():+.2f} px, layers 10-11 {dist.loc[10:11].mean():+.2f} px")

# %% [markdown]
# ## The seed's table, with our numbers
#
# The seed's numbers are for a ViT-B/16 fine-tuned on galaxy images (entropy in nats over 196
# patches, like ours). Rollout is Abnar & Zuidema's (mean over heads, half identity for the
# residual), its CLS row over the patches. "Last layer" values are means over the 12 heads.
# `vn.finetune_table` computes each statistic per image, for the starting point and for every
# fine-tuning run, and gives the mean with its interval: over the $N$ images when there is one
# run, over the runs when the zoo holds several (a Student-t interval over the runs' means: with
# two or three runs the bootstrap cannot make an interval). The last row is layer 0's CLS mass on
# the chirp over the chirp's area, which the next section looks at layer by layer.

# %% [markdown]
# ```{admonition} Predict before you run
# :class: tip
# The seed's last layer goes from a top-10 share of about a fifth to about four fifths. Our
# "before" model has already been trained on Fashion-MNIST; will its last-layer change be larger
# or smaller than the seed's, and will rollout's entropy move more or less than the last layer's?
# ```

# %%
ft = vn.finetune_table(before, afters, x, masks)
over = ft.loc[ft["metric"] == "after", "over"].iloc[0]
print(f"{N} test spectrograms; {len(afters)} fine-tuning run(s): intervals of 'after' and 'change' are over {over}")
vn.evaluate.interval_table(ft, index=("statistic",))

# %%
seed = {"last-layer CLS entropy (nats)": (4.81, 3.09), "last-layer top-10 share": (0.208, 0.794),
        "rollout CLS entropy (nats)": (4.85, 4.74)}
ours = ft.set_index(["statistic", "metric"])
seed_table = pd.DataFrame({
    "seed before": {k: v[0] for k, v in seed.items()}, "seed after": {k: v[1] for k, v in seed.items()},
    "ours before": {k: ours.loc[(k, "before"), "value"] for k in seed},
    "ours after": {k: ours.loc[(k, "after"), "value"] for k in seed},
})
seed_table["seed change"] = seed_table["seed after"] - seed_table["seed before"]
seed_table["our change"] = [ours.loc[(k, "change"), "value"] for k in seed]
seed_table["our change: low"] = [ours.loc[(k, "change"), "low"] for k in seed]
seed_table["our change: high"] = [ours.loc[(k, "change"), "high"] for k in seed]
seed_table.round(3)

# %%
chg = {k: ours.loc[(k, "change")] for k in seed}
ci = lambda k, m, f=".2f": (f"{ours.loc[(k, m), 'value']:{f}} [{ours.loc[(k, m), 'low']:{f}}, "  # noqa: E731
                            f"{ours.loc[(k, m), 'high']:{f}}]")
C = "chirp mass / area"
E, T, R = "last-layer CLS entropy (nats)", "last-layer top-10 share", "rollout CLS entropy (nats)"
d_last, d_top, d_roll = (chg[k]["value"] for k in (E, T, R))
same_direction = bool(chg[E]["high"] < 0 and chg[T]["low"] > 0)  # intervals clear of 0 on the seed's side
seed_d = {k: seed[k][1] - seed[k][0] for k in seed}
smaller = bool(abs(chg[E]["low"]) < 0.5 * abs(seed_d[E]) and chg[T]["high"] < 0.5 * seed_d[T])
roll_less = bool(abs(d_roll) < abs(d_last) and max(abs(chg[R]["low"]), abs(chg[R]["high"])) < abs(chg[E]["high"]))
far_before = bool(ours.loc[(E, "before"), "high"] < np.log(patches) - 1)
uniform_h = np.log(patches)  # the uniform map's entropy: log N nats, H / log N = 1
ours_frac, seed_frac = ours.loc[(E, "before"), "value"] / uniform_h, seed[E][0] / uniform_h  # before, as H / log N
further_than_seed = bool(ours.loc[(E, "before"), "high"] < seed[E][0])  # our interval below the seed's "before"
print(vn.claim(same_direction, "The last layer changes in the seed's direction (entropy down, top-10 share up; "
               "intervals clear of 0).", "The last layer does not clearly change in the seed's direction."))
print(vn.claim(smaller, "The change is less than half the seed's (the whole interval).",
               "The change is not clearly less than half the seed's."))
print(vn.claim(far_before, '"Before" is far from uniform already (last-layer entropy more than 1 nat below log N).',
               f'"Before" is within 1 nat of uniform in its last layer ({ours.loc[(E, "before"), "value"]:.3f} of '
               f'log {patches} = {uniform_h:.3f} nats).'))
print(f'"before", last layer: H / log N {ours_frac:.2f} (ours) vs {seed_frac:.2f} (the seed; uniform = 1): '
      + vn.claim(further_than_seed, "ours starts further from uniform than the seed's",
                 "ours does not start clearly further from uniform than the seed's"))
print(f"last-layer entropy change: ours {d_last:+.3f} [{chg[E]['low']:+.3f}, {chg[E]['high']:+.3f}] vs seed {seed_d[E]:+.3f}")
print(f"rollout entropy change: ours {d_roll:+.3f} [{chg[R]['low']:+.3f}, {chg[R]['high']:+.3f}] vs seed {seed_d[R]:+.3f}")

# %% [markdown]
# The lines above compare the direction and the size of our change with the seed's, from the
# intervals; "What we found" collects them. The seed's "before" was an ImageNet model seeing galaxy
# images for the first time; ours has been trained on Fashion-MNIST and transplanted, so how far its
# last layer already is from uniform matters when the two changes are compared. The section "The
# transplant or the fine-tuning?" below asks how much of that "before" the transplant made.

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
vn.show.metric_by_layer(both, "chirp / area", hue="model", ylabel="chirp mass / chirp area", reference=1.0, zero=True)

# %% [markdown]
# Each dot is one head, each line the mean over heads; the dashed line at 1 is the uniform map's
# ratio. The checks below, and "What we found", say which layers move onto the chirp and how the distractors fare
# (layer 0's ratio has its interval in the table above).

# %%
r_after, r_before = ratio["chirp / area after"], ratio["chirp / area before"]
vn.check(r_after[0] > 2 * max(1.0, r_before[0]), "layer 0 moves onto the chirp")
print(vn.claim(r_after.loc[1:11].between(0.5, 2.0).all(),
               "Layers 1-11 give the chirp between half and twice its area share (a uniform map: 1x).",
               "Not so: layers 1-11 give the chirp between half and twice its area share (a uniform map: 1x)."))
below_uniform = int((r_after.loc[1:11] < 1).sum())  # layers 1-11 that give the chirp less than a uniform map would
print(f"layers 1-11 after fine-tuning: {below_uniform} of 11 below the uniform map's 1x")
lost = ratio["distractors / area after"] < ratio["distractors / area before"]
d_before = ratio["distractors / area before"]
print(vn.claim(lost[0] and 3 <= lost.sum() <= 9, "Layer 0 loses distractor attention; no consistent shift elsewhere.", "Not so: layer 0 loses distractor attention; no consistent shift elsewhere."))
print(vn.claim((d_before.loc[8:11] < 0.85).all(), "The starting point already under-weights distractors in layers 8-11.", "Not so: the starting point already under-weights distractors in layers 8-11."))
print(f"chirp / area in layer 0: {r_before[0]:.2f} before, {r_after[0]:.2f} after; "
      f"layers 1-11 after: {r_after.loc[1:11].min():.2f} to {r_after.loc[1:11].max():.2f}")
print(f"distractors lose attention in {int(lost.sum())} of 12 layers: {lost[lost].index.tolist()}")

# %% [markdown]
# ## The transplant or the fine-tuning?
#
# Everything above compares the transplant ("before") with the fine-tuned runs ("after"): the
# effect of fine-tuning alone. But "before" is already a change: `fmnist-vit-p4` learned on small
# grey garments and now reads larger colour spectrograms on a finer grid. How much of "before" is the
# transplant's doing? `vn.transplant_table` measures, layer by layer, on the same $N$ test
# spectrograms:
#
# - **original**: `fmnist-vit-p4` itself, reading each spectrogram as it reads its own data (its own
#   preprocessing and patch grid, printed below);
# - **transplant**: the starting point above, before any fine-tuning step;
# - **fine-tuned**: the runs;
#
# and, for reference, **original, own data**: the original on $N$ test images of the data set it was
# trained on (other images, so not paired with the rest, and no chirp in them). The statistics are the
# two this chapter uses: the CLS entropy over log N (mean over heads) and the chirp's CLS mass over its
# area share, both 1 for a uniform map. A map spread over the same part of the image has a larger
# H / log N on a finer grid, so the original's maps are read on the transplant's grid, each patch's
# weight split evenly over the finer patches it covers (the chirp's ratio is the same either way). The
# transplant effect (transplant - original) is paired over the same images, with a bootstrap interval;
# the fine-tuning effect (fine-tuned - transplant) has the interval of the table above (over the runs
# when there are several).

# %%
original = vn.load(recipe["init"])  # the model the run's starting point was made from
x_orig = original.preprocess(list(ds["image"]))  # the same test spectrograms, as the original reads images
own = original.preprocess(list(vn.data.examples()[0][:N]))  # test images of the original's own data set
trans = vn.transplant_table(original, before, afters, x, masks, x_orig, own_pixel_values=own)
go, gb = original.geometry, before.geometry
print(f"original {original.name}: {go.image_size} px x {go.channels} channel(s), grid {go.grid[0]}x{go.grid[1]}; "
      f"transplant: {gb.image_size} px x {gb.channels} channels, grid {gb.grid[0]}x{gb.grid[1]} (every map read on it)")
print(f"{N} test spectrograms, {trans.attrs['own_images']} images of the original's own data; 'fine-tuned' and "
      f"'fine-tuning effect' intervals are over {trans.loc[trans['metric'] == 'fine-tuned', 'over'].iloc[0]} "
      f"({len(afters)} run(s)), the rest over images")
vn.show.transplant_plot(trans)

# %% [markdown]
# Each line is a mean over images (the fine-tuned line: over the runs' means), each band its 95 %
# interval; the dotted line is the uniform map. The table gives every layer; the printed lines under it
# say which effect is larger where.

# %%
vn.evaluate.interval_table(trans, index=("statistic", "layer"), digits=2)

# %%
tv = trans.set_index(["statistic", "layer", "metric"])
H, Q = "CLS entropy / log N", "chirp mass / area"
n_layers, last = int(trans["layer"].nunique()), int(trans["layer"].max())


def cell(stat, layer, metric, f=".2f"):
    r = tv.loc[(stat, layer, metric)]
    return f"{r['value']:{f}} [{r['low']:{f}}, {r['high']:{f}}]"


def effects(stat, metric):  # per layer: value, low, high of one effect
    rows = trans[(trans["statistic"] == stat) & (trans["metric"] == metric)]
    return rows.set_index("layer")[["value", "low", "high"]]


t_h, f_h = effects(H, "transplant effect"), effects(H, "fine-tuning effect")
t_q, f_q = effects(Q, "transplant effect"), effects(Q, "fine-tuning effect")
t_lower, f_lower = int((t_h["high"] < 0).sum()), int((f_h["high"] < 0).sum())  # layers whose interval lies below 0
as_large = t_h.index[t_h["value"].abs() >= f_h["value"].abs()].tolist()  # layers where the transplant moves it as much
# a check that two library functions agree: the table's transplant is the seed table's "before"
vn.check(abs(tv.loc[(H, last, "transplant"), "value"] - ours.loc[(E, "before"), "value"] / np.log(patches)) < 1e-5,
         "the transplant's last-layer entropy is the seed table's 'before' over log N")
print(f"entropy / log N: the transplant lowers it in {t_lower} of {n_layers} layers, fine-tuning in {f_lower} "
      f"(intervals below 0); the transplant's mean change is at least fine-tuning's in layers {as_large}")
print(f"last layer: original, own data {cell(H, last, 'original, own data')}; original on spectrograms "
      f"{cell(H, last, 'original')}; transplant {cell(H, last, 'transplant')}; "
      f"fine-tuned {cell(H, last, 'fine-tuned')}")
onto_chirp = bool(t_q.loc[0, "low"] > 0)  # does the transplant alone raise layer 0's chirp ratio?
print(vn.claim(not onto_chirp and f_q.loc[0, "low"] > 0,
               "Layer 0's move onto the chirp is fine-tuning's: the transplant alone does not raise its ratio.",
               "Not fine-tuning's alone: the transplant raises layer 0's chirp ratio, or fine-tuning does not."))
print(f"layer 0, chirp mass / area: original {cell(Q, 0, 'original')}, transplant {cell(Q, 0, 'transplant')} "
      f"(effect {cell(Q, 0, 'transplant effect', '+.2f')}), fine-tuned {cell(Q, 0, 'fine-tuned')} "
      f"(effect {cell(Q, 0, 'fine-tuning effect', '+.2f')})")
q_up = t_q.index[t_q["low"] > 0].tolist()  # layers where the transplant clearly raises the chirp's ratio
print(f"the transplant changes the chirp's ratio by {t_q['value'].min():+.2f} to {t_q['value'].max():+.2f} across "
      f"layers; clearly up in layers {q_up}")

# %% [markdown]
# Read the entropy rows with the grids in mind: spread evenly, the original's maps have no structure
# inside one of its patches, while the transplant's can, so part of the transplant effect on entropy is
# the finer grid itself (exercise 3 separates the input size from the rest of the transplant). The
# chirp's ratio does not depend on the grid.

# %% [markdown]
# ### Could the transplant do the task before fine-tuning?
#
# The transplant's regression head is new and random, so its outputs mean nothing. Refitting only the
# head asks what its frozen features already hold: `vn.evaluate.linear_head` fits a ridge regression from what
# the head reads (the final-normed CLS token) to the targets on training spectrograms, the penalty
# chosen by leave-one-out error (the largest within one standard error of the least; printed below),
# and keeps every other weight, so attention stays the transplant's (checked below). `vn.evaluate.head_r2`
# scores it, and each fine-tuned run, on the same $N$ test spectrograms.

# %%
N_PROBE = vn.pick(256, hub=64)
x_tr, y_tr = vn.train.spectro_split("train", N_PROBE, RECIPE)
probe = vn.evaluate.linear_head(before, x_tr, y_tr)
same = zip(vn.evaluate.layer_stats(probe, x[:8]).values(), vn.evaluate.layer_stats(before, x[:8]).values())
vn.check(all(np.array_equal(a, b) for a, b in same), "the refitted head leaves the transplant's attention as it was")
frozen = vn.evaluate.head_r2(probe, x, y, list(vn.data.TARGET_NAMES)).set_index("target")
runs_r2 = [vn.evaluate.head_r2(m, x, y, list(vn.data.TARGET_NAMES)).set_index("target") for m in afters]  # the same images
tuned_r2 = {t: vn.evaluate.run_interval([r.loc[t, "value"] for r in runs_r2]) if len(afters) > 1 else
            tuple(runs_r2[0].loc[t, ["value", "low", "high"]]) for t in frozen.index}  # fmt: skip
print(f"linear head: {probe.source}; R^2 on the same {N} test spectrograms: the linear head's with its bootstrap "
      "interval over images; fine-tuned: "
      + (f"mean and t interval over {len(afters)} runs" if len(afters) > 1 else "one run, bootstrap over images"))
f2 = lambda v: f"{v:.2f}".replace("-0.00", "0.00")  # noqa: E731 (a rounded zero prints without a sign)
r2_table = pd.DataFrame({
    "linear head on the transplant": [f"{f2(r.value)} [{f2(r.low)}, {f2(r.high)}]" for r in frozen.itertuples()],
    "fine-tuned": [f"{f2(v)} [{f2(lo)}, {f2(hi)}]" for v, lo, hi in tuned_r2.values()],
}, index=frozen.index)
r2_table

# %%
nothing = bool((frozen["low"] < 0).all() and (frozen["high"] < min(lo for _, lo, _ in tuned_r2.values())).all())
frozen_said = vn.claim(
    nothing, "A linear head on the transplant's frozen features predicts no target better than the targets' mean "
    "(every R^2 interval includes 0, and lies below every fine-tuned one).",
    "A linear head on the transplant's frozen features already predicts some of the targets (an R^2 interval above 0 "
    "or overlapping a fine-tuned one).")
print(frozen_said)

# %% [markdown]
# ## Before and after, on one image
#
# The last layer's CLS map (mean over heads) on the first two test spectrograms, before and
# after fine-tuning, and the difference (red: gained, blue: lost). Then layer 0, the layer
# whose attention moved onto the chirp. The spectrogram is drawn in grey so that the map's
# colours (viridis: dark blue = little, yellow = much) cannot be mistaken for the spectrogram's
# own; before and after share one colour scale with its bar, the difference has its own; each
# title gives the map's H / log N (1 = uniform). The white line outlines the chirp, from the
# ground-truth mask.

# %%
cls = {name: vn.capture(model, x[:2], cls_only=True) for name, model in models.items()}
chirp = [m == vn.data.REGIONS.index("chirp") for m in masks[:2]]  # [56, 56] bool each
look = dict(grey=True, cmap="viridis", alpha=0.7, outline_colour="white")
vn.show.before_after(ds[0]["image"], cls["before"].cls_grid(-1)[0].mean(0), cls["after"].cls_grid(-1)[0].mean(0),
                titles=("before, layer 11", "after, layer 11"), outline=chirp[0], **look)

# %%
vn.show.before_after(ds[1]["image"], cls["before"].cls_grid(0)[1].mean(0), cls["after"].cls_grid(0)[1].mean(0),
                titles=("before, layer 0", "after, layer 0"), outline=chirp[1], **look)

# %% [markdown]
# Two images are two samples, not the average: here is how much of layer 0's CLS attention these two
# give the chirp, against the mean over all $N$ images.

# %%
two = {name: vn.evaluate.finetune_stats(m, x[:2], masks[:2])["chirp mass / area"].to_numpy() for name, m in models.items()}
for i in range(2):
    print(f"image {i}: layer 0's chirp mass / area {two['before'][i]:.2f} before, {two['after'][i]:.2f} after")
print(f"mean over the {N} images: {ci(C, 'before')} before, {ci(C, 'after')} after")

# %% tags=["hide-input"]
from IPython.display import Markdown

runs_said = vn.claim(
    len(afters) >= 2,
    f"{len(afters)} fine-tuning runs of the recipe ({', '.join(RUNS)}); 'after' and 'change' are means over the runs "
    "with a Student-t 95 % interval over the runs, 'before' a mean over images with its bootstrap interval.",
    f"Only one fine-tuning run is in the zoo ({RUNS[0]}, seed 0), so every interval is a bootstrap over the {N} "
    "images: it says how precisely these images measure this run's change, not how much a run with another seed "
    "would differ.")
direction_said = vn.claim(
    same_direction, "Same direction as the seed, both intervals clear of 0,",
    "Not clearly the seed's direction (an interval reaches 0 or lies on the other side),")
size_said = vn.claim(smaller, "and less than half the seed's change.", "and not clearly smaller than the seed's change.")
roll_said = vn.claim(
    roll_less, f"Rollout's entropy moves less than the last layer's ({ci(R, 'change', '+.3f')} nats; seed "
    f"{seed_d[R]:+.2f}), as the seed found.",
    f"Rollout's entropy does not clearly move less than the last layer's ({ci(R, 'change', '+.3f')} nats; seed "
    f"{seed_d[R]:+.2f}).")
layer_said = vn.claim(
    biggest != 11, f"The layer whose mean entropy changes most is layer {biggest} ({change[biggest]:+.2f} nats), not the "
    "last one;", f"The layer whose mean entropy changes most is the last one ({change[biggest]:+.2f} nats);")
early_said = vn.claim(
    abs(change[0]) > late, f'layer 0 changes by {change[0]:+.2f} nats, more than layers 8-11 on average ({late:.2f}), '
    'so "early layers barely change" does not hold for it.',
    f"layers 0-3 change by {early:.2f} nats on average and layers 8-11 by {late:.2f}.")
chirp_moves = bool(ours.loc[(C, "change"), "low"] > 0 and ours.loc[(C, "after"), "low"] > 1)
chirp_said = vn.claim(
    chirp_moves,
    f"**Layer 0 moves onto the chirp**: its CLS attention gives the chirp {ci(C, 'after', '.1f')}x its area share after "
    f"fine-tuning, from {ci(C, 'before', '.1f')}x before (a uniform map gives 1x);",
    f"Layer 0's CLS attention gives the chirp {ci(C, 'after', '.1f')}x its area share after fine-tuning and "
    f"{ci(C, 'before', '.1f')}x before: no clear move onto the chirp;")
rest_said = (f"in layers 1-11 it gets {r_after.loc[1:11].min():.2f}x to {r_after.loc[1:11].max():.2f}x against a "
             f"uniform map's 1x ({below_uniform} of these 11 layers below it): "
             + vn.claim(r_after.loc[1:11].max() < 1.1, "none draws the chirp clearly more than a uniform map would.",
                        "some draw it more than a uniform map would."))
lost_said = vn.claim(
    bool(lost.sum() <= 9),
    f"The distractors lose attention in only {int(lost.sum())} of 12 layers: fine-tuning did not teach the CLS token "
    "to ignore them.", f"The distractors lose attention in {int(lost.sum())} of 12 layers.")
as_large_said = f"layers {', '.join(map(str, as_large))}" if as_large else "no layer"
transplant_said = (
    f"**The transplant or the fine-tuning.** Compared with `{original.name}` reading the same spectrograms (every map on "
    f"the transplant's grid), the transplant alone lowers the CLS entropy over log N in {t_lower} of {n_layers} layers "
    f"and fine-tuning in {f_lower} (intervals below 0); the transplant's mean change is at least fine-tuning's in "
    f"{as_large_said}. The before/after changes above leave this part out. In the last layer the original is at "
    f"{cell(H, last, 'original, own data')} of uniform on its own images and {cell(H, last, 'original')} on the "
    f"spectrograms (the seed's \"before\": {seed_frac:.2f}); the transplant changes that by "
    f"{cell(H, last, 'transplant effect', '+.2f')}, fine-tuning by {cell(H, last, 'fine-tuning effect', '+.2f')}, "
    f"to {cell(H, last, 'fine-tuned')}. "
    + vn.claim(not onto_chirp,
               f"The move onto the chirp is fine-tuning's: the transplant takes layer 0's chirp ratio from "
               f"{cell(Q, 0, 'original')} to {cell(Q, 0, 'transplant')}, fine-tuning adds "
               f"{cell(Q, 0, 'fine-tuning effect', '+.2f')}.",
               f"The transplant already raises layer 0's chirp ratio, by {cell(Q, 0, 'transplant effect', '+.2f')}; "
               f"fine-tuning adds {cell(Q, 0, 'fine-tuning effect', '+.2f')}.")
    + f" {frozen_said}")
trained_said = vn.claim(
    r2["start_time"] < 0.5,
    f"R^2 for the start time is {r2['start_time']:.2f}, so `{RECIPE}` is under-trained and these are the changes of a "
    "partly fine-tuned model.", f"R^2 for the start time is {r2['start_time']:.2f}.")
Markdown(f"""
## What we found

On {N} test spectrograms, comparing the transplant (the fine-tuning run's starting point, before any step) with
`{RECIPE}`. {runs_said}

- The last layer's CLS entropy goes from {ci(E, 'before')} to {ci(E, 'after')} nats (change
  {ci(E, 'change', '+.2f')}; the seed reports {seed_d[E]:+.2f}; a uniform map has {uniform_h:.2f}, so "before" is
  {ours_frac:.2f} of uniform, the seed's "before" {seed_frac:.2f}), and its top-10 share from {ci(T, 'before', '.1%')}
  to {ci(T, 'after', '.1%')} (seed: {seed[T][0]:.1%} to {seed[T][1]:.1%}). {direction_said} {size_said}
- {roll_said}
- {layer_said} {early_said}
- Mean attention distance changes by at most {dist.abs().max():.1f} px (out of about
  {table['distance after (px)'].mean():.0f} px): {dist.loc[10:11].mean():+.2f} px in layers 10-11 (the seed: more
  local), {dist.loc[1:4].mean():+.2f} px in layers 1-4, and {dist[0]:+.2f} px in layer 0 (the seed: layers 0-1
  slightly more global).
- {chirp_said} {rest_said} {lost_said}
- {transplant_said}
- {trained_said}
""")

# %% [markdown]
# **On ImageNet-scale ViTs.** This page's starting point is a small ViT trained on 28-pixel garments, with
# position embeddings interpolated onto a larger grid and no local heads, as {cite:t}`raghu2021vitsee`
# found for ViTs trained without large pre-training data. A ViT-B/16 pre-trained on ImageNet-21k, the kind
# of model the seed fine-tuned, starts with general early features and local lower-layer heads, so we
# expect its early layers to move less than this model's do, and the seed's locality claims to have
# something to act on. How much the last layer focuses, and whether rollout moves less than the last
# layer, may change with it. Check it with
# `VITNOTES_MODELS=hub jupyter execute --output=../hub_07 notebooks/07_fine_tuning.ipynb` after making the
# fine-tuned ViT-B/16 once with `python -m vitnotes.train spectro-vit-b16`
# ([Running on hub models](../book/hub_models.md)); it writes the executed copy to `hub_07.ipynb` at the
# repository's root, whose "What we found" is computed for the hub models.

# %% [markdown]
# ## Exercises
#
# 1. `vn.finetune_table` measures the chirp's share in layer 0. Measure it in the last layer
#    (`chirp_layer=-1`): does the last layer move onto the chirp too?
#
# ````{admonition} Solution
# :class: dropdown
# ```python
# last = vn.finetune_table(before, afters, x, masks, chirp_layer=-1)
# vn.evaluate.interval_table(last, index=("statistic",)).loc[["chirp mass / area"]]
# ```
# Compare the "change" interval with 0 and the "after" interval with 1 (the uniform map's ratio).
# The per-layer table of the section "Does attention move onto the chirp?" already shows the
# means layer by layer; the interval says whether the last layer's change is more than these
# images' noise.
# ````
#
# 2. The CLS row is only one query. Use `vn.capture` to measure how much attention the *chirp
#    patches* (as queries) give to the chirp, before and after, in layer 0.
#
# ````{admonition} Solution
# :class: dropdown
# ```python
# def chirp_to_chirp(model, x, masks, layer=0):
#     att = vn.capture(model, x, layers=[layer])  # full attention: probs [1, batch, head, T, T]
#     chirp = vn.stats.mask_coverage(torch.from_numpy(masks == vn.data.REGIONS.index("chirp")), att.grid)
#     cover = chirp.flatten(1).float()  # [batch, patches]: each patch's share of chirp pixels
#     q = att.probs[0][:, :, 1:, 1:]  # patch queries -> patch keys, CLS dropped
#     q = q / q.sum(-1, keepdim=True)
#     to_chirp = (q * cover[:, None, None, :]).sum(-1).mean(1)  # [batch, patches]: each query's mass on the chirp
#     weight = cover / cover.sum(1, keepdim=True)  # queries weighted by their chirp pixels
#     return (to_chirp * weight).sum(1)  # [batch]
#
# for name, model in models.items():
#     iv = vn.bootstrap(chirp_to_chirp(model, x[:32], masks[:32]).numpy())
#     print(f"{name}: {iv.value:.3f} [{iv.low:.3f}, {iv.high:.3f}] of the chirp patches' attention on the chirp")
# ```
# A uniform map would give the chirp's area share of the pixels (printed above, under the mass
# table); values well above it mean the chirp patches look at each other.
# ````
#
# 3. The transplant changes the input size, the colour channels, the normalisation and the position
#    grid at once. Take the size alone: run `fmnist-vit-p4` on the spectrograms at the transplant's size
#    but in grey with its own normalisation (transformers interpolates its position embeddings on the
#    fly, bicubically, as the transplant does) and put its per-layer statistics next to the
#    "original" and "transplant" rows above.
#
# ````{admonition} Solution
# :class: dropdown
# ```python
# pre = original.preprocessing
# x_big = vn.core.Preprocessing(gb.image_size, pre.mean, pre.std, pre.channels)(list(ds["image"]))
# big = vn.evaluate.layer_stats(original, x_big, masks)  # on its own grid, which is now the transplant's
# pd.DataFrame({name: v.mean(0) for name, v in big.items()}).round(2)
# ```
# The transplant's kernel, divided over three channels, reads the mean of the channels, so this model
# differs from the transplant only in how colour becomes grey and in the normalisation. Rows close to the
# transplant's mean that the size, not the colour or the normalisation, makes the transplant effect.
# ````
