"""The GPU check, in one process and one run: throughput and peak memory of every vitnotes hot path
against a plain SDPA forward on ViT-B/16 geometry (random weights, bf16), and the CPU-against-CUDA
agreement of every registered method, the sweep and the attention profile (float32 on both sides).

    python benchmarks/bench_gpu.py                  # on a machine with CUDA (tools/gpu_check.sh)
    python benchmarks/bench_gpu.py --dry-run        # the same code paths on the CPU, tiny sizes
    python benchmarks/bench_gpu.py --paste FILE     # put a run's section into benchmarks/RESULTS.md

Prints the section it writes (``--out``); ``--paste`` replaces the GPU section of RESULTS.md with
it. Throughput is images/s, the best of ``--repeat`` timed calls after one warm-up call (lazy CUDA
set-up is not the method's cost). Peak memory is CUDA's max allocated during one call.
"""

from __future__ import annotations

import argparse
import platform
import re
import sys
import time
from pathlib import Path

import torch

import vitnotes as vn
from vitnotes.methods.rollout import capture_rollout

RESULTS = Path(__file__).with_name("RESULTS.md")
START, END = "<!-- gpu-check:start -->", "<!-- gpu-check:end -->"
FAST = ("last layer", "rollout", "value-weighted")  # inference maps: targets against the forward
GRADIENT = ("gradient rollout", "grad-cam", "legrad", "cp-lrp")
TARGETS = {"vn.capture cls": 0.95, "capture_rollout": 0.85, "last layer": 0.95, "value-weighted": 0.85,
           "rollout": 0.85, **dict.fromkeys(GRADIENT, 0.25)}  # fmt: skip


class Bench:
    def __init__(self, device: str, repeat: int):
        self.device, self.repeat, self.cuda = device, repeat, device.startswith("cuda")

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def run(self, fn, n: int) -> tuple[float, float]:
        """(images/s best of ``repeat``, peak MiB of one call)."""
        fn()
        self.sync()
        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        best = float("inf")
        for _ in range(self.repeat):
            t = time.perf_counter()
            fn()
            self.sync()
            best = min(best, time.perf_counter() - t)
        peak = torch.cuda.max_memory_allocated() / 2**20 if self.cuda else float("nan")
        return n / best, peak


def vit(size: int, patch: int, hidden: int, layers: int, heads: int, labels: int, kind: str = "vit"):
    from transformers import (
        DeiTConfig,
        DeiTForImageClassification,
        Dinov2WithRegistersConfig,
        Dinov2WithRegistersForImageClassification,
        ViTConfig,
        ViTForImageClassification,
    )

    cfg, cls = {
        "vit": (ViTConfig, ViTForImageClassification),
        "deit": (DeiTConfig, DeiTForImageClassification),
        "dinov2-reg": (Dinov2WithRegistersConfig, Dinov2WithRegistersForImageClassification),
    }[kind]
    extra = {"num_register_tokens": 4} if kind == "dinov2-reg" else {}
    c = cfg(image_size=size, patch_size=patch, hidden_size=hidden, num_hidden_layers=layers,
            num_attention_heads=heads, intermediate_size=4 * hidden, num_labels=labels, **extra)  # fmt: skip
    torch.manual_seed(0)
    return cls(c).eval()


