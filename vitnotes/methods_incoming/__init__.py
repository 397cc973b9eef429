"""Map methods for issue 14, waiting for the new layout's registry (``methods/``).

Every map method has one signature, ``fn(model, pixel_values, target=None, **options) -> [batch,
rows, cols]`` (``integrated_gradients`` defaults to the pixel grid ``[batch, H, W]``); ``model`` a
``vn.Model`` or a bare transformers model. ``attribution_patching`` returns ``[layer, head]``.
"""
from .attribution_patching import attribution_patching
from .cp_lrp import cp_lrp, lrp_rules
from .integrated_gradients import integrated_gradients
from .legrad import legrad
from .occlusion import occlusion
from .random_map import random_map
from .value_weighted import value_weighted

MAPS = {
    "legrad": legrad,
    "cp_lrp": cp_lrp,
    "integrated_gradients": integrated_gradients,
    "occlusion": occlusion,
    "random": random_map,
    "value_weighted": value_weighted,
}

__all__ = ["MAPS", "attribution_patching", "cp_lrp", "integrated_gradients", "legrad", "lrp_rules", "occlusion",
           "random_map", "value_weighted"]
