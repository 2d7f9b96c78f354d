"""What every transformer layer shares: the residual-stream convention and the rule interface.

The residual stream
-------------------
A block is a flat run of layers, so the skip connection has to travel *through* the chain::

    x ─► fork ─► (x, x) ─► norm ─► qkv ─► attention ─► proj ─► dropout ─► (x, y) ─► add ─► x + y
                  │  └─ branch: each layer acts on the second element ───┘ │
                  └──────────── residual: passed along untouched ──────────┘

``ResidualFork`` turns the array ``x`` into the tuple ``(residual, branch) = (x, x)``; every layer
between it and ``ResidualAdd`` receives that tuple, acts on the branch and hands the residual on
unchanged; ``ResidualAdd`` returns ``residual + branch``. Backward mirrors it: ``add`` sends its
gradient to both elements, branch layers transform only the second, and ``fork`` sums the two
("gradients add up at forks", seed 000). The residual is a live forward value, never a pebble:
nothing caches it, exactly as in Korthikanti et al.'s counts. Blocks start with a fork and end
with an add, so the value crossing a block boundary, where pipeline stages are cut, is a plain
array.

``@on_stream`` gives a layer class that behaviour; the layer's own code only ever sees arrays.

The rules
---------
Each layer class states, as class methods of a :class:`Dims`, what it caches (``footprint``:
signed byte changes per phase F, I, W, B, in the order the cache sees them), what it computes
(``flops``: per sequence, per phase) and how many parameters a rank holds (``param_count``).
The analytic executor evaluates these at any scale; tests hold the numpy layers to them.
"""

from __future__ import annotations

import functools

import numpy as np

from simulator.model.layers import Flops, Footprint
from simulator.model.transformer.config import TransformerConfig
from simulator.model.transformer.dims import Dims

NO_FLOPS = Flops(F=0.0, I=0.0, W=0.0)


def parametric_footprint(input_bytes: int, grad_out_bytes: int) -> Footprint:
    """The split-backward rule of a layer with weights (``ParametricLayer``): F caches the input;
    I adds the output gradient that W still needs; W frees both; B frees the input."""
    x, g = input_bytes, grad_out_bytes
    return Footprint(F=(x,), I=(g,), W=(-x, -g), B=(-x,))


def stateless_footprint(*cached_bytes: int) -> Footprint:
    """A layer without weights: F caches the tensors in order; I (or B) frees them in reverse
    order, which is the order a backward naturally needs them; W does nothing."""
    freed = tuple(-n for n in reversed(cached_bytes))
    return Footprint(F=tuple(cached_bytes), I=freed, W=(), B=freed)


def on_stream(cls):
    """Class decorator: inside a residual branch, act on the branch and pass the residual on.

    Wraps the class's ``forward``, ``backward_input`` and ``backward``: a tuple
    ``(residual, x)`` becomes ``(residual, method(x))``; a plain array (outside any branch, e.g.
    the final norm or the embedding's dropout) goes straight to the method. Why a decorator and
    not a wrapper layer: the layer keeps its own index, cache and parameters, so the pebble graph
    and the recorder see it like any other layer, and its own code only ever sees arrays.
    """

    def lift(method):
        @functools.wraps(method)
        def stream_method(self, mb, value):
            if isinstance(value, tuple):
                residual, x = value
                return residual, method(self, mb, x)
            return method(self, mb, value)

        return stream_method

    for name in ("forward", "backward_input", "backward"):
        setattr(cls, name, lift(getattr(cls, name)))
    return cls


class Rules:
    """The interface every transformer layer class provides, with neutral defaults.

    Why class methods: the analytic executor asks a 175B model's layers for their rules without
    building a single weight. ``footprint`` and ``flops`` here take a :class:`Dims`, unlike the
    MLP layers' ``(in_features, out_features, rows, itemsize)``; a ``TransformerLayerInfo``
    adapts them to the spec's calling convention.
    """

    @classmethod
    def footprint(cls, dims: Dims) -> Footprint:
        return stateless_footprint()

    @classmethod
    def flops(cls, dims: Dims) -> Flops:
        """FLOPs of one sequence (a row of the microbatch) on one tensor-parallel rank."""
        return NO_FLOPS

    @classmethod
    def param_count(cls, dims: Dims) -> int:
        """Parameters one tensor-parallel rank holds for this layer."""
        return 0

    @classmethod
    def widths(cls, config: TransformerConfig) -> tuple[int, int]:
        """Per-token input and output widths (the Layer's in_features and out_features)."""
        return config.hidden, config.hidden

    @classmethod
    def from_config(
        cls, layer_index: int, config: TransformerConfig, dtype, rng: np.random.Generator, seed: int
    ):
        """Build the layer for ``config``: weights from ``rng``, dropout masks from ``seed``."""
        n_in, n_out = cls.widths(config)
        return cls(layer_index, n_in, n_out, dtype)
