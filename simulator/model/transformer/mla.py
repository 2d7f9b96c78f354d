"""Multi-head latent attention (DeepSeek-V2, arXiv 2405.04434, section 2.1; DeepSeek-V3,
arXiv 2412.19437, section 2.1.1) as three numpy layers with a hand-written split backward.

In a latent block ``qkv, attention, attn_out`` become ``mla_qkv, mla_attention, attn_out``::

    x ─► cq = x Wdq ─► nq = rms(cq) gq ─► q = nq Wuq ─► per head [q_nope | rope(q_rope)]
      └► [ckv | k_rope] = x Wdkv ─► nkv = rms(ckv) gkv ─► [k_nope | v] = nkv Wukv (per head)
                 └─ rope(k_rope): one rotary key, shared by every head ─► k = [k_nope | k_rope]
    packed [q | k | v] ─► mla_attention (fused causal core, scale 1 / sqrt(d_nope + d_rope))
                      ─► out (heads x d_v) ─► attn_out (row parallel, reads the core's out)

``LatentQKVProjection`` holds every weight of the compression (``q_lora_rank`` None: one
``Wq`` from the hidden state, DeepSeek-V2-Lite's). What it caches (``mla_rules``):

=========  ===================  ================================================
key        shape                why
=========  ===================  ================================================
``input``  (b, s, h)            both down-projections' weight gradients
``cq``     (T, q_lora_rank)     the query norm's backward and its gain gradient
``nq``     (T, q_lora_rank)     the query up-projection's weight gradient
``ckv``    (T, kv_lora_rank)    the key/value norm's backward and gain gradient
``nkv``    (T, kv_lora_rank)    the key/value up-projection's weight gradient
=========  ===================  ================================================

``I`` adds each GEMM's and norm's output gradient (``d_q``, ``d_nq``, ``d_cq``, ``d_kv``,
``d_nkv``, ``d_ckv``) for ``W``, which frees everything; ``B`` frees what ``F`` kept.

``LatentAttention`` is the fused core on q, k, v of ``qk_nope + qk_rope`` and ``v_head_dim``
wide heads: it keeps q, k, v, its output (merged, the output projection's input) and a per-row
log-sum-exp, as ``flash_attention.FlashAttention`` does, and rebuilds the probabilities from
the log-sum-exp in its backward. The numpy core computes whole score matrices (toy sizes);
tiling changes only the order of sums, never what is kept.

What pebblesim leaves out: YaRN's scaling of the softmax temperature (``rope_scaling.mscale``:
a scalar, no parameter, FLOP or byte), DeepSeek-V3's multi-token prediction module (a 15th
billion parameters the 671B total does not include) and inference's absorbed-weight form.
"""

from __future__ import annotations

import math

import numpy as np

from simulator.model.layers import Footprint, Layer
from simulator.model.transformer.attention import rope_tables, rotate, rotate_back
from simulator.model.transformer.base import on_stream
from simulator.model.transformer.flash_attention import stats_dtype
from simulator.model.transformer.flash_projection import FlashOutputProjection
from simulator.model.transformer.linear import TokenLinear
from simulator.model.transformer.mla_rules import (
    CORE_KEYS,
    PROJECTION_FORWARD_KEYS,
    PROJECTION_GRAD_KEYS,
    LatentCoreRules,
    LatentProjectionRules,
    LatentWidths,
    projection_keys,
)

RMS_EPS = 1e-6
"""DeepSeek-V3's ``rms_norm_eps``."""


def rms_normalise(x):
    """``(x / rms(x), 1 / rms(x))`` per row."""
    rstd = 1.0 / np.sqrt((x * x).mean(axis=-1, keepdims=True) + RMS_EPS)
    return x * rstd, rstd


def rms_grad(x, gain, grad_out):
    """The input gradient of ``gain * x / rms(x)`` (``norms.RMSNorm``'s formula)."""
    x_hat, rstd = rms_normalise(x)
    d_hat = grad_out * gain
    return rstd * (d_hat - x_hat * (d_hat * x_hat).mean(axis=-1, keepdims=True))


