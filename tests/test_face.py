"""The face a reader holds: ``vn.*`` at most 60 names, each introduced by the chapter its docstring
names; the rest in documented namespaces; the chapters reach vitnotes only through ``import vitnotes
as vn``; every ``vn.`` name a chapter (or the README, or the book) writes exists; and the API table in
the README and the book is the one the docstrings make."""

from __future__ import annotations

import ast
import re
import types
from pathlib import Path

import pytest
from api_table import PAGES, held, introduced, table

import vitnotes as vn

ROOT = Path(__file__).parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
NAMESPACES = ("evaluate", "show", "train", "interventions")
FACE = [n for n in vn.__all__ if not isinstance(getattr(vn, n), types.ModuleType)]
USE = re.compile(r"(?<![\w.])vn((?:\.[A-Za-z_]\w*)+)")


def test_the_face_holds_at_most_60_names_and_each_exists():
    assert len(vn.__all__) <= 60, f"vn.__all__ has {len(vn.__all__)} names: move some into a namespace"
    assert len(set(vn.__all__)) == len(vn.__all__)
    assert [n for n in vn.__all__ if not hasattr(vn, n)] == []
    public = {n for n in dir(vn) if not n.startswith("_") and not isinstance(getattr(vn, n), types.ModuleType)}
    assert public - set(vn.__all__) - {"setup", "annotations", "os", "random", "OPAQUE_FIGURES"} == set()


@pytest.mark.parametrize("name", NAMESPACES + ("core", "stats", "profile", "data"))
def test_every_namespace_is_documented_and_lists_what_it_holds(name):
    space = getattr(vn, name)
    assert isinstance(space, types.ModuleType) and name in vn.__all__
    assert len((space.__doc__ or "").split()) >= 8, f"vn.{name} needs a docstring that says what it holds"
    assert space.__all__ and [n for n in space.__all__ if not hasattr(space, n)] == []


@pytest.mark.parametrize("name", FACE)
def test_every_face_name_is_introduced_by_the_chapter_its_docstring_names(name):
    nb = introduced(getattr(vn, name))
    assert nb, f"vn.{name}'s docstring needs the line 'Introduced in notebook NN'"
    users = [p.name[:2] for p in NOTEBOOKS if re.search(rf"(?<![\w.])vn\.{name}(?!\w)", p.read_text())]
    assert users, f"no chapter uses vn.{name}: it belongs in a namespace, not on the face"
    assert nb == users[0], f"vn.{name} says notebook {nb}, but notebook {users[0]} uses it first"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name[:2])
def test_a_chapter_imports_vitnotes_only_as_vn(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "vitnotes":
            pytest.fail(f"{path.name}:{node.lineno}: 'from {node.module} import ...': reach it as vn.…")
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "vitnotes":
                    assert (alias.name, alias.asname) == ("vitnotes", "vn"), f"{path.name}:{node.lineno}"


@pytest.mark.parametrize("path", NOTEBOOKS + [ROOT / "README.md", *(ROOT / "book").glob("*.md")], ids=lambda p: p.name)
def test_every_vn_name_written_in_a_chapter_or_page_exists(path):
    missing = set()
    for chain in USE.findall(path.read_text()):
        obj = vn
        for part in chain[1:].split("."):
            if isinstance(obj, types.ModuleType) or part[0].isupper() and isinstance(obj, type):
                if not hasattr(obj, part):
                    missing.add(f"vn{chain}")
                    break
                obj = getattr(obj, part)
            else:
                break  # a method or attribute of a returned object: not the face's business
    assert not missing, f"{path.name} names what vn does not have: {sorted(missing)}"


def test_the_readme_and_the_book_hold_the_api_table_the_docstrings_make():
    made = table()
    for name in FACE:
        assert f"| `vn.{name}` |" in made
    for page in PAGES:
        stale = f"{page.name}: the API table is stale; run python tests/api_table.py --write"
        assert held(page.read_text()) == made, stale


@pytest.mark.parametrize("path", sorted((ROOT / "apps").glob("*.ipynb")), ids=lambda p: p.name)
def test_the_apps_reach_vitnotes_through_the_face(path):
    """The Voilà app runs what a reader would: ``import vitnotes as vn`` and names that exist."""
    import json

    code = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
    for node in ast.walk(ast.parse(code)):
        assert not (isinstance(node, ast.ImportFrom) and (node.module or "").startswith("vitnotes")), path.name
    for chain in USE.findall(code):
        obj = vn
        for part in chain[1:].split("."):
            assert hasattr(obj, part), f"{path.name}: vn{chain}"
            obj = getattr(obj, part)
