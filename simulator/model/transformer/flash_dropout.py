"""Attention dropout regenerated one tile at a time from the RNG state a fused kernel keeps.

Why: a fused attention (FlashAttention, cuDNN, PyTorch SDPA) never holds the s x s dropout mask.
Its forward draws each tile's bits from a counter-based generator and keeps only the
generator's state (PyTorch keeps the Philox seed and offset, two int64); its backward draws the
very same bits again for each tile it rebuilds.

Here the state is ``(dropout step, first batch row)`` as two int64, 16 bytes, and the bits are
exactly those of ``dropout.dropout_mask`` for the whole (b, heads, s, s) tensor of the math
attention: element (row r, head h, query i, key j) is counter ``h s^2 + i s + j`` of batch row
``first_row + r``'s stream. So a flash layer drops the same attention weights as a math layer
of the same seed and index, and the two agree to rounding with dropout on (a test holds
``keep_tile`` equal to ``dropout_mask`` tile by tile).
"""

from __future__ import annotations

import numpy as np

from simulator.model.layers import Layer

# the counter-based hash dropout_mask is built on: the same function, not a copy of it
from simulator.model.transformer.dropout import _splitmix64, first_row

RNG_STATE_BYTES = 16
"""The RNG state a flash layer keeps with dropout on: two int64, as PyTorch's (seed, offset)."""


def rng_state(layer: Layer, mb: int, rows: int) -> np.ndarray:
    """What regenerates microbatch ``mb``'s masks: the layer's dropout step and the microbatch's
    first row in the whole batch (``rows`` sequences a microbatch)."""
    return np.array([layer.dropout_step, first_row(layer, mb, rows)], dtype=np.int64)


def _row_keys(seed: int, layer_index: int, state: np.ndarray, rows: int) -> np.ndarray:
    """One independent stream per batch row, keyed as ``dropout_mask`` keys them."""
    step, start = (int(v) for v in state)
    key = np.zeros(1, dtype=np.uint64)
    for part in (seed, layer_index, step):
        key = _splitmix64(key ^ np.uint64(part % (1 << 64)))
    row_ids = (np.arange(rows, dtype=np.int64) + start).astype(np.uint64)
    return _splitmix64(key ^ _splitmix64(row_ids))


def keep_tile(
    seed: int,
    layer_index: int,
    state: np.ndarray,
    shape: tuple[int, int, int],
    queries: tuple[int, int],
    keys: tuple[int, int],
    p: float,
) -> np.ndarray:
    """Keep-mask (b, heads, queries, keys) of one tile: rows ``queries = (i0, i1)`` and columns
    ``keys = (j0, j1)`` of the (b, heads, s, s) mask, ``shape = (b, heads, s)``."""
    b, heads, s = shape
    counters = (
        (np.arange(heads, dtype=np.uint64) * np.uint64(s * s))[:, None, None]
        + (np.arange(*queries, dtype=np.uint64) * np.uint64(s))[None, :, None]
        + np.arange(*keys, dtype=np.uint64)[None, None, :]
    )
    bits = _splitmix64(
        _row_keys(seed, layer_index, state, b)[:, None, None, None] ^ _splitmix64(counters)[None]
    )
    uniform = (bits >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return uniform >= p
