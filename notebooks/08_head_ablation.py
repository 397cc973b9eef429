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
# # 08 · Which heads does the model need?
#
# Attention maps show where an {term}`attention head` looks, not whether the model uses what it
# sees. {term}`Head ablation` asks the second question directly {cite:p}`michel2019sixteen`: remove
# one head's output, run the model, and measure how much worse the loss gets. Doing this for every
# head gives a map of what the model needs.
#
# A study of ViTs fine-tuned on spectrogram images with irrelevant content (axis labels,
# titles, colour bars) {cite:p}`bahador2025spectro` — the setup `spectro-vit` reproduces —
# reports that ablating a head of the early layers 1-3 raises the MSE by 0.11 % on average
# (sd 0.09 %), while deeper heads matter more, e.g. layer 6 at 0.34 % (sd 0.02 %), three
# times as much. It also describes heads by what they attend to: chirp-focused heads in the
# intermediate and late layers (6-11), and text or edge detectors among the early ones. We run
# the same experiment on `spectro-vit`, first measuring how much its numbers move when the images
# change (the noise floor every later comparison is read against), then with a second kind of
# ablation, then sort its heads with the ground-truth masks, then estimate the same numbers on eight
# times as many images with attribution patching, and finally repeat the sweep on the Fashion-MNIST
# classifier it was fine-tuned from.

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
_ = torch.set_grad_enabled(False)  # we only read the models here

# %%
RECIPE = vn.pick("spectro-vit", hub="spectro-vit-b16")  # the hub recipe: ViT-B/16 fine-tuned on spectrograms
spectro = vn.train.trained(RECIPE)
fmnist = vn.load(vn.pick("fmnist-vit-p4", hub="google/vit-base-patch16-224"))  # the model it started from
spectro, fmnist

# %% [markdown]
# ## Ablating every head of `spectro-vit`
#
# `vn.ablate` zeros a head's slice of the attention output just before the output projection
# (transformers 5 dropped `head_mask`); `vn.sweep` does this for each of the 144 heads alone
# and returns the loss and its relative increase over the intact model. Its fast path
# computes the residual stream entering a layer once for all of that layer's heads and runs
# only the rest of the network per head, with the same losses as one full forward per head.
# That is still about 66 full forward passes per image, the slowest computation of the book, so we
# use a modest number of test spectrograms, 32, and keep every image's loss (`per_image=True`) for
# the intervals and the noise floor below.

# %%
N_SPECTRO, N_REF, N_MORE = 32, 16, 224
x_all, y_all = vn.train.spectro_split("test", N_SPECTRO + N_REF + N_MORE, RECIPE)  # image i depends only on (seed, i)
x, y = x_all[:N_SPECTRO], y_all[:N_SPECTRO]  # pixel_values [32, 3, 56, 56], z-scored targets [32, 3]
x_ref = x_all[N_SPECTRO : N_SPECTRO + N_REF]  # 16 other test spectrograms: the reference set of mean-ablation (below)
x_more, y_more = x_all[N_SPECTRO + N_REF :], y_all[N_SPECTRO + N_REF :]  # 224 more, for attribution patching (below)
size = spectro.geometry.image_size
masks = np.stack(vn.data.spectrograms(N_SPECTRO, seed=3, size=size)["mask"])  # [N, 56, 56] region codes
sweep = vn.sweep(spectro, x, y, per_image=True, progress=vn.show_progress())  # MSE, from the model's problem_type
print(f"{sweep.attrs['n']} images, loss {sweep.attrs['loss']}, intact MSE {sweep.attrs['baseline']:.4f}, "
      f"{len(sweep)} heads ablated one at a time")

# %%
sweep["increase (%)"] = 100 * sweep["rel_increase"]
worst = sweep.loc[sweep["increase (%)"].idxmax()]
print(f"most needed head: layer {int(worst['layer'])}, head {int(worst['head'])} (+{worst['increase (%)']:.1f} % MSE); "
      f"{int((sweep['increase (%)'] < 0).sum())} of {len(sweep)} heads lower the MSE on these images when zeroed")

# %% [markdown]
# ## The noise floor: how much do these numbers move with the images?
#
# Every number above comes from 32 spectrograms. Before comparing heads, layers or papers we need
# to know how much a head's number would move on *other* spectrograms. `vn.evaluate.sweep_subset` recomputes
# the sweep from the per-image losses for a subset of the images, so the two halves (16 and 16,
# disjoint) cost nothing extra; `vn.evaluate.sweep_agreement` compares them head by head: the rank
# correlation of the 144 increases and the typical (median) absolute difference of one head's
# increase, in percentage points.

# %% [markdown]
# ```{admonition} Predict before you run
# :class: tip
# Two disjoint sets of 16 spectrograms, the same 144 heads: will they rank the heads alike
# (Spearman near 1)? Will a head's increase differ by more or less than the paper's gap between
# early and layer-6 heads (0.23 percentage points)?
# ```

# %%
half = N_SPECTRO // 2
halves = [vn.evaluate.sweep_subset(sweep, range(half)), vn.evaluate.sweep_subset(sweep, range(half, N_SPECTRO))]  # A, B
for h_ in halves:
    h_["increase (%)"] = 100 * h_["rel_increase"]
noise = vn.evaluate.sweep_agreement(*halves, column="increase (%)")
FLOOR = noise["median_abs_diff"]  # percentage points: the noise floor every later comparison is read against
FLOOR_PAIR = "zero A vs zero B"
floor_iv = vn.evaluate.sweep_agreement_intervals({FLOOR_PAIR: tuple(halves)})  # 95 % intervals, A and B resampled apart
f_rho, f_mad = floor_iv.loc[(FLOOR_PAIR, "spearman")], floor_iv.loc[(FLOOR_PAIR, "median |difference|")]
noise_by_layer = pd.DataFrame({"half A mean (%)": halves[0].groupby("layer")["increase (%)"].mean(),
                               "half B mean (%)": halves[1].groupby("layer")["increase (%)"].mean()})