def speed(args, b: Bench, lines: list[str]) -> None:
    """Throughput and memory on ViT-B/16 geometry (or the dry run's tiny ViT)."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[args.dtype]
    size, patch, hidden, layers, heads = (224, 16, 768, 12, 12) if not args.dry_run else (32, 4, 64, 2, 4)
    net = vit(size, patch, hidden, layers, heads, 1000 if not args.dry_run else 10).to(b.device, dtype)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, size, size, generator=g).to(b.device, dtype)
    small = x[: args.slow_batch]
    y = torch.randint(0, net.config.num_labels, (args.batch,), generator=g)

    def plain(z):
        with torch.no_grad():
            return net(pixel_values=z).logits

    ref = {n: b.run(lambda n=n: plain(x[:n]), n) for n in {args.batch, args.slow_batch}}

    def train_step(z):  # forward + backward of a loss: what a training step holds (no optimiser state)
        net.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(pixel_values=z).logits.float(), y[: len(z)].to(b.device)).backward()

    train = {n: b.run(lambda n=n: train_step(x[:n]), n)[1] for n in {args.batch, args.slow_batch}}
    net.zero_grad(set_to_none=True)

    def eager():
        with torch.no_grad(), vn.core.arch.eager_attention(net):
            return net(pixel_values=x, output_attentions=True).attentions

    rows = [
        ("plain SDPA forward", args.batch, *ref[args.batch]),
        ("eager + output_attentions", args.batch, *b.run(eager, args.batch)),
    ]
    rows.append(("vn.capture cls", args.batch, *b.run(lambda: vn.capture(net, x, cls_only=True), args.batch)))
    rows.append(("capture_rollout", args.batch, *b.run(lambda: capture_rollout(net, x), args.batch)))
    for name in vn.methods("vit"):
        if name in ("attention flow", "random"):
            continue
        z = x if name in FAST + GRADIENT else small
        opts = {"baseline": "zero"} if name == "integrated gradients" else {}
        rows.append((name, len(z), *b.run(lambda name=name, z=z, opts=opts: vn.explain(net, z, name, **opts), len(z))))
    lines += [
        f"ViT geometry: {size} px, patch {patch}, {hidden} wide, {layers} layers x {heads} heads, random weights, "
        f"{args.dtype}; best of {args.repeat} after a warm-up call. Reference: the plain SDPA forward at the same "
        f"batch; gradient methods' memory also against a training step's (forward + backward of a loss: "
        f"{train[args.batch]:.0f} MiB at batch {args.batch}, {train[args.slow_batch]:.0f} at {args.slow_batch}).",
        "",
        "| path | batch | images/s | x plain forward | target | peak MiB | x plain forward's | x training step's |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, n, ips, peak in rows:
        r_ips, r_peak = ref[n]
        target = TARGETS.get(name)
        verdict = "" if target is None else f">= {target} {'met' if ips / r_ips >= target else 'MISSED'}"
        lines.append(
            f"| {name} | {n} | {ips:,.0f} | {ips / r_ips:.2f} | {verdict} | {peak:,.0f} | {peak / r_peak:.2f} | "
            f"{peak / train[n]:.2f} |"
        )
    lines += ["", *sweep_and_flow(args, b, net, x, y)]
    if args.profile:
        profile(b, {"capture_rollout": lambda: capture_rollout(net, x),
                    "gradient rollout": lambda: vn.explain(net, x, "gradient rollout")})  # fmt: skip


def profile(b: Bench, runs: dict) -> None:
    """The torch profiler's busiest operations of each run (printed, not written to RESULTS.md)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if b.cuda else [])
    for name, fn in runs.items():
        fn()
        b.sync()
        with torch_profile(activities=activities) as prof:
            fn()
            b.sync()
        key = "cuda_time_total" if b.cuda else "cpu_time_total"
        print(f"\n## profile: {name}\n" + prof.key_averages().table(sort_by=key, row_limit=12), file=sys.stderr)


def sweep_and_flow(args, b: Bench, net, x, y) -> list[str]:
    out = []
    n = min(args.batch, 256)
    times = {}
    for method in ("naive", "fast"):
        b.sync()
        t = time.perf_counter()
        vn.sweep(net, x[:n], y[:n], method=method, batch_size=n)
        b.sync()
        times[method] = time.perf_counter() - t
    out.append(
        f"All-heads ablation sweep, {n} images: naive {times['naive']:.2f} s, fast {times['fast']:.2f} s "
        f"(fast / naive = {times['fast'] / times['naive']:.2f})."
    )
    attn = vn.capture(net, x[:1])
    t = time.perf_counter()
    vn.explain(attn, None, "attention flow")
    out.append(
        f"Attention flow (scipy max-flow on the CPU, from a capture): {time.perf_counter() - t:.1f} s per image "
        f"at {attn.probs.shape[-1]} tokens x {attn.probs.shape[0]} layers."
    )
    return out


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().cpu(), b.double().cpu()
    return float((a - b).abs().max() / a.abs().max().clamp_min(1e-30))


