"""Nothing overwritten (issue 26, item 4): every writer refuses a path that holds something it did
not write, in one line naming the path and the fix, before any work, and leaves the disk as it was;
what it writes goes to a temporary file beside the target, renamed onto it. A file it wrote earlier
is replaced (atomically), and a fresh path is written as before.

The writers: ``python -m vitnotes explain --out DIR`` (NAME.png / NAME.json), ``sweep --out FILE``
(the CSV), ``python -m vitnotes.demo --out FILE`` and ``vn.show.save_html`` / ``picker.save`` (the
offline page). ``vn.train.save`` and the training CLI's ``--out`` are tested in test_honest_loading.py."""

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import vitnotes as vn
from vitnotes import cli, demo
from vitnotes.show.export import find_embed_js, save_html

try:
    find_embed_js()
    HAVE_BUNDLE = True
except FileNotFoundError:
    HAVE_BUNDLE = False

USER = b"my own notes, not vitnotes'\n"


@pytest.fixture(autouse=True)
def quiet(monkeypatch):
    """No progress bars on stderr: a refusal is checked to be its one line."""
    monkeypatch.setenv("VITNOTES_QUIET", "1")


@pytest.fixture
def images(tmp_path):
    """Two small images in a folder of their own (``imgs/cat.png``, ``imgs/dog.png``)."""
    rng = np.random.default_rng(0)
    (tmp_path / "imgs").mkdir()
    paths = []
    for name in ("cat.png", "dog.png"):
        Image.fromarray((rng.random((20, 20, 3)) * 255).astype(np.uint8)).save(tmp_path / "imgs" / name)
        paths.append(tmp_path / "imgs" / name)
    return paths


@pytest.fixture
def no_model(monkeypatch):
    """A refusal comes before any model is loaded: loading one fails the test."""

    def load(name):
        raise AssertionError(f"the model {name!r} was loaded before the refusal")

    monkeypatch.setattr(cli, "_load_model", load)


