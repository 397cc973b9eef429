"""The method registry: every map method registers itself with ``@method("name")`` and takes one
signature, ``(model_or_attention, pixel_values, target=None, **options) -> [batch, rows, cols]``.

``vn.explain`` and ``vn.methods`` read the registry, and so do the sanity check, the agreement
and the deletion studies: a new method is one file in ``methods/``. Introduced in notebook 03
(CNN vs ViT), where the maps are first compared.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..core.capture import Attention
from ..core.model import Model, unwrap

__all__ = ["Method", "explain", "method", "methods", "registered"]

FromPass = Callable[[list, list, int, tuple], torch.Tensor]


@dataclass(frozen=True)
class Method:
    """One registered map method.

    ``kinds``: the model kinds it explains (``"vit"``, ``"cnn"``, ``"swin"``). ``class_specific``: whether
    ``target`` changes the map. ``from_pass``: for methods that one eager forward and backward
    pass determines, ``(maps, grads, prefix, grid) -> [batch, rows, cols]`` from every layer's
    attention ``[batch, head, T, T]`` and its gradient (the sanity check computes them so)."""

    name: str
    fn: Callable[..., torch.Tensor]
    kinds: tuple[str, ...]
    class_specific: bool
    from_pass: FromPass | None = None
    takes_model: bool = True  # False: only a vn.capture result (attention flow)
    default: bool = True  # in the studies' default set (vn.evaluate.method_maps without names=)
    what: str = ""  # one sentence for readers: what the map is (method tables print it)

    @property
    def summary(self) -> str:
        """``what``, else the docstring's first sentence (joined over its lines)."""
        if self.what:
            return self.what
        text = " ".join((self.fn.__doc__ or "").split())
        return text.split(". ")[0].rstrip(".") + "." if text else ""


_REGISTRY: dict[str, Method] = {}


def method(
    name: str,
    *,
    kinds: tuple[str, ...] = ("vit",),
    class_specific: bool = False,
    from_pass: FromPass | None = None,
    takes_model: bool = True,
    default: bool = True,
    what: str = "",
) -> Callable:
    """Register a map method under ``name`` (decorator); registration order is the listing order.

    ``default=False`` keeps a method out of the studies' default set (``vn.evaluate.method_maps`` without
    ``names=``, hence the agreement and deletion studies built on it): the methods chapter 09 added
    are listed, explained and compared by name, while the chapters written before them keep the
    maps (and printed numbers) they had. ``what``: one plain sentence for readers (the method tables
    print it; without it, the docstring's first sentence). Introduced in notebook 03."""

    def register(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        if name in _REGISTRY:
            raise ValueError(f"a map method named {name!r} is already registered")
        _REGISTRY[name] = Method(name, fn, tuple(kinds), class_specific, from_pass, takes_model, default, what)
        return fn

    return register


def registered(name: str) -> Method:
    """The registered method ``name``; an unknown name is refused with the known ones."""
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"unknown map method {name!r}; choose from {list(_REGISTRY)} (vn.methods())")
    return _REGISTRY[name]


def methods(kind: str | None = None) -> list[str]:
    """Names of the registered map methods (for models of ``kind`` ``"vit"``, ``"cnn"`` or ``"swin"``, or all),
    in registration order. Introduced in notebook 03."""
    return [n for n, m in _REGISTRY.items() if kind is None or kind in m.kinds]


def explain(
    model: Any, pixel_values: torch.Tensor | None, method: str, target: Any = None, **options: Any
) -> torch.Tensor:
    """The map of ``method`` (a name from ``vn.methods()``) for every image, ``[batch, rows, cols]``.

    ``model`` is a ``vn.core.Model``, a transformers model, or (for attention-only methods) a
    ``vn.capture`` result with ``pixel_values=None``. ``target``: the class to explain (an int, one
    per image, or None = the predicted class); methods that never look at the class ignore it.
    ``options`` go to the method. Introduced in notebook 03.
    """
    m = registered(method)
    if isinstance(model, (torch.nn.Module, Model)):  # a Swin first: it has no capture either
        geom = unwrap(model)[1]
        if geom.kind == "swin" and geom.kind not in m.kinds:
            raise TypeError(geom.not_vit(f"map method {method!r}"))
    if not isinstance(model, Attention) and not m.takes_model:
        raise TypeError(f"map method {method!r} needs a vn.capture result: vn.explain(vn.capture(model, x), None, ...)")
    if not isinstance(model, Attention):
        _, geom = unwrap(model)
        if geom.kind not in m.kinds:
            raise TypeError(
                f"map method {method!r} explains {'/'.join(m.kinds).upper()} models, not a "
                f"{geom.kind.upper()}; choose from {methods(geom.kind)}"
            )
    return m.fn(model, pixel_values, target, **options)
