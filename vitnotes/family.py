"""One setting picks the model family every notebook runs on: the offline zoo or hub models.

``VITNOTES_MODELS=zoo`` (the default) runs the book on the models the project trains itself on
Fashion-MNIST and the spectrogram task. ``VITNOTES_MODELS=hub`` runs the same notebooks on the
models the seeds use (``google/vit-base-patch16-224``, ``google/vit-base-patch32-224``,
``microsoft/resnet-50``), on natural photos with ImageNet labels, and for chapters 07-08 on
ViT-B/16 fine-tuned on the spectrogram task. Each notebook names its models in one cell with
``vn.pick(zoo_value, hub=hub_value)``. Introduced in the book's page "Running on hub models".
"""

from __future__ import annotations

import os
import sys

__all__ = ["FAMILIES", "family", "pick", "check"]

FAMILIES = ("zoo", "hub")
_VAR = "VITNOTES_MODELS"


def family() -> str:
    """The active model family, ``"zoo"`` or ``"hub"``, from the environment variable ``VITNOTES_MODELS``.
    Introduced in notebook 00."""
    value = os.environ.get(_VAR, "").strip().lower() or "zoo"
    if value not in FAMILIES:
        raise ValueError(
            f"{_VAR}={os.environ[_VAR]!r} is not a model family; use {_VAR}=zoo (the offline zoo, the default) "
            f"or {_VAR}=hub (google/vit-base-patch16-224 and friends, downloaded from the Hugging Face hub)"
        )
    return value


def pick(zoo, hub):
    """``zoo`` under the offline zoo, ``hub`` under hub models: how a notebook names what differs
    between the two families (model names, image sizes, sample counts) in one place.
    Introduced in notebook 00 (attention math)."""
    return hub if family() == "hub" else zoo


def check(condition, claim: str) -> None:
    """A claim the book's prose makes about the offline zoo, checked where the numbers are made.

    Under the zoo (what the book renders and CI re-runs) a false claim fails loudly with an
    ``AssertionError`` naming it. Under hub models the prose may simply not apply: a false claim is
    reported on stdout ("does not hold for these models") and the notebook goes on. An author
    re-running the book on new zoo models can set ``VITNOTES_CHECKS=report`` to have every false
    claim reported on stderr instead, and so list them all in one run. Returns nothing, so a check
    as a cell's last line displays nothing.
    Introduced in notebook 01 (layers).
    """
    _RECORD.append({"claim": claim, "held": bool(condition)})
    if not bool(condition):
        if family() == "zoo" and os.environ.get("VITNOTES_CHECKS") != "report":
            raise AssertionError(f"the book's claim no longer holds: {claim}")
        if family() == "zoo":
            print(f"CLAIM NO LONGER HOLDS: {claim}", file=sys.stderr)
            return
        print(f"note: the book's claim about the offline zoo does not hold for these models: {claim}", file=sys.stdout)


_RECORD: list[dict] = []


def claims() -> list[dict]:
    """Every finding ``claim`` and ``check`` tested in this session, in order: ``{"claim", "held"}``.
    Introduced in notebook 01."""
    return list(_RECORD)


def claim(condition, if_true: str, if_false: str, *, expected: bool | None = None) -> str:
    """A finding written once: returns ``if_true`` when ``condition`` holds, else ``if_false``, and
    records the test (``claims()``). ``expected=True`` (or False) also makes it a ``check``: under
    the offline zoo the other outcome fails loudly, as ``vn.check`` does. Introduced in notebook 01.
    """
    held = bool(condition)
    if expected is not None:
        check(held == expected, if_true if expected else if_false)
    else:
        _RECORD.append({"claim": if_true, "held": held})
    return if_true if held else if_false
