"""vitnotes: what Vision Transformer attention looks at.

``import vitnotes as vn``, then ``vn.setup(seed=0)``; every notebook starts that way.
Shapes follow one convention: attention is ``[layer, batch, head, query, key]``.
"""
from __future__ import annotations

import os
import random

from .ablation import ablate, evaluate_loss, sweep
from .attention import Attention, attention_io, capture
from .cam import gradcam
from .metrics import (
    by_layer,
    cls_summary,
    entropy,
    mask_coverage,
    mask_mass,
    mean_attention_distance,
    normalized_entropy,
    topk_share,
)
from .images import Preprocessing
from .models import ZOO_DIR, Geometry, Model, geometry, load, save, zoo_names
from . import data
from .rollout import (
    attention_flow,
    capture_rollout,
    eager_attention,
    fuse_heads,
    gradient_rollout,
    rollout,
    rollout_grid,
)
from .viz import before_after, display_image, head_grid, layer_strip, metric_by_layer, overlay
from .widgets import head_picker, state_bytes

__version__ = "0.1.0"


def setup(seed: int = 0, threads: int | None = None, style: bool = True) -> dict:
    """Seed Python, NumPy and PyTorch, fix the number of CPU threads, set the plotting style.

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
        mpl.rcParams.update({"figure.dpi": 100, "savefig.dpi": 100, "savefig.bbox": "tight"})
        _inline_figures()
    import transformers

    return {"seed": seed, "threads": threads, "torch": torch.__version__, "transformers": transformers.__version__}


def show_progress() -> bool:
    """Whether long loops show a progress bar: yes in Jupyter, no when ``VITNOTES_QUIET`` or ``CI``
    is set (nbval compares stderr, so the book's regression runs stay quiet)."""
    return not (os.environ.get("VITNOTES_QUIET") or os.environ.get("CI"))


def _inline_figures() -> None:
    """In a Jupyter kernel, show the ``Figure`` objects vitnotes returns as PNG (they are not
    registered with pyplot, so nothing else would draw them)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None or not hasattr(shell, "kernel"):
        return
    from matplotlib_inline.backend_inline import set_matplotlib_formats

    set_matplotlib_formats("png")


def _quiet_libraries() -> None:
    """transformers' and datasets' own progress bars and advice go to stderr, which nbval
    compares: keep them out of the notebooks' outputs."""
    import datasets
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    datasets.utils.logging.set_verbosity_error()


__all__ = [
    "Attention", "Geometry", "attention_io", "Model", "Preprocessing", "ZOO_DIR",
    "ablate", "attention_flow", "before_after", "by_layer", "capture", "capture_rollout", "cls_summary", "data",
    "display_image",
    "eager_attention", "entropy", "evaluate_loss", "fuse_heads", "geometry", "gradcam", "gradient_rollout",
    "head_grid", "head_picker", "layer_strip", "load", "mask_coverage", "mask_mass", "mean_attention_distance",
    "metric_by_layer", "normalized_entropy", "overlay", "rollout", "rollout_grid", "save", "setup", "show_progress",
    "state_bytes", "sweep", "topk_share", "zoo_names",
]
