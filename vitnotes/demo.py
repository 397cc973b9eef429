"""A short demo that writes one figure: ``python -m vitnotes.demo [--out PATH]``.

It builds a ViT with *random* weights (the figure says so), so it runs on any machine without the
zoo or the hub: what it shows is the machinery (capture under SDPA, rollout, Grad-CAM), not what
a trained model looks at; the book's chapters use the trained zoo. A user of the public API, like
the notebooks: it imports ``vitnotes`` only (and ``vitnotes.core.files``, which writes the figure).

The figure is written whole (a temporary file beside it, then renamed), and nothing is overwritten
that the demo did not write: an existing ``--out`` is replaced only if it is a PNG the demo wrote
(its ``Software`` text chunk is ``MARK``); anything else there, an empty ``--out``, a folder or a
path below a file is refused with one line and exit status 2, before the figure is built, and
again just before the rename.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
from matplotlib.figure import Figure

import vitnotes as vn
from vitnotes.core.files import check_target, file_head, write_atomic


def build_figure() -> tuple[Figure, dict]:
    from skimage import data
    from transformers import ViTConfig, ViTForImageClassification

    vn.setup(seed=0)
    cfg = ViTConfig(
        image_size=64,
        patch_size=8,
        num_channels=3,
        hidden_size=96,
        num_hidden_layers=6,
        num_attention_heads=6,
        intermediate_size=192,
        num_labels=10,
    )
    net = ViTForImageClassification(cfg).eval()  # random weights, SDPA attention
    pre = vn.core.Preprocessing(size=64, mean=(0.5,) * 3, std=(0.5,) * 3, channels=3)
    image = data.chelsea()
    x = pre(image)
    att = vn.capture(net, x)  # [layer, batch, head, query, key]
    strip = att.cls_grids()[:, 0].mean(1)  # [layer, rows, cols], mean over heads
    roll = vn.rollout_grid(att)[0]
    cam = vn.explain(net, x, "grad-cam")[0]
    table = vn.by_layer(vn.cls_summary(att))
    shown = vn.show.display_image(x[0], pre)
    labels = [f"CLS attn L{i}" for i in range(len(strip))] + ["rollout", "ViT Grad-CAM"]
    # attention, rollout and Grad-CAM are on different scales: a colour bar per panel
    fig = vn.show.layer_strip(shown, torch.cat([strip, roll[None], cam[None]]), labels=labels, shared=False)
    fig.suptitle("vitnotes demo: a ViT with RANDOM weights (the trained zoo comes with the book)", fontsize=10)
    return fig, {"layers": len(strip), "entropy_norm_last": float(table.entropy_norm.iloc[-1])}


MARK = "vitnotes demo"  # the PNG's Software text chunk: what marks an existing file as the demo's own


def _is_demo_png(path: Path) -> bool:
    head = file_head(path, 4096)
    return head.startswith(b"\x89PNG\r\n\x1a\n") and b"tEXtSoftware\x00" + MARK.encode() in head


_WHAT = "a figure the demo wrote"


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join("_build", "demo", "demo.png"))
    args = parser.parse_args(argv)
    try:
        out = check_target(args.out, _is_demo_png, _WHAT, example="demo.png", arg="--out")
    except (ValueError, FileExistsError, IsADirectoryError) as err:  # one line, exit 2 (as argparse refuses)
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    fig, info = build_figure()

    def save(tmp: Path) -> None:
        fig.savefig(tmp, format="png", metadata={"Software": MARK})

    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        write_atomic(out, save, _is_demo_png, _WHAT, fix="--out")  # never a half-written figure
    except FileExistsError as err:  # something not the demo's appeared there while the figure was built
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    print(f"wrote {out} ({info['layers']} layers; last-layer CLS entropy {info['entropy_norm_last']:.3f} of log N)")
    return out


if __name__ == "__main__":
    main()
