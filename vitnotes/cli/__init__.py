"""The command line: ``python -m vitnotes explain ...`` and ``python -m vitnotes sweep ...``.

``explain`` writes, per image, an overlay PNG (the map over the image the model saw, with a colour
bar) and a JSON of its numbers (prediction, top classes, the map's entropy / log N and top-10
share, the method and model). ``sweep`` writes the per-head ablation table as CSV. Every map comes
from the method registry (``vn.explain``), every figure from ``show/``. Bad input is refused with
one line on stderr and a non-zero exit before anything is written; every file is written to a
temporary name beside it and renamed, so none is ever half-written.

Nothing is overwritten that the command did not write. ``explain`` replaces ``NAME.json`` only if it
is an explain record (a JSON object with the keys ``image``, ``model``, ``method``, ``map`` and
``overlay``, ``overlay`` being ``NAME.png``), and ``NAME.png`` only if such a record beside it names
it; ``sweep`` replaces a file only if its first line is exactly the sweep table's header
(``SWEEP_COLUMNS``). Anything else there (a user's file, a folder, a symbolic link) is refused, with
the path named, before a model is loaded; the check is repeated just before each rename. The
notebooks that introduce what the command line runs: 06 (rollout, the methods) and 08 (head
ablation, the sweep).

The package, one module per part: ``checks`` (the error class, the checks on arguments and on
``--out``, writes to a temporary name then renamed, images opened and the model loaded),
``explain`` and ``sweep`` (the two commands), ``parser`` (``build_parser``, the examples under each
command's options, and ``main``). A test that replaces ``_load_model`` here
(``monkeypatch.setattr(cli, "_load_model", ...)``) changes what both commands call: they look it
up in this package when they run.
"""

# ruff: noqa: F401  (re-exports: the commands' constants and the private names the tests reach)
from .checks import EXIT_BAD_INPUT, EXIT_FAILED, PROG, RECORD_KEYS, SWEEP_COLUMNS, CliError, _atomic_write, _load_model
from .explain import TOP_K, explain_images
from .parser import EXPLAIN_EXAMPLES, SWEEP_EXAMPLES, build_parser, main
from .sweep import sweep_table

__all__ = ["CliError", "build_parser", "explain_images", "main", "sweep_table"]
