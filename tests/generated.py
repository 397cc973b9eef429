"""Tables generated from the code into the README and the book's pages, between two marker lines:
``Generated(mark, end, pages)`` reads a page's table (``held``) and writes a new one (``write``).
``tests/families.py`` (the family table) and ``tests/api_table.py`` (the face) use it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Generated:
    mark: str
    end: str
    pages: tuple[Path, ...]
    what: str

    def held(self, text: str) -> str | None:
        """The table a page's text holds between the markers, or None when it has no markers."""
        if self.mark not in text or self.end not in text:
            return None
        return text.split(self.mark, 1)[1].split(self.end, 1)[0].strip()

    def write(self, made: str) -> None:
        """Put ``made`` between the markers of every page."""
        for page in self.pages:
            text = page.read_text()
            if self.held(text) is None:
                raise SystemExit(f"{page} has no {self.what} markers: add the two lines {self.mark!r} and {self.end!r}")
            before, rest = text.split(self.mark, 1)
            after = rest.split(self.end, 1)[1]
            page.write_text(f"{before}{self.mark}\n{made}\n{self.end}{after}")