@on_stream
class LatentQKVProjection(LatentProjectionRules, Layer):
    """Hidden state -> packed ``[q | k | v]`` through the compressed q and kv (module
    docstring). Why one layer for both compressions and the rotary key: they share the input,
    and the decoupled rotary key is a slice of the kv down-projection that every head's key
    takes; as separate layers the chain would have to carry two or three arrays."""

    kind = "mla_qkv"
    has_params = True

    def __init__(self, layer_index, config, dtype, rng=None):
        self.w = w = LatentWidths.of_config(config)
        super().__init__(layer_index, w.h, w.packed, dtype)
        rng = rng if rng is not None else np.random.default_rng(layer_index)

        def normal(n_in, n_out):
            return (rng.standard_normal((n_in, n_out)) / math.sqrt(n_in)).astype(self.dtype)

        if w.q_rank:
            self.params["Wdq"] = normal(w.h, w.q_rank)
            self.params["gq"] = np.ones(w.q_rank, dtype=self.dtype)
            self.params["Wuq"] = normal(w.q_rank, w.q_out)
        else:
            self.params["Wq"] = normal(w.h, w.q_out)
        self.params["Wdkv"] = normal(w.h, w.kv_rank + w.rope)
        self.params["gkv"] = np.ones(w.kv_rank, dtype=self.dtype)
        self.params["Wukv"] = normal(w.kv_rank, w.kv_out)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def _keys(self, keys):
        return projection_keys(keys, bool(self.w.q_rank))

    def _rope(self, seq):
        return rope_tables(seq, self.w.rope, self.dtype)

    # ---------------------------------------------------------------- forward
    def forward(self, mb, x):
        b, s, h = x.shape
        w, p = self.w, self.params
        flat = x.reshape(-1, h)
        saved = {"input": x}
        if w.q_rank:
            saved["cq"] = flat @ p["Wdq"]
            saved["nq"] = rms_normalise(saved["cq"])[0] * p["gq"]
            q = saved["nq"] @ p["Wuq"]
        else:
            q = flat @ p["Wq"]
        compressed = flat @ p["Wdkv"]
        saved["ckv"] = np.ascontiguousarray(compressed[:, : w.kv_rank])
        saved["nkv"] = rms_normalise(saved["ckv"])[0] * p["gkv"]
        kv = (saved["nkv"] @ p["Wukv"]).reshape(b, s, w.heads, w.nope + w.v)
        cos, sin = self._rope(s)
        q = q.reshape(b, s, w.heads, w.qk).transpose(0, 2, 1, 3)
        q_rope = rotate(q[..., w.nope :], cos, sin)
        q = np.concatenate([q[..., : w.nope], q_rope], axis=-1)
        k_rope = rotate(compressed[:, w.kv_rank :].reshape(b, 1, s, w.rope), cos, sin)
        k_nope = kv[..., : w.nope].transpose(0, 2, 1, 3)
        k = np.concatenate([k_nope, np.broadcast_to(k_rope, (*k_nope.shape[:3], w.rope))], -1)
        v = kv[..., w.nope :].reshape(b, s, w.heads * w.v)
        for key in self._keys(PROJECTION_FORWARD_KEYS):
            self._put(mb, key, saved[key])
        return np.concatenate([_merge(q), _merge(k), v], axis=-1)

    # ---------------------------------------------------------------- backward
    def backward_input(self, mb, grad_out):
        saved = {k: self._peek(mb, k) for k in self._keys(PROJECTION_FORWARD_KEYS)}
        grad_in, kept = self._grad_input(saved, grad_out)
        for key in self._keys(PROJECTION_GRAD_KEYS):
            self._put(mb, key, kept[key])
        return grad_in

    def backward_weight(self, mb):
        keys = self._keys(PROJECTION_FORWARD_KEYS + PROJECTION_GRAD_KEYS)
        self._accumulate({key: self._pop(mb, key) for key in keys})

    def backward(self, mb, grad_out):
        saved = {k: self._pop(mb, k) for k in self._keys(PROJECTION_FORWARD_KEYS)}
        grad_in, kept = self._grad_input(saved, grad_out)
        self._accumulate({**saved, **kept})
        return grad_in

    def _grad_input(self, saved, grad_out):
        """(the input gradient, each GEMM's and norm's output gradient for ``W``)."""
        w, p = self.w, self.params
        b, s, _ = grad_out.shape
        cos, sin = self._rope(s)
        d_q, d_k, d_v = np.split(grad_out, [w.q_out, 2 * w.q_out], axis=-1)
        d_q, d_k = (_heads(t, w.heads, w.qk) for t in (d_q, d_k))
        d_q = np.concatenate([d_q[..., : w.nope], rotate_back(d_q[..., w.nope :], cos, sin)], -1)
        d_k_rope = rotate_back(d_k[..., w.nope :].sum(axis=1), cos, sin)  # (b, s, rope)
        d_kv = np.concatenate(
            [d_k[..., : w.nope].transpose(0, 2, 1, 3), d_v.reshape(b, s, w.heads, w.v)], -1
        ).reshape(b * s, w.kv_out)
        kept = {"d_q": _merge(d_q).reshape(b * s, w.q_out), "d_kv": d_kv}
        kept["d_nkv"] = d_kv @ p["Wukv"].T
        d_ckv = rms_grad(saved["ckv"], p["gkv"], kept["d_nkv"])
        kept["d_ckv"] = np.concatenate([d_ckv, d_k_rope.reshape(b * s, w.rope)], axis=-1)
        dx = kept["d_ckv"] @ p["Wdkv"].T
        if w.q_rank:
            kept["d_nq"] = kept["d_q"] @ p["Wuq"].T
            kept["d_cq"] = rms_grad(saved["cq"], p["gq"], kept["d_nq"])
            dx += kept["d_cq"] @ p["Wdq"].T
        else:
            dx += kept["d_q"] @ p["Wq"].T
        return dx.reshape(b, s, w.h), kept

    def _accumulate(self, saved):
        w, g = self.w, self.grads
        flat = saved["input"].reshape(-1, w.h)
        if w.q_rank:
            g["Wdq"] += flat.T @ saved["d_cq"]
            g["gq"] += (saved["d_nq"] * rms_normalise(saved["cq"])[0]).sum(axis=0)
            g["Wuq"] += saved["nq"].T @ saved["d_q"]
        else:
            g["Wq"] += flat.T @ saved["d_q"]
        g["Wdkv"] += flat.T @ saved["d_ckv"]
        g["gkv"] += (saved["d_nkv"] * rms_normalise(saved["ckv"])[0]).sum(axis=0)
        g["Wukv"] += saved["nkv"].T @ saved["d_kv"]

    @classmethod
    def from_config(cls, layer_index, config, dtype, rng, seed):
        return cls(layer_index, config, dtype, rng)


