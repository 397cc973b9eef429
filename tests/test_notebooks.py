"""The chapters as files: every notebooks/NN_*.py has its .ipynb, the two hold the same cells
(jupytext pairing), and every code cell of the committed .ipynb was executed without error
(nbval only compares cells that have stored outputs, and the book renders what is stored)."""

from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext", reason="the book extra: pip install -e '.[book]'")
import nbformat  # noqa: E402
import yaml  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def cells(nb) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def test_every_chapter_is_a_pair_and_in_the_table_of_contents():
    assert len(SOURCES) >= 9, f"expected the chapters 00-08, found {[p.name for p in SOURCES]}"
    assert [p.stem for p in SOURCES] == [p.stem for p in NOTEBOOKS], "every .py needs its executed .ipynb and back"
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = {ch["file"] for part in toc["parts"] for ch in part["chapters"]}
    assert {f"notebooks/{p.stem}" for p in SOURCES} <= files, "a chapter is missing from _toc.yml"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_pair_in_sync(source):
    py = jupytext.read(source)
    ipynb = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    assert py.metadata.get("jupytext", {}).get("formats") == "ipynb,py:percent", (
        "pair it: jupytext --set-formats ipynb,py:percent"
    )
    assert cells(py) == cells(ipynb), (
        f"{source.name} and its .ipynb differ: edit the .py, then `make notebooks NB={source.relative_to(ROOT)}`"
    )


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_code_cell_executed_without_error(notebook):
    nb = nbformat.read(notebook, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "a chapter without code"
    unexecuted = [i for i, c in enumerate(code) if c.execution_count is None]
    assert not unexecuted, f"code cells {unexecuted} of {notebook.name} were never executed: run `make notebooks`"
    counts = [c.execution_count for c in code]
    assert counts == list(range(1, len(code) + 1)), f"{notebook.name} was not executed top to bottom in one run"
    errors = [i for i, c in enumerate(code) for o in c.outputs if o.output_type == "error"]
    assert not errors, f"code cells {errors} of {notebook.name} stored an error"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_first_code_cell_installs_vitnotes_only_when_missing(source, monkeypatch):
    """Binder and Colab readers run the chapter as it is: its first code cell installs vitnotes when the
    kernel lacks it, and does nothing here (subprocess is never called while vitnotes is importable)."""
    import subprocess

    first = next(c for c in jupytext.read(source).cells if c.cell_type == "code")
    assert "remove-cell" in first.metadata.get("tags", []), "the install cell is hidden in the book"
    assert 'find_spec("vitnotes") is None' in first.source and "pip" in first.source

    def refuse(*args, **kwargs):
        raise AssertionError(f"the install cell ran {args}: it must be a no-op where vitnotes is installed")

    monkeypatch.setattr(subprocess, "run", refuse)
    exec(compile(first.source, str(source), "exec"), {})

    import importlib.util

    calls = []
    monkeypatch.setattr(subprocess, "run", lambda args, check: calls.append(args))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)  # a kernel without vitnotes
    exec(compile(first.source, str(source), "exec"), {})
    assert len(calls) == 1 and calls[0][1:4] == ["-m", "pip", "install"] and "vitnotes" in calls[0][-1]
