"""Attribution patching against the exact all-heads ablation sweep, in one run per model.

    OMP_NUM_THREADS=2 VITNOTES_THREADS=2 python benchmarks/bench_attribution_patching.py
    python benchmarks/bench_attribution_patching.py --models fmnist-vit-p4 --images 32 --no-intervals

For each model (default: ``fmnist-vit-p2`` on Fashion-MNIST test images with cross-entropy, and
``spectro-vit`` on its test spectrograms with MSE against the z-scored targets), prints:

- the exact sweep's time (``vn.sweep``, its fast path, one call over all images), attribution
  patching's time (``vn.interventions.attribution_patching``, one forward + one backward per chunk) and their ratio;
- the Spearman rank correlation over the 144 heads between the estimate and the exact loss change
  (and Pearson), with a percentile-bootstrap 95 % interval over images (``--intervals``, the default:
  needs every image's exact effects, so the sweep runs a second time one image at a time, untimed);
- where the estimate is wrong: the heads with the largest exact effects and their estimates, the
  largest rank errors, sign errors, and per layer the summed exact and estimated effects.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

import vitnotes as vn


def ranks(a: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(np.ravel(a))


def spearman(a, b) -> float:
    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def data(name: str, n: int) -> tuple[vn.core.Model, torch.Tensor, torch.Tensor]:
    """The model, ``n`` test inputs and their targets (labels, or z-scored regression targets)."""
    if name.startswith("spectro"):
        from vitnotes import train

        x, y = train.spectro_split("test", n, name)
        return train.trained(name), x, y
    model = vn.load(name)
    images, labels = vn.data.fashion_mnist_arrays("test")
    return model, model.preprocess(list(images[:n])), torch.as_tensor(labels[:n]).long()


def exact_effects(model, x, y, batch: int) -> tuple[np.ndarray, float, float]:
    """Exact loss change per head ``[layer, head]`` (one ``vn.sweep`` call), its seconds, the intact loss."""
    t0 = time.perf_counter()
    df = vn.sweep(model, x, y, batch_size=batch)
    seconds = time.perf_counter() - t0
    g = model.geometry
    df = df.sort_values(["layer", "head"])
    return (df["loss"] - df.attrs["baseline"]).to_numpy().reshape(g.layers, g.heads), seconds, df.attrs["baseline"]


def per_image(model, x, y, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """Every image's exact effects and estimates, ``[image, layer, head]`` each (for the bootstrap)."""
    ex, est = [], []
    for i in range(x.shape[0]):
        ex.append(exact_effects(model, x[i : i + 1], y[i : i + 1], batch)[0])
        est.append(vn.interventions.attribution_patching(model, x[i : i + 1], y[i : i + 1]).numpy())
    return np.stack(ex), np.stack(est)


def interval(ex: np.ndarray, est: np.ndarray, n_boot: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap 95 % interval over images of Spearman(mean estimate, mean exact)."""
    rng = np.random.default_rng(seed)
    n = ex.shape[0]
    rho = [spearman(est[i].mean(0), ex[i].mean(0)) for i in (rng.integers(0, n, n) for _ in range(n_boot))]
    lo, hi = np.percentile(rho, [2.5, 97.5])
    return float(lo), float(hi)


def where_wrong(exact: np.ndarray, est: np.ndarray, top: int = 8) -> None:
    """Print the heads where the first-order estimate is furthest from the exact sweep."""
    heads = exact.shape[1]
    print(f"\nthe {top} heads whose ablation changes the loss most (exact), with the estimate:")
    print("| layer, head | exact | estimate | estimate / exact | rank exact | rank estimate |")
    print("|---|---|---|---|---|---|")
    r_ex = exact.size + 1 - ranks(exact)  # 1 = the largest increase
    r_est = est.size + 1 - ranks(est)
    for k in np.argsort(-np.abs(exact).ravel())[:top]:
        i, h = divmod(int(k), heads)
        e, a = exact[i, h], est[i, h]
        print(f"| {i}, {h} | {e:+.4f} | {a:+.4f} | {a / e:.2f} | {r_ex[k]:.0f} | {r_est[k]:.0f} |")
    err = np.abs(r_ex - r_est)
    print(f"\nthe {top} largest rank errors (of {exact.size} heads; rank 1 = largest loss increase):")
    print("| layer, head | exact | estimate | rank exact | rank estimate |\n|---|---|---|---|---|")
    for k in np.argsort(-err)[:top]:
        i, h = divmod(int(k), heads)
        print(f"| {i}, {h} | {exact[i, h]:+.4f} | {est[i, h]:+.4f} | {r_ex[k]:.0f} | {r_est[k]:.0f} |")
    big = np.abs(exact) >= np.quantile(np.abs(exact), 0.75)
    wrong = np.sign(exact) != np.sign(est)
    print(
        f"\nsign errors: {int(wrong.sum())} of {exact.size} heads; {int((wrong & big).sum())} of the "
        f"{int(big.sum())} heads with the largest |exact| (top quartile)"
    )
    print("\nper layer, summed over heads (exact, estimate):")
    print("| layer | exact | estimate | Spearman within layer |\n|---|---|---|---|")
    for i in range(exact.shape[0]):
        print(f"| {i} | {exact[i].sum():+.4f} | {est[i].sum():+.4f} | {spearman(est[i], exact[i]):+.2f} |")


def run(name: str, n: int, batch: int, intervals: bool) -> None:
    model, x, y = data(name, n)
    g = model.geometry
    print(f"\n## {name} | {n} test images {tuple(x.shape[1:])} | {g.layers} x {g.heads} heads | loss on the targets\n")
    vn.interventions.attribution_patching(model, x[:2], y[:2])  # warm-up (first-call allocations)
    t0 = time.perf_counter()
    est = vn.interventions.attribution_patching(model, x, y).numpy()
    t_atp = time.perf_counter() - t0
    exact, t_sweep, base = exact_effects(model, x, y, batch)
    rho = spearman(est, exact)
    pearson = float(np.corrcoef(est.ravel(), exact.ravel())[0, 1])
    print("| method | seconds | x exact sweep |\n|---|---|---|")
    print(f"| exact sweep (vn.sweep, fast path) | {t_sweep:.2f} | 1.000 |")
    print(f"| attribution patching | {t_atp:.2f} | {t_atp / t_sweep:.3f} |")
    line = f"\nintact loss {base:.4f}; Spearman(estimate, exact) over {exact.size} heads = {rho:.3f}"
    if intervals:
        t0 = time.perf_counter()
        lo, hi = interval(*per_image(model, x, y, batch))
        seconds = time.perf_counter() - t0
        line += f" (95 % bootstrap interval over images {lo:.3f} to {hi:.3f}; per-image runs {seconds:.0f} s)"
    print(line + f"; Pearson = {pearson:.3f}")
    where_wrong(exact, est)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["fmnist-vit-p2", "spectro-vit"])
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--batch", type=int, default=64, help="vn.sweep's batch_size")
    p.add_argument("--no-intervals", action="store_true", help="skip the per-image runs behind the bootstrap")
    args = p.parse_args()
    vn.setup(seed=0, style=False)
    print(
        f"# {time.strftime('%Y-%m-%d')} | CPU ({platform.machine()}, {torch.get_num_threads()} threads) | "
        f"torch {torch.__version__} | fp32"
    )
    for name in args.models:
        run(name, args.images, args.batch, not args.no_intervals)


if __name__ == "__main__":
    main()
