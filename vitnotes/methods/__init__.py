"""Map methods, one file each, registered in ``base.py``; the import order is the listing order
(``vn.methods()``, the sanity check's rows)."""

# isort: off
from . import rollout, cls_attention, gradient_rollout, gradcam, flow  # noqa: F401  (registration)

# chapter 09's methods: listed and explained by name, outside the studies' default set (default=False)
from . import legrad, cp_lrp, integrated_gradients, occlusion, random_map, value_weighted  # noqa: F401

# isort: on
from .base import Method, explain, method, methods, registered

__all__ = ["Method", "explain", "method", "methods", "registered"]
