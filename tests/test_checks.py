"""vn.check: a false claim about the zoo stops the notebook, is only reported under hub models, and
is reported (not raised) when an author asks for every false claim at once (VITNOTES_CHECKS=report)."""

import pytest

import vitnotes as vn


def test_a_false_claim_stops_the_zoo_book(monkeypatch):
    monkeypatch.delenv("VITNOTES_MODELS", raising=False)
    monkeypatch.delenv("VITNOTES_CHECKS", raising=False)
    vn.check(True, "true")
    with pytest.raises(AssertionError, match="no longer holds: two is odd"):
        vn.check(2 % 2 == 1, "two is odd")


def test_report_mode_lists_false_claims_and_goes_on(monkeypatch, capsys):
    monkeypatch.delenv("VITNOTES_MODELS", raising=False)
    monkeypatch.setenv("VITNOTES_CHECKS", "report")
    assert vn.check(False, "two is odd") is None
    assert "CLAIM NO LONGER HOLDS: two is odd" in capsys.readouterr().err
    assert {"claim": "two is odd", "held": False} in vn.claims()


def test_hub_models_only_note_a_false_claim(monkeypatch, capsys):
    monkeypatch.setenv("VITNOTES_MODELS", "hub")
    vn.check(False, "two is odd")
    assert "does not hold for these models: two is odd" in capsys.readouterr().out
