"""Figures and tables of how the zoo was trained: the recipes tried, and attention through training
(from each card's ``training_log``). Introduced in the book's page "How the zoo was trained".
"""

from __future__ import annotations

import math
import re

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..stats import patch_distances
from ..zoo import card_epochs
from .page import page_inches

__all__ = ["log_change", "recipe_table", "training_plot", "zoo_table"]

# statistic -> (title, the value a uniform CLS attention map would give, or None)
_PANELS = {
    "entropy_norm": ("CLS entropy / log N", lambda n: 1.0),
    "top10": ("top-10 share", lambda n: min(10, n) / n),
    "distance_px": ("mean attention distance (px)", "uniform"),
    "rollout_entropy_norm": ("rollout entropy / log N", lambda n: 1.0),
    "norm_max": ("largest patch-token norm", None),
}


def _stage_text(stage: dict) -> str:
    batch = f", batch {stage['batch']}" if "batch" in stage else ""
    text = f"{stage['epochs']} ep{batch}, lr {stage['lr']:g}"
    if stage.get("teacher"):
        text += f", distilled from {stage['teacher']} (weight {stage['distill']:g}, T {stage['temperature']:g})"
    return text


def zoo_table(cards: dict[str, dict], targets: dict[str, tuple[str, float]]) -> pd.DataFrame:
    """One row per zoo model: its test score, the project's target and whether it is met, training
    minutes, epochs and whether its card logged attention through training."""
    rows = []
    for name, card in cards.items():
        m, recipe = card["metrics"], re.sub(r"-s\d+$", "", name)
        metric, least = targets.get(recipe, (None, None))
        if "test_accuracy" in m:
            score, value = f"{100 * m['test_accuracy']:.2f} %", m["test_accuracy"]
        else:
            score, value = "R^2 " + " / ".join(f"{v:.3f}" for v in m["r2"].values()), min(m["r2"].values())
        goal = "–" if metric is None else (f"{100 * least:.0f} %" if metric == "test_accuracy" else f"R^2 >= {least}")
        met = "no target" if metric is None else ("yes" if value >= least else "no")
        epochs = card_epochs(card)
        rows.append(
            {
                "model": name,
                "test score": score,
                "target": goal,
                "target met": met,
                "epochs": epochs,
                "training minutes": round(card["train_seconds"] / 60, 1),
                "attention logged": "yes" if any("layers" in e for e in card.get("training_log", [])) else "no",
            }
        )
    return pd.DataFrame(rows).set_index("model")


def log_change(
    card: dict, start: float, end: float | None = None, stats: tuple[str, ...] = tuple(_PANELS)
) -> pd.DataFrame:
    """How each layer's attention statistics moved between two points of a card's training log: one
    row per layer, columns ``(statistic, "start" | "end" | "change")``. ``start`` and ``end`` are
    epochs that the log has (``end`` defaults to its last probe). Introduced in notebook 01."""
    log = {e["epoch"]: e for e in card.get("training_log", []) if "layers" in e}
    end = max(log) if end is None and log else end
    missing = [e for e in (start, end) if e not in log]
    if missing:
        raise ValueError(
            f"{card.get('name', 'this card')}'s training log has no attention at epoch(s) {missing}; "
            f"it has {sorted(log)}"
        )
    a, b = log[start]["layers"], log[end]["layers"]
    cols = {}
    for stat in stats:
        cols[(stat, "start")] = a[stat]
        cols[(stat, "end")] = b[stat]
        cols[(stat, "change")] = [y - x for x, y in zip(a[stat], b[stat])]
    out = pd.DataFrame(cols)
    out.index.name = "layer"
    return out


def recipe_table(cards: dict[str, dict]) -> pd.DataFrame:
    """What each recipe reached and what it cost: one row per (model, stage) of every card with a
    training log, read at the end of that stage: the recipe so far, the test score, the stage's
    training minutes (wall clock), the machine it ran on, and the minutes so far."""
    rows = []
    for name, card in cards.items():
        log, stages = card.get("training_log"), card["recipe"].get("stages")
        if not log or not stages:
            continue
        end, before = 0.0, 0.0
        for i, stage in enumerate(stages):
            end += stage["epochs"]
            entry = next((e for e in log if abs(e["epoch"] - end) < 1e-6), None)
            if entry is None:
                continue
            r = card["recipe"]
            earlier = i < r.get("stages_done_before", 0)
            machine = r.get("earlier_machine", "?") if earlier else card.get("machine", "?")
            if i == 0 and (r.get("earlier_stage1_from") or (r.get("stage1_from") and not earlier)):
                machine = "zoo v1's run (CPU)"
            score = (
                f"{100 * entry['test_accuracy']:.2f} %"
                if "test_accuracy" in entry
                else "R^2 " + " / ".join(f"{v:.3f}" for v in entry["r2"].values())
            )
            rows.append(
                {
                    "model": name,
                    "stages": " + ".join(_stage_text(s) for s in stages[: i + 1]),
                    "epochs": end,
                    "test score": score,
                    "stage minutes": round((entry["seconds"] - before) / 60, 1),
                    "ran on": short_machine(machine),
                    "minutes so far": round(entry["seconds"] / 60, 1),
                }
            )
            before = entry["seconds"]
    return pd.DataFrame(rows)


