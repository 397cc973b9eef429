"""Tiny random stand-ins for the hub models, saved where the Hugging Face cache keeps real downloads.

``make_hub_cache(root)`` writes ``google/vit-base-patch16-224``, ``google/vit-base-patch32-224`` and
``microsoft/resnet-50`` (their real geometry, 224 px, 12 layers x 12 heads, 1000 ImageNet classes,
their real preprocessing recipes, but 48 wide and random) into ``root/hub`` in the cache's own
layout, so ``from_pretrained("google/vit-base-patch16-224")`` under ``HF_HUB_OFFLINE=1`` takes the
same path as for a reader who downloaded the real model once. It also fine-tunes the tiny ViT-B/16
on a few spectrograms (``spectro-vit-b16``, the hub recipe of chapters 07-08) into
``root/home``. ``hub_env(root)`` is the environment a notebook kernel needs to run on them.

Run ``python tests/hub_models.py NOTEBOOK.py ...`` to execute notebooks on the stand-ins (each
executed copy lands in ``$HUB_RUNS``, default ``/tmp/hub_runs``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

HUB_IDS = ("google/vit-base-patch16-224", "google/vit-base-patch32-224", "microsoft/resnet-50")
_REVISION = "0" * 40
_VIT_PRE = {
    "do_normalize": True,
    "do_resize": True,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
    "resample": 2,
    "size": 224,
    "image_processor_type": "ViTImageProcessor",
}
_RESNET_PRE = {
    "crop_pct": 0.875,
    "do_normalize": True,
    "do_resize": True,
    "image_mean": [0.485, 0.456, 0.406],
    "image_std": [0.229, 0.224, 0.225],
    "resample": 3,
    "size": {"shortest_edge": 224},
    "image_processor_type": "ConvNextImageProcessor",
}

GUARD_DIR = Path(__file__).parent / "netguard"  # sitecustomize.py: log and refuse outside connections


def _labels() -> dict:
    from vitnotes.data.imagenet_photos import _PHOTOS

    names = {i: f"class {i}" for i in range(1000)}
    names.update({row[2]: row[3] for row in _PHOTOS if row[2] >= 0})
    return dict(id2label=names, label2id={v: k for k, v in names.items()})


def _put(cache: Path, repo: str, net, pre: dict) -> None:
    folder = cache / f"models--{repo.replace('/', '--')}"
    snap = folder / "snapshots" / _REVISION
    net.save_pretrained(snap, safe_serialization=True)
    (snap / "preprocessor_config.json").write_text(json.dumps(pre))
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(_REVISION)


def make_hub_cache(root: Path) -> Path:
    """Write the tiny stand-ins into ``root/hub`` (a Hugging Face cache) and ``root/home`` (the
    fine-tuned spectrogram model); returns ``root``."""
    import torch
    from transformers import ResNetConfig, ResNetForImageClassification, ViTConfig, ViTForImageClassification

    root = Path(root)
    cache = root / "hub"
    torch.manual_seed(0)
    vit = dict(
        image_size=224,
        hidden_size=48,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=96,
        num_labels=1000,
        **_labels(),
    )
    _put(cache, HUB_IDS[0], ViTForImageClassification(ViTConfig(patch_size=16, **vit)).eval(), _VIT_PRE)
    _put(cache, HUB_IDS[1], ViTForImageClassification(ViTConfig(patch_size=32, **vit)).eval(), _VIT_PRE)
    resnet = ResNetConfig(
        embedding_size=16,
        hidden_sizes=[16, 32, 48, 64],
        depths=[1, 1, 1, 1],
        layer_type="bottleneck",
        num_labels=1000,
        **_labels(),
    )
    _put(cache, HUB_IDS[2], ResNetForImageClassification(resnet).eval(), _RESNET_PRE)
    # the hub recipe of chapters 07-08, through its command line, in a process that sees the cache
    import subprocess

    cmd = [sys.executable, "-m", "vitnotes.train", "spectro-vit-b16", "--epochs", "1", "--limit", "8"]
    done = subprocess.run(cmd, env={**os.environ, **hub_env(root)}, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
    return root


def hub_env(root: Path) -> dict:
    """Environment for running the book on the stand-ins: the hub switch, the cache, offline mode,
    the network guard (every refused connection is logged to ``root/network.log``)."""
    root = Path(root)
    return {
        "VITNOTES_MODELS": "hub",
        "HF_HUB_CACHE": str(root / "hub"),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "VITNOTES_HOME": str(root / "home"),
        "VITNOTES_QUIET": "1",
        "VITNOTES_NET_LOG": str(root / "network.log"),
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        "PYTHONPATH": os.pathsep.join([str(GUARD_DIR), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    }


def run_notebook(source: Path, root: Path, out_dir: Path, timeout: int = 600):
    """Execute the jupytext notebook ``source`` on the stand-ins; returns the executed notebook (raises
    ``nbclient.exceptions.CellExecutionError`` naming the failing cell)."""
    import jupytext
    import nbformat
    from nbclient import NotebookClient

    nb = jupytext.read(source)
    nb.cells.append(nbformat.v4.new_code_cell('import vitnotes\nprint("model family:", vitnotes.family())'))
    saved = {k: os.environ.get(k) for k in hub_env(root)}
    os.environ.update(hub_env(root))
    try:
        client = NotebookClient(
            nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(Path(source).parent)}}
        )
        try:
            client.execute()
        finally:
            out_dir.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, out_dir / (Path(source).stem + ".ipynb"))
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return nb


if __name__ == "__main__":
    import tempfile
    import time

    root = Path(os.environ.get("HUB_ROOT") or tempfile.mkdtemp(prefix="vitnotes-hub-"))
    if not (root / "hub").is_dir():
        make_hub_cache(root)
    out = Path(os.environ.get("HUB_RUNS", "/tmp/hub_runs"))
    for nb_path in sys.argv[1:]:
        t = time.time()
        run_notebook(Path(nb_path), root, out)
        print(f"{nb_path}: ran on hub stand-ins in {time.time() - t:.0f} s -> {out}")
    log = root / "network.log"
    print("network attempts:", log.read_text() if log.exists() else "none")
