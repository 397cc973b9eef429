"""vitnotes: what Vision Transformer attention looks at.

``import vitnotes as vn``, then ``vn.setup(seed=0)``; every notebook starts that way.
Shapes follow one convention: attention is ``[layer, batch, head, query, key]``.
"""

from __future__ import annotations

import os
import random

from . import core, data, evaluate, interventions, profile, show, stats, train
from .core.capture import attention_io, capture
from .core.described import describe
from .evaluate.agreement import agreement
from .evaluate.claims import claims_table, measure_claims
from .evaluate.cost import vit_cost
from .evaluate.diagnosis import compare_groups, pick_errors, predict_with_attention
from .evaluate.finetune import finetune_table, transplant_table
from .evaluate.intervals import bootstrap
from .evaluate.paired import paired_verdicts
from .evaluate.positional import content_following
from .evaluate.representations import cka, linear_probes, logit_lens, representations
from .evaluate.sanity import sanity_verdict
from .evaluate.summary import evaluation_table
from .evaluate.trust import scorecard
from .family import check, claim, claims, family, pick
from .interventions.ablation import ablate, sweep
from .interventions.attribution_patching import attribution_sweep
from .methods import explain, method, methods
from .methods.flow import attention_flow_grid
from .methods.rollout import rollout_grid
from .profile import attention_distances, by_layer, cls_summary
from .stats import entropy, normalized_entropy
from .zoo import card, load, prompts, provenance, zoo_names

__version__ = "0.1.0"


# Figures on white, never transparent: the book's dark mode would otherwise show black text and
# lines on a dark page (tests/test_figures_opaque.py checks every committed PNG).
OPAQUE_FIGURES = {"figure.facecolor": "white", "savefig.facecolor": "white", "savefig.transparent": False}


def setup(seed: int = 0, threads: int | None = None, style: bool = True) -> dict:
    """Seed Python, NumPy and PyTorch, fix the number of CPU threads, set the plotting style (and
    pandas' to print whole cells), and report the model family the notebook runs on
    (``VITNOTES_MODELS``: ``zoo`` or ``hub``).

    ``threads`` defaults to the machine's cores (at most 8); ``VITNOTES_THREADS`` overrides it.
    Returns what was set, for the notebook to show. Introduced in notebook 00.
    """
    import numpy as np
    import torch

    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    threads = threads or int(os.environ.get("VITNOTES_THREADS", 0)) or min(os.cpu_count() or 1, 8)
    torch.set_num_threads(threads)
    _quiet_libraries()
    if style:
        import matplotlib as mpl
        import seaborn as sns

        sns.set_theme(context="notebook", style="white", font_scale=0.9)
        mpl.rcParams.update({"figure.dpi": 100, "savefig.dpi": 100, "savefig.bbox": "tight", **OPAQUE_FIGURES})
        _inline_figures()
        import pandas as pd

        pd.set_option("display.max_colwidth", None)  # the book's tables show whole sentences
    import transformers

    return {
        "seed": seed,
        "threads": threads,
        "models": family(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


def show_progress() -> bool:
    """Whether long loops show a progress bar: yes in Jupyter, no when ``VITNOTES_QUIET`` or ``CI``
    is set (nbval compares stderr, so the book's regression runs stay quiet). Introduced in notebook 03 (CNN vs ViT)."""
    return not (os.environ.get("VITNOTES_QUIET") or os.environ.get("CI"))


def _inline_figures() -> None:
    """In a Jupyter kernel, show the ``Figure`` objects vitnotes returns as PNG (they are not
    registered with pyplot, so nothing else would draw them), each PNG carrying how its text reads on
    the book's page (``vn.show.page.png_with_record``; tests/test_figure_text.py reads it back)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None or not hasattr(shell, "kernel"):
        return
    from functools import partial

    from matplotlib.figure import Figure
    from matplotlib_inline.backend_inline import set_matplotlib_formats

    from .show.page import png_with_record

    set_matplotlib_formats("png")
    shell.display_formatter.formatters["image/png"].for_type(Figure, partial(png_with_record, base64_str=True))


def _quiet_libraries() -> None:
    """transformers' and datasets' progress bars go to stderr, which nbval compares: keep them out of
    the notebooks' outputs. transformers' warnings stay on (a model of another type read as this one, a
    deprecated option): they concern the user's model, and a notebook that prints one fails nbval;
    datasets' advice (cache and download chatter) is silenced."""
    import datasets
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_warning()
    datasets.disable_progress_bars()
    datasets.utils.logging.set_verbosity_error()


__all__ = [
    # namespaces: everything a chapter uses beyond the face
    "core", "data", "evaluate", "interventions", "profile", "show", "stats", "train",
    # setup, models and the zoo|hub switch (notebook 00)
    "setup", "family", "pick", "load", "card", "provenance", "zoo_names", "describe", "prompts", "show_progress",
    # capture and the map registry (notebooks 00, 03)
    "capture", "attention_io", "explain", "methods", "method",
    # claims the notebooks check (notebook 01)
    "check", "claim", "claims",
    # the statistics and studies the chapters are named after
    "entropy", "normalized_entropy", "bootstrap",  # 00-01
    "by_layer", "cls_summary", "logit_lens", "linear_probes", "attention_distances",  # 01
    "content_following",  # 02
    "agreement", "cka", "representations", "evaluation_table", "scorecard", "paired_verdicts",  # 03
    "pick_errors", "predict_with_attention", "compare_groups",  # 04
    "vit_cost", "rollout_grid",  # 05
    "attention_flow_grid", "sanity_verdict",  # 06
    "finetune_table", "transplant_table",  # 07
    "ablate", "sweep", "attribution_sweep",  # 08
    "measure_claims", "claims_table",  # 10
]  # fmt: skip
