"""``vn.interventions``: changing a model to see what changes. Head ablation (zero or mean, one head or a
sweep), attribution patching (the sweep's first-order estimate), weight randomisation (the sanity check's
cascade). Introduced in notebook 06."""

from .ablation import (
    ImageLosses,
    ablate,
    evaluate_loss,
    head_means,
    sweep,
)  # fmt: skip
from .attribution_patching import (
    attribution_patching,
    attribution_sweep,
)  # fmt: skip
from .randomisation import (
    randomized,
)  # fmt: skip

__all__ = [
    "ImageLosses",
    "ablate",
    "evaluate_loss",
    "head_means",
    "sweep",
    "attribution_patching",
    "attribution_sweep",
    "randomized",
]
