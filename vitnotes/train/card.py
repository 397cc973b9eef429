"""Model cards (``card.json`` + ``README.md`` in each zoo folder) and where recipes write their models.
Introduced in the book's zoo page.
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path

from ..core.model import Model
from ..zoo import ZOO_DIR, load
from .loop import machine
from .probe import plateau
from .recipes import PROBE_IMAGES, RECIPES, TARGETS, target_met

_DATA = {
    "fashion": "Fashion-MNIST (Xiao et al. 2017): 60,000 training and 10,000 test images, 28x28 grayscale, "
    "10 balanced classes; read from Debian's `dataset-fashion-mnist` by `vitnotes.data.fashion_mnist`.",
    "spectro": "`vitnotes.data.spectrograms`: synthetic linear chirps in white noise rendered as "
    "spectrogram images with a title, axis and tick labels and a colour bar (irrelevant content), "
    "56x56 RGB. Targets: chirp start time, start frequency, end frequency, z-scored with the analytic "
    "scaler. Splits are fixed seeds: train 1, validation 2, test 3.",
}


def home() -> Path:
    """``$VITNOTES_HOME`` (default ``~/.cache/vitnotes``): hub recipes' models and every run's checkpoints."""
    return Path(os.environ.get("VITNOTES_HOME") or Path.home() / ".cache" / "vitnotes").expanduser()


def output_folder(name: str) -> Path:
    """Where ``python -m vitnotes.train NAME`` writes by default: the package's zoo for zoo models;
    ``$VITNOTES_HOME/NAME`` for hub recipes, whose weights (ViT-B/16: 330 MB) do not belong in the package."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose from {sorted(RECIPES)}")
    return home() / name if RECIPES[name].get("hub") else ZOO_DIR / name


def work_folder(name: str, seed: int = 0) -> Path:
    """Where a run keeps its checkpoints and training log until it ends: outside git, outside the
    work tree, so an interrupted run resumes in a later session (``$VITNOTES_HOME/work/NAME-sSEED``)."""
    return home() / "work" / f"{name}-s{seed}"


def trained(name: str) -> Model:
    """The model a recipe trained, loaded: a zoo name loads from the zoo; a hub recipe
    (``spectro-vit-b16``) from ``output_folder(name)``, with a clear error saying how to make it when
    it is not there yet. Introduced in notebook 07."""
    folder = output_folder(name)
    if RECIPES[name].get("hub") and not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"{folder} holds no fine-tuned {name} yet. Make it once (online, best on a GPU): "
            f"python -m vitnotes.train {name}  (or: accelerate launch -m vitnotes.train {name} "
            "on several GPUs); set VITNOTES_HOME to keep it elsewhere"
        )
    return load(folder if RECIPES[name].get("hub") else name)


def command(name: str, r: dict) -> str:
    """The command line that reproduces a run."""
    cmd = f"python -m vitnotes.train {name}"
    base = RECIPES[name]
    if "stages" in r and r["stages"][-1]["epochs"] != base["stages"][-1]["epochs"]:
        cmd += f" --epochs {r['stages'][-1]['epochs']}"
    elif "epochs" in r and r["epochs"] != base.get("epochs"):
        cmd += f" --epochs {r['epochs']}"
    if r.get("seed"):
        cmd += f" --seed {r['seed']}"
    if r.get("limit"):
        cmd += f" --limit {r['limit']}"
    if "data" in base:
        cmd += "".join(f" --{flag} {r[k]}" for k, flag in (("data", "data"), ("init", "base")) if r[k] != base[k])
    return cmd


def write_card(name: str, res: dict, out: Path) -> dict:
    """Write ``card.json`` and ``README.md`` into ``out`` from a finished run's result."""
    r, m = res["recipe"], res["metrics"]
    info = dict(
        name=out.name,
        recipe_name=name,
        recipe=r,
        metrics=m,
        target=TARGETS.get(name),
        target_met=target_met(name, m),
        train_seconds=round(res["train_seconds"]),
        machine=machine(),
        date=f"{datetime.date.today()}",
        command=command(name, r),
        parameters=sum(p.numel() for p in load(out).net.parameters()),
    )
    geom = load(out).geometry
    if geom.kind == "vit":
        info.update(patches=geom.grid[0] * geom.grid[1], patch_size=geom.patch_size, probe_images=PROBE_IMAGES)
    if res.get("log"):
        info["training_log"] = res["log"]
        info["plateau"] = plateau(res["log"])
    (out / "card.json").write_text(json.dumps(info, indent=1) + "\n")
    (out / "README.md").write_text(card_markdown(info))
    return info


