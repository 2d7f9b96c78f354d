"""The core of causal self-attention: scores, causal mask, softmax, dropout, weighted sum of V.

The chain around it is ``QKVProjection -> CausalSelfAttention -> AttentionProjection``; this
layer has no weights, so the split was chosen to make each tensor Korthikanti et al. 2022 count
(section 4.1) cached by exactly one layer, this one caching the six in the middle::

    packed [q|k|v] ─► q, k ─► scores = q k^T / sqrt(d) ─► causal mask ─► softmax ─► probs
                                                                                    │ dropout
                      v ────────────────────────────────────► out = dropped @ v ◄── dropped

    cached:  q, k (4sbh)   probs (2as^2b)   mask (as^2b, 1 byte)   dropped (2as^2b)   v (2sbh)

Keeping both ``probs`` and ``dropped`` is what Megatron does and what the paper counts (the
backward of the weighted sum needs ``dropped``, the softmax backward needs ``probs``). With
dropout off, ``dropped`` is ``probs`` and neither the mask nor a second copy is kept.

Grouped-query attention: ``kv_heads`` may divide ``heads``; each key/value head serves a group
of ``heads / kv_heads`` query heads, so a (b, heads, ...) tensor is viewed as
(b, kv_heads, group, ...) and the key/value gradients are summed over the group.

Rotary position embedding (``position="rope"``) rotates q and k after the split; the cached q
and k are the rotated ones, and the backward rotates their gradients back (a rotation's inverse
is its transpose), so RoPE adds no cached bytes.

This is the "math" core, ``config.attention = "math"``: name it to count what Korthikanti et al.
count. The split, the grouping and RoPE live in ``AttentionHeads``, which the fused core
(``flash_attention.FlashAttention``, ``config.attention = "flash"``, the default) shares: it
keeps q, k, v, the output and a log-sum-exp instead of the s x s tensors above.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np

from simulator.errors import PebbleError
from simulator.model.layers import Flops, Layer
from simulator.model.transformer.base import Rules, on_stream, stateless_footprint
from simulator.model.transformer.config import TransformerConfig
from simulator.model.transformer.dims import MASK_BYTES, Dims
from simulator.model.transformer.dropout import dropout_mask, first_row, keep_scale

ROPE_BASE = 10000.0


def rope_tables(seq: int, head_dim: int, dtype, base: float = ROPE_BASE):
    """``(cos, sin)`` of shape (seq, head_dim): angle ``pos * base^(-2i/d)`` for the pair
    ``(i, i + d/2)`` (the "rotate half" layout of Hugging Face's Llama)."""
    inv_freq = base ** (-np.arange(0, head_dim, 2) / head_dim)
    angles = np.outer(np.arange(seq), inv_freq)
    angles = np.concatenate([angles, angles], axis=-1)
    return np.cos(angles).astype(dtype), np.sin(angles).astype(dtype)


def rotate(x, cos, sin):
    """Rotate each pair ``(x1, x2)`` of the last axis by its angle."""
    x1, x2 = np.split(x, 2, axis=-1)
    return x * cos + np.concatenate([-x2, x1], axis=-1) * sin


def rotate_back(grad, cos, sin):
    """The transpose of ``rotate``: the gradient with respect to the unrotated input."""
    u1, u2 = np.split(grad * sin, 2, axis=-1)
    return grad * cos + np.concatenate([u2, -u1], axis=-1)


class AttentionHeads(Rules, Layer):
    """What every attention core shares, whatever it caches: packed ``[q | k | v]`` in, heads
    concatenated out, grouped-query heads and rotary positions.

    Why a base apart from the cores: the math core (``CausalSelfAttention``) and the fused one
    (``flash_attention.FlashAttention``) differ only in what they keep and how they tile; the
    split of the packed input, the grouping of query heads by their key/value head and RoPE must
    be the same code, so the two agree to rounding.
    """

    def __init__(self, layer_index, heads, kv_heads, head_dim, dtype, p=0.0, seed=0, rope=False):
        super().__init__(layer_index, (heads + 2 * kv_heads) * head_dim, heads * head_dim, dtype)
        if heads % kv_heads:
            raise PebbleError(f"heads {heads} is not a multiple of kv_heads {kv_heads}.")
        if rope and head_dim % 2:
            raise PebbleError(f"rotary embeddings need an even head width, got {head_dim}.")
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, head_dim
        self.p, self.seed, self.rope = float(p), int(seed), rope
        self.dropout_step = 0

    # ---------------------------------------------------------------- shapes
    def _split(self, x):
        """(b, s, (a + 2kv) d) -> q (b, a, s, d), k and v (b, kv, s, d), contiguous copies;
        q and k rotated when the layer uses RoPE."""
        b, s, _ = x.shape
        a, kv, d = self.heads, self.kv_heads, self.head_dim
        bounds = np.cumsum([a * d, kv * d])
        parts = np.split(x, bounds, axis=-1)
        q, k, v = [
            np.ascontiguousarray(part.reshape(b, s, n, d).transpose(0, 2, 1, 3))
            for part, n in zip(parts, (a, kv, kv), strict=True)
        ]
        if self.rope:
            cos, sin = rope_tables(s, d, self.dtype)
            q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        return q, k, v

    def _packed_grad(self, d_q, d_k, d_v):
        """The gradient of the packed input from those of (rotated) q, k and of v."""
        if self.rope:
            cos, sin = rope_tables(d_q.shape[2], self.head_dim, self.dtype)
            d_q, d_k = rotate_back(d_q, cos, sin), rotate_back(d_k, cos, sin)
        return np.concatenate([self._merge(d_q), self._merge(d_k), self._merge(d_v)], axis=-1)

    def _heads(self, grad_out):
        """(b, s, a d) -> (b, a, s, d)."""
        b, s, _ = grad_out.shape
        return grad_out.reshape(b, s, self.heads, self.head_dim).transpose(0, 2, 1, 3)

    @staticmethod
    def _merge(t):
        """(b, n, s, d) -> (b, s, n d)."""
        b, n, s, d = t.shape
        return t.transpose(0, 2, 1, 3).reshape(b, s, n * d)

    def _grouped(self, t):
        """(b, a, s, x) -> (b, kv, a / kv, s, x): query heads grouped by their key/value head."""
        b, _, s, last = t.shape
        return t.reshape(b, self.kv_heads, self.heads // self.kv_heads, s, last)

    def _ungrouped(self, t):
        b, _, _, s, last = t.shape
        return t.reshape(b, self.heads, s, last)

    # ---------------------------------------------------------------- rules
    @classmethod
    def widths(cls, config: TransformerConfig):
        return (config.heads + 2 * config.num_kv_heads) * config.head_dim, config.hidden

    @classmethod
    def from_config(cls, layer_index, config: TransformerConfig, dtype, rng, seed):
        return cls(
            layer_index,
            config.heads,
            config.num_kv_heads,
            config.head_dim,
            dtype,
            p=config.dropout,
            seed=seed,
            rope=config.position == "rope",
        )


@on_stream
class CausalSelfAttention(AttentionHeads):
    """Multi-head (or grouped-query) causal attention on packed ``[q | k | v]`` input of shape
    (b, s, (heads + 2 kv_heads) head_dim); output (b, s, heads head_dim), heads concatenated.

    Why one layer for scores, softmax, dropout and the weighted sum: none of them has weights,
    and between them flow two tensors (probabilities and V) that a flat chain of single-array
    layers could not carry without caching one of them twice. The cache keys name each tensor,
    so the pebble graph still shows all six.
    """

    kind = "attention"
    # selective recomputation (Korthikanti et al. 2022, section 4.2): the forward keeps q, k
    # and v only; the backward recomputes the scores' tensors (probs, mask, dropped: slots 2..-1
    # of the footprint's F) from q and k, at half the forward's FLOPs (q k^T, not weights @ v)
    selective = False
    RECOMPUTED_SLOTS = slice(2, -1)
    RECOMPUTED_FLOPS_SHARE = 0.5

    def __init__(self, layer_index, heads, kv_heads, head_dim, dtype, p=0.0, seed=0, rope=False):
        super().__init__(layer_index, heads, kv_heads, head_dim, dtype, p, seed, rope)
        self.selective = False

    def recomputing(self, mb):
        """The context a recompute runs in (a Stage replaces it to time the sub-span)."""
        return contextlib.nullcontext()

    # ---------------------------------------------------------------- forward
    def _probabilities(self, q, k):
        """Softmax over keys of the causal, scaled scores; masked entries are exactly 0."""
        s = q.shape[2]
        scores = self._grouped(q) @ k[:, :, None].swapaxes(-1, -2) * (1.0 / math.sqrt(q.shape[-1]))
        scores = np.where(np.tril(np.ones((s, s), dtype=bool)), self._ungrouped(scores), -np.inf)
        exp = np.exp(scores - scores.max(axis=-1, keepdims=True))
        return exp / exp.sum(axis=-1, keepdims=True)

    def _scores(self, mb, q, k, cache: bool):
        """The attention weights (dropped probabilities) of q and k, caching probs, mask and
        dropped when ``cache``."""
        probs = self._probabilities(q, k)
        if cache:
            self._put(mb, "probs", probs)
        if self.p <= 0.0:
            return probs
        start = first_row(self, mb, probs.shape[0])
        mask = dropout_mask(
            self.seed, self.layer_index, self.dropout_step, start, probs.shape, self.p
        )
        weights = probs * mask * keep_scale(self.p, self.dtype)
        if cache:
            self._put(mb, "mask", mask)
            self._put(mb, "dropped", weights)
        return weights

    def forward(self, mb, x):
        q, k, v = self._split(x)
        self._put(mb, "q", q)
        self._put(mb, "k", k)
        weights = self._scores(mb, q, k, cache=not self.selective)
        self._put(mb, "v", v)
        return self._merge(self._ungrouped(self._grouped(weights) @ v[:, :, None]))

    # ---------------------------------------------------------------- backward
    def backward_input(self, mb, grad_out):
        grad = self._grouped(self._heads(grad_out))
        if self.selective:  # put back what the forward dropped
            with self.recomputing(mb):
                self._scores(mb, self._peek(mb, "q"), self._peek(mb, "k"), cache=True)
        v = self._pop(mb, "v")
        if self.p > 0.0:
            weights = self._pop(mb, "dropped")
            mask = self._pop(mb, "mask")
            probs = self._pop(mb, "probs")
        else:
            probs = weights = self._pop(mb, "probs")
        k, q = self._pop(mb, "k"), self._pop(mb, "q")
        # out = weights @ v
        d_weights = self._ungrouped(grad @ v[:, :, None].swapaxes(-1, -2))
        d_v = (self._grouped(weights).swapaxes(-1, -2) @ grad).sum(axis=2)
        d_probs = d_weights * mask * keep_scale(self.p, self.dtype) if self.p > 0.0 else d_weights
        # softmax: dz = p * (dp - sum(dp * p)); then the 1 / sqrt(d) scale
        d_scores = probs * (d_probs - (d_probs * probs).sum(axis=-1, keepdims=True))
        d_scores = self._grouped(d_scores * (1.0 / math.sqrt(self.head_dim)))
        d_q = self._ungrouped(d_scores @ k[:, :, None])
        d_k = (d_scores.swapaxes(-1, -2) @ self._grouped(q)).sum(axis=2)
        return self._packed_grad(d_q, d_k, d_v)

    # ---------------------------------------------------------------- rules
    @classmethod
    def footprint(cls, dims: Dims):
        """q, k, probs, [mask, dropped,] v: Korthikanti's 6sbh + 5as^2b with dropout (2as^2b
        without), heads sharded over the tensor-parallel group; under context parallelism the
        rank's s / c queries against the sequence's s keys, so every term is 1/c of it."""
        q = dims.activation_bytes(dims.tokens * dims.local_heads * dims.d)
        kv = dims.activation_bytes(dims.tokens * dims.local_kv_heads * dims.d)
        scores = dims.b * dims.local_heads * dims.local_seq * dims.s
        probs = dims.activation_bytes(scores)
        if not dims.dropout:
            return stateless_footprint(q, kv, probs, kv)
        return stateless_footprint(q, kv, probs, scores * MASK_BYTES, probs, kv)

    @classmethod
    def flops(cls, dims: Dims) -> Flops:
        """Per sequence: ``q k^T`` and ``weights @ v`` are 2 s^2 d FLOPs per head each (the
        causal half is computed and masked, as counted by Narayanan et al. 2021); the backward
        has two matrix multiplies for each. Under context parallelism a rank's s / c queries
        meet the s keys: 1/c of the work, the balanced share (``Dims``)."""
        forward = 2 * 2.0 * dims.local_seq * dims.s * dims.d * dims.local_heads
        return Flops(F=forward, I=2 * forward, W=0.0)
