"""The launch buttons' environment, checked offline: ``binder/requirements.txt`` installs CPU torch and
the project with every pin equal to ``constraints.txt``; ``binder/runtime.txt`` names a Python the
project supports; and the Binder and Colab links Jupyter Book builds from ``_config.yml`` point at
notebooks that exist (the same URL recipe as sphinx-book-theme's launch buttons). No network."""

import re
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def requirement_lines(path: Path) -> list[str]:
    """Lines of a pip requirements file without comments, blanks and line continuations."""
    text = re.sub(r"\\\n", " ", path.read_text())
    return [
        line.split(" #")[0].strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]


def pins(lines: list[str]) -> dict[str, Version]:
    out = {}
    for line in lines:
        if line.startswith("-"):
            continue
        req = Requirement(line)
        exact = [s for s in req.specifier if s.operator in ("==", "===")]
        if exact:
            out[canonicalize_name(req.name)] = Version(exact[0].version)
    return out


@pytest.fixture(scope="module")
def binder_lines():
    return requirement_lines(BINDER / "requirements.txt")


@pytest.fixture(scope="module")
def constraints():
    return pins(requirement_lines(ROOT / "constraints.txt"))


def options(lines: list[str], flag: str) -> list[str]:
    found = []
    for line in lines:
        if line.startswith(flag):
            value = line[len(flag) :].lstrip(" =")
            found.append(value)
    return found


def test_cpu_torch_from_the_pytorch_cpu_index(binder_lines, constraints):
    assert options(binder_lines, "--extra-index-url") == [CPU_INDEX]
    assert not options(binder_lines, "--index-url") and not options(binder_lines, "-i "), (
        "an --index-url would replace PyPI for every other package"
    )
    torch = [Requirement(line) for line in binder_lines if not line.startswith("-") and line.startswith("torch")]
    assert len(torch) == 1 and torch[0].name == "torch"
    (spec,) = list(torch[0].specifier)
    version = Version(spec.version)
    assert spec.operator == "==" and version.local == "cpu", "pin the CPU build (torch==X+cpu): PyPI's torch is CUDA"
    assert version.public == str(constraints["torch"]), "binder's torch differs from constraints.txt"


def test_every_pin_equals_constraints(binder_lines, constraints):
    for name, version in pins(binder_lines).items():
        assert name in constraints, f"binder pins {name}, which constraints.txt does not"
        assert Version(version.public) == constraints[name], (
            f"{name}: binder {version} != constraints {constraints[name]}"
        )
    (c,) = options(binder_lines, "-c")  # pip resolves -c relative to the requirements file
    assert (BINDER / c).resolve() == (ROOT / "constraints.txt").resolve()


def test_the_project_is_installed_with_its_extras(binder_lines):
    editable = options(binder_lines, "-e")
    assert len(editable) == 1, "install the project once, editable (repo2docker runs pip from the repository root)"
    m = re.fullmatch(r"\.(?:\[([\w,\s-]+)\])?", editable[0].strip("'\""))
    assert m, f"-e {editable[0]}: expected the repository root, '.' or '.[extra]'"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [e.strip() for e in (m.group(1) or "").split(",") if e.strip()]
    assert set(extras) <= set(project.get("optional-dependencies", {})), f"unknown extras {extras}"
    # the CPU torch pin satisfies the project's own range
    (torch,) = [Requirement(line) for line in binder_lines if line.startswith("torch")]
    version = Version(next(iter(torch.specifier)).version)
    ranges = [Requirement(d).specifier for d in project["dependencies"] if Requirement(d).name == "torch"]
    assert ranges and all(version in r for r in ranges), f"torch {version} is outside pyproject's range {ranges}"


def test_runtime_is_a_supported_python():
    runtime = (BINDER / "runtime.txt").read_text().strip()
    m = re.fullmatch(r"python-(\d+)\.(\d+)", runtime)
    assert m, f"runtime.txt {runtime!r}: expected python-X.Y"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert Version(f"{m.group(1)}.{m.group(2)}") in SpecifierSet(requires)


def launch_links(config: dict, page: str) -> dict[str, str]:
    """The Binder and Colab links Jupyter Book 1 (sphinx-book-theme) builds for ``page`` (a notebook's
    docname), from ``_config.yml``."""
    repo = config["repository"]
    launch = config["launch_buttons"]
    parts = urlparse(repo["url"])
    org, name = parts.path.strip("/").split("/")[:2]
    branch = repo.get("branch", "main")
    book = (repo.get("path_to_book") or "").strip("/")
    rel = f"{book + '/' if book else ''}{page}.ipynb"
    ui = {"classic": "tree", "jupyterlab": "lab/tree"}[launch.get("notebook_interface", "classic")]
    links = {}
    if launch.get("binderhub_url"):
        links["binder"] = f"{launch['binderhub_url'].strip('/')}/v2/gh/{org}/{name}/{branch}?urlpath={ui}/{rel}"
    if launch.get("colab_url"):
        links["colab"] = f"{launch['colab_url'].strip('/')}/github/{org}/{name}/blob/{branch}/{rel}"
    return links


def toc_files(toc: dict) -> list[str]:
    files = [toc["root"]]
    for part in toc.get("parts", []):
        for chapter in part.get("chapters", []):
            files.append(chapter["file"])
            files += [s["file"] for s in chapter.get("sections", [])]
    return files


def test_launch_links_point_at_existing_notebooks():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    assert urlparse(config["repository"]["url"]).netloc == "github.com"
    assert config["launch_buttons"].get("binderhub_url", "").startswith("https://")
    book = ROOT / (config["repository"].get("path_to_book") or "")
    assert (book / "binder" / "requirements.txt").is_file() or (ROOT / "binder" / "requirements.txt").is_file()
    notebooks = [f for f in toc_files(toc) if (book / f"{f}.ipynb").is_file()]
    chapters = sorted(p.relative_to(book).with_suffix("").as_posix() for p in book.glob("notebooks/[0-9]*.ipynb"))
    assert chapters, "no chapter notebooks found"
    assert sorted(notebooks) == chapters, "every chapter's .ipynb is in the table of contents (and has a button)"
    for page in notebooks:
        for kind, url in launch_links(config, page).items():
            rel = url.split("urlpath=lab/tree/")[-1] if kind == "binder" else url.split("/blob/")[1].split("/", 1)[1]
            assert (ROOT / rel).is_file(), f"the {kind} link of {page} points at {rel}, which does not exist"
    for f in toc_files(toc):  # every page of the book exists, as .md or .ipynb
        assert any((book / f"{f}{ext}").is_file() for ext in (".md", ".ipynb")), f"{f} in _toc.yml does not exist"