def refresh_card(folder: Path) -> dict:
    """Rewrite a model folder's ``README.md`` (and the target fields of ``card.json``) from its
    ``card.json`` with the current card code: the numbers are the training run's, untouched."""
    folder = Path(folder)
    info = json.loads((folder / "card.json").read_text())
    name = info.get("recipe_name", info["name"])
    info.update(target=TARGETS.get(name), target_met=target_met(name, info["metrics"]))
    if name in RECIPES and not RECIPES[name].get("hub"):
        info["command"] = command(name, info["recipe"])
    (folder / "card.json").write_text(json.dumps(info, indent=1) + "\n")
    (folder / "README.md").write_text(card_markdown(info))
    return info


def card_markdown(info: dict) -> str:
    """The model card (README.md) from ``card.json``'s fields."""
    name = info.get("recipe_name", info["name"])
    lines = [f"# {info['name']}", "", *_what(name, info["recipe"]), "", "## Recipe", "```json",
             json.dumps(info["recipe"], indent=1), "```", "", "## Reproduce",
             f"`{info['command']}` (writes this folder: `model.safetensors` in float16, `config.json`, "
             "`preprocessor_config.json`, `card.json`, this card). An interrupted run resumes from its last "
             "checkpoint in `$VITNOTES_HOME/work/` when the same command is run again.", "",
             "## Test metrics (float16 weights loaded in float32 through `vitnotes.load`)",
             *_metrics(name, info["metrics"]), "", "## Training", *_training(info)]  # fmt: skip
    if info.get("training_log"):
        lines += ["", "## Training log", *_log_table(info["training_log"])]
        if any("layers" in e for e in info["training_log"]):
            lines += _plateau(info.get("plateau", {}))
    if "stages" in RECIPES.get(name, {}) and "stages" not in info["recipe"]:
        lines += [
            "",
            "## Superseded recipe",
            f"This model was made by the zoo's first recipe (above, one stage). `python -m vitnotes.train {name}` "
            "now runs the second recipe, whose first stage is this one; its model replaces this one when "
            "its run ends (`make zoo`, then `make zoo-promote`).",
        ]
    return "\n".join(lines) + "\n"


def _what(name: str, r: dict) -> list[str]:
    if name == "spectro-vit-b16":
        return ["`google/vit-base-patch16-224` (ImageNet-21k pre-trained, ImageNet-1k fine-tuned, from the "
                "Hugging Face hub) fine-tuned to regress a chirp's parameters from a 224 px spectrogram "
                "image with a new 3-output head: the spectrogram paper's setup.", "", "## Data",
                _DATA["spectro"].replace("56x56", "224x224")]  # fmt: skip
    if "data" in r:
        return [f"`{r['init']}` fine-tuned on `{r['data']}` (loaded with `datasets.load_dataset`) with a new "
                "classification head for the data set's classes (the course lab's step 7).", "", "## Data",
                f"The `train` split for training and the `test` split for the metrics, of `{r['data']}`"
                + (f" (first {r['limit']} images of each: a smoke run)" if r.get("limit") else "") + "."]  # fmt: skip
    if name.startswith("spectro") and r["arch"] == "resnet":
        return ["ResNet (HF `ResNetForImageClassification`) trained from scratch to regress a chirp's parameters "
                "from a 56 px spectrogram image: the reference for what the task allows a model that never saw "
                "Fashion-MNIST.", "", "## Data", _DATA["spectro"]]  # fmt: skip
    if name.startswith("spectro"):
        return ["ViT fine-tuned from `fmnist-vit-p4` to regress a chirp's parameters from a spectrogram image "
                "(the setup of the spectrogram paper in the book's references), at 56 px with patch 4: a "
                "14x14 grid whose position embeddings were interpolated (bicubic) from the 7x7 grid, and "
                "a patch embedding expanded from 1 to 3 input channels"
                + (f", in {len(r['stages'])} stages:" if len(r.get("stages", [])) > 1 else "."),
                *[_stage_line(i, st) for i, st in enumerate(r.get("stages", []) if len(r.get("stages", [])) > 1
                                                              else [], 1)],
                *_provenance(r), "", "## Data", _DATA["spectro"]]  # fmt: skip
    return _fmnist_what(r)


