"""vitnotes: what Vision Transformer attention looks at.

``import vitnotes as vn``, then ``vn.setup(seed=0)``; every notebook starts that way.
Shapes follow one convention: attention is ``[layer, batch, head, query, key]``.
"""

from __future__ import annotations

import os
import random

from . import data
from .core.arch import eager_attention

# models: load, geometry, the zoo|hub switch (notebook 00)
from .core.capture import Attention, attention_io, capture
from .core.described import describe
from .core.geometry import Geometry
from .core.images import Preprocessing, open_image
from .core.model import Model, geometry
from .core.windows import WindowAttention, window_attention

# studies (notebooks 03-06, 08)
from .evaluate.agreement import agreement, agreement_intervals, method_maps, random_maps, resize_maps, rollout_by_depth
from .evaluate.claims import (
    ABLATED_LAYERS,
    SEED_CLAIMS,
    claims_table,
    crossed_bootstrap,
    head_losses,
    image_profile,
    measure_claims,
    stack_profiles,
)  # fmt: skip
from .evaluate.cost import timed_predict, vit_cost
from .evaluate.deletion import (
    delete_pixels,
    deletion_auc,
    deletion_curve,
    deletion_order,
    deletion_study,
    deletion_summary,
)  # fmt: skip
from .evaluate.diagnosis import (
    attention_stats,
    compare_groups,
    confusion_matrix,
    confusion_pairs,
    describe_error,
    garment_mass,
    group_intervals,
    pick_errors,
    predict_with_attention,
)  # fmt: skip
from .evaluate.finetune import (
    finetune_stats,
    finetune_table,
    head_r2,
    layer_stats,
    linear_head,
    run_interval,
    transplant_table,
)  # fmt: skip
from .evaluate.ground_truth import DISTRACTORS, ground_truth, region_stack

# which explanation can you trust? perturbation curves, ground truth, intervals, one table (notebook 09)
from .evaluate.heads import head_intervals, sweep_agreement, sweep_agreement_intervals, sweep_subset
from .evaluate.intervals import Interval, bootstrap, interval_frame
from .evaluate.paired import PAIRED_RULE, paired_verdicts
from .evaluate.perturbation import (
    SCORES,
    Curves,
    baseline_images,
    brightness_maps,
    control_maps,
    object_masks,
    perturbation_curves,
    srg,
)  # fmt: skip
from .evaluate.positional import TRANSFORMS, content_following, following_table, move_images
from .evaluate.registers import register_table, token_norms
from .evaluate.representations import cka, linear_probes, logit_lens, probe_predictions, representations
from .evaluate.sanity import (
    SANITY_RULE,
    SANITY_THRESHOLD,
    cascade_intervals,
    cascading_randomization,
    chance_abs_spearman,
    explanation_maps,
    map_ssim,
    sanity_verdict,
)  # fmt: skip
from .evaluate.summary import evaluation_table, interval_rows, wide
from .evaluate.trust import (
    BETTER,
    column_label,
    every_map,
    interval_table,
    leaders,
    method_table,
    metric_disagreements,
    randomisation_check,
    scorecard,
    verdicts,
)  # fmt: skip
from .family import check, claim, claims, family, pick

# interventions (notebooks 06, 08)
from .interventions.ablation import ablate, evaluate_loss, head_means, sweep
from .interventions.attribution_patching import attribution_patching, attribution_sweep
from .interventions.randomisation import randomized

# map methods, through one registry (notebooks 03, 06; LeGrad to value-weighted: notebook 09)
from .methods import explain, method, methods
from .methods.cp_lrp import cp_lrp, lrp_rules
from .methods.flow import attention_flow, attention_flow_grid
from .methods.gradcam import gradcam
from .methods.gradient_rollout import gradient_rollout
from .methods.integrated_gradients import integrated_gradients
from .methods.legrad import legrad
from .methods.occlusion import occlusion
from .methods.random_map import random_map
from .methods.rollout import capture_rollout, fuse_heads, rollout, rollout_grid
from .methods.value_weighted import value_weighted
from .profile import (
    attention_distances,
    attention_profile,
    by_layer,
    cls_summary,
    head_types,
    mean_attention_distance,
    position_embeddings,
    query_grids,
)  # fmt: skip

# figures and widgets (every chapter)
from .show.explore import explore
from .show.export import save_html
from .show.figures import (
    before_after,
    display_image,
    head_grid,
    head_heatmap,
    layer_strip,
    metric_by_layer,
    overlay,
    relative_colorbar,
    relative_norm,
    relative_to_uniform,
)  # fmt: skip
from .show.heads import attention_matrix, distance_dots, following_plot, position_similarity_plot
from .show.representations import cka_heatmap, readability_plot
from .show.studies import (
    agreement_heatmap,
    cascade_panel,
    cascade_plot,
    deletion_plot,
    group_distributions,
    map_panel,
    show_regions,
    transplant_plot,
)  # fmt: skip
from .show.trust import curve_plot, interval_plot, metric_scatter, shared_maps
from .show.widgets import head_picker, query_picker, render_png, state_bytes

