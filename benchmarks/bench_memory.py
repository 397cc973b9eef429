"""Peak memory per image of every map method (``vn.methods()``), CPU, in one run.

Each (method, images) pair runs in a fresh subprocess with glibc told to return every freed block
over 64 kB at once (``MALLOC_MMAP_THRESHOLD_``), so resident memory follows what torch holds. The
kernel's high-water mark (``VmHWM``) is reset just before the call (``/proc/self/clear_refs``) and
read after it; "peak over start" is that mark minus the resident memory before the call. The
method runs with ``batch_size`` equal to the image count (one chunk), at two counts; per image is
the difference of the two peaks over the difference of the counts, which cancels what does not
grow with the chunk (weights, the interpreter).

    python benchmarks/bench_memory.py                       # fmnist-vit-p4, 8 and 40 images
    python benchmarks/bench_memory.py --model fmnist-vit-p2 --images 4 20
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import subprocess
import sys
import time

OPTIONS = {  # options that keep a method's run short without changing its memory per image
    "occlusion": {"patch": 14},
    "integrated gradients": {"n_steps": 2},
}


def rss_now() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_over_start(fn) -> int:
    """Bytes of resident memory ``fn()`` adds at its peak (exact high-water mark, not sampled)."""
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current resident size
    start = rss_now()
    fn()
    with open("/proc/self/status") as f:
        hwm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM"))
    return hwm - start


def child(model: str, method: str, n: int) -> dict:
    import torch

    import vitnotes as vn

    torch.set_num_threads(1)
    m = vn.load(model)
    x = torch.randn(n, m.geometry.channels, m.geometry.image_size, m.geometry.image_size)
    opts = {"batch_size": n, **OPTIONS.get(method, {})}
    if method == "attention flow":  # takes a capture, not a model: its input is the caller's
        attn = vn.capture(m, x)
        return {"peak": peak_over_start(lambda: vn.explain(attn, None, method))}
    vn.explain(m, x[:1], method, **{**opts, "batch_size": 1})  # warm-up: lazy imports, kernels
    return {"peak": peak_over_start(lambda: vn.explain(m, x, method, **opts))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="fmnist-vit-p4")
    p.add_argument("--images", type=int, nargs=2, default=[8, 40])
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.model, args.child[0], int(args.child[1]))))
        return
    import vitnotes as vn

    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1"}
    print(f"# {time.strftime('%Y-%m-%d')} | {args.model} | images {args.images[0]} and {args.images[1]}, one chunk\n")
    print("| method | peak over start, small (MiB) | large (MiB) | per image (MiB) |")
    print("|---|---|---|---|")
    for method in vn.methods("vit"):
        peaks = []
        for n in args.images:
            cmd = [sys.executable, __file__, "--model", args.model, "--child", method, str(n)]
            res = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if res.returncode:
                sys.exit(f"{method} failed:\n{res.stderr[-2000:]}")
            peaks.append(json.loads(res.stdout.strip().splitlines()[-1])["peak"] / 2**20)
        per = (peaks[1] - peaks[0]) / (args.images[1] - args.images[0])
        print(f"| {method} | {peaks[0]:.1f} | {peaks[1]:.1f} | {per:.2f} |")


if __name__ == "__main__":
    main()
