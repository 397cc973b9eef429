"""Tiny random models (transformers 5.x) shared by the tests, and the local web server and headless
browser the page tests use. Nothing here touches the network."""

import contextlib
import functools
import http.server
import os
import shutil
import threading
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
from transformers import (  # noqa: E402
    DeiTConfig,
    DeiTForImageClassification,
    ResNetConfig,
    ResNetForImageClassification,
    ViTConfig,
    ViTForImageClassification,
)

import vitnotes as vn  # noqa: E402
from vitnotes.core import Preprocessing  # noqa: E402

LABELS = {i: f"c{i}" for i in range(5)}


def vit_config(**kw):
    base = dict(
        image_size=16,
        patch_size=4,
        num_channels=3,
        hidden_size=24,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=48,
        num_labels=5,
        id2label=LABELS,
        label2id={v: k for k, v in LABELS.items()},
        qkv_bias=True,
    )
    base.update(kw)
    return ViTConfig(**base)


def make_vit(attn="sdpa", seed=0, **kw):
    torch.manual_seed(seed)
    cfg = vit_config(**kw)
    cfg._attn_implementation = attn
    net = ViTForImageClassification(cfg).eval()
    assert net.config._attn_implementation == attn
    return net


@pytest.fixture
def vit():
    return make_vit("sdpa")


@pytest.fixture
def vit_eager():
    return make_vit("eager")


@pytest.fixture
def deit():
    torch.manual_seed(1)
    cfg = DeiTConfig(
        image_size=16,
        patch_size=4,
        num_channels=3,
        hidden_size=24,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=48,
        num_labels=5,
    )
    return DeiTForImageClassification(cfg).eval()


@pytest.fixture
def resnet():
    torch.manual_seed(2)
    cfg = ResNetConfig(
        num_channels=3,
        embedding_size=8,
        hidden_sizes=[8, 16],
        depths=[1, 1],
        layer_type="basic",
        num_labels=5,
        id2label=LABELS,
        downsample_in_first_stage=False,
    )
    return ResNetForImageClassification(cfg).eval()


@pytest.fixture
def pixels():
    torch.manual_seed(3)
    return torch.randn(3, 3, 16, 16)


@pytest.fixture
def vit_folder(tmp_path):
    """A tiny ViT saved like a hub checkpoint: config.json, model.safetensors, preprocessor_config.json."""
    net = make_vit("sdpa", seed=4)
    pre = Preprocessing(size=16, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), channels=3)
    return vn.train.save(net, tmp_path / "tiny-vit", preprocessing=pre)


def vitnotes_hooks(net):
    """Hooks vitnotes left on a model (transformers installs output-capturing hooks of its own)."""
    return [
        fn
        for m in net.modules()
        for fn in (*m._forward_hooks.values(), *m._forward_pre_hooks.values())
        if fn.__module__.startswith("vitnotes")
    ]


NETWORK_ATTEMPTS: list = []  # every refused connection of the whole session, even one a library caught


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test that made it, and is recorded:
    ``pytest_sessionfinish`` fails the session if any attempt was made, even one that a library
    caught and recovered from."""
    import socket

    def refuse(self, address, *args, **kwargs):
        if self.family == socket.AF_UNIX:
            return real_connect(self, address, *args, **kwargs)
        NETWORK_ATTEMPTS.append(address)
        raise AssertionError(f"the test suite tried to reach the network: {address!r}")

    real_connect = socket.socket.connect
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: refuse(socket.socket(), a[:2]))


def pytest_sessionfinish(session, exitstatus):
    if NETWORK_ATTEMPTS:
        session.exitstatus = 1
        print(
            f"\nFAILED: the test suite tried to reach the network {len(NETWORK_ATTEMPTS)} time(s): "
            f"{NETWORK_ATTEMPTS[:5]}"
        )


# ------------------------------------------------------------------ static pages in a headless browser
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


@contextlib.contextmanager
def serve(folder: Path):
    """Serve ``folder`` on 127.0.0.1 (a free port) for the duration; yields the base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def watch_requests(page) -> tuple[list, list]:
    """Lists that fill with the page's failed requests (errors and HTTP statuses >= 400; the
    browser's own favicon probe aside) and with requests that leave the machine."""
    failed, remote = [], []
    page.on("requestfailed", lambda r: failed.append(r.url))
    page.on(
        "response",
        lambda r: (
            failed.append(f"{r.status} {r.url}") if r.status >= 400 and not r.url.endswith("/favicon.ico") else None
        ),
    )
    page.on(
        "request",
        lambda r: (
            remote.append(r.url) if not r.url.startswith(("http://127.0.0.1", "data:", "blob:", "about:")) else None
        ),
    )
    return failed, remote


# The slow tier, measured with `pytest --durations=0` on 2 cores (2026-12-04, 1066 s in all): these
# take 1-440 s each module (the hub notebooks 439 s, the zoo's rescoring 234 s, bf16 agreement 131 s,
# the book in Chromium 72 s) or need Chromium; `make check` runs everything else (about 2 min).
SLOW_MODULES = {
    "test_hub_notebooks.py",
    "test_zoo.py",
    "test_dtype.py",
    "test_book.py",
    "test_explore.py",
    "test_processes.py",
    "test_memory.py",
    "test_browser.py",
}
SLOW_TESTS = {"test_cli_smoke_run_writes_model_and_card", "test_saved_picker_switches_heads_offline_from_disk"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in SLOW_MODULES or item.originalname in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)


def randomise(net: torch.nn.Module, *names: str) -> None:
    """Random values for the parameters whose names hold any of ``names``: the ones a random init leaves
    constant (relative position bias tables, layer scales, CLS / register / mask tokens), so that a test
    sees it when a computation drops them."""
    with torch.no_grad():
        for name, p in net.named_parameters():
            if any(n in name for n in names):
                p.copy_(torch.randn_like(p))


def random_pixels(n: int = 2, size: int = 16, seed: int = 0) -> torch.Tensor:
    """``n`` random RGB ``pixel_values`` of ``size`` x ``size`` from a seeded generator."""
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))
