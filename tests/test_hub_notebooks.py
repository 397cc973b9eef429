"""The hub switch: every notebook runs end to end with VITNOTES_MODELS=hub.

The hub models are tiny random stand-ins with the real geometry, written into a Hugging Face cache
in its own layout (``tests/hub_models.py``), so the notebooks load ``google/vit-base-patch16-224``
and friends through the very ``from_pretrained`` path an online reader takes, with
``HF_HUB_OFFLINE=1``. Each kernel runs with a network guard that logs and refuses every connection
leaving the machine; the log must stay empty.
"""

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the book extra: pip install -e '.[book]'")
from hub_models import HUB_IDS, make_hub_cache, run_notebook  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(
    p for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.py") if "zoo" not in p.stem
)  # the zoo page reads the zoo


@pytest.fixture(scope="module")
def hub_root(tmp_path_factory):
    return make_hub_cache(tmp_path_factory.mktemp("hub"))


def _texts(nb) -> str:
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            out.append(o.get("text", ""))
            out.extend(str(v) for k, v in o.get("data", {}).items() if k.startswith("text/"))
    return "\n".join(out)


def test_stand_ins_sit_in_the_hub_cache(hub_root):
    for repo in HUB_IDS:
        snap = next((hub_root / "hub" / f"models--{repo.replace('/', '--')}" / "snapshots").iterdir())
        assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= {f.name for f in snap.iterdir()}
    assert (hub_root / "home" / "spectro-vit-b16" / "card.json").is_file()


@pytest.mark.parametrize("source", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_on_hub_models(source, hub_root, tmp_path):
    nb = run_notebook(source, hub_root, tmp_path)  # raises, naming the cell, if any cell fails
    text = _texts(nb)
    assert "model family: hub" in text, "the kernel did not run under VITNOTES_MODELS=hub"
    assert any(h in text for h in (*HUB_IDS, "spectro-vit-b16")), "the notebook did not load a hub model"
    assert "fmnist-" not in text.replace("fmnist-vit-p4 -> spectro", ""), "a zoo model leaked into the hub run"
    assert not any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))
    nbformat.validate(nb)
    log = hub_root / "network.log"
    assert not log.exists(), f"a kernel tried to reach the network: {log.read_text()}"
