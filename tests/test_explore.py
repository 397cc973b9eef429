"""vn.show.explore: the app driven in-process as the browser would drive it (an upload sets the FileUpload's
value, menus set their values), then the same app served by a real Voilà server on 127.0.0.1 and driven
in headless Chromium: upload an image file, change the method and the layer; the picture changes each
time, the prediction appears, and nothing is fetched from outside the machine (browser, server, kernel)."""

import datetime
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CHROMIUM, CHROMIUM_ARGS, make_vit, watch_requests
from PIL import Image

import vitnotes as vn
from vitnotes.show.explorer import explore, image_from_bytes, map_numbers

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "apps" / "explore.ipynb"
VOILA = Path(sys.executable).parent / "voila"
SHOT = ROOT / "_build" / "explore.png"
PRE = vn.core.Preprocessing(size=32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), channels=3)


def tiny_vit(folder: Path) -> Path:
    """A 3-layer, 4-head ViT on 32 px images (an 8x8 grid), saved like a checkpoint."""
    return vn.train.save(make_vit("sdpa", seed=4, image_size=32), folder, preprocessing=PRE)


def png_bytes(seed: int = 0, size=(40, 48), mode: str = "RGB") -> bytes:
    rgb = (np.random.default_rng(seed).random((*size, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).convert(mode).save(buf, format="PNG")
    return buf.getvalue()


def as_uploaded(content: bytes, name: str = "photo.png") -> tuple:
    """The FileUpload value ipywidgets 8 sets when the browser sends a file."""
    when = datetime.datetime(2026, 11, 29, tzinfo=datetime.timezone.utc)
    return ({"name": name, "type": "image/png", "size": len(content), "content": memoryview(content),
             "last_modified": when},)  # fmt: skip


@pytest.fixture(scope="module")
def vit_dir(tmp_path_factory):
    return tiny_vit(tmp_path_factory.mktemp("explore") / "tiny-vit")


@pytest.fixture
def app(vit_dir):
    examples = [np.random.default_rng(9).random((28, 28)).astype(np.float32)]
    return explore(str(vit_dir), images=examples).explorer


# ------------------------------------------------------------------ in-process
def test_upload_method_layer_and_head_change_the_picture(app):
    assert app.message.value == "" and app.picture.value, "the first example is drawn on start"
    assert app.method.options == tuple(vn.methods("vit"))
    assert (app.layer.label, app.head.label) == ("default", "mean")
    start = app.picture.value
    app.upload.value = as_uploaded(png_bytes())
    uploaded = app.picture.value
    assert uploaded != start and app.example.value is None
    assert "prediction: c" in app.prediction.value and "%" in app.prediction.value
    assert "entropy / log N" in app.numbers.value and "top-10 share" in app.numbers.value
    assert "computing rollout" in app.status.value and " s<" in app.status.value  # progress, then the time
    seen = [uploaded]
    for control, value in [(app.method, "last layer"), (app.layer, 0), (app.head, 2), (app.layer, 1)]:
        control.value = value
        assert app.message.value == "", app.message.value
        assert app.picture.value not in seen, f"{control.description}={value} did not change the picture"
        seen.append(app.picture.value)
    assert not app.head.disabled and not app.layer.disabled
    app.method.value = "attention flow"
    assert app.layer.disabled and app.head.disabled and app.picture.value not in seen
    app.method.value = "grad-cam"
    assert not app.layer.disabled and app.head.disabled and app.message.value == ""


def test_bad_files_and_models_are_readable_messages(app, vit_dir):
    app.upload.value = as_uploaded(png_bytes())
    good = app.picture.value
    app.upload.value = as_uploaded(b"not an image at all", name="notes.png")
    assert "cannot read the uploaded file: notes.png is not an image file" in app.message.value
    app.upload.value = as_uploaded(png_bytes()[:60], name="cut.png")
    assert "cut.png is a corrupt or truncated image" in app.message.value
    assert app.picture.value == good and "Traceback" not in app.message.value
    app.model_box.value = str(vit_dir.parent / "no-such-model")
    assert "cannot load model" in app.message.value and "not an existing folder" in app.message.value
    app.model_box.value = "nobody/no-such-model"  # a hub id, offline and not cached
    assert "cannot load model &#x27;nobody/no-such-model&#x27;" in app.message.value
    app.model_box.value = str(vit_dir)  # back to a good one: the message clears, the map is drawn again
    assert app.message.value == "" and app.picture.value


def test_colour_modes_are_converted_and_paths_dropped():
    rgba = image_from_bytes(png_bytes(mode="RGBA"), "alpha.png")
    assert rgba.mode == "RGB" and rgba.size == (48, 40)
    assert image_from_bytes(png_bytes(mode="L"), "grey.png").mode == "L"
    with pytest.raises(ValueError, match=r"^x\.png is not an image file"):
        image_from_bytes(b"\x00" * 10, "../../x.png")  # only the file's name, never a path


def test_default_examples_are_the_familys_images(vit_dir):
    app = explore(str(vit_dir)).explorer  # the zoo family: one Fashion-MNIST test image per class
    if not app.example.options:  # the data set is not installed: the app says so and still takes uploads
        assert "no example images" in app.message.value
        return
    assert [label.split(" (#")[0] for label, _ in app.example.options] == list(vn.data.FASHION_MNIST_CLASSES)
    assert app.example.index == 0 and app.picture.value and "prediction: c" in app.prediction.value


def test_map_numbers_follow_the_books_definitions():
    uniform = map_numbers(torch.ones(8, 8))
    assert uniform["entropy / log N"] == pytest.approx(1.0) and uniform["top-k share"] == pytest.approx(10 / 64)
    peaked = torch.zeros(2, 2)
    peaked[0, 1] = 3.0
    assert map_numbers(peaked)["entropy"] == pytest.approx(0.0) and map_numbers(peaked)["k"] == 4
    assert map_numbers(torch.zeros(4, 4))["entropy"] is None  # an empty grad-cam map


def test_a_cnn_gets_the_cnn_methods_that_run_with_defaults(resnet, tmp_path):
    folder = vn.train.save(resnet, tmp_path / "tiny-resnet", preprocessing=PRE)
    app = explore(str(folder), images=[np.full((32, 32, 3), 100, np.uint8)]).explorer
    assert app.method.options == ("grad-cam", "integrated gradients") and app.head.disabled and not app.layer.disabled
    assert app.message.value == "" and "prediction:" in app.prediction.value
    before = app.picture.value
    app.layer.value = 0
    assert app.picture.value != before and "stage 0" in app.status.value


# ------------------------------------------------------------------ served by Voilà, in headless Chromium
def _missing() -> list[str]:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return ["playwright (pip install playwright)"]
    return [
        what
        for what, ok in [("voila (pip install voila)", VOILA.exists()), ("chromium", Path(CHROMIUM).exists())]
        if not ok
    ]


def _free_port() -> int:
    with socket.socket() as s:  # bind only: the suite's network guard refuses connections, not binds
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_log(proc: subprocess.Popen, log: Path, text: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            pytest.fail(f"voila exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)
    pytest.fail(f"voila did not start in {seconds:.0f} s:\n{log.read_text(errors='replace')[-3000:]}")


@pytest.fixture
def voila(tmp_path):
    """A Voilà server for apps/explore.ipynb on 127.0.0.1 (a free port, no token, a tmp working dir and
    Jupyter dirs), whose zoo holds only a tiny ViT; server and kernel behind tests/netguard. Killed
    (its whole process group) at teardown. Yields (url, network log)."""
    zoo, work, netlog = tmp_path / "zoo", tmp_path / "work", tmp_path / "network.log"
    tiny_vit(zoo / "tiny-vit")
    work.mkdir()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests" / "netguard")]),
               VITNOTES_NET_LOG=str(netlog), VITNOTES_ZOO=str(zoo), VITNOTES_QUIET="1", HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", MPLBACKEND="Agg", OMP_NUM_THREADS="1", VITNOTES_THREADS="1",
               JUPYTER_PATH=str(ROOT / "apps"), JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter-config"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "jupyter-runtime"), IPYTHONDIR=str(tmp_path / "ipython"),
               JUPYTER_PLATFORM_DIRS="1")  # fmt: skip
    port, log = _free_port(), tmp_path / "voila.log"
    cmd = [str(VOILA), str(APP), "--template=vitnotes", "--no-browser", "--Voila.ip=127.0.0.1", f"--port={port}",
           "--token=", "--Voila.port_retries=0"]  # fmt: skip
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for_log(proc, log, "Voilà is running at", 60)
        yield f"http://127.0.0.1:{port}/", netlog
    finally:
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            if proc.poll() is None:
                os.killpg(proc.pid, sig)  # the server and the kernel it started: one process group
                try:
                    proc.wait(wait)
                except subprocess.TimeoutExpired:
                    pass


NEW_PICTURE = """prev => { const i = document.querySelector('img.vn-picture');
  return i !== null && !!i.src && i.src !== prev && i.complete && i.naturalWidth > 0 ? i.src : false; }"""


MISSING = _missing()
if MISSING and os.environ.get("CI"):  # in CI the served app must be checked, never skipped
    raise RuntimeError(f"CI needs {', '.join(MISSING)}; `make test` installs them")


def _new_picture(page, prev: str | None) -> tuple[str, bytes]:
    """Wait (bounded) until the app shows a picture other than ``prev``; its src and its pixels."""
    src = page.wait_for_function(NEW_PICTURE, arg=prev, timeout=60_000).json_value()
    return src, page.locator("img.vn-picture").screenshot()


def _drive(page, photo: Path) -> None:
    """Upload ``photo``, then change the method and the layer: each step must change the picture and
    show the prediction, with no message."""

    def upload():  # ipywidgets' upload button opens the browser's file chooser
        with page.expect_file_chooser(timeout=30_000) as chooser:
            page.click(".vn-upload")
        chooser.value.set_files(str(photo))

    src, shown = _new_picture(page, None)  # the first example, drawn on start
    seen = [shown]
    steps = [("upload", upload),
             ("method", lambda: page.select_option(".vn-method select", label="last layer")),
             ("layer", lambda: page.select_option(".vn-layer select", label="layer 0"))]  # fmt: skip
    for what, act in steps:
        act()
        src, shown = _new_picture(page, src)
        assert shown not in seen, f"changing the {what} did not change the picture"
        seen.append(shown)
        assert "prediction: c" in page.inner_text(".vn-prediction"), what
        assert "%" in page.inner_text(".vn-prediction") and page.inner_text(".vn-message").strip() == ""
    assert "entropy / log N" in page.inner_text(".vn-numbers")
    assert page.eval_on_selector(".vn-head select", "s => s.options[s.selectedIndex].text") == "mean"


@pytest.mark.skipif(bool(MISSING), reason=f"needs {', '.join(MISSING)}")
def test_voila_app_in_a_browser(voila, tmp_path):
    from playwright.sync_api import sync_playwright
    from skimage import data

    url, netlog = voila
    photo = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).resize((128, 128)).save(photo)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 760})
            failed, remote = watch_requests(page)
            page.set_default_timeout(90_000)
            page.goto(url, timeout=90_000)
            page.wait_for_selector(".vn-method select", timeout=120_000)  # the kernel ran the notebook
            _drive(page, photo)
            SHOT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(SHOT), full_page=True)
        finally:
            browser.close()
    assert not failed, f"failed requests: {failed}"
    assert not remote, f"requests that left the machine: {remote}"
    assert not netlog.exists() or not netlog.read_text(), f"server or kernel reached out: {netlog.read_text()}"


def test_make_explore_serves_this_notebook():
    make = (ROOT / "Makefile").read_text()
    assert "apps/explore.ipynb --template=vitnotes" in make and "--Voila.ip=127.0.0.1" in make
    assert "\nexplore: $(STAMP)" in make
    cells = [c for c in json.loads(APP.read_text())["cells"] if c["cell_type"] == "code"]
    assert len(cells) == 1 and "vn.setup(seed=0)" in "".join(cells[0]["source"])