def short_machine(machine: str) -> str:
    """A card's machine line, short: the GPU's name, or the CPU's cores and threads."""
    if "GPU" in machine:
        return machine.split(" GPU")[0] + " GPU"
    if "zoo v1" in machine:
        return machine
    parts = [p.strip() for p in machine.split(",")]
    return "CPU, " + ", ".join(p for p in parts if "core" in p or "thread" in p)


def training_plot(card: dict, *, size: float = 2.5) -> Figure:
    """Attention statistics of every layer (a line per layer, dark = early, light = late) and the test
    score against the epoch, from a card's ``training_log``; ``size``: the largest a panel is drawn
    (inches), smaller where the figure would not fit the book's page at full size. Dashed grey: the value for uniform
    attention, where there is one. The x axis is symmetric-log: early epochs are spread out."""
    log = [e for e in card["training_log"] if "layers" in e]
    if not log:
        raise ValueError(f"{card.get('name', 'this model')}'s card has no attention in its training log")
    epochs = np.array([e["epoch"] for e in log])
    layers = len(log[0]["layers"]["entropy_norm"])
    # two rows of three panels, as wide as the page shows at full size: each panel stays readable
    size = min(size, (page_inches() - 0.8) / 3)
    fig = Figure(figsize=(size * 3 + 0.8, size * 2.1), layout="constrained")
    axes = list(fig.subplots(2, 3).ravel())
    cmap = mpl.colormaps["viridis"]
    grid_n = card.get("patches")
    for ax, (stat, (title, uniform)) in zip(axes, _PANELS.items()):
        values = np.array([e["layers"][stat] for e in log])  # [probe, layer]
        for layer in range(layers):
            ax.plot(epochs, values[:, layer], color=cmap(layer / max(1, layers - 1)), lw=1.2)
        if uniform == "uniform" and grid_n:
            side = math.isqrt(grid_n)
            ax.axhline(float(patch_distances((side, side), card["patch_size"]).mean()), color="grey", ls="--", lw=1)
        elif uniform is not None and grid_n:
            ax.axhline(uniform(grid_n), color="grey", ls="--", lw=1)
        ax.set_title(title, fontsize=9)
        ax.set_ylim(bottom=0)
    _score_panel(axes[-1], card["training_log"])
    last = float(max(epochs))
    ticks = [t for t in (0, 1, 3, 10, 30, 100) if t <= last * 1.05]  # a third of a decade apart: labels never touch
    for ax in axes:
        ax.set_xscale("symlog", linthresh=1, linscale=0.5)
        ax.set_xlim(0, last * 1.05)
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.set_xlabel("epoch")
    sm = mpl.cm.ScalarMappable(cmap=cmap, norm=mpl.colors.Normalize(0, layers - 1))
    fig.colorbar(sm, ax=axes[: len(_PANELS)], label="layer", shrink=0.8)
    fig.suptitle(
        f"{card.get('name', '')}: attention on {card.get('probe_images', 256)} test images through training",
        fontsize=10,
    )
    return fig


def _score_panel(ax, log: list[dict]) -> None:
    epochs = [e["epoch"] for e in log]
    if "test_accuracy" in log[0]:
        ax.plot(epochs, [100 * e["test_accuracy"] for e in log], "k.-")
        ax.axhline(10, color="grey", ls="--", lw=1)  # chance: ten balanced classes
        ax.set_title("test accuracy\n(%; dashed: chance)", fontsize=9)
        ax.set_ylim(0, 100)
        return
    for target in log[0]["r2"]:
        ax.plot(epochs, [e["r2"][target] for e in log], ".-", label=target.replace("_", " "))
    ax.axhline(0, color="grey", ls="--", lw=1)
    ax.set_title("test R^2\n(0 = predicting the mean)", fontsize=9)
    ax.set_ylim(min(-0.1, math.floor(min(min(e["r2"].values()) for e in log) * 10) / 10), 1)
    ax.legend(fontsize=7)
