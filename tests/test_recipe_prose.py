"""Training facts in the chapters' prose are read from the model cards in code, never typed.

A recipe changes (a zoo model is retrained with more epochs, another stage, a teacher) and a hand-
typed "trained for seven more epochs" goes on saying the old thing. This test scans every chapter's
markdown cells (the ``# %% [markdown]`` cells of ``notebooks/NN_*.py``) and fails on a literal
training fact: a count (digits or a number word, one to hundred) before "epoch(s)" or "stage(s)"
("7 epochs", "two more epochs", "a three-stage recipe"), "trained for <count>", or "distilled ...
<count>" in one sentence. Such facts belong in code: ``vn.provenance(name)``, ``vn.train.card_epochs``,
``vn.card(name)["recipe"]["stages"]`` in an f-string of a ``Markdown`` cell.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))

_UNITS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
_TEENS = ["ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_WORD = (
    r"(?:(?:" + "|".join(_TENS) + r")(?:[\s-](?:" + "|".join(_UNITS) + r"))?"
    r"|" + "|".join(_TEENS + _UNITS) + r"|(?:a\s|one\s)?hundred)"
)
# A count: digits (not part of a name such as fmnist-vit-p4 or ViT-B/16) or a number word.
COUNT = r"(?:(?<![\w./-])\d+(?:\.\d+)?(?![\w/])|\b" + _WORD + r"\b)"
PATTERNS = [
    # "7 epochs", "two more epochs", "a two-epoch run", "three stages", "a 3-stage recipe"
    re.compile(
        COUNT + r"[\s-]+(?:(?:more|further|extra|additional|training|distillation)\s+)?(?:epochs?|stages?)\b", re.I
    ),
    # "trained for 3 ...", "trained for only two ..."
    re.compile(r"\btrained\s+for\s+(?:(?:only|just|about|another)\s+)?" + COUNT, re.I),
    # "distilled for 12 ...", "distilled from the ResNet at weight 0.5" (within one sentence)
    re.compile(r"\bdistill(?:ed|ation)\b[^.;:!?\n]*?" + COUNT, re.I),
]


def markdown_lines(text: str) -> list[tuple[int, str]]:
    """``(line number, text)`` of every prose line of the percent-format markdown cells in ``text``."""
    out, in_markdown = [], False
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("# %%"):
            in_markdown = "[markdown]" in line
            continue
        if in_markdown and (line.startswith("# ") or line == "#"):
            out.append((n, line[2:]))
    return out


def recipe_facts(text: str) -> list[tuple[int, str, str]]:
    """Every literal training fact in the markdown cells of ``text``: ``(line, matched words, line)``.
    A sentence may wrap over two lines: each line is read together with the next one."""
    lines = markdown_lines(text)
    found, seen = [], set()
    for i, (n, line) in enumerate(lines):
        nxt = lines[i + 1][1] if i + 1 < len(lines) and lines[i + 1][0] == n + 1 else ""
        joined = line + " " + nxt
        for pattern in PATTERNS:
            for m in pattern.finditer(joined):
                if m.start() >= len(line):
                    continue  # wholly on the next line: found when that line is read
                key = (n, m.start())
                if key not in seen:
                    seen.add(key)
                    found.append((n, m.group(0), line.strip()))
    return found


def _cell(*lines: str) -> str:
    return "# %% [markdown]\n" + "\n".join(f"# {s}" for s in lines) + "\n"


@pytest.mark.parametrize(
    "prose",
    [
        "p2 then trained for seven more epochs.",
        "Our fine-tuning ran 2 epochs on the hub model.",
        "The zoo's first recipe had two stages, the second",
        "a three-stage recipe",
        "Zoo v1's models had trained for 3 epochs",
        "it was distilled from the ResNet for twenty-one",
        "one epoch is enough",
        "after 0.5 epochs of training",
    ],
)
def test_the_scanner_finds_a_planted_fact(prose):
    assert recipe_facts(_cell("Some words first.", prose)), f"the scanner missed a training fact in {prose!r}"


@pytest.mark.parametrize(
    "prose",
    [
        "fmnist-vit-p2 was distilled from fmnist-resnet; its card says how long.",
        "The model cell prints how each model was trained, read from its card.",
        "layer 3 of 12 heads, at epoch 0 and after the last stage",
        "ViT-B/16 on 224-pixel photos, in 2 layers",
    ],
)
def test_the_scanner_passes_prose_without_a_count(prose):
    assert recipe_facts(_cell(prose)) == []


def test_the_scanner_reads_markdown_cells_only():
    text = "# %%\n# trained for 3 epochs in a code comment\nx = 1\n" + _cell("No count here.")
    assert recipe_facts(text) == []
    assert recipe_facts(text + _cell("a sentence that wraps: trained", "for 3 epochs")) != []


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_no_literal_training_fact_in_prose(source):
    facts = recipe_facts(source.read_text())
    shown = "\n".join(f"  {source.name}:{n}: {words!r} in: {line}" for n, words, line in facts)
    assert not facts, (
        "a training fact typed into prose goes stale when the recipe changes; read it from the card in code "
        f"(vn.provenance, vn.train.card_epochs, vn.card(name)['recipe']['stages']):\n{shown}"
    )
