"""Fused ("flash") causal self-attention: tiled, with an online softmax, keeping no s x s tensor.

``config.attention = "flash"`` puts this layer where ``CausalSelfAttention`` (the "math"
attention Korthikanti et al. 2022 count) would be. Same input (packed ``[q | k | v]``), same
output, same grouped-query heads and RoPE (``attention.AttentionHeads``), same dropout bits;
what differs is what it keeps and how it computes (Dao et al., FlashAttention 1 and 2)::

    forward, per query tile i:  for each key tile j <= i (causal):
        S = q_i k_j^T / sqrt(d)      m' = max(m, rowmax S)       P = exp(S - m')
        l = l e^(m - m') + rowsum P  acc = acc e^(m - m') + (P * Z_j) v_j      (Z: dropout)
    out_i = acc / l,   lse_i = m + log l

    backward, per key tile j:  D = rowsum(dO * O) once;  for each query tile i >= j:
        P = exp(q_i k_j^T / sqrt(d) - lse_i)                 (rebuilt: one more q k^T)
        dV_j += (P * Z)^T dO_i     dP = (dO_i v_j^T) * Z     dS = P (dP - D_i) / sqrt(d)
        dQ_i += dS k_j             dK_j += dS^T q_i

    cached:  q (2sbh)   k, v (2sbh kv/a each)   out (2sbh)   lse (4asb, float32)
             rng state (16 bytes, with dropout: the mask is drawn again, tile by tile)

``out`` is kept with its heads merged, (b, s, a d): it is the output projection's input, the
same buffer, which the projection reads from here rather than keeping again
(``flash_projection.FlashOutputProjection``), so a block counts it once, as PyTorch and Megatron
keep it. The layer's bytes grow linearly in s. Tile sizes (``block_q``, ``block_k``) change only the
order of the sums, never what is cached. The statistics (running max, sum, log-sum-exp) are kept
in float32, or in the activation dtype when that is wider (float64 on numpy), as the kernels do.

Selective recomputation has nothing to drop here: the scores are already rebuilt in the
backward. ``RECOMPUTED_SLOTS`` is None, which is what the recompute code reads, so
``--recompute selective`` keeps and computes exactly what ``none`` does for this layer.
"""

from __future__ import annotations

import math

import numpy as np

from simulator.errors import PebbleError
from simulator.model.layers import Flops
from simulator.model.transformer.attention import AttentionHeads
from simulator.model.transformer.base import on_stream, stateless_footprint
from simulator.model.transformer.dims import Dims
from simulator.model.transformer.dropout import keep_scale
from simulator.model.transformer.flash_dropout import RNG_STATE_BYTES, keep_tile, rng_state

BLOCK = 64
"""Default tile edge (queries and keys) of the numpy kernel."""

STATS_ITEMSIZE = 4
"""Bytes of a softmax statistic (the log-sum-exp): float32 unless activations are wider."""


KERNEL_TILE = 128
"""Query rows of one tile of the fused kernels we time: FlashAttention-2's forward for head
dimension 128 on sm80/sm90 (``kBlockM`` 128, ``csrc/flash_attn/src/flash_fwd_launch_template.h``)
and cuDNN's fused attention work in tiles of 128 rows."""


def causal_share(seq: int, tile: int = KERNEL_TILE) -> float:
    """Share of the ``s x s`` score square a fused causal kernel computes: the tiles at or below
    the diagonal, ``(n + 1) / 2n`` of them for ``n = s / tile`` (Dao 2023, FlashAttention-2,
    section 3.1.1: "we can skip the computation of that block", about half for long sequences).
    Under context parallelism with Megatron Core's load balancing (chunks i and 2c-1-i on rank
    i), every rank computes the same share: s^2 / 2c plus one diagonal tile row per chunk, which
    is again ``1/2 + tile / 2s`` of its ``s/c x s`` rectangle. The numpy kernel here skips the
    same tiles (at its own ``BLOCK``)."""
    if seq <= tile:
        return 1.0  # one tile: computed whole
    return 0.5 + 0.5 * tile / seq


def stats_dtype(dtype) -> np.dtype:
    """The dtype of the running statistics and the log-sum-exp: float32 or wider."""
    return np.result_type(np.dtype(dtype), np.float32)


