"""Why chapter 10 crawled on a busy machine: its head-ablation step, timed alone and beside a second
job, one image at a time (the code before 2026-12-04) and batched (``vn.evaluate.head_losses`` now).

    python benchmarks/bench_busy.py [--images 24] [--threads 2]

The second job is another process running a 2-thread matrix product loop (what `make test` met when a
training run or a second test run shared the 2 cores). One run, printed as a table; compare ratios.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import platform
import time

import numpy as np
import torch

import vitnotes as vn
from vitnotes import train


def _busy(stop, threads: int) -> None:
    torch.set_num_threads(threads)
    a = torch.randn(512, 512)
    while not stop.is_set():
        a = torch.tanh(a @ a.T / 512)


def _one_at_a_time(model, x, y, heads) -> np.ndarray:
    rows = []
    for i in range(len(x)):
        df = vn.sweep(model, x[i : i + 1], y[i : i + 1], heads=heads)
        order = {(int(r.layer), int(r.head)): r.loss for r in df.itertuples()}
        rows.append([order[h] for h in heads])
    return np.asarray(rows)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=24)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    vn.setup(threads=a.threads, style=False)
    model = vn.load("spectro-vit")
    x, y = train.spectro_split("test", a.images, "spectro-vit")
    heads = [(layer, h) for layer in vn.evaluate.ABLATED_LAYERS for h in range(model.geometry.heads)]
    ways = {
        "one image at a time": lambda: _one_at_a_time(model, x, y, heads),
        "batched (per_image)": lambda: vn.evaluate.head_losses(model, x, y, heads)[0],
    }
    got, rows = {}, []
    for load in ("alone", "beside a 2-thread job"):
        ctx = mp.get_context("spawn")  # a forked child would hang in OpenMP, which the parent already started
        stop = ctx.Event()
        job = ctx.Process(target=_busy, args=(stop, 2)) if load != "alone" else None
        if job:
            job.start()
            time.sleep(5.0)  # the child imports torch
        for name, fn in ways.items():
            t = time.perf_counter()
            got[name] = fn()
            rows.append((load, name, time.perf_counter() - t))
        if job:
            stop.set()
            job.join()
    gap = float(np.abs(got["one image at a time"] - got["batched (per_image)"]).max())
    base = rows[0][2]
    print(
        f"# {time.strftime('%Y-%m-%d')} | {platform.machine()} | {a.threads} threads | spectro-vit | "
        f"{a.images} images x {len(heads)} heads\n"
    )
    print("| machine | head losses | seconds | x alone, one at a time |\n|---|---|---|---|")
    for load, name, s in rows:
        print(f"| {load} | {name} | {s:.1f} | {s / base:.2f} |")
    print(f"\nlargest difference between the two ways' losses: {gap:.2e}")


if __name__ == "__main__":
    main()
