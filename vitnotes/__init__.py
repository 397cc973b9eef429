"""vitnotes: what Vision Transformer attention looks at.

``import vitnotes as vn``, then ``vn.setup(seed=0)``; every notebook starts that way.
Shapes follow one convention: attention is ``[layer, batch, head, query, key]``.
"""
from __future__ import annotations

import os
import random

from .ablation import ablate, evaluate_loss, head_types, sweep
from .spectro import attention_profile
from .attention import Attention, attention_io, capture
from .cam import gradcam
from .diagnose import (
    attention_stats, compare_groups, confusion_matrix, confusion_pairs, describe_error, garment_mass,
    group_distributions, pick_errors, predict_with_attention,
)
from .faithfulness import (
    agreement, agreement_heatmap, delete_pixels, deletion_auc, deletion_curve, deletion_order, deletion_study,
    deletion_summary,
    map_panel, random_maps, rank_correlation, resize_maps, topk_overlap, deletion_plot,
)
from .metrics import (
    by_layer,
    cls_summary,
    entropy,
    map_consistency,
    mask_coverage,
    mask_mass,
    mean_attention_distance,
    normalized_entropy,
    topk_share,
)
from .images import Preprocessing, open_image
from .models import ZOO_DIR, Geometry, Model, card, geometry, load, randomized, save, zoo_names
from .cost import timed_predict, vit_cost
from . import data
from .family import check, family, pick
from .rollout import (
    attention_flow,
    attention_flow_grid,
    capture_rollout,
    eager_attention,
    fuse_heads,
    gradient_rollout,
    rollout,
    rollout_by_depth,
    rollout_grid,
)
from .sanity import cascade_panel, cascade_plot, cascading_randomization, explanation_maps
from .viz import before_after, display_image, head_grid, head_heatmap, layer_strip, metric_by_layer, overlay
from .widgets import head_picker, state_bytes

__version__ = "0.1.0"


def setup(seed: int = 0, threads: int | None = None, style: bool = True) -> dict:
    """Seed Python, NumPy and PyTorch, fix the number of CPU threads, set the plotting style, and
    report the model family the notebook runs on (``VITNOTES_MODELS``: ``zoo`` or ``hub``).

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

    return {"seed": seed, "threads": threads, "models": family(), "torch": torch.__version__,
            "transformers": transformers.__version__}


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
    "check", "family", "open_image", "pick",
    "Attention", "Geometry", "attention_io", "Model", "Preprocessing", "ZOO_DIR",
    "ablate", "attention_flow", "before_after", "by_layer", "capture", "capture_rollout", "cls_summary", "data",
    "display_image",
    "eager_attention", "entropy", "evaluate_loss", "fuse_heads", "geometry", "gradcam", "gradient_rollout",
    "head_grid", "head_picker", "layer_strip", "load", "map_consistency", "mask_coverage", "mask_mass", "mean_attention_distance",
    "metric_by_layer", "normalized_entropy", "overlay", "rollout", "rollout_grid", "save", "setup", "show_progress",
    "state_bytes", "sweep", "topk_share", "zoo_names",
    # notebooks 07-08: fine-tuning, head ablation
    "attention_profile", "head_heatmap", "head_types",
    # notebooks 03-04: map agreement, deletion curves, error diagnosis
    "agreement", "agreement_heatmap", "attention_stats", "compare_groups", "confusion_matrix", "confusion_pairs",
    "delete_pixels", "deletion_auc", "deletion_curve", "deletion_order", "deletion_plot", "deletion_study",
    "deletion_summary",
    "describe_error", "garment_mass", "map_panel", "predict_with_attention", "random_maps", "rank_correlation",
    "resize_maps", "topk_overlap", "group_distributions", "pick_errors",
    # notebooks 05-06: patch size cost, randomisation checks
    "attention_flow_grid", "card", "cascade_panel", "cascade_plot", "cascading_randomization", "explanation_maps",
    "randomized", "rollout_by_depth", "timed_predict", "vit_cost",
]