print(f"two halves of {half} spectrograms (A, B), the {noise['heads']} heads: Spearman {f_rho['value']:.2f} "
      f"[{f_rho['low']:.2f}, {f_rho['high']:.2f}]; a head's increase differs by {FLOOR:.2f} percentage points "
      f"(median [{f_mad['low']:.2f}, {f_mad['high']:.2f}]; largest {noise['max_abs_diff']:.1f}): the noise floor")
noise_by_layer.round(2).T

# %% [markdown]
# The brackets are 95 % bootstrap intervals: each half's 16 images are resampled on their own, the
# 144 increases recomputed and compared again (`vn.evaluate.sweep_agreement_intervals`). A 32-image number
# is the mean of the two halves, so its own error is about half the difference between the halves;
# rather than lean on that rule of thumb, every head now gets its own 95 % interval over the 32
# images (`vn.evaluate.head_intervals`). A head whose interval contains 0 is drawn grey and hatched: these
# images cannot tell whether zeroing it raises or lowers the MSE. The colour scale is linear within
# the noise floor and logarithmic beyond it, so a difference the images cannot resolve stays pale.

# %%
one_head = {f"layer {la}, head {h}": {(la, h): 1.0} for la, h in zip(sweep["layer"], sweep["head"])}
head_iv = vn.evaluate.head_intervals(sweep, one_head)  # percent, 95 % intervals over the 32 images, in the sweep's order
sweep["low (%)"], sweep["high (%)"] = head_iv["low"].to_numpy(), head_iv["high"].to_numpy()
up, down = sweep["low (%)"] > 0, sweep["high (%)"] < 0
LIMIT = float(sweep["increase (%)"].abs().max())  # the colour scale's half-range, shared with the heatmap below
print(f"{int(up.sum())} of {len(sweep)} heads raise the MSE with an interval above 0, {int(down.sum())} lower it with "
      f"an interval below 0; the other {int(len(sweep) - up.sum() - down.sum())} intervals contain 0 (with no effect "
      f"at all, about {round((1 - 0.95) * len(sweep))} of {len(sweep)} intervals would exclude 0 by chance)")
vn.show.head_heatmap(sweep, "increase (%)", low="low (%)", high="high (%)", fmt=".1f", symlog=FLOOR, limit=LIMIT,
                label=f"MSE increase when zeroed (%; linear within ±{FLOOR:.2f}, the floor)")

# %% [markdown]
# Per layer (mean, standard deviation across the 12 heads, the largest and the smallest single head):

# %%
per_layer = sweep.groupby("layer")["increase (%)"].agg(["mean", "std", "max", "min"])
worst = sweep.loc[sweep["increase (%)"].idxmax()]  # now with its interval
vn.check(worst["layer"] == 0, "the most needed head is in layer 0")
vn.check(per_layer.loc[1:, "max"].max() < worst["increase (%)"] / 5, "layer 0's worst head dwarfs all others")
out_of_0 = sweep[sweep["layer"] > 0]
print(f"outside layer 0: {int((out_of_0['low (%)'] > 0).sum())} of {len(out_of_0)} heads have an interval above 0, "
      f"{int((out_of_0['high (%)'] < 0).sum())} below 0")
per_layer.round(2)

# %% [markdown]
# ## Zero or mean? A second kind of ablation
#
# Zeroing a head's output feeds the next layer something it never saw in training. Mean-ablation
# replaces the head's output instead by its mean over a reference set (here 16 other test
# spectrograms, token by token: `vn.interventions.head_means`), which removes what the head says about *this*
# image but keeps its average contribution. Does the kind of ablation change which heads matter?
# Comparing the two ablations on the same images would not answer that against the noise floor:
# the same images share their noise, so any two measurements on them agree more than two image sets
# can. We compare like with like instead: zero-ablation on half A against mean-ablation on half B
# (disjoint images, as the floor's two halves), next to zero-ablation on A against zero-ablation on B.
# If the kind of ablation mattered, the first pair would agree less than the second.

# %%
means = vn.interventions.head_means(spectro, x_ref)  # {layer: [197 tokens, 12 heads x 16 dims]}
sweep_mean = vn.sweep(spectro, x[half:], y[half:], means=means, per_image=True, progress=vn.show_progress())  # half B
sweep_mean["increase (%)"] = 100 * sweep_mean["rel_increase"]
KIND_PAIR = "zero A vs mean B"
kinds = vn.evaluate.sweep_agreement_intervals({FLOOR_PAIR: tuple(halves), KIND_PAIR: (halves[0], sweep_mean)},
                                     reference=FLOOR_PAIR)  # the same resamples for both pairs
kinds.round(2)

# %%
k_rho, k_diff = kinds.loc[(KIND_PAIR, "spearman")], kinds.loc[(f"{KIND_PAIR} minus {FLOOR_PAIR}", "spearman")]
k_mad = kinds.loc[(KIND_PAIR, "median |difference|")]
worst_mean = sweep_mean.loc[sweep_mean["increase (%)"].idxmax()]
ablation_said = (
    f"Zero-ablation on half A and mean-ablation on half B rank the {int(k_rho['items'])} heads with Spearman "
    f"{k_rho['value']:.2f} [{k_rho['low']:.2f}, {k_rho['high']:.2f}] and differ by {k_mad['value']:.2f} points per head "
    f"(median); zero-ablation on the two halves, {f_rho['value']:.2f} [{f_rho['low']:.2f}, {f_rho['high']:.2f}] and "
    f"{FLOOR:.2f} points ({half} + {half} images). The difference of the two Spearman correlations is "
    f"{k_diff['value']:.2f} [{k_diff['low']:.2f}, {k_diff['high']:.2f}]: "
    + vn.claim(k_diff["high"] < 0, "mean-ablation ranks the heads less like zero-ablation than a second image set "
               "does, so the kind of ablation matters beyond the image noise.",
               vn.claim(k_diff["low"] > 0, "the two ablations agree more than two image sets do, which should not happen "
                        "if the images alone set the agreement.",
                        f"its interval contains 0, so with {half} images a set the kind of ablation cannot be told "
                        "apart from the choice of images.")))
