"""The Fashion-MNIST training loop: data held as tensors, AdamW, one warm-up + cosine schedule per
stage, light augmentation, optional soft distillation from a zoo teacher, attention probed at fixed
epochs, and a checkpoint every few minutes (safetensors, outside git) so an interrupted run resumes
where it stopped. Introduced in the book's zoo page.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import data as vdata
from ..core.geometry import as_int
from ..core.images import Preprocessing
from ..core.model import Model, geometry
from ..zoo import load, save
from .probe import layer_statistics
from .recipes import PROBE_IMAGES, RECIPES, SPECTRO_SEEDS, TEST_SUBSET, staged
from .surgery import new_net, preprocessing

CHECKPOINT_SECONDS = 300


def train_device() -> torch.device:
    """Where the zoo trains: the first CUDA GPU when there is one (with bfloat16 autocast), else the CPU.
    ``VITNOTES_TRAIN_DEVICE`` overrides (e.g. ``cpu`` on a machine with a GPU)."""
    name = os.environ.get("VITNOTES_TRAIN_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True  # the fp32 teacher
    return torch.device(name)


def log(msg: str) -> None:
    """A timestamped progress line on stdout (the CLI's only output)."""
    print(f"[{datetime.datetime.now():%H:%M:%S}] {msg}", flush=True)


def machine() -> str:
    """A one-line description of where training ran."""
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} GPU, torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU only: {cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} threads, torch {torch.__version__}"


def tensors(pre: Preprocessing, images: np.ndarray, chunk: int = 5000) -> torch.Tensor:
    """uint8 [N, 28, 28] -> pixel_values through the model's own preprocessing (what users get)."""
    return torch.cat([pre(list(images[i : i + chunk])) for i in range(0, len(images), chunk)])


def augment(x: torch.Tensor, pad: int, flip: bool, gen: torch.Generator) -> torch.Tensor:
    """Random crop after padding with the background value (in normalised units) + horizontal flip."""
    n, _, h, w = x.shape
    if pad:
        bg = float(x.amin())
        xp = F.pad(x, (pad,) * 4, value=bg)
        oy, ox = (torch.randint(0, 2 * pad + 1, (n,), generator=gen) for _ in range(2))
        rows = (oy[:, None] + torch.arange(h))[:, None, :, None].expand(n, x.shape[1], h, w + 2 * pad)
        x = xp.gather(2, rows)
        cols = (ox[:, None] + torch.arange(w))[:, None, None, :].expand(n, x.shape[1], h, w)
        x = x.gather(3, cols)
    if flip:
        m = torch.rand(n, generator=gen) < 0.5
        x = torch.where(m[:, None, None, None], x.flip(-1), x)
    return x


@torch.no_grad()
def accuracy(model: Model, x: torch.Tensor, y: torch.Tensor, batch_size: int = 250) -> float:
    """Top-1 accuracy of ``model`` on ``pixel_values`` ``x`` and labels ``y``."""
    pred = model.predict(x, batch_size=batch_size).argmax(-1).cpu()
    return float((pred == y).float().mean())


def learning_rate(step: int, total: int, stage: dict) -> float:
    """Linear warm-up over the stage's first ``warmup`` fraction, then cosine to zero."""
    warm = max(1, int(stage["warmup"] * total))
    if step < warm:
        return stage["lr"] * (step + 1) / warm
    return stage["lr"] * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


# ------------------------------------------------------------------------------------ checkpoints
def save_state(work: Path, net, opt, position: dict) -> None:
    """Model and optimiser state as safetensors, written atomically; ``position`` (stage, step,
    seconds) goes into the file's metadata."""
    from safetensors.torch import save_file

    tensors_ = {f"model.{k}": v.contiguous() for k, v in net.state_dict().items()}
    for i, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            tensors_[f"opt.{i}.{k}"] = torch.as_tensor(v).contiguous()
    tmp = work / "state.safetensors.tmp"
    save_file(tensors_, str(tmp), metadata={k: str(v) for k, v in position.items()})
    os.replace(tmp, work / "state.safetensors")


