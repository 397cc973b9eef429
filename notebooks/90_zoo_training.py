# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # How was the zoo trained, and is it trained enough?
#
# Every chapter reads the attention of the zoo's models, so a reader should be able to tell *what
# ViT attention does* from *what a ViT part-way through training does*. This page answers with the
# training runs' own records: each card's `training_log`, written by `python -m vitnotes.train NAME`
# at fixed points of training (the start, then roughly doubling epochs, then every epoch of the last
# quarter). At each point the loop scored the model on the whole test split and measured, on the
# first 256 test images, every layer's CLS attention entropy / log N (the {term}`normalised entropy`),
# {term}`top-10 share`, {term}`mean attention distance`, {term}`attention rollout` entropy / log N and
# the largest {term}`patch token` norm (definitions in the introduction). Nothing on this page is
# typed in: it reads the cards.
#
# This page is about the offline zoo, so it reads the zoo whatever `VITNOTES_MODELS` says.

# %% tags=["remove-cell"]
# Binder and Colab: install vitnotes when it is missing (here, and wherever it is installed, a no-op).
import importlib.util, subprocess, sys  # noqa: E401
if importlib.util.find_spec("vitnotes") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "vitnotes @ git+https://github.com/vitnotes/vitnotes"], check=True)

# %%
import vitnotes as vn

vn.setup(seed=0)

# %% [markdown]
# ## The models and their targets
#
# The project set targets for the zoo (Fashion-MNIST {cite:p}`xiao2017fmnist` ViTs at 89 % and
# 88 %, the ResNet at 93 %, the
# spectrogram regressions at $R^2 \geq 0.9$ on each target). A model trained by the zoo's first
# recipes, with no training log, still shows its card's numbers here.

# %%
cards = {name: vn.card(name) for name in vn.zoo_names()}
models = vn.show.zoo_table(cards, vn.train.TARGETS)
models

# %% [markdown]
# ## What each recipe bought, and what it cost
#
# One row per stage of every staged recipe: the recipe up to that stage, the test score at its end,
# the stage's training minutes (wall clock) and where it ran. A later stage continues the model the
# earlier stages made (`--start-from`), so a model can have stages from two machines: zoo v2's
# Fashion-MNIST ViT ran its first stages on this project's 2-core CPU (often shared with tests and
# other runs: read those minutes as an upper bound) and its last on a GPU lent for one session, as
# did the patch-2 ViT and the spectrogram ViTs. Compare the scores along one model's rows; the minutes
# of a CPU row and a GPU row are not comparable. A distilled stage learns from `fmnist-resnet`'s soft
# predictions on the same augmented batch (the soft distillation of DeiT, {cite:t}`touvron2021deit`).

# %%
recipes = vn.show.recipe_table(cards)
recipes

# %% [markdown]
# ## Attention through training
#
# For every model whose card logged attention, one figure: a line per layer (dark = early), the
# {term}`uniform reference` dashed where one exists, and the test score. The "trained" criterion is
# stated on each card: over the last quarter of training, no layer's normalised entropy, top-10
# share or rollout entropy moves by more than 0.02.

# %%
logged = {name: card for name, card in cards.items() if any("layers" in e for e in card.get("training_log", []))}
for name, card in logged.items():
    p = card["plateau"]
    verdict = "held" if p.get("held") else ("did not hold" if p.get("held") is False else "not evaluated")
    print(f"{name}: plateau criterion {verdict}; largest last-quarter changes {p.get('max_change', {})}")
    display(vn.show.training_plot(card))
print(f"{len(logged)} of {len(cards)} zoo models logged their attention through training")

# %% [markdown] tags=["hide-input"]
# ## What we found

# %% tags=["hide-input"]
from IPython.display import Markdown

met = models["target met"].value_counts().to_dict()
Markdown(
    f"- {met.get('yes', 0)} of {len(models)} zoo models meet their project target; "
    f"{met.get('no', 0)} do not yet, and {met.get('no target', 0)} have none.\n"
    f"- {len(logged)} of {len(cards)} models logged their attention through training"
    + (": " + ", ".join(f"{n} ({'trained' if c['plateau'].get('held') else 'still changing'})" for n, c in logged.items())
       if logged else "; the chapters' models below still come from the zoo's first, short recipes.")
    + f"\n- {len(recipes)} recipe stages are on record in the cards."
)

# %% [markdown]
# ## Exercises
#
# 1. Resume a run: start
#    `python -m vitnotes.train fmnist-resnet --limit 2000 --out /tmp/r --work /tmp/r-work`, stop it
#    with Ctrl-C once its log has shown the last step of stage 1 (`stage 1 step N/N`), start it again
#    and compare the step it resumes from with the log. (`--work` keeps this smoke run's
#    checkpoints apart from a real run's.)
#
# ````{admonition} Solution
# :class: dropdown
# The second run skips stage 1: it loads the checkpoint written at the end of stage 1, starts
# stage 2 at step 0, and its first progress line is `stage 2 step 50/...` with the very loss the
# first run printed at that step, because each epoch's order and each step's augmentation are
# seeded by the epoch and the step (the stage-2 steps trained before Ctrl-C are trained again, on
# the same batches). The loop writes a checkpoint (weights, optimiser state, stage, step and
# seconds so far) at the end of every stage, at every point of the training log and every five
# minutes; a run stopped after a checkpoint in the middle of a stage prints
# `resuming stage S at step N` instead, and a run stopped before the first checkpoint starts
# again from step 0. The ResNet's recipe logs only at the end of each stage; the ViTs' recipes
# log attention at many points, so they lose less when interrupted.
#
# ```text
# python -m vitnotes.train fmnist-resnet --limit 2000 --out /tmp/r --work /tmp/r-work
# # ... stage 1 step N/N ... then Ctrl-C, and again:
# python -m vitnotes.train fmnist-resnet --limit 2000 --out /tmp/r --work /tmp/r-work
# # ... stage 2 step 50/... (the same loss as the first run's)
# ```
# ````
#
# 2. Which statistic in the figures settles last? Read it off `card.json`'s `training_log` for
#    every layer.
#
# ````{admonition} Solution
# :class: dropdown
# For each statistic, find the first probe from which every layer stays within the plateau
# tolerance of its final value; the statistic with the latest such epoch settles last. The three
# unitless statistics share the cards' tolerance; the distance (pixels) and the norms need their
# own.
#
# ```python
# from vitnotes.train.probe import PLATEAU_STATS, PLATEAU_TOLERANCE
#
#
# def settled_at(probes, stat, tolerance=PLATEAU_TOLERANCE):
#     """The first epoch from which every layer stays within `tolerance`
#     of its final value."""
#     final = probes[-1]["layers"][stat]
#     gap = [max(abs(a - b) for a, b in zip(p["layers"][stat], final)) for p in probes]
#     close = [g <= tolerance for g in gap]
#     return probes[next(i for i in range(len(probes)) if all(close[i:]))]["epoch"]
#
#
# for name, card in logged.items():
#     probes = [e for e in card["training_log"] if "layers" in e]
#     epochs = {stat: settled_at(probes, stat) for stat in PLATEAU_STATS}
#     print(name, epochs, "-> settles last:", max(epochs, key=epochs.get))
# print(f"{len(logged)} models logged their attention")
# ```
# ````