print(ablation_said)
print(f"Largest mean-ablation effect on half B: layer {int(worst_mean['layer'])}, head {int(worst_mean['head'])} "
      f"(+{worst_mean['increase (%)']:.1f} %).")

# %% [markdown]
# ## Against the paper's numbers
#
# The paper numbers its layers from 1, we from 0, so its "layers 1-3" are our layers 0-2 and
# its "layer 6" is our layer 5. (Read with 0-based numbers instead, its claim would be about
# our layers 1-3 and 6; both readings are in the table.) First the means and standard deviations
# over heads, as the paper reports them; then the same means with 95 % bootstrap intervals over
# our 32 images, and the deep-minus-early difference the paper's claim is about (+0.23 points there).

# %%
def layer_stats(layers):
    v = sweep.loc[sweep["layer"].isin(layers), "increase (%)"]
    return {"mean (%)": v.mean(), "sd (%)": v.std()}


compare = pd.DataFrame({
    "paper": {"early mean (%)": 0.11, "early sd (%)": 0.09, "layer 6 mean (%)": 0.34, "layer 6 sd (%)": 0.02},
    "ours, 1-based reading (0-2 vs 5)": {
        "early mean (%)": layer_stats([0, 1, 2])["mean (%)"], "early sd (%)": layer_stats([0, 1, 2])["sd (%)"],
        "layer 6 mean (%)": layer_stats([5])["mean (%)"], "layer 6 sd (%)": layer_stats([5])["sd (%)"]},
    "ours, 0-based reading (1-3 vs 6)": {
        "early mean (%)": layer_stats([1, 2, 3])["mean (%)"], "early sd (%)": layer_stats([1, 2, 3])["sd (%)"],
        "layer 6 mean (%)": layer_stats([6])["mean (%)"], "layer 6 sd (%)": layer_stats([6])["sd (%)"]},
})
compare.loc["deep / early"] = compare.loc["layer 6 mean (%)"] / compare.loc["early mean (%)"]
compare.round(2)

# %%
H = spectro.geometry.heads


def mean_of(layers, sign=1.0):
    """Weights that average every head of ``layers`` (times ``sign``)."""
    return {(la, h): sign / (H * len(layers)) for la in layers for h in range(H)}


readings = {"1-based": ([0, 1, 2], [5]), "0-based": ([1, 2, 3], [6])}
contrasts = {}
for name, (early_l, deep_l) in readings.items():
    contrasts[f"{name}: early {early_l[0]}-{early_l[-1]}"] = mean_of(early_l)
    contrasts[f"{name}: layer {deep_l[0]}"] = mean_of(deep_l)
    contrasts[f"{name}: layer {deep_l[0]} minus early"] = {**mean_of(early_l, -1.0), **mean_of(deep_l)}
paper_iv = vn.evaluate.head_intervals(sweep, contrasts)  # percent, 95 % intervals over the 32 images
paper_iv_mean = vn.evaluate.head_intervals(sweep_mean, contrasts)  # mean-ablation, the 16 images of half B
pd.concat({"zero-ablation (32 images)": paper_iv, "mean-ablation (16 images)": paper_iv_mean}, axis=1).round(2)

# %%
PAPER_GAP = 0.34 - 0.11  # percentage points: the paper's layer-6 heads minus its early heads


def reading(name, iv_zero, iv_mean):
    """One reading's deep-minus-early contrast under both ablations: its words, whether it is below 0
    under both, and whether it is below the paper's gap under both."""
    z, m = iv_zero.loc[name], iv_mean.loc[name]
    said = (f"{name.split(':')[0]}: zero {z['value']:.2f} [{z['low']:.2f}, {z['high']:.2f}], "
            f"mean {m['value']:.2f} [{m['low']:.2f}, {m['high']:.2f}]")
    return said, z["high"] < 0 and m["high"] < 0, z["high"] < PAPER_GAP and m["high"] < PAPER_GAP


said1, rev1, small1 = reading("1-based: layer 5 minus early", paper_iv, paper_iv_mean)
said0, rev0, small0 = reading("0-based: layer 6 minus early", paper_iv, paper_iv_mean)
reversed_in = [r for r, rev in (("1-based", rev1), ("0-based", rev0)) if rev]
paper_said = (
    f"Deep-minus-early difference, percentage points with 95 % intervals ({said1}; {said0}). "
    + vn.claim(small1 and small0, f"Under both ablations and in both readings it lies below the paper's "
               f"+{PAPER_GAP:.2f} points, interval and all. ",
               f"Not every reading and ablation rules out the paper's +{PAPER_GAP:.2f} points. ")
    + vn.claim(bool(reversed_in), f"It is below zero under both ablations in the {' and '.join(reversed_in)} "
               "reading: there deep heads matter *less* than early ones, the opposite of the paper",
               "No reading is below zero under both ablations")
    + vn.claim(len(reversed_in) == 2, ".", "; in the other the sign depends on the kind of ablation or the "
               "interval contains 0, so the reversal holds only where stated."))
floor_said = vn.claim(
    FLOOR < PAPER_GAP,
    f"A single head's number moves by {FLOOR:.2f} points between two sets of {half} images, less "
    f"than the paper's gap, so a gap of that size between single heads would show here.",
    f"A single head's number moves by {FLOOR:.2f} points between two sets of {half} images, more "
    f"than the paper's gap: only averages over many heads (the intervals above) can resolve a gap of that size.")
print(paper_said)
print(floor_said)

# %% [markdown]
# Where the two readings and the two ablations agree, the intervals say how sure the comparison
# with the paper is; where they disagree, the printed verdict says so. The deep layers' spread
# across heads is also much larger than the paper's 0.02 %, relative to their mean. (The paper's
# sd is across heads; ours, as the noise floor shows, also contains a sizeable share of image noise.)

