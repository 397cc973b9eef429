"""The head picker's ``.save(path)`` is ``vn.show.save_html`` on the picker; ``vn.show.explore`` and
``vn.show.save_html`` are part of the public API."""

import numpy as np
import pytest
import torch

import vitnotes as vn
from vitnotes.show.export import find_embed_js

try:
    find_embed_js()
    HAVE_BUNDLE = True
except FileNotFoundError:
    HAVE_BUNDLE = False


def test_the_namespaces_have_explore_and_save_html():
    from vitnotes.show.explorer import explore
    from vitnotes.show.export import save_html

    assert vn.show.explore is explore and vn.show.save_html is save_html
    assert {"explore", "save_html"} <= set(vn.show.__all__) and "attribution_patching" in vn.interventions.__all__
    assert "evaluation_table" in vn.__all__


@pytest.mark.skipif(not HAVE_BUNDLE, reason="needs node_modules (npm ci)")
def test_picker_save_writes_what_save_html_writes(tmp_path):
    maps = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))  # [layer, head, rows, cols]
    picker = vn.show.head_picker(np.zeros((16, 16), np.float32), maps, size=32)
    saved = picker.save(tmp_path / "a.html", title="picker")
    assert saved == tmp_path / "a.html"
    direct = vn.show.save_html(picker, tmp_path / "b.html", title="picker")
    assert saved.read_text() == direct.read_text()
    assert '"model_name": "LinkModel"' in saved.read_text()


def test_picker_save_refuses_a_folder_or_a_missing_bundle(tmp_path):
    picker = vn.show.head_picker(np.zeros((16, 16), np.float32), torch.rand(1, 2, 4, 4), size=32)
    with pytest.raises(FileNotFoundError, match="npm ci"):
        picker.save(tmp_path / "x.html", embed_js=tmp_path / "missing.js")
    if HAVE_BUNDLE:
        with pytest.raises(IsADirectoryError, match="is a folder"):
            picker.save(tmp_path)