def _fmnist_what(r: dict) -> list[str]:
    """A Fashion-MNIST zoo model: its architecture, where it started, its stages, the data."""
    if r["arch"] == "resnet":
        arch = "ResNet (HF `ResNetForImageClassification`)"
    else:
        p = r["config"]["patch_size"]
        arch = f"ViT, 12 layers x 12 heads, width 192, patch {p} ({28 // p}x{28 // p} grid + CLS)"
    start = (f"{arch}, started from `{r['init']}` (every block copied; the 4x4 patch kernel sum-pooled to 2x2, "
             "so each new token equals the old model's token on a 2x nearest-upsampled image; position "
             "embeddings interpolated 7x7 -> 14x14), then trained on Fashion-MNIST" if r.get("init")
             else f"{arch} trained from scratch on Fashion-MNIST")  # fmt: skip
    stages = r.get("stages", [])
    text = [start + (f", in {len(stages)} stages:" if len(stages) > 1 else ".")]
    text += [_stage_line(i, s) for i, s in enumerate(stages if len(stages) > 1 else [], 1)]
    return text + _provenance(r) + ["", "## Data", _DATA["fashion"]]


def _provenance(r: dict) -> list[str]:
    """Which stages this run took from an earlier model instead of running them."""
    k = r.get("stages_done_before")
    if k:
        v1 = " (whose stage 1 was zoo v1's model, in git until commit 879c0a0)" if r.get("earlier_stage1_from") else ""
        return [
            f"\nStage{'s 1-' if k > 1 else ' '}{k} {'were' if k > 1 else 'was'} not re-run: this run continued "
            f"the model of this name that had run {'them' if k > 1 else 'it'}{v1}, trained on "
            f"{r.get('earlier_machine', '?')}; the later stages ran on the machine under Training. Its training "
            "log and time are carried over."
        ]
    if r.get("stage1_from"):
        return [
            f"\nStage 1 was not re-run: its weights are zoo v1's model of this name (in git until commit "
            f"879c0a0, read from `{r['stage1_from']}`), which the same stage-1 recipe made; its training time "
            "is counted below."
        ]
    return []


def _stage_line(i: int, s: dict) -> str:
    """Stage ``i`` of a recipe as one numbered line: epochs, optimiser, augmentation, distillation."""
    extra = (
        f", soft distillation from `{s['teacher']}` (weight {s['distill']}, temperature {s['temperature']})"
        if s.get("teacher")
        else ""
    )
    aug = [f"random crop (pad {s['crop_pad']})"] * bool(s.get("crop_pad")) + ["flips"] * bool(s.get("flip"))
    aug += [f"label smoothing {s['label_smoothing']}"] * bool(s.get("label_smoothing"))
    return (
        f"{i}. {s['epochs']} epoch(s), batch {s['batch']}, AdamW lr {s['lr']} with warm-up + cosine"
        + "".join(f", {a}" for a in aug)
        + f"{extra}."
    )


def _target(name: str, m: dict) -> str:
    if name not in TARGETS:
        return ""
    metric, least = TARGETS[name]
    goal = f"{100 * least:.0f} %" if metric == "test_accuracy" else f"R^2 >= {least} on every target"
    return f" (project target: {goal}{'' if target_met(name, m) else ', not reached'})"


def _metrics(name: str, m: dict) -> list[str]:
    if "test_accuracy" in m:
        sub = (
            f"- Accuracy on the {m['test_subset']} (re-checked by the test suite): "
            f"{100 * m['test_subset_accuracy']:.2f} %"
            if "test_subset_accuracy" in m
            else f"- Test set: {m['test_subset']}"
        )
        return [
            f"- Test accuracy (all {m['test_images']:,} test images): **{100 * m['test_accuracy']:.2f} %**"
            f"{_target(name, m)}",
            sub,
        ]
    lines = [f"- Test set: {m['test_subset']} (re-checked by the test suite)",
             f"- MSE (z-scored targets): **{m['mse']:.4f}**; predicting the mean: {m['mse_mean_predictor']:.4f}; "
             f"**{m['improvement_over_mean']:.1f}x** lower",
             "- R^2 per target: " + ", ".join(f"{k} {v:.3f}" for k, v in m["r2"].items())
             + _target(name, m)]  # fmt: skip
    if m.get("log"):
        lines.append("- Validation MSE after each epoch: " + ", ".join(f"{h['eval_loss']:.3f}" for h in m["log"]))
    return lines