def tiles(length: int, block: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of each tile of ``block`` along ``length``; the last may be shorter."""
    return [(start, min(start + block, length)) for start in range(0, length, block)]


@on_stream
class FlashAttention(AttentionHeads):
    """Causal self-attention as a fused kernel computes and caches it: q, k, v, the output and a
    per-row log-sum-exp, never the s x s probabilities or dropout mask.

    Why a layer of its own beside ``CausalSelfAttention``: every current training stack runs
    fused attention, whose memory is linear in s and whose backward recomputes the scores; a
    plan counted with the math layer would charge 5as^2b bytes per block that no one keeps.
    ``kind`` is "attention", as the math layer's: the kind names the layer's place in a block
    (the oracle tests and the pebble graph read it); which core fills it is the config's
    ``attention``.
    """

    kind = "attention"
    # what the recompute code reads (action_work, Stage, advise): nothing to drop, so selective
    # recompute neither frees bytes nor charges recompute FLOPs for this layer
    RECOMPUTED_SLOTS = None

    def __init__(
        self,
        layer_index,
        heads,
        kv_heads,
        head_dim,
        dtype,
        p=0.0,
        seed=0,
        rope=False,
        block_q: int = BLOCK,
        block_k: int = BLOCK,
    ):
        super().__init__(layer_index, heads, kv_heads, head_dim, dtype, p, seed, rope)
        for name, value in (("block_q", block_q), ("block_k", block_k)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise PebbleError(f"flash attention's {name} must be a positive integer.")
        self.block_q, self.block_k = block_q, block_k
        self.work_dtype = stats_dtype(self.dtype)

    # ---------------------------------------------------------------- tiles
    def _scores(self, q_i, k_j, queries, keys):
        """Scaled scores of a query tile (b, kv, g, Bq, d) against a key tile (b, kv, 1, Bk, d),
        keys after their query set to -inf (causal)."""
        scores = q_i @ k_j.swapaxes(-1, -2) * (1.0 / math.sqrt(self.head_dim))
        if keys[1] - 1 > queries[0]:  # the tile reaches above the diagonal
            above = np.arange(*keys)[None, :] > np.arange(*queries)[:, None]
            scores = np.where(above, -np.inf, scores)
        return scores

    def _keep(self, state, shape, queries, keys):
        """Dropout's scaled keep-mask of a tile, grouped like the scores (None: no dropout)."""
        if state is None:
            return None
        keep = keep_tile(self.seed, self.layer_index, state, shape, queries, keys, self.p)
        keep = keep.reshape(shape[0], self.kv_heads, -1, *keep.shape[2:])
        return keep * keep_scale(self.p, self.work_dtype)

    def _work(self, t):
        """A cached tensor in the dtype the kernel computes in."""
        return t.astype(self.work_dtype, copy=False)

    # ---------------------------------------------------------------- forward
    def _attend(self, q, k, v, state):
        """(out (b, a, s, d), lse (b, a, s)) of the causal attention, one query tile at a time."""
        b, _, s, _ = q.shape
        q_g, k, v = self._grouped(self._work(q)), self._work(k), self._work(v)
        out = np.empty(q_g.shape, dtype=self.work_dtype)
        lse = np.empty(q_g.shape[:-1], dtype=self.work_dtype)
        for queries in tiles(s, self.block_q):
            i0, i1 = queries
            q_i = q_g[..., i0:i1, :]
            peak = np.full((*q_i.shape[:-1], 1), -np.inf, dtype=self.work_dtype)
            total = np.zeros_like(peak)
            acc = np.zeros_like(q_i)
            for keys in tiles(i1, self.block_k):  # key tiles wholly above the diagonal skipped
                j0, j1 = keys
                scores = self._scores(q_i, k[:, :, None, j0:j1], queries, keys)
                new_peak = np.maximum(peak, scores.max(axis=-1, keepdims=True))
                probs = np.exp(scores - new_peak)
                rescale = np.exp(peak - new_peak)
                total = total * rescale + probs.sum(axis=-1, keepdims=True)
                keep = self._keep(state, (b, self.heads, s), queries, keys)
                weights = probs if keep is None else probs * keep
                acc = acc * rescale + weights @ v[:, :, None, j0:j1]
                peak = new_peak
            out[..., i0:i1, :] = acc / total
            lse[..., i0:i1] = (peak + np.log(total))[..., 0]
        return self._ungrouped(out).astype(self.dtype), self._ungrouped(lse[..., None])[..., 0]

    def forward(self, mb, x):
        q, k, v = self._split(x)
        self._put(mb, "q", q)
        self._put(mb, "k", k)
        self._put(mb, "v", v)
        state = rng_state(self, mb, x.shape[0]) if self.p > 0.0 else None
        out, lse = self._attend(q, k, v, state)
        merged = self._merge(out)  # the output projection reads this very array (flash_projection)
        self._put(mb, "out", merged)
        self._put(mb, "lse", lse)
        if state is not None:
            self._put(mb, "rng_state", state)
        return merged

    # ---------------------------------------------------------------- backward
    def backward_input(self, mb, grad_out):
        state = self._pop(mb, "rng_state") if self.p > 0.0 else None
        lse, out = self._pop(mb, "lse"), self._heads(self._pop(mb, "out"))
        v, k, q = self._pop(mb, "v"), self._pop(mb, "k"), self._pop(mb, "q")
        d_out = self._work(self._heads(grad_out))
        delta = (d_out * self._work(out)).sum(axis=-1)  # D = rowsum(dO * O), (b, a, s)
        grads = self._gradients(q, k, v, lse, d_out, delta, state)
        return self._packed_grad(*(g.astype(self.dtype) for g in grads))

    def _gradients(self, q, k, v, lse, d_out, delta, state):
        """(dq, dk, dv) of the rotated q, k and of v: outer loop over key tiles (dK_j, dV_j
        accumulate), inner over the query tiles at or below the diagonal (dQ_i accumulates)."""
        b, _, s, d = q.shape
        q_g, k, v = self._grouped(self._work(q)), self._work(k), self._work(v)
        do_g, lse_g = self._grouped(d_out), self._grouped(lse[..., None])
        delta_g = self._grouped(delta[..., None])
        d_q, d_k, d_v = np.zeros_like(q_g), np.zeros_like(k), np.zeros_like(v)
        scale = 1.0 / math.sqrt(d)
        for keys in tiles(s, self.block_k):
            j0, j1 = keys
            k_j, v_j = k[:, :, None, j0:j1], v[:, :, None, j0:j1]
            # query tiles from the one holding row j0: those before it lie wholly above
            for queries in tiles(s, self.block_q)[j0 // self.block_q :]:
                i0, i1 = queries
                q_i, do_i = q_g[..., i0:i1, :], do_g[..., i0:i1, :]
                probs = np.exp(self._scores(q_i, k_j, queries, keys) - lse_g[..., i0:i1, :])
                d_probs = do_i @ v_j.swapaxes(-1, -2)
                keep = self._keep(state, (b, self.heads, s), queries, keys)
                if keep is not None:
                    d_probs = d_probs * keep
                weights = probs if keep is None else probs * keep
                d_v[:, :, j0:j1] += (weights.swapaxes(-1, -2) @ do_i).sum(axis=2)
                d_scores = probs * (d_probs - delta_g[..., i0:i1, :]) * scale
                d_q[..., i0:i1, :] += d_scores @ k_j
                d_k[:, :, j0:j1] += (d_scores.swapaxes(-1, -2) @ q_i).sum(axis=2)
        return self._ungrouped(d_q), d_k, d_v

    # ---------------------------------------------------------------- rules
    @classmethod
    def footprint(cls, dims: Dims):
        """q, k, v, out, lse[, rng state]: with 16-bit activations and a = kv heads,
        8sbh + 4asb bytes (+ 16 with dropout), heads sharded over the tensor-parallel group;
        no s^2 term. The log-sum-exp is float32, or the activation dtype when wider."""
        q = dims.activation_bytes(dims.tokens * dims.local_heads * dims.d)
        kv = dims.activation_bytes(dims.tokens * dims.local_kv_heads * dims.d)
        lse = dims.tokens * dims.local_heads * max(dims.itemsize, STATS_ITEMSIZE)
        if not dims.dropout:
            return stateless_footprint(q, kv, kv, q, lse)
        return stateless_footprint(q, kv, kv, q, lse, RNG_STATE_BYTES)

    @classmethod
    def flops(cls, dims: Dims) -> Flops:
        """Per sequence, what the kernel computes: forward ``q k^T`` and ``P v``, 2 s^2 d per
        head each over the whole square, times ``causal_share`` (the tiles at or below the
        diagonal; the math layer computes the square and masks half of it); the backward
        rebuilds the scores (one more ``q k^T``) before its four products (dV, dP, dQ, dK), so
        it is 2.5 forwards where the math layer's is 2. Under context parallelism a rank's
        s / c queries meet the s keys (ring steps or the gathered K/V): 1/c of the work, the
        balanced causal share of chunks i and 2c-1-i (``Dims``). Model FLOPs (MFU) count the
        math layer's whole square (``model_flops_per_row``), not these."""
        square = 2 * 2.0 * dims.local_seq * dims.s * dims.d * dims.local_heads
        forward = square * causal_share(dims.s)
        return Flops(F=forward, I=2.5 * forward, W=0.0)
