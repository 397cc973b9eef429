"""The lower bounds in pyproject.toml are the versions `make test-min` installs (constraints-min.txt)
and unit-tests: a bound raised or lowered in one file and not the other fails here."""

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).parent.parent


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints-min.txt").read_text().splitlines():
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)==([0-9.]+)", line.split("#")[0].strip())
        if m:
            pins[m[1].lower()] = m[2]
    return pins


def test_every_lower_bound_is_the_version_test_min_installs():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = _pins()
    for dep in deps:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9.]+)(,<[0-9.]+)?", dep.replace(" ", ""))
        assert m, f"{dep}: give a lower bound (>=)"
        name, low = m[1].lower(), m[2]
        assert name in pins, f"{name} has no pin in constraints-min.txt"
        pad = lambda v: tuple(int(p) for p in v.split(".")) + (0,) * (3 - len(v.split(".")))  # noqa: E731
        assert pad(pins[name]) == pad(low), f"{name}: pyproject says >={low}, constraints-min.txt installs {pins[name]}"