def _precision(info: dict) -> str:
    """What the forward passes ran in: the loop autocasts to bfloat16 on a GPU whatever the recipe's
    ``bf16`` says (``loop._step``), and on a CPU only when a stage asks."""
    r = info["recipe"]
    asked = any(s.get("bf16") for s in r.get("stages", [r]))

    def on(machine: str) -> str:
        return "bfloat16 autocast" if "GPU" in machine or asked else "float32"

    text = f"{on(info['machine'])} on {info['machine']}"
    earlier = r.get("earlier_machine")
    return text + (f"; the stages run before: {on(earlier)} on {earlier}" if earlier else "")


def _training(info: dict) -> list[str]:
    r, log = info["recipe"], info.get("training_log") or []
    k = r.get("stages_done_before", 0)
    ran_before = sum(s["epochs"] for s in r.get("stages", [])[:k])  # epochs of the stages an earlier run made
    before = [e["seconds"] for e in log if e["epoch"] <= ran_before + 1e-9] if k else []
    where = (
        f"{info['train_seconds'] / 60:.1f} min of training in all: {max(before) / 60:.1f} min for "
        f"{f'stages 1-{k}' if k > 1 else 'stage 1'} "
        f"(on {r.get('earlier_machine', '?')}), {(info['train_seconds'] - max(before)) / 60:.1f} min for the rest on "
        f"{info['machine']}"
        if k and before
        else f"{info['train_seconds'] / 60:.1f} min of training on {info['machine']}"
    )
    lines = [
        f"- Time: {where}",
        f"- Precision: {_precision(info)}",
        f"- Date: {info['date']}; parameters: {info['parameters']:,}",
    ]
    if target_met(info.get("recipe_name", info["name"]), info["metrics"]) is False:
        lines.append(
            "- The target was not reached with this schedule"
            + (
                "; the training log below shows whether the score was still rising at the end."
                if info.get("training_log")
                else "."
            )
        )
    return lines


def _log_table(log: list[dict]) -> list[str]:
    """One row per probe: epoch, the test score and the last layer's attention statistics."""
    regress = "r2" in log[0]
    score = "R^2 start time / start freq / end freq" if regress else "test accuracy"
    extra = " CLS mass on the chirp |" if regress else ""
    lines = ["Measured during training on the whole test split (score) and on the first 256 test images "
             "(attention, last layer; every layer in `card.json`):", "",
             f"| epoch | {score} | CLS entropy / log N | top-10 share | distance (px) | rollout entropy / log N | "
             f"max patch-token norm |{extra}", "|---" * (7 + bool(regress)) + "|"]  # fmt: skip
    for e in log:
        value = " / ".join(f"{v:.3f}" for v in e["r2"].values()) if regress else f"{100 * e['test_accuracy']:.2f} %"
        L = e.get("layers")
        stats = (
            (
                f"{L['entropy_norm'][-1]:.3f} | {L['top10'][-1]:.3f} | {L['distance_px'][-1]:.2f} | "
                f"{L['rollout_entropy_norm'][-1]:.3f} | {L['norm_max'][-1]:.1f} |"
                + (f" {L['mass_chirp'][-1]:.3f} |" if regress else "")
            )
            if L
            else "– | " * (5 + bool(regress))
        )
        lines.append(f"| {e['epoch']:g} | {value} | {stats}")
    return lines


def _plateau(p: dict) -> list[str]:
    if not p or p.get("held") is None:
        return ["", f"Plateau criterion not evaluated ({p.get('why', 'no probes')})."]
    changes = ", ".join(f"{k} {v:.3f}" for k, v in p["max_change"].items())
    verdict = "held" if p["held"] else "did NOT hold"
    return [
        "",
        f'Plateau criterion ("trained"): between epoch {p["from_epoch"]:g} (the last quarter\'s first probe) '
        f"and epoch {p['to_epoch']:g}, no per-layer statistic moves by more than {p['tolerance']}: **{verdict}** "
        f"(largest per-layer changes: {changes}).",
    ]