def snapshot(folder: Path) -> dict:
    """Every entry below ``folder`` (hidden ones too: temporary files): path -> bytes, link target or 'dir'."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        out[rel] = f"-> {os.readlink(p)}" if p.is_symlink() else "dir" if p.is_dir() else p.read_bytes()
    return out


def no_temporary_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]


def refused(argv, capsys) -> str:
    """Run the CLI; it must exit 2 with exactly one line on stderr, no traceback. Returns that line."""
    code = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def spy_renames(monkeypatch) -> list:
    """Record every ``os.replace`` (source, target) while still doing it."""
    calls = []
    real = os.replace

    def replace(src, dst, *a, **kw):
        calls.append((Path(src), Path(dst)))
        return real(src, dst, *a, **kw)

    monkeypatch.setattr(os, "replace", replace)
    return calls


def assert_atomic(calls, path: Path):
    """``path`` was written by renaming a temporary sibling (``.NAME.*.tmp`` in the same folder) onto it."""
    sources = [src for src, dst in calls if dst == path]
    assert sources, f"{path} was not written by a rename"
    assert all(s.parent == path.parent and s.name.startswith(f".{path.name}.") for s in sources), sources


# ------------------------------------------------------------------ explain --out DIR
def test_explain_empty_out_is_refused_and_the_working_folder_untouched(
    vit_folder, images, tmp_path, monkeypatch, capsys, no_model
):
    here = tmp_path / "here"
    here.mkdir()
    (here / "cat.png").write_bytes(USER)  # the user's own file, the name explain would write
    monkeypatch.chdir(here)
    before = snapshot(here)
    line = refused(["explain", images[0], "--model", vit_folder, "--out", ""], capsys)
    assert "--out ''" in line and "--out ." in line, line
    assert snapshot(here) == before


def user_file_cases(out: Path) -> dict:
    """What may lie in an explain --out folder that explain did not write; the path it is refused for."""

    def png_alone():
        (out / "cat.png").write_bytes(USER)
        return out / "cat.png"

    def a_real_png_with_a_foreign_json():  # a picture of the user's beside a JSON that is no record
        Image.new("RGB", (8, 8)).save(out / "cat.png")
        (out / "cat.json").write_text('{"image": "mine"}')
        return out / "cat.png"

    def json_not_a_record():
        (out / "cat.json").write_text(json.dumps({"notes": "mine"}))
        return out / "cat.json"

    def json_not_json():
        (out / "cat.json").write_bytes(USER)
        return out / "cat.json"

    def record_naming_another_png():  # a record copied under another name does not make cat.png explain's
        (out / "cat.png").write_bytes(USER)
        rec = {"image": "x", "model": "m", "method": "rollout", "map": {}, "overlay": "other.png"}
        (out / "cat.json").write_text(json.dumps(rec))
        return out / "cat.png"

    def a_symbolic_link():
        (out / "target.json").write_text('{"keep": true}')
        (out / "cat.json").symlink_to(out / "target.json")
        return out / "cat.json"

    def a_folder():
        (out / "cat.png").mkdir()
        (out / "cat.png" / "inside.txt").write_bytes(USER)
        return out / "cat.png"

    return {f.__name__: f for f in (png_alone, a_real_png_with_a_foreign_json, json_not_a_record, json_not_json,
                                    record_naming_another_png, a_symbolic_link, a_folder)}  # fmt: skip


CASES = [
    "png_alone", "a_real_png_with_a_foreign_json", "json_not_a_record", "json_not_json",
    "record_naming_another_png", "a_symbolic_link", "a_folder",
]  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_explain_refuses_a_file_it_did_not_write(vit_folder, images, tmp_path, capsys, no_model, case):
    out = tmp_path / "maps"
    out.mkdir()
    path = user_file_cases(out)[case]()
    before = snapshot(out)
    line = refused(["explain", *images, "--model", vit_folder, "--out", out], capsys)
    assert str(path) in line and "already exists" in line and "choose another --out" in line, line
    assert snapshot(out) == before  # byte-identical, nothing added (dog.* neither), no temporary file


def test_explain_below_a_file_is_one_line_and_creates_nothing(vit_folder, images, tmp_path, capsys, no_model):
    afile = tmp_path / "afile"
    afile.write_bytes(USER)
    line = refused(["explain", images[0], "--model", vit_folder, "--out", afile / "maps"], capsys)
    assert f"{afile} is a file, not a folder" in line, line
    assert afile.read_bytes() == USER


def test_a_refusal_creates_no_output_folder(vit_folder, tmp_path, capsys):
    """Bad input found after the output check (a missing image) leaves no new folder behind."""
    refused(["explain", tmp_path / "missing.png", "--model", vit_folder, "--out", tmp_path / "new" / "maps"], capsys)
    refused(["sweep", tmp_path / "missing.png", "--labels", "1", "--model", vit_folder,
             "--out", tmp_path / "new" / "t.csv"], capsys)  # fmt: skip
    assert not (tmp_path / "new").exists()


def test_explain_checks_again_just_before_the_rename(vit_folder, images, tmp_path, monkeypatch, capsys):
    """A user's file that appears in the folder while the model runs is not replaced either."""
    out = tmp_path / "maps"
    load = cli._load_model

    def load_then_a_file_appears(name, prompts=None):
        net = load(name)
        out.mkdir(exist_ok=True)
        (out / "cat.png").write_bytes(USER)
        return net

    monkeypatch.setattr(cli, "_load_model", load_then_a_file_appears)
    line = refused(["explain", images[0], "--model", vit_folder, "--out", out], capsys)
    assert str(out / "cat.png") in line, line
    assert snapshot(out) == {"cat.png": USER}  # no temporary file left