def load_state(work: Path, net, opt, device: torch.device | str = "cpu") -> dict:
    """Restore what ``save_state`` wrote; returns its position (stage 0, step 0 when there is none).
    The optimiser state is restored only when it belongs to the same stage's optimiser."""
    from safetensors import safe_open

    f = work / "state.safetensors"
    if not f.is_file():
        return {"stage": 0, "step": 0, "seconds": 0.0}
    with safe_open(str(f), "pt") as fh:
        meta = fh.metadata()
        t = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (a safetensors handle, not a dict)
    net.load_state_dict({k[6:]: v for k, v in t.items() if k.startswith("model.")})
    opt_state = {k: v for k, v in t.items() if k.startswith("opt.")}
    if opt_state and opt is not None:
        sd = opt.state_dict()
        for key, v in opt_state.items():
            _, i, k = key.split(".", 2)
            sd["state"].setdefault(int(i), {})[k] = v.to(device) if k != "step" else v
        opt.load_state_dict(sd)
    return {"stage": int(meta.get("stage", 0)), "step": int(meta["step"]), "seconds": float(meta["seconds"])}


def write_json(path: Path, obj) -> None:
    """Write JSON atomically (a crash leaves the old file)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------- the data
def fmnist_data(pre: Preprocessing, limit: int | None) -> dict:
    """Fashion-MNIST as tensors: training and test pixel values and labels (the first ``limit`` of each)."""
    xtr, ytr = vdata.fashion_mnist_arrays("train")
    xte, yte = vdata.fashion_mnist_arrays("test")
    if limit:  # a smoke run: the first `limit` training and test images
        xtr, ytr, xte, yte = xtr[:limit], ytr[:limit], xte[:limit], yte[:limit]
    return dict(
        x=tensors(pre, xtr), y=torch.from_numpy(ytr), xt=tensors(pre, xte), yt=torch.from_numpy(yte), masks=None
    )


def spectro_data(pre: Preprocessing, r: dict, limit: int | None) -> dict:
    """The spectrogram task's fixed splits (train seed 1, test seed 3) as tensors, with the probe
    images' region masks ``{region: bool [probe, H, W]}``."""
    n_train, n_test = (limit, limit) if limit else (r["n_train"], r["n_test"])
    out = {}
    for split, n, key in (("train", n_train, "x"), ("test", n_test, "xt")):
        ds = vdata.spectrogram_arrays(n, seed=SPECTRO_SEEDS[split], size=r["input_size"])
        out[key] = pre(list(ds["image"]))
        out["y" if key == "x" else "yt"] = torch.tensor(np.asarray(ds["targets"], dtype=np.float32))
        if split == "test":
            per_image = [vdata.region_masks(m) for m in ds["mask"][:PROBE_IMAGES]]
            out["masks"] = {k: np.stack([m[k] for m in per_image]) for k in per_image[0]}
    return out


@torch.no_grad()
def regression_metrics(model: Model, x: torch.Tensor, y: torch.Tensor, batch_size: int = 250) -> dict:
    """Test MSE (z-scored targets), the MSE of predicting the mean, their ratio and R^2 per target."""
    pred = model.predict(x, batch_size=batch_size).float().cpu()
    mse = ((pred - y) ** 2).mean(0)
    var = y.var(0, unbiased=False)
    return {
        "mse": float(mse.mean()),
        "mse_mean_predictor": float(var.mean()),
        "improvement_over_mean": float(var.mean() / mse.mean()),
        "r2": {n: float(1 - m / v) for n, m, v in zip(vdata.TARGET_NAMES, mse, var)},
    }


