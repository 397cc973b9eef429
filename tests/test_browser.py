"""The head picker in a static HTML page, no kernel: choosing another head or layer changes the
image the browser shows. Headless Chromium (Debian's) driven by Playwright; the widget manager
(`@jupyter-widgets/html-manager`'s standalone bundle) is served from the page's own folder."""

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CHROMIUM, CHROMIUM_ARGS, make_vit, serve, watch_requests
from ipywidgets.embed import embed_snippet

import vitnotes as vn

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "node_modules" / "@jupyter-widgets" / "html-manager" / "dist"

MISSING = not (BUNDLE / "embed.js").is_file() or not Path(CHROMIUM).exists()
if MISSING and os.environ.get("CI"):  # in CI the browser check must run, never skip
    raise RuntimeError("CI needs node_modules (npm ci) and chromium; `make test` installs both as root")
pytestmark = pytest.mark.skipif(MISSING, reason="needs `npm ci` and Debian's chromium; `make test` installs both")


def write_page(folder: Path) -> None:
    net = make_vit(
        image_size=28,
        patch_size=4,
        num_channels=1,
        hidden_size=24,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=48,
    )
    att = vn.capture(net, torch.randn(1, 1, 28, 28), cls_only=True)
    image = np.random.default_rng(0).random((28, 28)).astype(np.float32)
    picker = vn.show.head_picker(image, att.cls_grids()[:, 0], size=96)
    snippet = re.sub(r'<script src="https?://[^"]*"[^>]*></script>', "", embed_snippet(views=[picker], requirejs=False))
    (folder / "index.html").write_text(
        f'<!doctype html><html><head><meta charset="utf-8"><script src="embed.js"></script>'
        f'<link rel="icon" href="data:,"></head><body>{snippet}</body></html>'
    )
    for f in BUNDLE.iterdir():  # the bundle and the font files it refers to
        if f.suffix in (".js", ".woff", ".woff2", ".ttf", ".eot", ".svg"):
            shutil.copy(f, folder / f.name)


@pytest.fixture
def served(tmp_path):
    write_page(tmp_path)
    with serve(tmp_path) as url:
        yield f"{url}/index.html"


def test_picker_switches_views_without_a_kernel(served):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        failed, remote = watch_requests(page)
        page.goto(served)
        page.wait_for_selector("select", timeout=20_000)
        page.wait_for_selector("img", state="visible", timeout=20_000)

        def shown():
            imgs = [i for i in page.query_selector_all("img") if i.is_visible()]
            assert len(imgs) == 1, f"{len(imgs)} images visible"
            return imgs[0].screenshot()

        layer_menu, head_menu = page.query_selector_all("select")
        first = shown()
        head_menu.select_option(index=2)
        page.wait_for_timeout(300)
        other_head = shown()
        layer_menu.select_option(index=2)
        page.wait_for_timeout(300)
        other_layer = shown()
        head_menu.select_option(index=0)
        layer_menu.select_option(index=0)
        page.wait_for_timeout(300)
        back = shown()
        browser.close()
    assert other_head != first and other_layer != other_head
    assert back == first
    assert not failed, f"failed requests: {failed}"
    assert not remote, f"requests that left the machine: {remote}"
