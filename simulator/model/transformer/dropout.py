"""Seeded dropout: masks that are a pure function of (seed, layer, step, microbatch).

Why seeded and not drawn from a running generator: a recompute policy re-runs a forward inside
the backward and must reproduce the very same mask, and a pipelined run must use the masks the
sequential reference used, whatever order the schedule runs microbatches in. So the mask depends
only on *which* forward it is, never on how many forwards ran before.

The mask is kept as ``bool`` (1 byte per element), as Korthikanti et al. 2022 count it.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from simulator.model.layers import Layer
from simulator.model.transformer.base import Rules, on_stream, stateless_footprint
from simulator.model.transformer.config import TransformerConfig
from simulator.model.transformer.dims import MASK_BYTES, Dims


def dropout_mask(
    seed: int, layer_index: int, step: int, mb: int, shape: tuple[int, ...], p: float
) -> np.ndarray:
    """Keep-mask (True = kept, probability 1 - p) for one forward of one layer.

    Negative microbatch indices (``Stage.predict`` uses -1) map to distinct large integers, since
    numpy's SeedSequence takes only non-negative entropy.
    """
    entropy = [seed, layer_index, step, mb % (1 << 64)]
    return np.random.default_rng(entropy).random(shape) >= p


def keep_scale(p: float, dtype: np.dtype):
    """1 / (1 - p) in the layer's dtype, so scaling never promotes a float16 activation."""
    return np.dtype(dtype).type(1.0 / (1.0 - p))


def set_dropout_step(layers: Iterable[Layer], step: int) -> None:
    """Give every dropout (including attention dropout) a new step number, so each optimizer
    step draws fresh masks; call it once per step, before its first forward."""
    for layer in layers:
        if hasattr(layer, "dropout_step"):
            layer.dropout_step = step


@on_stream
class Dropout(Rules, Layer):
    """Inverted dropout: ``y = x * mask / (1 - p)``; caches only the 1-byte mask.

    Why the mask and not the input: the local gradient of dropout is ``mask / (1 - p)``; the
    input is not needed. ``dropout_step`` is the per-step counter in the mask's seed; the trainer
    bumps it with ``set_dropout_step``, while re-running the same forward gives the same bits.
    """

    kind = "dropout"

    def __init__(self, layer_index, in_features, out_features, dtype, p=0.1, seed=0):
        super().__init__(layer_index, in_features, out_features, dtype)
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p!r}")
        self.p = float(p)
        self.seed = int(seed)
        self.dropout_step = 0

    def forward(self, mb, x):
        mask = dropout_mask(self.seed, self.layer_index, self.dropout_step, mb, x.shape, self.p)
        self._put(mb, "mask", mask)
        return x * mask * keep_scale(self.p, self.dtype)

    def backward_input(self, mb, grad_out):
        mask = self._pop(mb, "mask")
        return grad_out * mask * keep_scale(self.p, self.dtype)

    @classmethod
    def footprint(cls, dims: Dims):
        """One mask byte per element of the hidden stream (sequence-sharded with SP)."""
        return stateless_footprint(dims.seq_tokens * dims.h * MASK_BYTES)

    @classmethod
    def from_config(cls, layer_index, config: TransformerConfig, dtype, rng, seed):
        return cls(layer_index, config.hidden, config.hidden, dtype, p=config.dropout, seed=seed)
