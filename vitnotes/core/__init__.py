"""``vn.core``: the bottom layer, torch and transformers only; imports nothing above it.

What a reader may want from it beyond the face (``vn.load``, ``vn.capture``, ...): the ``Model`` and
``Attention`` classes, a model's token geometry (``Geometry``; ``vn.load(...).geometry``), the switch to eager attention
(``eager_attention``), Swin's window attention read back onto the image (``window_attention``), and
opening an image file for a model (``open_image``). The chapters reach it for ``vn.core.Preprocessing``
(notebook 07's exercise); the book's page "Running on other models" uses the rest.
"""

from .arch import eager_attention
from .capture import Attention, attention_io
from .described import describe
from .geometry import Geometry
from .images import Preprocessing, open_image
from .model import Model
from .windows import WindowAttention, window_attention

__all__ = [
    "Attention",
    "Geometry",
    "Model",
    "Preprocessing",
    "WindowAttention",
    "attention_io",
    "describe",
    "eager_attention",
    "open_image",
    "window_attention",
]