# %%
early_ours, deep_ours = layer_stats([0, 1, 2])["mean (%)"], layer_stats([5])["mean (%)"]
late = per_layer.loc[6:11, "mean"].mean()
top_layer = int(per_layer["mean"].idxmax())
vn.check((compare.loc["deep / early", compare.columns[1:]] < 1).all(), "deep heads matter less than early ones (the opposite of the paper)")
vn.check(top_layer == 0, "layer 0 matters most")
vn.check((per_layer.loc[6:11, "std"] > per_layer.loc[6:11, "mean"].abs() / 2).all(), "late layers' spread across heads exceeds half their mean")
print(f"mean increase: layers 0-2 {early_ours:.2f} %, layer 5 {deep_ours:.2f} %, layers 6-11 {late:.2f} %")
print(f"layer with the largest mean increase: {top_layer} ({per_layer.loc[top_layer, 'mean']:.2f} %)")

# %% [markdown]
# ## What kind of head is it?
#
# The masks say, for every pixel, whether it is chirp, the rest of the spectrogram ("plot"),
# text, colour bar, axes or background. For each head, `vn.profile.attention_profile` measures the
# share of its CLS attention that lands in each region (mean over the same images), and
# `vn.profile.head_types` divides it by the region's share of the pixels: the **enrichment**, 1 for a
# head that spreads its attention uniformly, whatever the region's size. A region counts for
# a head when its enrichment is at least 2 (the head gives it twice its area share). A head
# is then a *chirp* head, a *text*, *colorbar*, *axes* or *plot* detector when exactly one
# region counts, *polysemantic* when two or more do, and *diffuse* when none does. The
# threshold is a choice: the table after this one shows how the counts move with it.

# %%
profile = vn.profile.attention_profile(spectro, x, masks, full=False)
types = vn.profile.head_types(profile, threshold=2.0)
print("area shares:", ", ".join(f"{r} {a:.3f}" for r, a in profile.attrs["area"].items()))
pd.crosstab(types["layer"], types["type"]).T

# %%
pd.DataFrame({t: vn.profile.head_types(profile, threshold=t)["type"].value_counts() for t in (1.5, 2.0, 3.0)}).fillna(0).astype(int)

# %%
counts = types["type"].value_counts()
chirp_layers = sorted(types.loc[types["type"] == "chirp", "layer"].unique().tolist())
loose = vn.profile.head_types(profile, threshold=1.5)
vn.check(counts.get("diffuse", 0) > len(types) / 2, "most heads are diffuse")
loose_layers = sorted(loose.loc[loose["type"] == "chirp", "layer"].unique().tolist())
bar_layers = sorted(types.loc[types["type"] == "colorbar", "layer"].tolist())
print(f"chirp heads in layers {chirp_layers} (threshold 1.5: layers {loose_layers}); colour-bar heads in layers {bar_layers}")

# %% tags=["hide-input"]
from IPython.display import Markdown

Markdown(vn.claim(counts.get("diffuse", 0) > len(types) / 2,
                  "Most heads are diffuse at this threshold: their CLS attention is spread over the image roughly in "
                  "proportion to area.", f"Only {counts.get('diffuse', 0)} of {len(types)} heads are diffuse.")
         + f" The chirp heads sit in layers {chirp_layers}"
         + vn.claim(bool(chirp_layers) and max(chirp_layers) >= 6,
                    ", reaching the intermediate and late layers where the paper found them",
                    ", not in the late layers where the paper found them")
         + f"; {counts.get('colorbar', 0)} heads pick out the colour bar and {counts.get('text', 0)} are text detectors at "
         f"a threshold of 2. At the looser threshold of 1.5 the chirp heads are in layers {loose_layers}. (We sort heads "
         "by their CLS row only, the query that feeds the regression head; the paper looked at attention maps more "
         "broadly.)")

# %% [markdown]
# ## Does the type predict the impact?
#
# We call a head *high impact* when the low end of its 95 % interval lies above the noise floor:
# zeroing it raises the MSE, on these images, by more than two image sets typically disagree on
# a head. The cut comes from the measured floor, not from a chosen number, and we compare it with
# the type.

# %%
heads = types.merge(sweep, on=["layer", "head"])
heads["impact"] = np.where(heads["low (%)"] > FLOOR, "high", "rest")
high = heads[heads["impact"] == "high"]
print(f"high impact (interval's low end above the floor, {FLOOR:.2f} points): {len(high)} of {len(heads)} heads, "
      f"in layers {sorted(high['layer'].unique().tolist())}")
table = pd.crosstab(heads["type"], heads["impact"])
table["mean increase (%)"] = heads.groupby("type")["increase (%)"].mean()
table["max increase (%)"] = heads.groupby("type")["increase (%)"].max()
table.round(2)

# %%
chirp_mean = heads.loc[heads["type"] == "chirp", "increase (%)"].mean()
diffuse_mean = heads.loc[heads["type"] == "diffuse", "increase (%)"].mean()
top5 = heads.nlargest(5, "increase (%)")[["layer", "head", "type", "top_region", "increase (%)", "low (%)", "high (%)"]]
chirp_high = heads.loc[heads["type"] == "chirp", "impact"] == "high"
vn.check(chirp_mean > 10 * diffuse_mean and (top5["layer"] == 0).all() and (top5["top_region"] == "chirp").sum() >= 3,
         "chirp heads cost 10x diffuse ones; the top five heads are chirp-led layer-0 heads")
print(f"mean increase: chirp heads {chirp_mean:.2f} %, diffuse heads {diffuse_mean:.2f} %")
top5.round(2)

# %% tags=["hide-input"]
Markdown(vn.claim(chirp_high.all(), "Here the type does predict the impact: every chirp head is high impact",
                  f"The type predicts the impact only in part: {int(chirp_high.sum())} of {len(chirp_high)} chirp heads "
                  f"are high impact, against {len(high)} of {len(heads)} heads in all")
         + f", and zeroing a chirp head raises the MSE by {chirp_mean:.1f} % on average, a diffuse one by "
         f"{diffuse_mean:.2f} %. The five heads the model needs most are in layer 0, {int((top5['top_region'] == 'chirp').sum())} "
         "of them led by the chirp: the place where this model's attention has moved onto the task-relevant region "
         "(chapter 07 found it in layer 0) is also where ablation hurts most.")

