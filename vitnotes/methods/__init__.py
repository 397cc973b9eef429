"""Map methods, one file each, registered in ``base.py``; the import order is the listing order
(``vn.methods()``, the sanity check's rows)."""

# isort: off
from . import rollout, cls_attention, gradient_rollout, gradcam, flow  # noqa: F401  (registration)

# isort: on
from .base import Method, explain, method, methods, registered

__all__ = ["Method", "explain", "method", "methods", "registered"]
