"""What a plain ``pip install vitnotes`` (no extras) must run: every registered method on a zoo ViT and
the zoo ResNet, through ``vn.explain``, each map finite and of the grid's shape, and the CLI's
``explain`` writing its files. Run by ``make plain-install`` in a fresh venv holding only torch and
``pip install .``; it also says which of the test and book extras' packages are (wrongly) present.
Exits non-zero on the first failure."""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path

import torch

import vitnotes as vn
from vitnotes import cli
from vitnotes.methods.base import registered

EXTRAS = ("pytest", "playwright", "importlinter", "ruff", "jupyter_book", "nbval", "voila", "jupytext")


def main() -> int:
    present = [m for m in EXTRAS if importlib.util.find_spec(m) is not None]
    if present:
        print(f"not a plain install: the extras' packages {present} are importable", file=sys.stderr)
        return 1
    vn.setup(threads=2, style=False)
    images = vn.data.fashion_mnist("test")["image"][:4]
    ran = 0
    for name in ("fmnist-vit-p4", "fmnist-resnet"):
        model = vn.load(name)
        pixels = model.preprocess(images)
        for method in vn.methods(model.geometry.kind):
            if registered(method).takes_model:
                cnn_grid = {"patch": 8} if method in ("occlusion", "random") and model.geometry.kind == "cnn" else {}
                heat = vn.explain(model, pixels, method, **cnn_grid)
            else:  # attention-only methods read a capture
                heat = vn.explain(vn.capture(model, pixels), None, method)
            if heat.shape[0] != len(pixels) or heat.dim() != 3 or not bool(torch.isfinite(heat).all()):
                print(f"{name} {method}: a map of shape {tuple(heat.shape)} with non-finite values", file=sys.stderr)
                return 1
            ran += 1
            print(f"{name:14s} {method:22s} map {tuple(heat.shape)} ok")
    with tempfile.TemporaryDirectory() as tmp:
        png = Path(tmp) / "shirt.png"
        images[0].save(png)
        out = Path(tmp) / "maps"
        argv = ["explain", str(png), "--model", "fmnist-vit-p4", "--method", "integrated gradients", "--out", str(out)]
        code = cli.main(argv)
        written = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
        print(f"CLI explain: exit {code}, wrote {written}")
        if code != 0 or not written:
            return 1
    print(f"plain install: every registered method ran ({ran} model-method pairs, {len(vn.methods())} methods)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