# %% [markdown]
# ## Is a layer's chirp head above the other heads of its layer?
#
# Comparing chirp heads with heads of other layers mixes two things: what the head attends to and
# how much its layer matters. Within one layer the second cancels. For every layer we take the head
# whose CLS attention is most enriched on the chirp and compare its ablation effect with the mean of
# the other eleven heads of the same layer: a difference in percentage points with its 95 % interval
# over the 32 images (`vn.evaluate.head_intervals`, weights +1 on the head and -1/11 on each other head).

# %%
chirpiest = types.loc[types.groupby("layer")["enrich_chirp"].idxmax(), ["layer", "head", "enrich_chirp", "type"]]
chirpiest = chirpiest.set_index("layer")  # one row per layer: its head most enriched on the chirp
within = {f"layer {la}": {(la, h): (1.0 if h == hd else -1.0 / (H - 1)) for h in range(H)}
          for la, hd in chirpiest["head"].items()}
within_iv = vn.evaluate.head_intervals(sweep, within)
effect = sweep.set_index(["layer", "head"])["increase (%)"]
chirpiest["effect (%)"] = [effect[(la, hd)] for la, hd in chirpiest["head"].items()]
chirpiest["minus layer's others (%)"] = within_iv["value"].to_numpy()
chirpiest["low"], chirpiest["high"] = within_iv["low"].to_numpy(), within_iv["high"].to_numpy()
chirpiest["rank in layer"] = [int((effect.loc[la] > effect[(la, hd)]).sum()) + 1 for la, hd in chirpiest["head"].items()]
chirpiest.round(2)

# %%
above = chirpiest.index[chirpiest["low"] > 0].tolist()
below = chirpiest.index[chirpiest["high"] < 0].tolist()
chirp_type_layers = chirpiest.index[chirpiest["type"] == "chirp"].tolist()
typed_above = [la for la in chirp_type_layers if la in above]
within_said = " ".join([
    vn.claim(bool(above), f"The most chirp-enriched head is above the rest of its layer, interval and all, in "
             f"layer{'s' if len(above) > 1 else ''} {', '.join(map(str, above))}",
             "In no layer is the most chirp-enriched head above the rest of its layer with an interval that excludes 0"),
    vn.claim(bool(below), f"and below it in layer{'s' if len(below) > 1 else ''} {', '.join(map(str, below))};",
             "and in none below it;"),
    f"the intervals of the other {len(chirpiest) - len(above) - len(below)} layers include 0.",
    vn.claim(bool(chirp_type_layers) and typed_above == chirp_type_layers,
             "Every layer whose chirpiest head counts as a chirp head (layers "
             f"{', '.join(map(str, chirp_type_layers))}) is among those where it stands out.",
             "Not every layer whose chirpiest head counts as a chirp head is among those where it stands out."),
])
print(within_said)

# %% [markdown]
# ## More images for one pass each: attribution patching
#
# Every interval so far comes from 32 spectrograms, because the sweep costs about 66 forward passes
# per image. {term}`Attribution patching` estimates every head's zero-ablation effect at once, to
# first order: the gradient of the loss with respect to the head's output times the change that
# zeroing makes to it {cite:p}`nanda2023atp`, one forward and one backward pass per image. It is
# known to fail where an effect is large or saturates {cite:p}`kramar2024atp`. `vn.attribution_sweep`
# lays the estimates out as a sweep, so the same interval tools read them. We run it on 256
# spectrograms (the sweep's 32 and 224 others) and first check it against the real ablation on the
# sweep's own 32 images: the same images, because here the question is the estimate's error, not
# the images' noise.

# %%
x_atp, y_atp = torch.cat([x, x_more]), torch.cat([y, y_more])  # 256 spectrograms, the sweep's 32 first
atp = vn.attribution_sweep(spectro, x_atp, y_atp)  # one forward and one backward per image
atp["increase (%)"] = 100 * atp["rel_increase"]
atp_same = vn.evaluate.sweep_subset(atp, range(N_SPECTRO))  # the estimate on the sweep's own 32 images
L = spectro.geometry.layers
ZERO, REST = f"layer 0 ({H} heads)", f"layers 1-{L - 1} ({(L - 1) * H} heads)"
groups = {f"all {L * H} heads": None, ZERO: [0], REST: list(range(1, L))}
atp_check = pd.concat({g: vn.evaluate.sweep_agreement_intervals({"patching vs ablation": (sweep, atp_same)}, same_images=True,
                                                       layers=ls).droplevel("pair") for g, ls in groups.items()})
atp_check.round(2)

# %%
rest_rho, rest_err = atp_check.loc[(REST, "spearman")], atp_check.loc[(REST, "median |difference|")]
zero_err = atp_check.loc[(ZERO, "median |difference|")]
atp_ok = rest_err["high"] < f_mad["low"]
atp_said = (
    f"On the same {N_SPECTRO} spectrograms, attribution patching ranks the heads of layers 1-{L - 1} like the real "
    f"ablation with Spearman {rest_rho['value']:.2f} [{rest_rho['low']:.2f}, {rest_rho['high']:.2f}] and misses a head's "
    f"increase by {rest_err['value']:.2f} points (median [{rest_err['low']:.2f}, {rest_err['high']:.2f}]), "
    + vn.claim(atp_ok, f"below the noise floor ({FLOOR:.2f} [{f_mad['low']:.2f}, {f_mad['high']:.2f}]): there its error "
               f"is smaller than what another set of {half} images changes, so more images pay.",
               f"not clearly below the noise floor ({FLOOR:.2f} [{f_mad['low']:.2f}, {f_mad['high']:.2f}]): its error is as "
               "large as the image noise, so more images of it buy little.")
    + f" In layer 0, where the effects are large, it misses by {zero_err['value']:.1f} points (median [{zero_err['low']:.1f}, "
    f"{zero_err['high']:.1f}]): there only the sweep measures.")
print(atp_said)

# %% [markdown]
# Where the check above holds, outside layer 0, we read the estimate on all 256 images. Its intervals cover the
# choice of images only, not the estimate's own error (measured above). The heatmap uses the
# colour scale of the sweep's heatmap.

# %%
atp_iv = vn.evaluate.head_intervals(atp, one_head)  # percent, 95 % intervals over the 256 images
atp["low (%)"], atp["high (%)"] = atp_iv["low"].to_numpy(), atp_iv["high"].to_numpy()