@on_stream
class LatentAttention(LatentCoreRules, Layer):
    """The fused causal core of a latent block (module docstring). Why not
    ``FlashAttention`` itself: its heads are one width for q, k and v; here values are
    ``v_head_dim`` wide and queries and keys ``qk_nope_head_dim + qk_rope_head_dim``."""

    kind = "mla_attention"

    def __init__(self, layer_index, config, dtype):
        self.w = w = LatentWidths.of_config(config)
        super().__init__(layer_index, w.packed, w.heads * w.v, dtype)
        self.work_dtype = stats_dtype(self.dtype)
        self.scale = 1.0 / math.sqrt(w.qk)

    def _scores(self, q, k):
        s = q.shape[2]
        scores = q.astype(self.work_dtype) @ k.astype(self.work_dtype).swapaxes(-1, -2)
        return np.where(np.tril(np.ones((s, s), dtype=bool)), scores * self.scale, -np.inf)

    def forward(self, mb, x):
        w = self.w
        q, k, v = np.split(x, [w.q_out, 2 * w.q_out], axis=-1)
        q, k = (np.ascontiguousarray(_heads(t, w.heads, w.qk)) for t in (q, k))
        v = np.ascontiguousarray(_heads(v, w.heads, w.v))
        scores = self._scores(q, k)
        peak = scores.max(axis=-1, keepdims=True)
        total = np.exp(scores - peak).sum(axis=-1, keepdims=True)
        lse = peak + np.log(total)
        out = _merge((np.exp(scores - lse) @ v.astype(self.work_dtype)).astype(self.dtype))
        cached = {"q": q, "k": k, "v": v, "out": out, "lse": lse[..., 0]}
        for key in CORE_KEYS:
            self._put(mb, key, cached[key])
        return out

    def backward_input(self, mb, grad_out):
        w = self.w
        lse, out = self._pop(mb, "lse"), self._pop(mb, "out")
        v, k, q = self._pop(mb, "v"), self._pop(mb, "k"), self._pop(mb, "q")
        d_out = _heads(grad_out, w.heads, w.v).astype(self.work_dtype)
        delta = (d_out * _heads(out, w.heads, w.v)).sum(axis=-1, keepdims=True)
        probs = np.exp(self._scores(q, k) - lse[..., None])  # rebuilt from the log-sum-exp
        d_v = probs.swapaxes(-1, -2) @ d_out
        d_scores = probs * (d_out @ v.swapaxes(-1, -2) - delta) * self.scale
        d_q, d_k = d_scores @ k, d_scores.swapaxes(-1, -2) @ q
        grads = (_merge(g.astype(self.dtype)) for g in (d_q, d_k, d_v))
        return np.concatenate(list(grads), axis=-1)

    @classmethod
    def from_config(cls, layer_index, config, dtype, rng, seed):
        return cls(layer_index, config, dtype)


class LatentOutputProjection(FlashOutputProjection):
    """The row-parallel output projection of a latent block: ``heads x v_head_dim`` -> hidden,
    reading the core's kept output as ``FlashOutputProjection`` does (one buffer, counted
    once). Not decorated again: the stream handling comes with the methods it inherits."""

    @classmethod
    def widths(cls, config):
        return config.heads * config.v_head_dim, config.hidden

    @classmethod
    def footprint(cls, dims):
        own = TokenLinear.footprint.__func__(cls, dims)  # the input it would keep, dY
        (x,), (g,) = own.F, own.I
        return Footprint(F=(), I=(x, g), W=(-x, -g), B=())

    @classmethod
    def gradient_elements(cls, dims) -> tuple[int, int]:
        """(dY, dX): hidden-wide over the full sequence, the local heads' values."""
        return dims.tokens * dims.h, dims.tokens * dims.local_heads * dims.config.v_head_dim


def _heads(t, heads: int, width: int):
    """(b, s, heads width) -> (b, heads, s, width)."""
    b, s, _ = t.shape
    return t.reshape(b, s, heads, width).transpose(0, 2, 1, 3)


def _merge(t):
    """(b, n, s, d) -> (b, s, n d)."""
    b, n, s, d = t.shape
    return t.transpose(0, 2, 1, 3).reshape(b, s, n * d)