def agreement(args, lines: list[str]) -> None:
    """Each registered method, the sweep and the profile on the CPU and on ``--device``, float32."""
    dev = args.device
    if dev.startswith("cuda"):  # float32 means float32: no TF32 in convolutions or matmuls
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    models = {}
    n = 4 if args.dry_run else 16
    try:
        p2 = vn.load("fmnist-vit-p2")
        images, labels = vn.data.fashion_mnist_arrays("test")
        models["fmnist-vit-p2"] = (p2, p2.preprocess(list(images[:n])), torch.as_tensor(labels[:n]).long())
    except (FileNotFoundError, OSError) as err:
        lines.append(f"fmnist-vit-p2 skipped: {str(err).splitlines()[0]}")
    g = torch.Generator().manual_seed(1)
    size, patch = (56, 4) if not args.dry_run else (16, 4)  # 197 tokens (+ prefix) in the full run
    for kind in ("deit", "dinov2-reg"):
        net = vit(size, patch, 96, 4, 4, 10, kind)
        x = torch.randn(n, 3, size, size, generator=g)
        try:
            vn.core.geometry(net)
        except (TypeError, ValueError) as err:
            lines.append(f"random {kind} refused by this transformers: {err}")
            continue
        models[f"random {kind}"] = (net, x, torch.randint(0, 10, (n,), generator=g))
    names = [m for m in vn.methods("vit") if m != "attention flow"]
    lines += ["", "| model | " + " | ".join(names) + " | sweep | profile |", "|---|" + "---|" * (len(names) + 2)]
    worst = 0.0
    for label, (model, x, y) in models.items():
        net = model.net if isinstance(model, vn.core.Model) else model

        def both(fn, net=net):  # fn(device) on the CPU, then with the model on ``dev``
            cpu = torch.as_tensor(fn("cpu"))
            net.to(dev)
            try:
                return _rel(cpu, torch.as_tensor(fn(dev)))
            finally:
                net.to("cpu")

        def one_map(where, name, model=model, x=x, y=y):
            opts = (
                {"baseline": "zero"} if name == "integrated gradients" and not isinstance(model, vn.core.Model) else {}
            )
            return vn.explain(model, x.to(where), name, y.to(where), **opts)

        cells = [both(lambda where, name=name: one_map(where, name)) for name in names]
        cells.append(both(lambda _, model=model, x=x, y=y: vn.sweep(model, x, y, batch_size=len(x)).loss.to_numpy()))
        cells.append(
            both(lambda _, model=model, x=x: vn.profile.attention_profile(model, x).select_dtypes("number").to_numpy())
        )
        worst = max(worst, *cells)
        lines.append(f"| {label} | " + " | ".join(f"{c:.1e}" for c in cells) + " |")
    lines += ["", f"Largest relative max difference, CPU against {dev}: {worst:.1e} ({n} images per model)."]


def paste(section: Path) -> None:
    text, new = RESULTS.read_text(), section.read_text().strip()
    if START not in text or END not in text:
        sys.exit(f"{RESULTS} has no {START} ... {END} markers")
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    RESULTS.write_text(pattern.sub(lambda _: f"{START}\n{new}\n{END}", text))
    print(f"pasted {section} into {RESULTS}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--slow-batch", type=int, default=32, help="integrated gradients and occlusion")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: checks the script, measures nothing")
    p.add_argument("--out", type=Path, help="also write the section to this file")
    p.add_argument("--profile", action="store_true", help="print the profiler's busiest operations (stderr)")
    p.add_argument("--paste", type=Path, help="replace RESULTS.md's GPU section with this file and stop")
    args = p.parse_args()
    if args.paste:
        return paste(args.paste)
    if args.dry_run:
        args.device, args.dtype, args.batch, args.slow_batch, args.repeat = "cpu", "fp32", 8, 4, 1
    elif not torch.cuda.is_available():
        sys.exit("no CUDA device: run on a machine with a GPU, or pass --dry-run")
    where = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else f"CPU ({platform.machine()})"
    import transformers

    lines = [
        f"# {time.strftime('%Y-%m-%d')} | {where} | torch {torch.__version__} | transformers "
        f"{transformers.__version__}{' | DRY RUN: tiny sizes on the CPU, no measurement' if args.dry_run else ''}",
        "",
    ]
    speed(args, Bench(args.device, args.repeat), lines)
    agreement(args, lines)
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
