"""Seeded dropout: masks that are a pure function of (seed, layer, step, sequence).

Why seeded and not drawn from a running generator: a recompute policy re-runs a forward inside
the backward and must reproduce the very same mask, and a pipelined run must use the masks the
sequential reference used, whatever order the schedule runs microbatches in. So the mask depends
only on *which* forward it is, never on how many forwards ran before.

Why per sequence and not per microbatch: data parallelism splits the batch differently (replica
r's microbatch 0 holds other sequences than the reference's microbatch 0). Each row of a mask is
drawn from (seed, layer, step, the sequence's row in the whole batch): the microbatch's first
row is ``row_offset + mb * rows``, where ``row_offset`` is 0 for the reference and a replica's
first row under data parallelism (``set_row_offset``).

The mask is kept as ``bool`` (1 byte per element), as Korthikanti et al. 2022 count it.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from simulator.model.layers import Layer
from simulator.model.transformer.base import Rules, on_stream, stateless_footprint
from simulator.model.transformer.config import TransformerConfig
from simulator.model.transformer.dims import MASK_BYTES, Dims

_GOLDEN = 0x9E3779B97F4A7C15
_MIX1, _MIX2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """Steele et al.'s SplitMix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    z = x + np.uint64(_GOLDEN)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(_MIX1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(_MIX2)
    return z ^ (z >> np.uint64(31))


def dropout_mask(
    seed: int, layer_index: int, step: int, first_row: int, shape: tuple[int, ...], p: float
) -> np.ndarray:
    """Keep-mask (True = kept, probability 1 - p) for one forward of one layer.

    Element ``j`` of row ``i`` is kept when a counter-based hash of (seed, layer, step,
    ``first_row + i``, ``j``) falls at or above ``p``: any row's bits are the same whatever
    microbatch or replica it sits in. Negative rows (``Stage.predict`` uses microbatch -1) wrap
    to distinct large integers.
    """
    key = np.zeros(1, dtype=np.uint64)
    for part in (seed, layer_index, step):
        key = _splitmix64(key ^ np.uint64(part % (1 << 64)))
    rows = shape[0] if shape else 1
    per_row = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1
    row_ids = (np.arange(rows, dtype=np.int64) + first_row).astype(np.uint64)
    row_keys = _splitmix64(key ^ _splitmix64(row_ids))  # one independent stream per row
    counters = np.arange(per_row, dtype=np.uint64)
    bits = _splitmix64(row_keys[:, None] ^ _splitmix64(counters)[None, :])
    uniform = (bits >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return (uniform >= p).reshape(shape)


def first_row(layer: Layer, mb: int, rows: int) -> int:
    """The batch row of microbatch ``mb``'s first sequence (``rows`` sequences each)."""
    return getattr(layer, "row_offset", 0) + mb * rows


def set_row_offset(layers: Iterable[Layer], offset: int) -> None:
    """Tell every dropout where this replica's rows start in the whole batch."""
    for layer in layers:
        if hasattr(layer, "dropout_step"):
            layer.row_offset = offset


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
        start = first_row(self, mb, x.shape[0])
        mask = dropout_mask(self.seed, self.layer_index, self.dropout_step, start, x.shape, self.p)
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
