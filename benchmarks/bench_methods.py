"""Time chapter 09's map methods (through the registry) on a zoo model (64 test images by default).

    OMP_NUM_THREADS=1 VITNOTES_THREADS=1 python benchmarks/bench_methods.py [--model fmnist-vit-p4]

Prints one row per method (seconds, images/s) and, for attribution patching, its time ratio and
Spearman rank correlation against the exact head-ablation sweep (``vn.sweep``) on the same images
(``bench_attribution_patching.py`` compares the two in more depth, on fmnist-vit-p2 and spectro-vit).
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

import vitnotes as vn

NEW = ("legrad", "cp-lrp", "integrated gradients", "occlusion", "random", "value-weighted")  # chapter 09's
OPTIONS = {  # the options timed (defaults otherwise)
    "integrated gradients": {"n_steps": 32, "baseline": "black"},
    "occlusion": {"baseline": "mean"},
}


def spearman(a, b) -> float:
    ra, rb = np.argsort(np.argsort(np.ravel(a))), np.argsort(np.argsort(np.ravel(b)))
    return float(np.corrcoef(ra, rb)[0, 1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="fmnist-vit-p4")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--no-sweep", action="store_true")
    ap.add_argument("--heads-only", action="store_true", help="time only attribution patching vs the sweep")
    args = ap.parse_args()
    model = vn.load(args.model)
    images, labels = vn.data.fashion_mnist_arrays("test")
    x = model.preprocess(list(images[: args.images]))
    y = torch.as_tensor(labels[: args.images]).long()
    print(
        f"{args.model} | {x.shape[0]} images {tuple(x.shape[1:])} | torch {torch.__version__} | "
        f"{platform.machine()} | threads {torch.get_num_threads()}"
    )
    print("| method | seconds | images/s | options |\n|---|---|---|---|")
    for name in () if args.heads_only else NEW:
        opts = OPTIONS.get(name, {})
        t0 = time.perf_counter()
        m = vn.explain(model, x, name, **opts)
        dt = time.perf_counter() - t0
        assert torch.isfinite(m).all()
        print(f"| {name} | {dt:.2f} | {x.shape[0] / dt:.1f} | {opts or ''} |")
    t0 = time.perf_counter()
    est = vn.interventions.attribution_patching(model, x, y)
    t_atp = time.perf_counter() - t0
    print(f"| attribution_patching (144 heads) | {t_atp:.2f} | {x.shape[0] / t_atp:.1f} | metric=loss |")
    if not args.no_sweep:
        t0 = time.perf_counter()
        df = vn.sweep(model, x, y)
        t_sweep = time.perf_counter() - t0
        df = df.sort_values(["layer", "head"])
        exact = (df["loss"] - df.attrs["baseline"]).to_numpy().reshape(est.shape)
        print(
            f"\nexact sweep: {t_sweep:.2f} s; attribution patching / sweep time = {t_atp / t_sweep:.3f}; "
            f"Spearman(estimate, exact) = {spearman(est.numpy(), exact):.3f}; "
            f"Pearson = {float(np.corrcoef(est.numpy().ravel(), exact.ravel())[0, 1]):.3f}"
        )
        e = est.numpy()
        print("\nthe 8 heads whose ablation changes the loss most (exact), with the estimate:")
        print("| layer, head | exact | estimate | estimate / exact |\n|---|---|---|---|")
        for k in np.argsort(-np.abs(exact).ravel())[:8]:
            i, h = divmod(int(k), e.shape[1])
            print(f"| {i}, {h} | {exact[i, h]:+.4f} | {e[i, h]:+.4f} | {e[i, h] / exact[i, h]:.2f} |")


if __name__ == "__main__":
    main()
