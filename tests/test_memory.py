"""Bounded memory (issue 17): 1,000 images through every map method that takes a model, with its
default chunk size, each under a ceiling on peak resident memory that the same method run as one
1,000-image chunk exceeds several times over (checked here too, so the ceiling can fail).

The methods run in a child process whose glibc returns every freed block over 64 kB at once
(``MALLOC_MMAP_THRESHOLD_``), so resident memory follows what torch holds; the kernel's exact
high-water mark (``VmHWM``) is reset before each call (``/proc/self/clear_refs``) and read after."""

import ctypes
import json
import os
import subprocess
import sys

import pytest

CEILING_MIB = 32
IMAGES = 1000
FAST = {
    "occlusion": {"patch": 14},
    "integrated gradients": {"n_steps": 4, "baseline": "zero"},
}  # fewer forwards, same memory per chunk


def _peak_mib(fn) -> float:
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # VmHWM := current resident size
    with open("/proc/self/statm") as f:
        start = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    fn()
    with open("/proc/self/status") as f:
        hwm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM"))
    return (hwm - start) / 2**20


def _child() -> None:
    import torch
    from transformers import ViTConfig, ViTForImageClassification

    import vitnotes as vn

    torch.manual_seed(0)
    cfg = ViTConfig(image_size=28, patch_size=4, num_channels=1, hidden_size=32, num_hidden_layers=2,
                    num_attention_heads=4, intermediate_size=64, num_labels=10)  # fmt: skip
    net = ViTForImageClassification(cfg).eval()
    x = torch.randn(IMAGES, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    names = [n for n in vn.methods("vit") if n != "attention flow"]
    peaks = {}
    for name in names:
        vn.explain(net, x[:2], name, **FAST.get(name, {}))  # warm-up: lazy imports, kernels
        out: list = []
        peaks[name] = _peak_mib(lambda n=name, o=out: o.append(vn.explain(net, x, n, **FAST.get(n, {}))))
        assert out[0].shape[0] == IMAGES
    unchunked = _peak_mib(lambda: vn.explain(net, x, "gradient rollout", batch_size=IMAGES))
    print(json.dumps({"peaks": peaks, "unchunked": unchunked}))


@pytest.fixture(scope="module")
def measured():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # this checkout's vitnotes, not an installed one
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    res = subprocess.run([sys.executable, __file__], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_the_ceiling_catches_an_unchunked_run(measured):
    assert measured["unchunked"] > 3 * CEILING_MIB


def test_every_method_stays_under_the_ceiling_over_1000_images(measured):
    import vitnotes as vn

    assert set(measured["peaks"]) == set(vn.methods("vit")) - {"attention flow"}  # flow takes a capture
    over = {name: round(mib, 1) for name, mib in measured["peaks"].items() if mib > CEILING_MIB}
    assert not over, f"peak resident memory over {CEILING_MIB} MiB: {over}"


if __name__ == "__main__":
    _child()
