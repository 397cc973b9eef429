"""nbval at the precision the numbers carry: a pytest plugin (``-p nbval_tolerance``).

The committed outputs stay the regression test. An output that differs from the stored one still
passes when it differs only in printed decimals, each within ``UNITS`` units of its last printed
digit (``0.378`` against ``0.380``: one image's vote among 500; ``233.197`` against ``233.198``:
another CPU's summation order). Everything else must match exactly: the words between the numbers
(a verdict, a claim, a label), every integer (a count, an index, a size), the number of decimals
printed, and the sign of any number further than the tolerance from zero. Whitespace is not compared
(a text table pads its columns to the widest cell, so ``-0.000`` for ``0.000`` shifts a row). Each output passed this
way is listed at the end of the run, so the tolerance is visible in CI's log.
"""

from __future__ import annotations

import re
from collections import defaultdict

from nbval import plugin as nbval_plugin

UNITS = 2  # units of the last printed digit
NUMBER = re.compile(r"[-+\u2212]?(?:\d+\.\d+|\d+)(?:[eE][-+]?\d+)?")
TOLERATED: list[tuple[str, str, str]] = []  # (cell, stored, computed), for the summary
SECONDS: dict[str, float] = defaultdict(float)  # notebook -> seconds its cells ran


def _value(token: str) -> tuple[float, float | None]:
    """(value, unit of the last printed digit); the unit is None for an integer."""
    token = token.replace("\u2212", "-")
    mantissa, _, exponent = token.lower().partition("e")
    if "." not in mantissa:
        return float(token), None
    decimals = len(mantissa.split(".")[1])
    return float(token), 10.0 ** (int(exponent or 0) - decimals)


def _words(text: str) -> list[str]:
    """The text between the numbers, without whitespace."""
    return ["".join(piece.split()) for piece in NUMBER.split(text)]


def close(stored: str, computed: str, units: int = UNITS) -> bool:
    """Whether ``computed`` says what ``stored`` says, at the precision its numbers were printed with."""
    if stored == computed:
        return True
    if _words(stored) != _words(computed):
        return False  # other words, other signs of words, another number of numbers
    for a, b in zip(NUMBER.findall(stored), NUMBER.findall(computed), strict=True):
        if a == b:
            continue
        (x, unit_a), (y, unit_b) = _value(a), _value(b)
        if unit_a is None or unit_b is None or unit_a != unit_b:
            return False  # an integer (a count) changed, or the number is printed differently
        slack = units * unit_a * (1 + 1e-9)
        if abs(x - y) > slack:
            return False
        if (x < 0) != (y < 0) and max(abs(x), abs(y)) > slack:
            return False  # a sign that rounding cannot flip
    return True


def _flat(item, outputs, skip) -> dict[str, list[str]]:
    """nbval's view of a cell's outputs: every compared field, MIME types flattened, sanitised."""
    out = defaultdict(list)
    for o in nbval_plugin.transform_streams_for_comparison(outputs):
        for key, value in o.items():
            if key in skip:
                continue
            if key == "data":
                for mime, data in value.items():
                    if mime not in skip:
                        out[mime].append(str(item.sanitize(data)))
            else:
                out[key].append(str(item.sanitize(value)))
    return out


_exact = nbval_plugin.IPyNbCell.compare_outputs


def compare_outputs(self, test, ref, skip_compare=None):
    if _exact(self, test, ref, skip_compare):
        return True
    skip = skip_compare or self.parent.skip_compare
    stored, computed = _flat(self, ref, skip), _flat(self, test, skip)
    if stored.keys() != computed.keys() or any(len(stored[k]) != len(computed[k]) for k in stored):
        return False
    pairs = [(a, b) for k in stored for a, b in zip(stored[k], computed[k], strict=True) if a != b]
    beyond = [(a, b) for a, b in pairs if not close(a, b)]
    if beyond:
        a, b = beyond[0]
        same = _words(a) == _words(b)
        self.comparison_traceback.append(
            f"nbval_tolerance: beyond {UNITS} units of the last digit: {_changed_numbers(a, b)}"
            if same
            else "nbval_tolerance: the words or integers differ, not only decimals"
        )
        return False
    self.comparison_traceback = []
    TOLERATED.extend((self.nodeid, a, b) for a, b in dict.fromkeys(pairs))
    return True


nbval_plugin.IPyNbCell.compare_outputs = compare_outputs


def _changed_numbers(a: str, b: str) -> str:
    return ", ".join(f"{x} -> {y}" for x, y in zip(NUMBER.findall(a), NUMBER.findall(b), strict=True) if x != y)


def pytest_runtest_logreport(report):
    if report.when == "call" and ".ipynb::" in report.nodeid:
        SECONDS[report.nodeid.split("::")[0]] += report.duration


def pytest_terminal_summary(terminalreporter):
    if SECONDS:
        terminalreporter.write_line(f"nbval: each notebook's time ({sum(SECONDS.values()) / 60:.1f} min in all):")
        for notebook, seconds in SECONDS.items():
            terminalreporter.write_line(f"  {seconds:7.1f} s  {notebook}")
    if TOLERATED:
        terminalreporter.write_line(
            f"nbval_tolerance: {len(TOLERATED)} output(s) matched within {UNITS} units of the last printed digit:"
        )
        for cell, a, b in TOLERATED:
            terminalreporter.write_line(f"  {cell}: {_changed_numbers(a, b)}")
