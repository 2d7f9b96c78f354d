"""The counting rules of multi-head latent attention (``mla.py``): what each of its three layers
caches per key, its FLOPs, its parameters on one tensor-parallel rank and the gradients its
backward holds, as functions of shapes, so the analytic executor counts DeepSeek-V3 without
building a weight and the numpy layers are held to the same tables.

Tensor parallelism follows Megatron Core's ``MLASelfAttention``: the down-projections
(``h -> q_lora_rank``, ``h -> kv_lora_rank + qk_rope_head_dim``) and their norms are replicated
on every rank of the group; the up-projections are column-parallel over heads; the output
projection is row-parallel. So ``t`` divides the heads' work and nothing of the compressed
path. Sequence parallelism shards the projection's input (the norm's output) along the
sequence, as it does a QKV projection's; the compressed tensors are computed from the gathered
input and counted whole.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.model.layers import Flops, Footprint
from simulator.model.transformer.base import Rules
from simulator.model.transformer.dims import Dims
from simulator.model.transformer.flash_attention import STATS_ITEMSIZE, causal_share

PROJECTION_FORWARD_KEYS = ("input", "cq", "nq", "ckv", "nkv")
PROJECTION_GRAD_KEYS = ("d_q", "d_nq", "d_cq", "d_kv", "d_nkv", "d_ckv")
_QUERY_ONLY = {"cq", "nq", "d_nq", "d_cq"}
CORE_KEYS = ("q", "k", "v", "out", "lse")


@dataclass(frozen=True)
class LatentWidths:
    """Per-token widths of a latent block on one tensor-parallel rank (``t``: 1 for the full
    widths)."""

    h: int
    heads: int  # local heads
    q_rank: int  # 0: queries projected from the hidden state directly
    kv_rank: int
    nope: int
    rope: int
    v: int

    @classmethod
    def of(cls, dims: Dims) -> LatentWidths:
        c = dims.config
        return cls(
            h=dims.h,
            heads=dims.local_heads,
            q_rank=c.q_lora_rank or 0,
            kv_rank=c.kv_lora_rank,
            nope=c.qk_nope_head_dim,
            rope=c.qk_rope_head_dim,
            v=c.v_head_dim,
        )

    @classmethod
    def of_config(cls, config) -> LatentWidths:
        """The full widths (one rank holding every head), what the numpy layers build."""
        return cls.of(Dims(config))

    @property
    def qk(self) -> int:
        """One head's query/key width: the part without rotary positions and the rotary part."""
        return self.nope + self.rope

    @property
    def q_out(self) -> int:
        return self.heads * self.qk

    @property
    def kv_out(self) -> int:
        """The key/value up-projection's output: each head's un-rotated key and its value."""
        return self.heads * (self.nope + self.v)

    @property
    def packed(self) -> int:
        """The projection's output, ``[q | k | v]``: the core's input."""
        return 2 * self.q_out + self.heads * self.v

    def gemms(self) -> tuple[tuple[int, int], ...]:
        """(in, out) of each weight matrix of the projection on one rank."""
        query = (
            ((self.h, self.q_rank), (self.q_rank, self.q_out))
            if self.q_rank
            else ((self.h, self.q_out),)
        )
        return (*query, (self.h, self.kv_rank + self.rope), (self.kv_rank, self.kv_out))


def projection_keys(keys: tuple[str, ...], has_q_rank: bool) -> tuple[str, ...]:
    """``keys`` less the compressed query's tensors when queries are not compressed."""
    return keys if has_q_rank else tuple(k for k in keys if k not in _QUERY_ONLY)


