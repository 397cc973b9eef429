"""``save_html``: a head picker saved as ONE offline HTML file, opened from disk (``file://``) in
headless Chromium with every request other than the file itself refused and failing the test;
choosing another head (and layer) changes the image shown."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CHROMIUM, CHROMIUM_ARGS, make_vit
from test_book import check_picker  # the book's own check of a picker page

import vitnotes as vn
from vitnotes.show.export import find_embed_js, save_html

try:
    find_embed_js()
    HAVE_BUNDLE = True
except FileNotFoundError:
    HAVE_BUNDLE = False
try:
    import playwright.sync_api  # noqa: F401

    HAVE_PLAYWRIGHT = True
except ImportError:
    HAVE_PLAYWRIGHT = False

MISSING = [
    what
    for what, ok in [
        ("node_modules (npm ci)", HAVE_BUNDLE),
        ("chromium (apt-get install chromium)", Path(CHROMIUM).exists()),
        ("playwright (pip install playwright)", HAVE_PLAYWRIGHT),
    ]
    if not ok
]
if MISSING and os.environ.get("CI"):  # in CI the export must be checked, never skipped
    raise RuntimeError(f"CI needs {', '.join(MISSING)}; `make test` provides them")
browser_needed = pytest.mark.skipif(bool(MISSING), reason=f"needs {', '.join(MISSING)}")


def picker():
    net = make_vit(image_size=28, patch_size=4, num_channels=1, num_hidden_layers=3, num_attention_heads=4)
    att = vn.capture(net, torch.randn(1, 1, 28, 28, generator=torch.Generator().manual_seed(0)), cls_only=True)
    image = np.random.default_rng(0).random((28, 28)).astype(np.float32)
    return vn.show.head_picker(image, att.cls_grids()[:, 0], size=96)


@pytest.mark.skipif(not HAVE_BUNDLE, reason="needs node_modules (npm ci)")
def test_the_file_is_self_contained(tmp_path):
    page = save_html(picker(), tmp_path / "sub" / "picker.html", title="a <picker>").read_text()
    tags = [line[:60] for line in page.splitlines() if line.startswith("<script")]
    assert len(tags) == 3, tags  # the bundle, the state, one view: nothing loaded from elsewhere
    assert all("src=" not in tag for tag in tags)
    assert "a &lt;picker&gt;" in page
    links = [line for line in page.splitlines() if line.startswith("<link")]
    assert links == ['<link rel="icon" href="data:,">']  # no favicon request either
    assert "data:font/woff2;base64," in page
    assert '"model_name": "LinkModel"' in page, "the jslinks that switch the views are not saved"
    assert "Automatic publicPath" not in page
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["picker.html"]  # no temporary file left


def test_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match="ipywidgets widget"):
        save_html("not a widget", tmp_path / "x.html")
    if HAVE_BUNDLE:
        with pytest.raises(IsADirectoryError, match="is a folder"):
            save_html(picker(), tmp_path)
    with pytest.raises(FileNotFoundError, match="npm ci"):
        save_html(picker(), tmp_path / "x.html", embed_js=tmp_path / "missing.js")
    assert not (tmp_path / "x.html").exists()


@browser_needed
def test_saved_picker_switches_heads_offline_from_disk(tmp_path):
    from playwright.sync_api import sync_playwright

    path = save_html(picker(), tmp_path / "picker.html")
    url = path.resolve().as_uri()
    refused, errors = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 900, "height": 700}, offline=True)

        def gate(route):
            if route.request.url == url:
                route.continue_()
            else:
                refused.append(route.request.url)
                route.abort()

        context.route("**/*", gate)
        page = context.new_page()
        page.on("requestfailed", lambda r: refused.append(f"failed {r.url}"))
        page.on(  # file:// requests bypass routing: any besides the page itself fails the test too
            "request",
            lambda r: None if r.url == url or r.url.startswith(("data:", "blob:")) else refused.append(r.url),
        )
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url, wait_until="load")
        check_picker(page, "the saved picker")  # another head, then another layer: the image changes
        page.screenshot(path=str(tmp_path / "picker.png"))
        browser.close()
    assert not errors, f"the page raised: {errors[:3]}"
    assert not refused, f"the page asked for something besides itself: {refused[:5]}"
