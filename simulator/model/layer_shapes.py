"""A per-layer figure worked out once per layer shape.

Why: a transformer's blocks repeat. Under one config and layout a layer's FLOPs, bytes and
seconds depend only on its kind and on whether it sits in a transformer block (the dropout
after the embedding is not a block's), so Llama 3 405B's 1,516 layers have a dozen shapes.
Code that walks every layer (stage balancing, the roofline, advise's tables, run many times a
search) asks for each shape once. An MLP's layers differ in width, so each is its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

Figure = TypeVar("Figure")


def in_block(info) -> bool:
    """Whether a layer belongs to a transformer block (False for an MLP's layers)."""
    return bool(getattr(info, "is_transformer_block", 0))


def per_layer_shape(spec, work: Callable[..., Figure]) -> list[Figure]:
    """``work(info)`` for every layer of ``spec``, in order, called once per shape
    ``(kind, in_block)`` of a transformer and once per layer of any other model."""
    if not spec.is_transformer:
        return [work(info) for info in spec.layers()]
    out, shapes = [], {}
    for info in spec.layers():
        shape = (info.kind, in_block(info))
        if shape not in shapes:
            shapes[shape] = work(info)
        out.append(shapes[shape])
    return out