def resolved(df):
    """How many heads outside layer 0 the images resolve, and how wide their intervals are."""
    rest = df[df["layer"] > 0]
    return {"above 0": int((rest["low (%)"] > 0).sum()), "below 0": int((rest["high (%)"] < 0).sum()),
            "contains 0": int(((rest["low (%)"] <= 0) & (rest["high (%)"] >= 0)).sum()),
            "low end above the floor": int((rest["low (%)"] > FLOOR).sum()),
            "median width (points)": float((rest["high (%)"] - rest["low (%)"]).median())}


more = pd.DataFrame.from_dict({f"ablation, {N_SPECTRO} images": resolved(sweep),
                               f"attribution patching, {len(x_atp)} images": resolved(atp)}, orient="index")
vn.show.head_heatmap(atp[atp["layer"] > 0], "increase (%)", low="low (%)", high="high (%)", fmt=".1f", symlog=FLOOR,
                limit=LIMIT, label=f"estimated MSE increase (%; linear within ±{FLOOR:.2f})", size=(6.4, 4.3))

# %%
m_abl, m_atp = more.iloc[0].astype(int), more.iloc[1].astype(int)  # head counts (the width column is not used here)
by_chance = round((1 - 0.95) * (L - 1) * H)  # intervals of heads with no effect that exclude 0 by chance, expected
print(f"heads of layers 1-{L - 1} by their 95 % interval (with no effect at all, about {by_chance} of {(L - 1) * H} "
      "intervals would exclude 0 by chance):")
more.round(2)

# %% [markdown]
# Do the heads that stood out on the sweep's 32 images stand out on the 224 images it did not see?
# And two comparisons that lie wholly outside layer 0, where the estimate holds: the paper's 0-based
# reading (layers 1-3 against layer 6) and each layer's chirpiest head against the rest of its
# layer. What do they give on all 256?

# %%
atp_new = vn.evaluate.sweep_subset(atp, range(N_SPECTRO, len(x_atp)))  # the 224 images the sweep did not see
new_iv = vn.evaluate.head_intervals(atp_new, one_head)
outside = (sweep["layer"] > 0).to_numpy()
was_up, was_down = outside & up.to_numpy(), outside & down.to_numpy()
held = int((was_up & (new_iv["low"] > 0).to_numpy()).sum() + (was_down & (new_iv["high"] < 0).to_numpy()).sum())
C0 = "0-based: layer 6 minus early"
c0_atp = vn.evaluate.head_intervals(atp, {C0: contrasts[C0]}).loc[C0]  # percentage points, 256 images
within_atp = vn.evaluate.head_intervals(atp, {k: w for k, w in within.items() if k != "layer 0"})
above_atp = [int(k.split()[1]) for k in within_atp.index[within_atp["low"] > 0]]
above_rest = [la for la in above if la > 0]


def in_layers(ls):
    """'layers 3, 8', 'layer 3' or 'no layer'."""
    return f"layer{'s' if len(ls) > 1 else ''} {', '.join(map(str, ls))}" if ls else "no layer"


replication_said = (
    vn.claim(m_atp["above 0"] + m_atp["below 0"] < m_abl["above 0"] + m_abl["below 0"],
             f"With {len(x_atp) // N_SPECTRO} times the images, fewer heads outside layer 0 stand out, not more. ",
             f"With {len(x_atp) // N_SPECTRO} times the images, at least as many heads outside layer 0 stand out. ")
    + f"Of the {int(was_up.sum() + was_down.sum())} heads outside layer 0 whose interval excluded 0 on the sweep's "
    f"{N_SPECTRO} images, {held} still do, with the same sign, on the {len(x_atp) - N_SPECTRO} other images (attribution "
    f"patching; with no effect, about {(1 - 0.95) / 2 * int(was_up.sum() + was_down.sum()):.1f} would by chance): "
    + vn.claim(held <= (was_up.sum() + was_down.sum()) / 2,
               f"most single-head effects outside layer 0 that the {N_SPECTRO} images resolved do not replicate.",
               "most of them replicate.")
    + f" The 0-based reading's layer 6 minus layers 1-3 is {c0_atp['value']:.2f} [{c0_atp['low']:.2f}, "
    f"{c0_atp['high']:.2f}] points on {len(x_atp)} images: "
    + vn.claim(c0_atp["high"] < 0, "below zero: in this reading deep heads matter less than early ones",
               vn.claim(c0_atp["low"] > 0, "above zero, the sign the paper reports",
                        "its interval contains 0: on more images this reading cannot tell the sign"))
    + vn.claim(c0_atp["low"] <= PAPER_GAP <= c0_atp["high"], f", and it contains the paper's +{PAPER_GAP:.2f} too.", ".")
    + f" Outside layer 0, the chirpiest head stands above the rest of its layer, interval and all, in "
    f"{in_layers(above_atp)} on {len(x_atp)} images (on the sweep's {N_SPECTRO}: {in_layers(above_rest)})."
)
print(replication_said)

# %% [markdown]
# ## The same sweep on the Fashion-MNIST classifier
#
# `fmnist-vit-p4` is the model `spectro-vit` started from: the same 12 x 12 heads, here on
# 28-pixel garments (a 7x7 grid, 50 tokens, so the sweep is cheap) with cross-entropy as the
# loss. Does it need its heads in the same layers?

# %%
N_FMNIST = 64  # 64 images keep the chapter's runtime small (the sweep's cost grows with the images)
images, labels, objects = vn.data.examples()
xf = fmnist.preprocess(images[:N_FMNIST])  # pixel_values [N, 1, 28, 28]
sweep_f = vn.sweep(fmnist, xf, labels[:len(xf)], batch_size=512, per_image=True,
                   progress=vn.show_progress())  # 4 heads per pass
sweep_f["increase (%)"] = 100 * sweep_f["rel_increase"]
print(f"{sweep_f.attrs['n']} images, loss {sweep_f.attrs['loss']}, intact cross-entropy {sweep_f.attrs['baseline']:.4f}")

