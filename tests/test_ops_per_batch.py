"""The GPU's shape, checked on the CPU: every hot path runs a number of tensor operations per chunk
that does not grow with the images in it (no per-image or per-block Python loop, the thing that
makes a GPU wait for Python), counted with a ``TorchDispatchMode`` at 4 and at 32 images of a small
random ViT with the real token count (197 tokens: 28 px at patch 2, like ``fmnist-vit-p2``).

The attention products run under the accelerator's blocking policy (``BLOCK_BYTES`` without a CPU
entry: the whole chunk in one product), which is what a GPU gets; the CPU's own cache-sized blocks
are a measured CPU choice, and the last test shows the counter sees them (so it would see a
per-image or per-block loop put back). Methods chunked by design state their formula: integrated
gradients runs ``ceil(images * n_steps / batch_size)`` forwards, occlusion ``ceil(images / batch_size)
+ ceil(images * cells / batch_size)``; with a batch that holds all of them, their counts are flat too.
"""

import collections

import pytest
import torch
from conftest import make_vit
from torch.utils._python_dispatch import TorchDispatchMode

import vitnotes as vn
from vitnotes import stats as stats_module
from vitnotes.core import capture as capture_module
from vitnotes.core.model import geometry
from vitnotes.methods.rollout import capture_rollout

SMALL, LARGE = 4, 32


class OpCounter(TorchDispatchMode):
    """Counts every ATen operation dispatched while it is active, by name."""

    def __init__(self):
        super().__init__()
        self.ops = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


@pytest.fixture(scope="module")
def vit197():
    net = make_vit("sdpa", image_size=28, patch_size=2, num_channels=1, num_hidden_layers=2)
    assert geometry(net).grid == (14, 14)  # 196 patches + CLS = 197 tokens
    return net


@pytest.fixture
def accelerator_blocks(monkeypatch):
    """The blocking policy a GPU gets: no CPU entry, so every device takes the whole chunk."""
    monkeypatch.delitem(capture_module.BLOCK_BYTES, "cpu")
    monkeypatch.delitem(stats_module.DISTANCE_BLOCK_BYTES, "cpu")


def images(n):
    return torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(n))


def count(fn, n):
    x = images(n)
    fn(x)  # warm-up: lazy initialisation is not the method's work
    with OpCounter() as c:
        fn(x)
    return c.ops


def growth(fn):
    small, large = count(fn, SMALL), count(fn, LARGE)
    grown = {op: (small[op], large[op]) for op in small.keys() | large.keys() if small[op] != large[op]}
    return sum(small.values()), sum(large.values()), grown


ZERO = {"integrated gradients": {"baseline": "zero", "n_steps": 2}, "occlusion": {"patch": 14}}
BIG = 256  # a chunk that holds every image (and every interpolated or occluded copy) of both batches


def test_every_registered_method_is_covered(vit197):
    assert set(vn.methods("vit")) - {"attention flow"} == set(_methods())


def _methods():
    return [m for m in vn.methods("vit") if m != "attention flow"]  # a graph algorithm on a capture, per image


@pytest.mark.parametrize("name", _methods())
def test_method_ops_do_not_grow_with_the_batch(vit197, accelerator_blocks, name):
    def run(x):
        return vn.explain(vit197, x, name, batch_size=BIG, **ZERO.get(name, {}))

    small, large, grown = growth(run)
    if name == "integrated gradients":  # captum's gradient call fills one grad_output per interpolated
        # image (torch.unbind of the outputs): a few-microsecond fill each, against a forward and a backward
        assert grown.pop("aten.ones_like") == (SMALL * 2, LARGE * 2)
    assert not grown, f"{name}: {small} ops for {SMALL} images, {large} for {LARGE}; grown: {grown}"


ANALYSES = {
    "capture": lambda net, x: vn.capture(net, x, batch_size=BIG),
    "capture cls": lambda net, x: vn.capture(net, x, cls_only=True, batch_size=BIG),
    "capture_rollout": lambda net, x: capture_rollout(net, x, batch_size=BIG),
    "sweep": lambda net, x: vn.sweep(net, x, torch.zeros(len(x), dtype=torch.long), batch_size=len(x)),
    "attention_profile": lambda net, x: vn.profile.attention_profile(net, x, batch_size=BIG),
}


@pytest.mark.parametrize("name", list(ANALYSES))
def test_analysis_ops_do_not_grow_with_the_batch(vit197, accelerator_blocks, name):
    small, large, grown = growth(lambda x: ANALYSES[name](vit197, x))
    assert not grown, f"{name}: {small} ops for {SMALL} images, {large} for {LARGE}; grown: {grown}"


@pytest.mark.parametrize("name", ["integrated gradients", "occlusion"])
def test_chunked_by_design_grows_by_whole_chunks(vit197, name):
    """At ``batch_size`` 4, 4 / 8 / 32 images make 1 / 2 / 8 chunks of the same work (integrated
    gradients: 2 forwards of 4 interpolated images; occlusion: 1 clean forward and 4 forwards of 4
    occluded copies): the count is a fixed part plus the same cost per chunk, exactly linear."""

    def ops(n):
        return sum(count(lambda x: vn.explain(vit197, x, name, batch_size=4, **ZERO[name]), n).values())

    one, two, eight = ops(4), ops(8), ops(32)
    per_chunk = two - one
    assert per_chunk > 0 and eight - one == 7 * per_chunk, (one, two, eight)


def _syncs(layers: int, name: str) -> int:
    """Host reads of a tensor's value (``aten._local_scalar_dense``: ``.item()``, ``int(t)``, a branch on a
    tensor) in one call on a ``layers``-deep ViT; on a GPU each one waits for the device."""
    net = make_vit("sdpa", image_size=28, patch_size=2, num_channels=1, num_hidden_layers=layers)
    run = ANALYSES.get(name) or (lambda n, x: vn.explain(n, x, name, batch_size=BIG, **ZERO.get(name, {})))
    return count(lambda x: run(net, x), SMALL)["aten._local_scalar_dense"]


@pytest.mark.parametrize("name", _methods() + list(ANALYSES))
def test_no_host_sync_inside_the_layer_loop(accelerator_blocks, name):
    """The host waits for the device a fixed number of times per call, however deep the model."""
    assert _syncs(2, name) == _syncs(4, name) <= 4, name


def test_counter_sees_a_block_loop(vit197):
    """With the CPU's cache-sized blocks (a loop over blocks of images inside each layer), the counter
    reports growth: the test above would fail if such a loop reached the GPU path."""
    capture_module.BLOCK_BYTES["cpu"] = 4 * 197 * 197 * 4  # one image per block
    try:
        small, large, grown = growth(lambda x: capture_rollout(vit197, x, batch_size=BIG))
    finally:
        capture_module.BLOCK_BYTES["cpu"] = capture_module._BLOCK_BYTES
    assert large > small and grown["aten.bmm"][1] == grown["aten.bmm"][0] * LARGE // SMALL
