"""All-heads ablation sweep: vitnotes' fast path against the naive one (a full forward per head), in one run.

    python benchmarks/bench_sweep.py                      # fmnist-vit-p2, 64 test images, CPU
    python benchmarks/bench_sweep.py --model fmnist-vit-p4 --images 256
    python benchmarks/bench_sweep.py --device cuda --model vit-b16 --dtype bf16 --images 256

Prints both times, their ratio and the largest relative difference between the two loss tables.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
from bench_capture import build

import vitnotes as vn


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="fmnist-vit-p2")
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"])
    args = p.parse_args()
    net = build(args.model, args.device, args.dtype)
    cfg = net.config
    if args.model.startswith("fmnist"):
        images, labels = vn.data.fashion_mnist_arrays("test")
        x = vn.load(args.model).preprocess(list(images[: args.images]))
        y = torch.from_numpy(labels[: args.images])
    else:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(args.images, cfg.num_channels, cfg.image_size, cfg.image_size, generator=g)
        y = torch.randint(0, cfg.num_labels, (args.images,), generator=g)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    where = (
        torch.cuda.get_device_name(0)
        if args.device.startswith("cuda")
        else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    )
    print(
        f"# {time.strftime('%Y-%m-%d')} | {where} | torch {torch.__version__} | {args.dtype} | {args.model}, "
        f"{cfg.num_hidden_layers * cfg.num_attention_heads} heads, {args.images} images, batch {args.batch}\n"
    )
    out = {}
    for method in ("naive", "fast"):
        sync()
        t = time.perf_counter()
        out[method] = vn.sweep(net, x.to(args.device), y, method=method, batch_size=args.batch)
        sync()
        out[method].attrs["seconds"] = time.perf_counter() - t
    a, b = out["naive"], out["fast"]
    rel = float(((a.loss - b.loss).abs() / a.loss.abs()).max())
    print("| sweep | seconds | x naive |")
    print("|---|---|---|")
    for m in ("naive", "fast"):
        print(f"| {m} | {out[m].attrs['seconds']:.1f} | {out[m].attrs['seconds'] / a.attrs['seconds']:.2f} |")
    print(f"\nlargest relative loss difference, fast vs naive: {rel:.1e} (baseline loss {a.attrs['baseline']:.4f})")


if __name__ == "__main__":
    main()
