"""Map methods, one file each, registered in ``base.py``; the import order is the listing order
(``vn.methods()``, the sanity check's rows). A file added to this folder is found and registered
without any other change."""

# isort: off
from . import rollout, cls_attention, gradient_rollout, gradcam, flow  # noqa: F401  (registration)

# chapter 09's methods: listed and explained by name, outside the studies' default set (default=False)
from . import legrad, cp_lrp, integrated_gradients, occlusion, random_map  # noqa: F401

# isort: on
import importlib
import pkgutil

from .base import Method, explain, method, methods, registered

# every other file in this folder registers itself too, in name order after the ones above: a new
# method is one new file (value_weighted.py is found this way)
for _found in pkgutil.iter_modules(__path__):
    if not _found.name.startswith("_") and _found.name != "base":
        importlib.import_module(f"{__name__}.{_found.name}")

__all__ = ["Method", "explain", "method", "methods", "registered"]