# %%
both = pd.concat([sweep.assign(model=f"{RECIPE} (MSE)"), sweep_f.assign(model=f"{fmnist.name} (CE)")])
fig = vn.show.metric_by_layer(both, "increase (%)", hue="model",
                         ylabel=f"loss increase when zeroed\n(%; symlog, linear within ±{FLOOR:.2f})")
ax = fig.axes[0]
ax.set_yscale("symlog", linthresh=FLOOR)  # layer 0 is 100x the rest; within the floor the scale is linear
lo, hi = ax.get_ylim()
ticks = [t for t in (-1000, -100, -10, -FLOOR, 0, FLOOR, 10, 100, 1000) if lo <= t <= hi]
ax.set_yticks(ticks, labels=[f"{t:g}" if abs(t) < 100 else f"{t:.0f}" for t in ticks])
ax.minorticks_off()
fig

# %%
profile_f = sweep_f.groupby("layer")["increase (%)"].agg(["mean", "std", "max"])
layers = pd.concat({RECIPE: per_layer[["mean", "std", "max"]], fmnist.name: profile_f}, axis=1)
layers.round(2)

# %% [markdown]
# Did fine-tuning create this profile, or did `spectro-vit` keep it from the Fashion-MNIST classifier
# it started from? Two numbers bear on it, each with its 95 % interval (the two models' images are
# resampled apart): the rank correlation of the two models' head impacts (and of their layer means),
# and, for each model, how much more layer 0's heads matter than the rest.

# %%
PAIR_O = f"{fmnist.name} vs {RECIPE}"
origin = pd.concat({by: vn.evaluate.sweep_agreement_intervals({PAIR_O: (sweep_f, sweep)}, by=by).xs("spearman", level="statistic")
                    for by in ("head", "layer")}, names=["by"])
first = {f"layer 0 minus layers 1-{L - 1}": {**{(0, h): 1 / H for h in range(H)},
                                              **{(la, h): -1 / ((L - 1) * H) for la in range(1, L) for h in range(H)}}}
first_layer = pd.concat({RECIPE: vn.evaluate.head_intervals(sweep, first), fmnist.name: vn.evaluate.head_intervals(sweep_f, first)})
f_top = int(profile_f["mean"].idxmax())
f_early, f_late = profile_f.loc[0:2, "mean"].mean(), profile_f.loc[6:11, "mean"].mean()
print(f"{fmnist.name}: layers 0-2 {f_early:.2f} %, layers 6-11 {f_late:.2f} %, largest layer {f_top}")
for model_name, row in first_layer.droplevel(1).iterrows():
    print(f"{model_name}: layer 0's heads minus the rest {row['value']:.1f} [{row['low']:.1f}, {row['high']:.1f}] "
          f"points ({int(row['n'])} images)")
origin.round(2)

# %%
o_h, o_l = origin.loc[("head", PAIR_O)], origin.loc[("layer", PAIR_O)]
both_first = bool((first_layer["low"] > 0).all())
origin_said = (
    f"Head by head, the impacts of `{fmnist.name}` ({len(xf)} garments) and `{RECIPE}` ({N_SPECTRO} spectrograms) "
    f"rank with Spearman {o_h['value']:.2f} [{o_h['low']:.2f}, {o_h['high']:.2f}] over {int(o_h['items'])} heads, their "
    f"layer means with {o_l['value']:.2f} [{o_l['low']:.2f}, {o_l['high']:.2f}] over {int(o_l['items'])} layers: "
    + vn.claim(o_h["low"] > 0, "the heads one model needs tend to be the heads the other needs",
               "these images cannot show that the heads one model needs are the heads the other needs")
    + "; "
    + vn.claim(both_first, "both models need layer 0 more than their other layers, interval and all.",
               "not both models need layer 0 more than their other layers with an interval above 0.")
    + " Whether what layer 0 does was inherited, these numbers do not say: chapter 07 measured layer 0's attention "
    "moving onto the chirp during fine-tuning.")
print(origin_said)

# %% tags=["hide-input"]

lay = paper_iv.loc
paper_caveat = vn.claim(
    (rev0 or small0) and not (c0_atp["high"] < 0 and c0_atp["high"] < PAPER_GAP),
    f" But on {len(x_atp)} images (attribution patching, below) the 0-based reading gives {c0_atp['value']:.2f} "
    f"[{c0_atp['low']:.2f}, {c0_atp['high']:.2f}]: "
    + vn.claim(c0_atp["low"] <= 0 <= c0_atp["high"] and c0_atp["high"] >= PAPER_GAP,
               f"its interval holds both 0 and the paper's +{PAPER_GAP:.2f}, so in that reading neither the reversal nor "
               f"the gap below the paper's outlasts the sweep's {N_SPECTRO} images.",
               f"in that reading the verdict above rests on the sweep's {N_SPECTRO} images."),
    "")
falls_said = vn.claim(late < early_ours, "the impact *falls* with depth, the opposite of the paper's finding",
                      "the impact does not fall with depth")
late_chirp_said = vn.claim(types.query("type == 'chirp' and layer >= 6").empty,
                           "the paper's chirp-focused heads in layers 6-11 do not appear in this model",
                           "some are in layers 6-11, as in the paper")
