"""Every chapter says which of its findings is expected to change on ImageNet-scale ViTs, and how to check.

The book's models are small ViTs trained briefly on 28-pixel Fashion-MNIST (partly on a ResNet's
predictions). Each chapter's closing section has a static markdown paragraph, "On ImageNet-scale ViTs",
that names the findings expected to change on a large pre-trained ViT and gives the command that runs
the chapter on the hub models (``VITNOTES_MODELS=hub jupyter execute ... notebooks/NN_x.ipynb``).
Chapters that discuss locality (mean attention distance, local heads) or attention rollout cite
Raghu et al. (NeurIPS 2021): ViTs learn local heads in their lower layers only from large pre-training
data. Chapter 90 is about training the zoo and reads the zoo whatever
``VITNOTES_MODELS`` says.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KEY = "raghu2021vitsee"
HEADING = "On ImageNet-scale ViTs"
SKIP = {"90"}
CHAPTERS = [p for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py")) if p.name[:2] not in SKIP]
TOPICS = re.compile(r"rollout|mean attention distance|local heads?\b", re.I)


def markdown_cells(text: str) -> list[str]:
    """The text of every ``# %% [markdown]`` cell of a percent-format source, comment marks removed."""
    cells, current = [], None
    for line in text.splitlines():
        if line.startswith("# %%"):
            if current is not None:
                cells.append("\n".join(current))
            current = [] if "[markdown]" in line else None
        elif current is not None and (line.startswith("# ") or line == "#"):
            current.append(line[2:])
    if current is not None:
        cells.append("\n".join(current))
    return cells


def test_the_chapters_are_there():
    assert {p.name[:2] for p in CHAPTERS} >= {"00", "01", "03", "04", "05", "06", "07", "08", "09", "10"}


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.stem)
def test_closing_paragraph_names_the_hub_check(source):
    cells = [c for c in markdown_cells(source.read_text()) if HEADING in c]
    assert len(cells) == 1, f"{source.name}: expected one markdown cell with {HEADING!r}, found {len(cells)}"
    cell = " ".join(cells[0].split())
    command = re.search(r"`(VITNOTES_MODELS=hub jupyter execute [^`]*)`", cell)
    assert command, f"{source.name}: the {HEADING!r} paragraph gives no `VITNOTES_MODELS=hub jupyter execute` command"
    assert command.group(1).endswith(f"notebooks/{source.stem}.ipynb"), (
        f"{source.name}: the command runs another notebook: {command.group(1)}"
    )
    # the paragraph belongs to the closing section: after "What we found", before the exercises
    text = source.read_text()
    at = text.index(HEADING)
    assert text.rfind("What we found", 0, at) != -1, f"{source.name}: {HEADING!r} comes before 'What we found'"
    exercises = text.find("## Exercises")
    assert exercises == -1 or at < exercises, f"{source.name}: {HEADING!r} comes after the exercises"


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.stem)
def test_locality_and_rollout_cite_raghu(source):
    prose = "\n".join(markdown_cells(source.read_text()))
    if not TOPICS.search(prose):
        pytest.skip("the chapter discusses neither locality nor rollout")
    assert f"`{KEY}`" in prose, f"{source.name} discusses locality or rollout without citing {KEY}"


def test_hub_commands_use_the_book_form():
    """The form book/hub_models.md gives readers, with the chapter's notebook."""
    assert "VITNOTES_MODELS=hub jupyter execute notebooks/" in (ROOT / "book" / "hub_models.md").read_text()


def test_the_bibliography_has_the_key():
    bib = (ROOT / "book" / "references.bib").read_text()
    entry = re.search(r"@\w+\{" + KEY + r",(.*?)\n\}", bib, re.S)
    assert entry, f"book/references.bib has no entry {KEY}"
    assert "Do Vision Transformers See Like Convolutional Neural Networks" in entry.group(1)
    assert "Raghu" in entry.group(1) and "2021" in entry.group(1)