def test_explain_writes_a_fresh_folder_and_replaces_its_own_files_atomically(
    vit_folder, images, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "maps"
    calls = spy_renames(monkeypatch)
    assert cli.main(["explain", *map(str, images), "--model", str(vit_folder), "--out", str(out)]) == 0
    names = ["cat.json", "cat.png", "dog.json", "dog.png"]
    assert sorted(p.name for p in out.iterdir()) == names
    first = json.loads((out / "cat.json").read_text())
    assert first["method"] == "rollout"
    calls.clear()
    assert (
        cli.main(
            ["explain", *map(str, images), "--model", str(vit_folder), "--method", "last layer", "--out", str(out)]
        )
        == 0
    )  # fmt: skip  (explain's own files: replaced)
    assert json.loads((out / "cat.json").read_text())["method"] == "last layer"
    assert sorted(p.name for p in out.iterdir()) == names and no_temporary_files(out)
    for name in names:
        assert_atomic(calls, out / name)
    # --out . writes into the working folder, beside the user's other files, which stay as they are
    here = tmp_path / "here"
    here.mkdir()
    (here / "notes.txt").write_bytes(USER)
    monkeypatch.chdir(here)
    assert cli.main(["explain", str(images[0]), "--model", str(vit_folder), "--out", "."]) == 0
    assert sorted(p.name for p in here.iterdir()) == ["cat.json", "cat.png", "notes.txt"]
    assert (here / "notes.txt").read_bytes() == USER
    capsys.readouterr()


# ------------------------------------------------------------------ sweep --out FILE
def sweep_cases(tmp_path: Path) -> dict:
    """What may lie at sweep's --out that sweep did not write; returns (argument, path to name)."""

    def user_csv():
        (tmp_path / "notes.csv").write_bytes(b"date,weight\n2024-01-01,71.5\n")
        return tmp_path / "notes.csv", tmp_path / "notes.csv"

    def almost_the_header():  # e.g. vn.sweep's table saved with its index: not sweep's own file
        header = "," + ",".join(cli.SWEEP_COLUMNS) + "\n0,0,0,1.0,0.1,1.0,2,ce,m\n"
        (tmp_path / "heads.csv").write_text(header)
        return tmp_path / "heads.csv", tmp_path / "heads.csv"

    def a_symbolic_link():  # even to a table sweep wrote: the link would be replaced by a file
        (tmp_path / "real.csv").write_text(",".join(cli.SWEEP_COLUMNS) + "\n")
        (tmp_path / "link.csv").symlink_to(tmp_path / "real.csv")
        return tmp_path / "link.csv", tmp_path / "link.csv"

    def below_a_file():
        (tmp_path / "afile").write_bytes(USER)
        return tmp_path / "afile" / "sub" / "t.csv", tmp_path / "afile"

    def empty():
        return "", "--out ''"

    return {f.__name__: f for f in (user_csv, almost_the_header, a_symbolic_link, below_a_file, empty)}


@pytest.mark.parametrize("case", ["user_csv", "almost_the_header", "a_symbolic_link", "below_a_file", "empty"])
def test_sweep_refuses_a_file_it_did_not_write(vit_folder, images, tmp_path, monkeypatch, capsys, no_model, case):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    out, named = sweep_cases(work)[case]()
    before = snapshot(work)
    line = refused(["sweep", *images, "--labels", "1", "2", "--model", vit_folder, "--out", out], capsys)
    assert str(named) in line and ("--out" in line or "choose another" in line), line
    assert snapshot(work) == before  # byte-identical, no temporary file, no folder made


def test_sweep_checks_again_just_before_the_rename(vit_folder, images, tmp_path, monkeypatch, capsys):
    table = tmp_path / "t.csv"
    load = cli._load_model

    def load_then_a_file_appears(name):
        net = load(name)
        table.write_bytes(USER)
        return net

    monkeypatch.setattr(cli, "_load_model", load_then_a_file_appears)
    line = refused(["sweep", *images, "--labels", "1", "2", "--model", vit_folder, "--out", table], capsys)
    assert str(table) in line, line
    assert table.read_bytes() == USER and no_temporary_files(tmp_path)


def test_sweep_writes_a_fresh_file_and_replaces_its_own_table_atomically(
    vit_folder, images, tmp_path, monkeypatch, capsys
):
    table = tmp_path / "new" / "heads.csv"
    calls = spy_renames(monkeypatch)
    argv = ["sweep", *map(str, images), "--model", str(vit_folder), "--out", str(table), "--labels"]
    assert cli.main([*argv, "1", "2"]) == 0
    assert table.read_text().splitlines()[0] == ",".join(cli.SWEEP_COLUMNS)  # what marks it as sweep's
    first = pd.read_csv(table)
    calls.clear()
    assert cli.main([*argv, "3", "4"]) == 0  # its own table: replaced
    second = pd.read_csv(table)
    assert list(second.columns) == list(cli.SWEEP_COLUMNS)
    assert not np.allclose(first["baseline_loss"], second["baseline_loss"])
    assert_atomic(calls, table)
    assert [p.name for p in table.parent.iterdir()] == ["heads.csv"]
    capsys.readouterr()


# ------------------------------------------------------------------ python -m vitnotes.demo --out FILE
@pytest.fixture
def quick_demo(monkeypatch):
    """The demo with a small stand-in figure; ``built`` counts how often it was built."""
    from matplotlib.figure import Figure

    built = []

    def build_figure():
        built.append(1)
        fig = Figure(figsize=(1, 1))
        fig.add_subplot().imshow(np.eye(4))
        return fig, {"layers": 1, "entropy_norm_last": 0.5}

    monkeypatch.setattr(demo, "build_figure", build_figure)
    return built


def demo_refused(argv, capsys) -> str:
    with pytest.raises(SystemExit) as stop:
        demo.main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert stop.value.code == 2 and len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("case", ["user file", "user png", "below a file", "empty"])
def test_demo_refuses_a_file_it_did_not_write(tmp_path, capsys, quick_demo, case):
    if case == "user file":
        (tmp_path / "demo.png").write_bytes(USER)
        out, named = tmp_path / "demo.png", tmp_path / "demo.png"
    elif case == "user png":  # a PNG, but not the demo's (no 'vitnotes demo' Software chunk)
        Image.new("RGB", (8, 8)).save(tmp_path / "demo.png")
        out, named = tmp_path / "demo.png", tmp_path / "demo.png"
    elif case == "below a file":  # was a bare FileExistsError traceback
        (tmp_path / "afile").write_bytes(USER)
        out, named = tmp_path / "afile" / "demo.png", tmp_path / "afile"
    else:
        out, named = "", "--out ''"
    before = snapshot(tmp_path)
    line = demo_refused(["--out", out], capsys)
    assert str(named) in line, line
    assert snapshot(tmp_path) == before and not quick_demo  # refused before the figure was built


def test_demo_writes_a_fresh_file_and_replaces_its_own(tmp_path, monkeypatch, capsys, quick_demo):
    out = tmp_path / "fig" / "demo.png"
    calls = spy_renames(monkeypatch)
    assert demo.main(["--out", str(out)]) == out
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(out) as im:
        assert im.text.get("Software") == demo.MARK
    calls.clear()
    assert demo.main(["--out", str(out)]) == out  # the demo's own figure: replaced
    assert_atomic(calls, out)
    assert [p.name for p in out.parent.iterdir()] == ["demo.png"] and len(quick_demo) == 2
    capsys.readouterr()


# ------------------------------------------------------------------ vn.show.save_html / picker.save
def picker():
    return vn.show.head_picker(np.zeros((16, 16), np.float32), torch.rand(1, 2, 4, 4), size=32)


def html_cases(tmp_path: Path) -> dict:
    def user_page():
        (tmp_path / "index.html").write_text("<!DOCTYPE html>\n<html><body>my page</body></html>\n")
        return tmp_path / "index.html", tmp_path / "index.html", FileExistsError

    def generator_only_in_the_body():  # the tag must be in the head, before any script
        (tmp_path / "p.html").write_text(
            '<!DOCTYPE html>\n<script>x</script>\n<meta name="generator" content="vitnotes save_html">\n'
        )
        return tmp_path / "p.html", tmp_path / "p.html", FileExistsError

    def a_symbolic_link():
        (tmp_path / "real.html").write_bytes(USER)
        (tmp_path / "p.html").symlink_to(tmp_path / "real.html")
        return tmp_path / "p.html", tmp_path / "p.html", FileExistsError

    def below_a_file():  # was a bare "[Errno 17] File exists" after all the work
        (tmp_path / "afile").write_bytes(USER)
        return tmp_path / "afile" / "p.html", tmp_path / "afile", FileExistsError

    def empty():
        return "", "''", ValueError

    return {f.__name__: f for f in (user_page, generator_only_in_the_body, a_symbolic_link, below_a_file, empty)}


@pytest.mark.parametrize(
    "case", ["user_page", "generator_only_in_the_body", "a_symbolic_link", "below_a_file", "empty"]
)
def test_save_html_refuses_a_file_it_did_not_write_before_any_work(tmp_path, case):
    work = tmp_path / "work"
    work.mkdir()
    path, named, error = html_cases(work)[case]()
    before = snapshot(work)
    # a missing bundle would fail the export: the refusal comes first, before the bundle is read
    with pytest.raises(error) as info:
        save_html(picker(), path, embed_js=tmp_path / "missing.js")
    message = str(info.value)
    assert str(named) in message and "\n" not in message, message
    assert snapshot(work) == before


@pytest.mark.skipif(not HAVE_BUNDLE, reason="needs node_modules (npm ci)")
def test_save_html_writes_a_fresh_file_replaces_its_own_and_keeps_a_users(tmp_path, monkeypatch):
    page = tmp_path / "picker.html"
    calls = spy_renames(monkeypatch)
    assert picker().save(page, title="first") == page
    assert "<title>first</title>" in page.read_text()
    calls.clear()
    assert save_html(picker(), page, title="second") == page  # its own page: replaced
    assert "<title>second</title>" in page.read_text()
    assert_atomic(calls, page)
    mine = tmp_path / "mine.html"
    mine.write_bytes(USER)
    with pytest.raises(FileExistsError, match="mine.html already exists"):
        picker().save(mine)
    assert mine.read_bytes() == USER
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.html", "picker.html"]


# ------------------------------------------------------------------ what the temporary file leaves
@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_written_files_get_an_ordinary_files_permissions(vit_folder, images, tmp_path, capsys, quick_demo, umask_022):
    """A file written by rename has the mode a plain new file would (0o644 under umask 022), not the
    private 0o600 of ``tempfile.mkstemp``: a shared map, table or page stays readable by others."""
    out = tmp_path / "out"
    assert cli.main(["explain", str(images[0]), "--model", str(vit_folder), "--out", str(out)]) == 0
    argv = ["sweep", *map(str, images), "--labels", "1", "2", "--model", str(vit_folder), "--out", str(out / "t.csv")]
    assert cli.main(argv) == 0
    demo.main(["--out", str(out / "demo.png")])
    written = ["cat.png", "cat.json", "t.csv", "demo.png"]
    if HAVE_BUNDLE:
        save_html(picker(), out / "p.html")
        written.append("p.html")
    assert {name: oct((out / name).stat().st_mode & 0o777) for name in written} == dict.fromkeys(written, "0o644")
    capsys.readouterr()