Markdown(f"""
## What we found

- **Noise floor.** Between two disjoint sets of {half} spectrograms the {noise['heads']} per-head increases of `{RECIPE}`
  rank with Spearman {f_rho['value']:.2f} [{f_rho['low']:.2f}, {f_rho['high']:.2f}], and one head's increase differs by
  {FLOOR:.2f} percentage points (median [{f_mad['low']:.2f}, {f_mad['high']:.2f}]; largest {noise['max_abs_diff']:.1f}).
  Brackets are 95 % bootstrap intervals over the images.
- **Single heads** ({N_SPECTRO} spectrograms, 95 % intervals): {int(up.sum())} of {len(sweep)} heads raise the MSE with an
  interval above 0, {int(down.sum())} lower it with an interval below 0 (with no effect, about
  {round((1 - 0.95) * len(sweep))} would by chance), and the other {int(len(sweep) - up.sum() - down.sum())} cannot be
  told from 0; outside layer 0, of those {int(was_up.sum() + was_down.sum())}, {held} keep{'s' * (held == 1)} the sign on
  {len(x_atp) - N_SPECTRO} other images (attribution patching, below). The most needed head, layer {int(worst['layer'])} head
  {int(worst['head'])}, raises it by {worst['increase (%)']:.0f} % [{worst['low (%)']:.0f}, {worst['high (%)']:.0f}]. With
  the cut above the floor (interval's low end above {FLOOR:.2f} points), {len(high)} heads are high impact, in
  {in_layers(sorted(high['layer'].unique().tolist()))}.
- **Zero or mean.** {ablation_said}
- **Against the paper.** It reports 0.11 % for layers 1-3 and 0.34 % for layer 6 (+{PAPER_GAP:.2f} points). Ours, zero-ablation
  ({N_SPECTRO} images): layers 0-2 {lay['1-based: early 0-2', 'value']:.2f} % [{lay['1-based: early 0-2', 'low']:.2f},
  {lay['1-based: early 0-2', 'high']:.2f}], layer 5 {lay['1-based: layer 5', 'value']:.2f} %
  [{lay['1-based: layer 5', 'low']:.2f}, {lay['1-based: layer 5', 'high']:.2f}]. {paper_said}{paper_caveat} {floor_said} The layer
  with the largest mean is layer {top_layer} ({per_layer.loc[top_layer, 'mean']:.1f} %): {falls_said}.
- **Head types** from the masks (enrichment at least 2x the region's area share): {counts.get('diffuse', 0)} of {len(types)}
  heads are diffuse, {counts.get('chirp', 0)} are chirp heads (in layers {', '.join(map(str, chirp_layers)) or 'none'});
  {late_chirp_said}. {int(chirp_high.sum())} of the {len(chirp_high)} chirp heads are high impact. Within each layer:
  {within_said}
- **Attribution patching.** {atp_said} Outside layer 0, on {len(x_atp)} images
  {m_atp['above 0'] + m_atp['below 0']} of {(L - 1) * H} heads have an interval that excludes 0 (the sweep's
  {N_SPECTRO} images: {m_abl['above 0'] + m_abl['below 0']}; by chance alone about {by_chance}), and
  {m_atp['low end above the floor']} have its low end above the floor ({m_abl['low end above the floor']}).
  {replication_said}
- **Inherited or created?** {origin_said}
""")

# %% [markdown]
# **On ImageNet-scale ViTs.** The finding we expect to change is the shape of the profile: the impact
# falling with depth, the opposite of the paper's, shows here in a small classifier of 28-pixel garments
# and in its fine-tuned copy, while the paper measured ViT-B/16, whose heads are four times as wide and
# whose lower layers were pre-trained on ImageNet-21k. The noise floor (a single head's number moves a lot between image
# sets) is about small samples and should hold at any size. The hub run ablates every head of ViT-B/16, so
# expect minutes. Check it with
# `VITNOTES_MODELS=hub jupyter execute --output=../hub_08 notebooks/08_head_ablation.ipynb` after making
# the fine-tuned ViT-B/16 once with `python -m vitnotes.train spectro-vit-b16`
# ([Running on hub models](../book/hub_models.md)); it writes the executed copy to `hub_08.ipynb` at the
# repository's root, whose "What we found" is computed for the hub models.

# %% [markdown]
# ## Exercises
#
# 1. Ablate the three most important heads of `spectro-vit` together with `vn.ablate` and
#    `vn.interventions.evaluate_loss`. Is the increase the sum of the three single-head increases?
#
# ````{admonition} Solution
# :class: dropdown
# ```python
# top3 = sweep.nlargest(3, "rel_increase")
# with vn.ablate(spectro, [(int(la), int(h)) for la, h in zip(top3["layer"], top3["head"])]):
#     together = vn.interventions.evaluate_loss(spectro, x, y) / sweep.attrs["baseline"] - 1
# print(f"together {100 * together:.1f} %, sum of the three alone {100 * top3['rel_increase'].sum():.1f} %")
# ```
# Not in general: the heads feed the same residual stream and the loss is not linear in it. Heads
# that carry the same information back each other up (together less than the sum), heads that the
# later layers combine make each other's loss worse (together more than the sum).
# ````
#
# 2. How does the noise floor depend on the number of images? Split the 32 spectrograms into four
#    sets of 8 with `vn.evaluate.sweep_subset` and compare two of them with `vn.evaluate.sweep_agreement`, as the
#    chapter did for two sets of 16.
#
# ````{admonition} Solution
# :class: dropdown
# ```python
# eighths = [vn.evaluate.sweep_subset(sweep, range(i, i + 8)) for i in (0, 8)]
# small = vn.evaluate.sweep_agreement(*eighths)
# print(f"8 vs 8: Spearman {small['spearman']:.2f}, median |difference| {100 * small['median_abs_diff']:.2f} points; "
#       f"16 vs 16: {noise['spearman']:.2f}, {noise['median_abs_diff']:.2f}")
# ```
# (`sweep_agreement` works on the `rel_increase` column by default, hence the factor 100.) With
# fewer images each set's numbers are noisier, so the two sets agree less and differ more; for a
# mean over independent images the difference shrinks roughly as one over the square root of the
# number of images.
# ````
#
# 3. Some heads lower the MSE when zeroed. Which of them do so beyond the noise, that is with a 95 %
#    interval over the images wholly below 0?
#
# ````{admonition} Solution
# :class: dropdown
# ```python
# helps = sweep[sweep["rel_increase"] < 0]
# iv = vn.evaluate.head_intervals(sweep, {f"layer {la}, head {h}": {(la, h): 1.0} for la, h in zip(helps["layer"], helps["head"])})
# print(f"{int((iv['high'] < 0).sum())} of {len(iv)} heads that lower the MSE do so with an interval below 0:",
#       list(iv.index[iv["high"] < 0]))
# ```
# A negative number from 32 images alone is weak evidence; only an interval that excludes 0 says the
# head hurts these spectrograms on average, and even that is one model and one test distribution.
# ````
