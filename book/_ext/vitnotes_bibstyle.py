"""The book's citation style (a Sphinx extension, loaded by _config.yml's ``local_extensions``).

Citations in the text read (Abnar and Zuidema, 2020), in round brackets, and the bibliography's
entries carry the same author-year label instead of a number, sorted by author and year. Two
works by the same authors in one year are told apart by the year itself in references.bib
(2021a, 2021b), so that the text and the list agree.
"""

from dataclasses import dataclass, field

import pybtex.plugin
import sphinxcontrib.bibtex.plugin
from pybtex.richtext import Text
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle
from sphinxcontrib.bibtex.style.referencing import BracketStyle
from sphinxcontrib.bibtex.style.referencing.author_year import AuthorYearReferenceStyle


def _round() -> BracketStyle:
    return BracketStyle(left="(", right=")")


@dataclass
class RoundAuthorYear(AuthorYearReferenceStyle):
    """Author-year references in round brackets: (Abnar and Zuidema, 2020)."""

    bracket_parenthetical: BracketStyle = field(default_factory=_round)
    bracket_textual: BracketStyle = field(default_factory=_round)
    bracket_author: BracketStyle = field(default_factory=_round)
    bracket_label: BracketStyle = field(default_factory=_round)
    bracket_year: BracketStyle = field(default_factory=_round)


def _surname(person) -> str:
    return Text.from_latex(" ".join(person.prelast_names + person.last_names)).render_as("text")


class AuthorYearLabels(BaseLabelStyle):
    """Labels like the references in the text: "Abnar and Zuidema, 2020", "He et al., 2016"."""

    def format_labels(self, sorted_entries):
        for entry in sorted_entries:
            people = entry.persons.get("author", [])
            if len(people) == 0:
                names = entry.key
            elif len(people) == 1:
                names = _surname(people[0])
            elif len(people) == 2:
                names = f"{_surname(people[0])} and {_surname(people[1])}"
            else:
                names = f"{_surname(people[0])} et al."
            yield f"{names}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearStyle(PlainStyle):
    """pybtex's plain style with author-year labels."""

    default_label_style = AuthorYearLabels


def setup(app):
    pybtex.plugin.register_plugin("pybtex.style.labels", "vitnotes_author_year", AuthorYearLabels)
    pybtex.plugin.register_plugin("pybtex.style.formatting", "vitnotes", AuthorYearStyle)
    sphinxcontrib.bibtex.plugin.register_plugin(
        "sphinxcontrib.bibtex.style.referencing", "vitnotes_author_year", RoundAuthorYear
    )
    return {"parallel_read_safe": True, "parallel_write_safe": True}