class LatentProjectionRules(Rules):
    """Rules of ``mla.LatentQKVProjection`` (its docstring says what each key holds)."""

    @classmethod
    def widths(cls, config):
        w = LatentWidths.of_config(config)
        return config.hidden, w.packed

    @classmethod
    def cached_bytes(cls, dims: Dims) -> dict[str, int]:
        w, T, act = LatentWidths.of(dims), dims.tokens, dims.activation_bytes
        return {
            "input": act(dims.seq_tokens * w.h),
            "cq": act(T * w.q_rank),
            "nq": act(T * w.q_rank),
            "ckv": act(T * w.kv_rank),
            "nkv": act(T * w.kv_rank),
            "d_q": act(T * w.q_out),
            "d_nq": act(T * w.q_rank),
            "d_cq": act(T * w.q_rank),
            "d_kv": act(T * w.kv_out),
            "d_nkv": act(T * w.kv_rank),
            "d_ckv": act(T * (w.kv_rank + w.rope)),
        }

    @classmethod
    def footprint(cls, dims: Dims) -> Footprint:
        """F keeps the input and the compressed q and kv before and after their norms; I adds
        each GEMM's and norm's output gradient, which W needs with them; W frees everything;
        B frees what F kept."""
        size = cls.cached_bytes(dims)
        has_q = bool(dims.config.q_lora_rank)
        forward = projection_keys(PROJECTION_FORWARD_KEYS, has_q)
        grads = projection_keys(PROJECTION_GRAD_KEYS, has_q)
        return Footprint(
            F=tuple(size[k] for k in forward),
            I=tuple(size[k] for k in grads),
            W=tuple(-size[k] for k in forward + grads),
            B=tuple(-size[k] for k in forward),
        )

    @classmethod
    def flops(cls, dims: Dims) -> Flops:
        """One GEMM per weight matrix and phase (``Y = XW``, ``dX = dY W^T``, ``dW = X^T dY``)
        over one sequence's tokens on this rank; the replicated down-projections are computed
        whole on every rank of the tensor group."""
        gemms = LatentWidths.of(dims).gemms()
        mac = sum(2.0 * dims.local_seq * n_in * n_out for n_in, n_out in gemms)
        return Flops(F=mac, I=mac, W=mac)

    @classmethod
    def param_count(cls, dims: Dims) -> int:
        """The four (or three) matrices and the two norms' gains on one rank."""
        w = LatentWidths.of(dims)
        return sum(n_in * n_out for n_in, n_out in w.gemms()) + w.q_rank + w.kv_rank

    @classmethod
    def gradient_elements(cls, dims: Dims) -> tuple[int, int]:
        """(dY, dX) elements: the packed ``[q | k | v]`` gradient and the hidden-wide one."""
        return dims.tokens * LatentWidths.of(dims).packed, dims.tokens * dims.h


class LatentCoreRules(Rules):
    """Rules of ``mla.LatentAttention``: a fused core whose query/key heads are
    ``qk_nope_head_dim + qk_rope_head_dim`` wide and whose value heads are ``v_head_dim``."""

    RECOMPUTED_SLOTS = None  # fused: the scores are rebuilt in the backward anyway

    @classmethod
    def widths(cls, config):
        w = LatentWidths.of_config(config)
        return w.packed, config.heads * w.v

    @classmethod
    def cached_bytes(cls, dims: Dims) -> dict[str, int]:
        w, T, act = LatentWidths.of(dims), dims.tokens, dims.activation_bytes
        return {
            "q": act(T * w.q_out),
            "k": act(T * w.q_out),
            "v": act(T * w.heads * w.v),
            "out": act(T * w.heads * w.v),
            "lse": T * w.heads * max(dims.itemsize, STATS_ITEMSIZE),
        }

    @classmethod
    def footprint(cls, dims: Dims) -> Footprint:
        """q, k, v, the output and a float32 log-sum-exp per row: with 16-bit activations
        ``2 sb a (2 (d_nope + d_rope) + 2 d_v) + 4 sba`` bytes on one rank (heads over ``t``);
        the compressed kv is not what the core keeps, its up-projected keys and values are."""
        size = cls.cached_bytes(dims)
        freed = tuple(-size[k] for k in reversed(CORE_KEYS))
        return Footprint(F=tuple(size[k] for k in CORE_KEYS), I=freed, W=(), B=freed)

    @classmethod
    def flops(cls, dims: Dims) -> Flops:
        """Per sequence, the s^2 square (a fused kernel only its causal tiles,
        ``flash_attention.causal_share``): forward ``q k^T``
        (2 s^2 d_qk a head) and ``P v`` (2 s^2 d_v); the backward rebuilds the scores
        (2 s^2 d_qk), then dV and dP (2 s^2 d_v each), dQ and dK (2 s^2 d_qk each).
        ``attention=math`` leaves the rebuild out (twice the forward: what model FLOPs
        utilisation counts; the cache stays the fused core's, the only latent core)."""
        w = LatentWidths.of(dims)
        pairs = 2.0 * dims.local_seq * dims.s * w.heads
        fused = dims.config.attention_kind != "math"
        pairs *= causal_share(dims.s) if fused else 1.0  # the tiles a fused kernel computes
        rebuilt = w.qk if fused else 0
        return Flops(F=pairs * (w.qk + w.v), I=pairs * (2 * w.qk + 2 * w.v + rebuilt), W=0.0)

    @classmethod
    def gradient_elements(cls, dims: Dims) -> tuple[int, int]:
        """(dY, dX): the output's gradient and dq, dk, dv packed."""
        w = LatentWidths.of(dims)
        return dims.tokens * w.heads * w.v, dims.tokens * w.packed
