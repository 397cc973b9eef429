"""The nbval comparison at the precision the numbers carry (tests/nbval_tolerance): a last-digit
wobble passes, a changed claim fails at any tolerance."""

import sys
from pathlib import Path

import pytest

pytest.importorskip("nbval", reason="the book extra: pip install -e '.[book]'")
sys.path.insert(0, str(Path(__file__).parent / "nbval_tolerance"))
from nbval_tolerance import close  # noqa: E402


@pytest.mark.parametrize(
    "stored, computed",
    [
        ("probe accuracy 0.378", "probe accuracy 0.380"),  # one image of 500
        ("loss 233.197 (1.488x)", "loss 233.198 (1.489x)"),
        ("mean 0.412 [0.343, 0.470]", "mean 0.412 [0.342, 0.471]"),
        ("<td>1.49e-05</td>", "<td>1.50e-05</td>"),
        ("r = -0.001", "r = 0.001"),  # within the tolerance of zero
        ("r = \u22120.218", "r = \u22120.217"),
        (
            "random   0.317   0.000 [-0.073, 0.073]\nflow     0.1",
            "random   0.317  -0.000 [-0.074, 0.073]\nflow     0.1",
        ),
    ],
)
def test_last_digit_wobble_passes(stored, computed):
    assert close(stored, computed)


@pytest.mark.parametrize(
    "stored, computed",
    [
        ("Grad-CAM passes the sanity check", "Grad-CAM fails the sanity check"),  # a verdict
        ("22 heads follow the image", "23 heads follow the image"),  # a count
        ("r = -0.218", "r = 0.218"),  # a sign
        ("probe accuracy 0.378", "probe accuracy 0.381"),  # 3 units
        ("accuracy 0.38", "accuracy 0.380"),  # printed differently
        ("a 3 x 4 table", "a 3 x 4 table with more"),
        ("random   0.317   0.000 [-0.073, 0.073]", "random   0.317  -0.000 [-0.073]"),  # a number lost
        ("rollout  better\nflow     worse", "rollout  worse\nflow     better"),  # padding alike, words swapped
    ],
)
def test_changed_claims_fail(stored, computed):
    assert not close(stored, computed)
