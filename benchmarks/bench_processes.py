"""One process against several under accelerate: the same analyses of a Fashion-MNIST ``datasets.Dataset``,
timed in one run.

    python benchmarks/bench_processes.py                       # fmnist-vit-p4, 128 images, 2 processes, CPU
    python benchmarks/bench_processes.py --images 512 --processes 2

Runs itself three times on the same images: one process with one thread, one process with
``--processes`` threads (what one process gets on that many cores), and ``--processes`` processes of one
thread each under ``accelerate launch``. Each analysis (the all-heads sweep, the full attention profile,
the deletion study) is timed inside the run, from the call to the gathered table (the slowest process
counts); model loading and the launcher's start-up are printed apart. Prints the times, the speed-ups
and the largest relative difference between the tables of one process and of several. On a CPU
machine the processes run on the CPU over gloo (``accelerate launch --multi_gpu`` starts them; its
``--cpu`` flag starts only one). Run it with the cores otherwise idle.
"""

from __future__ import annotations

import argparse
import os
import pickle
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ANALYSES = ("sweep", "profile", "deletion")


def work(out: str, model_name: str, n: int, threads: int) -> None:
    """One run (a process of it): load, build the data set, time each analysis, pickle the tables."""
    import datasets
    import torch

    import vitnotes as vn
    from vitnotes.core.batches import processes

    t0 = time.perf_counter()
    rank, world = processes()
    vn.setup(seed=0, threads=threads, style=False)
    vit = vn.load(model_name)
    images, labels = vn.data.fashion_mnist_arrays("test")
    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")})
    ds = datasets.Dataset.from_dict({"image": list(images[:n]), "label": labels[:n]}, features=features)
    maps = {
        "random": vn.evaluate.random_maps(n, 28, seed=0),
        "last layer": lambda im: vn.explain(vit, vit.preprocess(im), "last layer"),
    }
    calls = {
        "sweep": lambda: vn.sweep(vit, ds, batch_size=64),
        "profile": lambda: vn.profile.attention_profile(vit, ds, batch_size=32),
        "deletion": lambda: vn.evaluate.deletion_study({"ViT": vit}, ds, maps, steps=8, batch_size=64)[1],
    }
    result = {"setup": time.perf_counter() - t0, "world": world, "threads": torch.get_num_threads()}
    for name, call in calls.items():
        t = time.perf_counter()
        result[name] = call()
        result[f"{name} s"] = time.perf_counter() - t
    with open(f"{out}.{rank}.pkl", "wb") as f:
        pickle.dump(result, f)


def run(cmd: list[str], out: Path, threads: int, processes: int) -> dict:
    """Start one configuration, wait, and read its processes' results (the slowest process's times)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "VITNOTES_QUIET": "1", "HF_HUB_OFFLINE": "1"}
    t = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    parts = [pickle.loads(Path(f"{out}.{r}.pkl").read_bytes()) for r in range(processes)]
    assert all(p["world"] == processes for p in parts), "the launcher did not start the processes asked for"
    best = {key: max(p[f"{key} s"] for p in parts) for key in ANALYSES}
    return {**parts[0], **{f"{k} s": v for k, v in best.items()}, "wall": wall}


def largest_difference(a, b) -> float:
    """Largest relative difference over the tables' measured columns (``rel_increase``, a difference of
    two nearly equal losses, is left out: float32 noise in a loss is large relative to it)."""
    num = [c for c in a.columns if a[c].dtype.kind == "f" and c != "rel_increase"]
    return max(float(((a[c] - b[c]).abs() / b[c].abs().clip(lower=1e-12)).max()) for c in num)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="fmnist-vit-p4")
    p.add_argument("--images", type=int, default=128)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--work", nargs=2, metavar=("OUT", "THREADS"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.work:
        return work(args.work[0], args.model, args.images, int(args.work[1]))
    me, k = [sys.executable, str(Path(__file__).resolve())], args.processes
    tail = ["--model", args.model, "--images", str(args.images), "--work"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(k)]
    launch += [
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(port),
    ]
    os.environ.update(
        ACCELERATE_USE_CPU="1", CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(Path(__file__).resolve().parents[1])
    )
    with tempfile.TemporaryDirectory() as tmp:
        configs = {
            "1 process x 1 thread": run([*me, *tail, f"{tmp}/a", "1"], Path(f"{tmp}/a"), 1, 1),
            f"1 process x {k} threads": run([*me, *tail, f"{tmp}/b", str(k)], Path(f"{tmp}/b"), k, 1),
            f"{k} processes x 1 thread": run([*launch, *me[1:], *tail, f"{tmp}/c", "1"], Path(f"{tmp}/c"), 1, k),
        }
    report(configs, args, k)


def report(configs: dict, args, k: int) -> None:
    import torch

    names = list(configs)
    base, threads, procs = (configs[n] for n in names)
    cpu = f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    print(f"# {time.strftime('%Y-%m-%d')} | {cpu} | torch {torch.__version__} | {args.model}, {args.images} images\n")
    print(f"| analysis | {' | '.join(names)} | x 1 thread | x {k} threads |")
    print("|---|" + "---|" * (len(names) + 2))
    for a in ANALYSES:
        secs = [c[f"{a} s"] for c in configs.values()]
        print(
            f"| {a} | "
            + " | ".join(f"{s:.1f} s" for s in secs)
            + f" | {secs[0] / secs[2]:.2f} | {secs[1] / secs[2]:.2f} |"
        )
    total = [sum(c[f"{a} s"] for a in ANALYSES) for c in configs.values()]
    print(
        "| all three | "
        + " | ".join(f"{s:.1f} s" for s in total)
        + f" | {total[0] / total[2]:.2f} | {total[1] / total[2]:.2f} |"
    )
    print(
        "| start-up + loading (not above) | "
        + " | ".join(f"{c['wall'] - sum(c[f'{a} s'] for a in ANALYSES):.1f} s" for c in configs.values())
        + " | | |"
    )
    diff = max(largest_difference(procs[a], base[a]) for a in ANALYSES)
    print(
        f"\nspeed-up = time of one process / time of {k} processes; largest relative difference between the tables "
        f"of one process and of {k}: {diff:.1e} (images counted: {procs['sweep'].attrs['n']})"
    )


if __name__ == "__main__":
    main()
