"""The attention statistics that sit on top of a capture: mean attention distance and the training
probes' rollout per layer, each against the code it replaced (2026-12-05), in one run.

    python benchmarks/bench_statistics.py [--threads 2] [--repeats 3]

- distance: ``vn.stats.attention_distance`` in CPU blocks (``DISTANCE_BLOCK_BYTES``), in one pass (a
  GPU's policy, run here on the CPU), and the previous formula (three full-size float64 copies);
- rollout per layer: ``rollout_grids`` (one running product) against ``rollout_grid(end_layer=l)``
  for every ``l`` (one product per layer, as the probes computed it before).

Random attention of the zoo's shapes: p4 (7x7 + CLS = 50 tokens, 64 images) and 197 tokens (14x14,
16 images), 12 layers x 12 heads. Prints the best of ``--repeats`` and the ratios.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from vitnotes import stats
from vitnotes.core.capture import Attention
from vitnotes.core.geometry import Geometry
from vitnotes.methods.rollout import rollout_grid, rollout_grids


def _previous_distance(full: torch.Tensor, prefix: int, grid: tuple[int, int], patch_size: int):
    """The formula before 2026-12-05: float64 copies of the whole tensor, then one product."""
    a = full.double()[..., prefix:, :]
    share = a[..., :prefix].sum(-1).mean(-1)
    keys = a[..., prefix:]
    keys = keys / keys.sum(-1, keepdim=True).clamp_min(1e-300)
    return (keys * stats.patch_distances(grid, patch_size)).sum(-1).mean(-1).float(), share.float()


def _one_pass(full: torch.Tensor, prefix: int, grid: tuple[int, int], patch_size: int):
    budget = stats.DISTANCE_BLOCK_BYTES.pop("cpu")
    try:
        return stats.attention_distance(full, prefix, grid, patch_size)
    finally:
        stats.DISTANCE_BLOCK_BYTES["cpu"] = budget


def _best(repeats: int, fn, *args) -> tuple[float, object]:
    """The best wall time of ``repeats`` calls ``fn(*args)`` (after one warm-up) and its result."""
    out, times = fn(*args), []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t)
    return min(times), out


def _attention(images: int, side: int, seed: int = 0) -> torch.Tensor:
    t = side * side + 1
    g = torch.Generator().manual_seed(seed)
    return (3 * torch.randn(12, images, 12, t, t, generator=g)).softmax(-1)


def _per_layer(attn: Attention) -> torch.Tensor:
    return torch.stack([rollout_grid(attn, end_layer=i) for i in range(len(attn.layers))])


def _rows(images: int, side: int, repeats: int) -> list[str]:
    """The table's rows for one shape."""
    full, grid = _attention(images, side), (side, side)
    shape = "x".join(map(str, full.shape))
    new_s, (d_new, _) = _best(repeats, stats.attention_distance, full, 1, grid, 4)
    rows = []
    for label, fn in (("one pass", _one_pass), ("previous formula", _previous_distance)):
        s, (d, _) = _best(repeats, fn, full, 1, grid, 4)
        diff = float((d - d_new).abs().max())
        rows.append(
            f"| distance vs {label} | {shape} | {1e3 * new_s:.0f} | {1e3 * s:.0f} | {s / new_s:.1f}x | {diff:.1e} px |"
        )
    geom = Geometry(kind="vit", layers=12, heads=12, head_dim=16, hidden=192, patch_size=4,
                    image_size=4 * side, channels=1, prefix=1)  # fmt: skip
    attn = Attention(probs=full, layers=list(range(12)), geometry=geom, grid=grid, cls_only=False)
    new_s, grids = _best(repeats, rollout_grids, attn)
    old_s, old = _best(repeats, _per_layer, attn)
    diff = float((grids - old).abs().max())
    rows.append(f"| rollout per layer vs one per layer | {shape} | {1e3 * new_s:.0f} | {1e3 * old_s:.0f} | "
                f"{old_s / new_s:.1f}x | {diff:.1e} |")  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads")
    print("| statistic | shape | new (ms) | other (ms) | other / new | max difference |")
    print("|---|---|---|---|---|---|")
    for images, side in ((64, 7), (16, 14)):
        print("\n".join(_rows(images, side, args.repeats)))


if __name__ == "__main__":
    main()