# statistics on plain tensors and per-(layer, head) tables (notebooks 01, 02, 05, 07)
from .stats import (
    cka_matrix,
    entropy,
    high_norm_tokens,
    linear_cka,
    map_consistency,
    map_correlation,
    mask_coverage,
    mask_mass,
    normalized_entropy,
    patch_distances,
    position_similarity,
    rank_correlation,
    topk_overlap,
    topk_share,
    uniform_distance,
)  # fmt: skip
from .zoo import ZOO_DIR, card, card_epochs, load, prompts, provenance, save, zoo_names

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
    # setup and models
    "setup", "show_progress", "family", "pick", "check", "claim", "claims", "data",
    "Attention", "Geometry", "Model", "Preprocessing", "ZOO_DIR", "attention_io", "capture", "card", "card_epochs",
    "describe",
    "geometry", "load", "open_image", "prompts", "provenance", "save", "zoo_names",
    # statistics and tables
    "entropy", "map_consistency", "mask_coverage", "mask_mass", "normalized_entropy", "patch_distances",
    "rank_correlation", "topk_overlap", "topk_share", "uniform_distance",
    "attention_profile", "by_layer", "cls_summary", "head_types", "mean_attention_distance",
    # map methods
    "explain", "method", "methods", "attention_flow", "attention_flow_grid", "capture_rollout", "eager_attention",
    "fuse_heads", "gradcam", "gradient_rollout", "rollout", "rollout_grid",
    "WindowAttention", "window_attention",
    "cp_lrp", "integrated_gradients", "legrad", "lrp_rules", "occlusion", "random_map", "value_weighted",
    # interventions
    "ablate", "attribution_patching", "attribution_sweep", "evaluate_loss", "head_means", "randomized", "sweep",
    "head_intervals", "sweep_agreement", "sweep_agreement_intervals", "sweep_subset",
    # studies
    "agreement", "agreement_intervals", "method_maps", "random_maps", "resize_maps", "rollout_by_depth",
    "timed_predict", "vit_cost",
    "delete_pixels",
    "deletion_auc", "deletion_curve", "deletion_order", "deletion_study", "deletion_summary", "attention_stats",
    "compare_groups", "confusion_matrix", "confusion_pairs", "describe_error", "garment_mass", "group_intervals",
    "pick_errors", "predict_with_attention", "cascade_intervals", "cascading_randomization", "explanation_maps",
    "finetune_stats", "finetune_table", "run_interval", "transplant_table", "layer_stats", "linear_head", "head_r2",
    # which explanation can you trust?
    "SCORES", "Curves", "baseline_images", "brightness_maps", "control_maps", "object_masks", "perturbation_curves",
    "srg", "DISTRACTORS", "ground_truth", "region_stack", "Interval", "bootstrap", "evaluation_table", "interval_rows",
    "wide",
    # what the layers hold: logit lens, linear probes, CKA (notebooks 01, 03)
    "representations", "logit_lens", "linear_probes", "probe_predictions", "cka", "cka_matrix", "linear_cka",
    "readability_plot", "cka_heatmap",
    "BETTER", "column_label", "every_map", "interval_table", "leaders", "method_table", "metric_disagreements",
    "randomisation_check", "scorecard", "verdicts", "PAIRED_RULE", "paired_verdicts", "SANITY_RULE", "SANITY_THRESHOLD",
    "chance_abs_spearman", "map_ssim", "sanity_verdict",
    # what the seeds claimed, and what we found (notebook 10)
    "ABLATED_LAYERS", "SEED_CLAIMS", "claims_table", "crossed_bootstrap", "head_losses", "image_profile",
    "measure_claims", "stack_profiles",
    # figures and widgets
    "before_after", "display_image", "head_grid", "head_heatmap", "layer_strip", "metric_by_layer", "overlay",
    "relative_colorbar", "relative_norm", "relative_to_uniform",
    "agreement_heatmap", "cascade_panel", "cascade_plot", "deletion_plot", "group_distributions", "map_panel",
    "show_regions", "transplant_plot", "curve_plot", "interval_plot", "metric_scatter", "shared_maps",
    "head_picker", "render_png", "state_bytes", "explore", "save_html",
    # chapters 01-02: registers, position embeddings, distances per image, where a patch looks, moved content
    "token_norms", "register_table", "high_norm_tokens", "position_embeddings", "position_similarity",
    "attention_distances", "interval_frame", "query_grids", "map_correlation", "TRANSFORMS", "move_images",
    "content_following", "following_table", "position_similarity_plot", "distance_dots", "attention_matrix",
    "following_plot", "query_picker",
]  # fmt: skip