# ----------------------------------------------------------------------------------------- the run
class _Run:
    """One training run's data, network, teacher and log (what every step and probe needs)."""

    def __init__(
        self, name: str, seed: int, limit: int | None, work: Path, init: str | None = None, quiet: bool = False
    ):
        self.name, self.seed, self.work, self.quiet = name, seed, work, quiet
        self.recipe = RECIPES[name]
        self.regress = self.recipe.get("task") == "regress"
        self.pre = preprocessing(name)
        data = spectro_data(self.pre, self.recipe, limit) if self.regress else fmnist_data(self.pre, limit)
        self.x, self.y, self.xt, self.yt, self.masks = (data[k] for k in ("x", "y", "xt", "yt", "masks"))
        self.device = train_device()
        self.net = new_net(name, seed, init).to(self.device)
        self.losses: list[float] = []  # the last steps' training losses
        self.teachers: dict[str, torch.nn.Module] = {}
        self.log_file = work / "log.json"
        self.log = json.loads(self.log_file.read_text()) if self.log_file.is_file() else []

    def model(self) -> Model:
        labels = vdata.TARGET_NAMES if self.regress else vdata.FASHION_MNIST_CLASSES
        return Model(
            net=self.net, geometry=geometry(self.net), labels=list(labels), preprocessing=self.pre, name=self.name
        )

    def metrics(self, model: Model) -> dict:
        """Test metrics on the whole test split: accuracy, or MSE and R^2 per target."""
        if self.regress:
            return regression_metrics(model, self.xt, self.yt)
        return {"test_accuracy": accuracy(model, self.xt, self.yt)}

    def probe(self, epoch: float, step: int, seconds: float) -> None:
        """Test metrics and, for a ViT, the attention statistics of the probe set (with the region masks)."""
        if any(abs(e["epoch"] - epoch) < 1e-9 for e in self.log):
            return
        model = self.model()
        self.net.eval()
        entry = {"epoch": round(epoch, 4), "step": step, "seconds": round(seconds, 1), **_rounded(self.metrics(model))}
        if self.losses:
            entry["train_loss"] = round(float(np.mean(self.losses)), 5)
        if model.geometry.kind == "vit":
            entry["layers"] = layer_statistics(model, self.xt[:PROBE_IMAGES], self.masks)
        self.net.train()
        self.log.append(entry)
        self.log.sort(key=lambda e: e["epoch"])
        write_json(self.log_file, self.log)
        score = f"R^2 {entry['r2']}" if self.regress else f"test accuracy {entry['test_accuracy']:.4f}"
        self.say(f"{self.name}: probe at epoch {epoch:g}: {score}")

    def say(self, msg: str) -> None:
        if not self.quiet:
            log(msg)

    def teacher(self, name: str) -> torch.nn.Module:
        if name not in self.teachers:
            self.teachers[name] = load(name).net.eval().to(self.device)
        return self.teachers[name]

    def loss(self, logits: torch.Tensor, xb: torch.Tensor, yb: torch.Tensor, stage: dict) -> torch.Tensor:
        """MSE for regression; cross-entropy with label smoothing, mixed with soft distillation when the
        stage has a teacher, for classification."""
        if self.regress:
            return F.mse_loss(logits, yb)
        ce = F.cross_entropy(logits, yb, label_smoothing=stage["label_smoothing"])
        if not stage.get("teacher"):
            return ce
        teacher = self.teacher(stage["teacher"])
        size = teacher.config.image_size
        with torch.no_grad():  # the teacher sees the student's augmented batch at its own input size
            xt = (
                F.interpolate(xb, size=(size, size), mode="bilinear", align_corners=False)
                if xb.shape[-1] != size
                else xb
            )
            soft = teacher(pixel_values=xt).logits.float()
        temp = stage["temperature"]
        kl = (
            F.kl_div(
                F.log_softmax(logits / temp, -1), F.log_softmax(soft / temp, -1), reduction="batchmean", log_target=True
            )
            * temp**2
        )
        return (1 - stage["distill"]) * ce + stage["distill"] * kl


def _rounded(metrics: dict) -> dict:
    return {
        k: (round(v, 5) if isinstance(v, float) else {a: round(b, 5) for a, b in v.items()}) for k, v in metrics.items()
    }


def _probe_points(name: str, stages: list[dict]) -> list[float]:
    """Cumulative epochs to probe: the recipe's list (within the run) and every stage's end."""
    ends = list(np.cumsum([s["epochs"] for s in stages]).astype(float))
    # roughly geometric (1, 2, 4, ...) and the last quarter (75 % and 87.5 % of the run), whatever --epochs is
    auto = {float(2**i) for i in range(int(np.log2(ends[-1])) + 1)} | {0.75 * ends[-1], 0.875 * ends[-1]}
    wanted = {float(e) for e in RECIPES[name].get("probe_epochs", [])} | auto
    return sorted({e for e in wanted if e <= ends[-1]} | set(ends))


