"""The one place that registers PyTorch hooks: every hook is removed on exit, even on error.

Used by `attention`, `ablation` and `cam` (the mechanism behind notebooks 01, 03 and 08).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import torch

__all__ = ["hooks"]

# (module, kind, fn) with kind one of "forward", "forward_pre", "forward_pre_kwargs" (fn(module, args,
# kwargs) -> (args, kwargs) or None: for modules whose inputs may come by keyword)
Registration = tuple[torch.nn.Module, str, Callable]


@contextmanager
def hooks(registrations: Iterable[Registration]) -> Iterator[None]:
    """Register forward / forward-pre hooks for the duration of a ``with`` block.

    >>> with hooks([(layer.attention.o_proj, "forward_pre", fn)]):
    ...     model(pixel_values)

    Every handle is removed when the block ends, also when it raises.
    """
    handles = []
    try:
        for module, kind, fn in registrations:
            if kind == "forward":
                handles.append(module.register_forward_hook(fn))
            elif kind == "forward_pre":
                handles.append(module.register_forward_pre_hook(fn))
            elif kind == "forward_pre_kwargs":
                handles.append(module.register_forward_pre_hook(fn, with_kwargs=True))
            else:
                raise ValueError(f"hook kind must be 'forward', 'forward_pre' or 'forward_pre_kwargs', got {kind!r}")
        yield
    finally:
        for handle in handles:
            handle.remove()