def _batch(run: _Run, stage: dict, k: int, step: int, per_epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Step ``step`` of stage ``k``'s batch: a seeded permutation per epoch, seeded augmentation per step
    (so a resumed run sees the very batches an uninterrupted one would)."""
    epoch, i = divmod(step, per_epoch)
    perm = torch.randperm(len(run.x), generator=torch.Generator().manual_seed(run.seed * 1000 + 100 * k + epoch))
    idx = perm[i * stage["batch"] : (i + 1) * stage["batch"]]
    gen = torch.Generator().manual_seed(run.seed * 10_000_000 + 1_000_000 * k + step)
    return augment(run.x[idx], stage["crop_pad"], stage["flip"], gen), run.y[idx]


def _step(run: _Run, opt: torch.optim.Optimizer, stage: dict, xb: torch.Tensor, yb: torch.Tensor) -> float:
    """One AdamW step (bfloat16 autocast when the stage asks for it or on a GPU, gradients clipped at norm 1)."""
    xb, yb = xb.to(run.device, non_blocking=True), yb.to(run.device, non_blocking=True)
    dev = run.device.type
    with torch.autocast(dev, dtype=torch.bfloat16, enabled=stage["bf16"] or dev == "cuda"):
        logits = run.net(pixel_values=xb).logits
    loss = run.loss(logits.float(), xb, yb, stage)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(run.net.parameters(), 1.0)
    opt.step()
    run.losses = (run.losses + [loss.item()])[-50:]
    return loss.item()


def train_stage(run: _Run, k: int, stages: list[dict], position: dict, probes: list[float]) -> float:
    """Run stage ``k`` from ``position`` to its end, checkpointing every ``CHECKPOINT_SECONDS`` and at
    every probe; returns the training seconds so far."""
    stage = stages[k]
    opt = torch.optim.AdamW(run.net.parameters(), lr=stage["lr"], weight_decay=stage["weight_decay"])
    step = 0
    if position["stage"] == k and position["step"]:
        load_state(run.work, run.net, opt, run.device)
        step = position["step"]
        run.say(f"{run.name}: resuming stage {k + 1} at step {step}")
    per_epoch = steps_per_epoch(len(run.x), stage["batch"])
    total, offset = per_epoch * stage["epochs"], float(sum(s["epochs"] for s in stages[:k]))
    todo = [p for p in probes if offset < p <= offset + stage["epochs"]]
    t0, before, last = time.time(), position["seconds"], time.time()
    run.net.train()
    while step < total:
        for g in opt.param_groups:
            g["lr"] = learning_rate(step, total, stage)
        loss = _step(run, opt, stage, *_batch(run, stage, k, step, per_epoch))
        step += 1
        seconds = before + time.time() - t0
        if step % 50 == 0 or step == total:
            run.say(
                f"{run.name}: stage {k + 1} step {step}/{total} epoch {offset + step / per_epoch:.2f} loss {loss:.3f}"
            )
        due = [p for p in todo if offset + step / per_epoch >= p - 1e-9]
        if due or time.time() - last > CHECKPOINT_SECONDS or step == total:
            save_state(run.work, run.net, opt, {"stage": k, "step": step, "seconds": seconds})
            last = time.time()
        if due:  # several points due at one step (a tiny run): probe once, at the latest
            todo = [p for p in todo if p not in due]
            run.probe(max(due), step, seconds)
    return before + time.time() - t0


def _recipe_as_run(name: str, epochs, seed: int, limit, start_from, init) -> dict:
    """The recipe as this run will train it (what its card records and its checkpoint is checked against)."""
    r = dict(RECIPES[name], stages=staged(name, epochs), seed=seed, **({"limit": limit} if limit else {}))
    if start_from:
        r["stage1_from"] = str(start_from)
        done = stages_done(start_from, r["stages"])
        if done:  # a model that ran the first stages of this very recipe: resume after its last stage
            card = json.loads((Path(start_from) / "card.json").read_text())
            r.update(stages_done_before=done, earlier_machine=card.get("machine", "?"))
            if card["recipe"].get("stage1_from"):
                r["earlier_stage1_from"] = card["recipe"]["stage1_from"]
    if init is not None:
        r["init"] = str(init)
    if limit and r.get("task") == "regress":
        r.update(n_train=limit, n_test=limit)
    return r


def _work_for(work: Path, r: dict) -> None:
    """Make the checkpoint folder; a checkpoint of another recipe there is dropped (never resumed)."""
    work.mkdir(parents=True, exist_ok=True)
    recipe_file = work / "recipe.json"
    if recipe_file.is_file() and json.loads(recipe_file.read_text()) != r:
        for f in ("state.safetensors", "log.json"):
            (work / f).unlink(missing_ok=True)
    write_json(recipe_file, r)


def _final_metrics(run: _Run, model: Model) -> dict:
    metrics = run.metrics(model)
    if run.regress:
        size = run.recipe["input_size"]
        metrics["test_subset"] = f"spectrograms(n={len(run.yt)}, seed={SPECTRO_SEEDS['test']}, size={size})"
    else:
        metrics.update(
            test_subset_accuracy=accuracy(model, run.xt[:TEST_SUBSET], run.yt[:TEST_SUBSET]),
            test_images=len(run.yt),
            test_subset=f"first {TEST_SUBSET} test images",
        )
    return metrics


def train_recipe(
    name: str,
    out: Path,
    epochs: int | None = None,
    seed: int = 0,
    limit: int | None = None,
    work: Path | None = None,
    start_from: Path | None = None,
    init: str | Path | None = None,
    quiet: bool = False,
) -> dict:
    """Train a zoo recipe (Fashion-MNIST classification or spectrogram regression) stage by stage into
    ``out``. ``start_from`` takes the weights at the end of stage 1 from an existing model folder (e.g. zoo
    v1, made by the same stage-1 recipe) instead of training it again; ``init`` replaces the recipe's
    starting model; ``quiet`` prints nothing. Returns the recipe as run, the test metrics, the training
    log and seconds. Every argument is checked before any data is read or any folder made (``limit``
    and ``epochs``: positive ints; ``start_from``: ``check_start_from``). Introduced in the book's page
    "How was the zoo trained"."""
    if limit is not None:
        limit = as_int(limit, "limit", least=1)  # 0 is no smoke run: it would train on every image
    if start_from is not None:
        start_from = check_start_from(name, start_from, init)
    r = _recipe_as_run(name, epochs, seed, limit, start_from, init)
    work = work or out.parent / f".{out.name}.work"
    _work_for(work, r)
    run = _Run(name, seed, limit, work, r.get("init"), quiet)
    position = _start(run, r, start_from)
    probes = _probe_points(name, r["stages"])
    if 0.0 in probes and position["stage"] == 0 and position["step"] == 0:
        run.probe(0.0, 0, 0.0)
    seconds = position["seconds"]
    with torch.enable_grad():  # a notebook may have switched gradients off globally
        for k in range(position["stage"], len(r["stages"])):
            seconds = train_stage(run, k, r["stages"], position, probes)
            position = {"stage": k + 1, "step": 0, "seconds": seconds}
    model = finish(name, run.net, run.pre, out)
    return dict(recipe=r, metrics=_final_metrics(run, model), train_seconds=seconds, work=work, log=run.log)


def steps_per_epoch(n: int, batch: int) -> int:
    """Optimiser steps in one epoch of ``n`` images (the last partial batch is dropped; at least one)."""
    return max(1, n // batch)


def _start(run: _Run, r: dict, start_from: Path | None) -> dict:
    """Where the run stands: a checkpoint in the work folder; else, from ``start_from``, the end of the
    stages its card shows it ran (its log and time carried over) or, for a model without staged card
    (zoo v1's), stage 1's end (probed at random init first); else the beginning."""
    stages = r["stages"]
    if (run.work / "state.safetensors").is_file():
        position = load_state(run.work, run.net, None)
        k = position["stage"]
        if position["step"] >= steps_per_epoch(len(run.x), stages[k]["batch"]) * stages[k]["epochs"]:
            position = {"stage": k + 1, "step": 0, "seconds": position["seconds"]}  # stage k had ended
        return position
    if not start_from:
        return {"stage": 0, "step": 0, "seconds": 0.0}
    done = r.get("stages_done_before", 0)
    if done:  # its weights, training time and training log, then the stages it had not run
        card = json.loads((Path(start_from) / "card.json").read_text())
        run.net.load_state_dict(load(start_from).net.float().to(run.device).state_dict())
        run.log = [e for e in card.get("training_log", []) if e["epoch"] <= sum(s["epochs"] for s in stages[:done])]
        write_json(run.log_file, run.log)
        position = {"stage": done, "step": 0, "seconds": float(card.get("train_seconds", 0.0))}
        save_state(run.work, run.net, torch.optim.AdamW(run.net.parameters()), position)
        return position
    run.probe(0.0, 0, 0.0)  # random init, for reference
    run.net.load_state_dict(load(start_from).net.float().to(run.device).state_dict())
    seconds = float(_card_seconds(start_from))
    run.probe(
        float(stages[0]["epochs"]), steps_per_epoch(len(run.x), stages[0]["batch"]) * stages[0]["epochs"], seconds
    )
    position = {"stage": 1, "step": 0, "seconds": seconds}
    save_state(run.work, run.net, torch.optim.AdamW(run.net.parameters()), position)
    return position


def check_start_from(name: str, folder: str | Path, init: str | Path | None = None) -> Path:
    """``folder`` as a ``Path`` if recipe ``name`` can start from it: a saved model whose network has
    every weight of the recipe's network, in the same shape (what resuming from it loads). A missing
    path, a folder that is not a model, or a model of another architecture is refused in one line,
    before any work folder is made, any data read or any probe run."""
    folder = Path(folder).expanduser()
    fix = f"give the folder of a model that python -m vitnotes.train {name} wrote"
    if not folder.exists():
        raise FileNotFoundError(f"cannot start from {folder}: no such folder; {fix}")
    if not folder.is_dir():
        raise NotADirectoryError(f"cannot start from {folder}: it is a file, not a model folder; {fix}")
    if not (folder / "config.json").is_file():
        raise ValueError(f"cannot start from {folder}: it holds no saved model (no config.json); {fix}")
    got = load(folder).net.state_dict()
    want = new_net(name, 0, init).state_dict()
    wrong = [k for k in want if k not in got or got[k].shape != want[k].shape] + [k for k in got if k not in want]
    if wrong:
        k = wrong[0]
        there, here = (tuple(sd[k].shape) if k in sd else "absent" for sd in (got, want))
        raise ValueError(
            f"cannot start from {folder}: it is not a {name} network ({len(wrong)} weights differ, e.g. {k}: "
            f"{there} there, {here} in the recipe); {fix}"
        )
    return folder


def stages_done(folder: Path, stages: list[dict]) -> int:
    """How many of ``stages`` the model in ``folder`` has run, by its card: the number of stages on it
    when they equal the first ones of ``stages`` (the rest not yet run), else 0 (e.g. a zoo v1 model,
    whose card has no stages: then ``start_from`` stands for stage 1's result)."""
    card = Path(folder) / "card.json"
    done = json.loads(card.read_text()).get("recipe", {}).get("stages", []) if card.is_file() else []
    if done and done == stages:
        raise ValueError(f"{folder} has run every stage of this recipe already: there is nothing to continue")
    if 0 < len(done) < len(stages) and done == stages[: len(done)]:
        return len(done)
    return 0


def _card_seconds(folder: Path) -> float:
    card = Path(folder) / "card.json"
    return json.loads(card.read_text()).get("train_seconds", 0.0) if card.is_file() else 0.0


def finish(name: str, net, pre: Preprocessing, out: Path) -> Model:
    """Save in float16 (halves the zoo's size), then reload through vn.load in float32, so every
    metric on the card is measured on exactly the weights users get."""
    net.eval()
    device = next(net.parameters()).device
    save(net.to(torch.float16), out, pre)
    model = load(out)
    model.net.to(device)  # measured where it trained (the same weights; a GPU's sums differ in the last bits)
    return model
