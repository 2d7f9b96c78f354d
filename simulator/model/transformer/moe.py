"""A mixture-of-experts MLP as one layer: router, top-k gating, capacity, routed and shared
experts, and the load-balancing auxiliary loss, with a hand-written split backward.

In a MoE block this layer takes the place of ``mlp_up, activation, mlp_down`` between the
second norm and the residual add (``layers.py``)::

    x ─► router: logits = x Wr, probs = softmax(logits) ─► top-k experts, gates ──┐
    │                                                                             │
    ├─► dispatch: each (token, expert) pair to its expert's rows ─► expert e:     │
    │       fc1 = x W1[e] (+b1) ─► act = silu(gate) * up | gelu ─► out = act W2[e] │
    │   combine: y = sum over the token's kept pairs of gate * out ◄─────────────┘
    └─► shared experts (always on, one MLP of ``shared_experts * expert_ffn``): y += S(x)

Gating (``config.norm_topk``): softmax over all experts, keep the top k, and renormalise them
to sum to 1 (Mixtral, Qwen3-MoE; Hugging Face's ``norm_topk_prob``), or keep the top-k
probabilities as they are (Switch, Qwen1.5-MoE). Mixtral's renormalised softmax equals a
softmax over the k largest logits. DeepSeek-V3 scores with a sigmoid instead; its parameters,
FLOPs and cached bytes are those of this softmax router, which is what pebblesim counts.

Capacity (``config.capacity_factor``): each expert takes ``C = ceil(cf * T * k / E)`` of the
microbatch's ``T * k`` assignments; first choices before second ones, then token order
(GShard's priority), and the rest are dropped (their gate contributes nothing). The expert
buffers are padded to ``E * C`` rows, as GShard's and Switch's fixed-shape dispatch (and
Megatron's ``moe_pad_expert_input_to_capacity``) are, so the bytes and FLOPs are known before
the data: ``T * k`` rows dropless, ``E * C`` with a capacity. Padded rows carry zeros and a
gate of 0.

Load balance (``config.moe_aux_coef``): Switch's loss ``coef * E * sum_e f_e P_e``, with
``f_e`` the fraction of the microbatch's ``T * k`` top-k assignments (before dropping) that chose
expert e and ``P_e`` its mean router probability; f is a count and carries no gradient
(Fedus et al. 2021, eq. 4; Megatron Core's ``switch_load_balancing_loss_func`` with top-k).
Each microbatch's loss is weighted by its share of the batch's sequences (``scale * b``: the
trainer's ``set_loss_scale`` sets ``scale`` to 1 / batch sequences, as for the model's loss),
so a balanced router adds exactly ``coef`` to a step. The layer adds the loss's gradient to the
router in its own backward, where it arises; the step's reported loss is the language model's
(``aux_loss`` holds the last microbatch's term).

What is cached (the tensors a real implementation saves; ``footprint`` counts them per key):

=================  ===============  ==========================================================
key                shape            why
=================  ===============  ==========================================================
``input``          (b, s, h)        router and shared-expert weight gradients
``probs``          (T, E)           softmax and top-k backward, the auxiliary loss
``selected``       (T, k) int64     which experts each token chose
``route``          (rows,) int64    each buffer row's (token, choice), -1 for padding
``counts``         (E,) int64       rows of each expert's segment of the buffer
``xin``            (rows, h)        dispatched tokens: the experts' fc1 input
``fc1``            (rows, f1)       the activation's input (f1 = 2 f for SwiGLU)
``act``            (rows, f)        the experts' fc2 input
``eout``           (rows, h)        expert outputs: the gate's gradient needs them
``shared_fc1/act`` (T, fs1), (T, fs) the shared MLP's activation input and fc2 input
=================  ===============  ==========================================================

``I`` frees what only the input gradient needs (probs, selected, route, fc1, eout, shared fc1)
and keeps, for ``W``, each GEMM's output gradient: ``d_logits``, ``d_fc1``, ``d_eout``,
``d_shared_fc1`` and the layer's ``grad_out``. ``W`` frees the rest; ``B`` frees everything ``F``
cached, in the same order.
"""

from __future__ import annotations

import math

import numpy as np

from simulator.errors import PebbleError
from simulator.model.layers import Layer
from simulator.model.transformer.base import on_stream
from simulator.model.transformer.config import TransformerConfig
from simulator.model.transformer.moe_rules import (
    FORWARD_KEYS,
    INPUT_FREES,
    INPUT_PUTS,
    SHARED_FORWARD_KEYS,
    WEIGHT_FREES,
    MoERules,
    capacity,
    present_keys,
)

_GELU_K = math.sqrt(2.0 / math.pi)
_GELU_C = 0.044715


@on_stream
class MixtureOfExperts(MoERules, Layer):
    """The MoE MLP (module docstring). Why one layer and not router, dispatch and experts
    apart: the routing decision (which rows go where) has to reach the combine and both
    backwards; inside one layer it stays in the cache, counted, instead of riding the residual
    stream between layers."""

    kind = "moe"
    has_params = True
    adds_auxiliary_loss = True  # ``set_loss_scale`` sets ``scale`` as for a loss

    def __init__(
        self,
        layer_index,
        config: TransformerConfig,
        dtype,
        rng: np.random.Generator | None = None,
    ):
        h = config.hidden
        super().__init__(layer_index, h, h, dtype)
        if not config.is_moe:
            raise PebbleError("a mixture-of-experts layer needs a config with experts.")
        rng = rng if rng is not None else np.random.default_rng(layer_index)
        self.experts, self.top_k = config.experts, config.num_top_k
        self.swiglu = config.mlp == "swiglu"
        self.capacity_factor = config.capacity_factor
        self.aux_coef = config.aux_coef
        self.norm_topk = config.renormalise_top_k
        self.config = config
        f, fs = config.expert_hidden, config.shared_hidden
        f1, fs1 = self._widths(f), self._widths(fs)
        E = self.experts

        def normal(shape, fan_in):
            return (rng.standard_normal(shape) / math.sqrt(fan_in)).astype(self.dtype)

        self.params["router"] = normal((h, E), h)
        self.params["W1"] = normal((E, h, f1), h)
        self.params["W2"] = normal((E, f, h), f)
        if config.bias:
            self.params["b1"] = np.zeros((E, f1), dtype=self.dtype)
            self.params["b2"] = np.zeros((E, h), dtype=self.dtype)
        if fs:
            self.params["S1"] = normal((h, fs1), h)
            self.params["S2"] = normal((fs, h), fs)
            if config.bias:
                self.params["c1"] = np.zeros(fs1, dtype=self.dtype)
                self.params["c2"] = np.zeros(h, dtype=self.dtype)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.shared = bool(fs)
        self.scale = 1.0
        self.aux_loss = 0.0

    def _widths(self, inner: int) -> int:
        return 2 * inner if self.swiglu else inner

    # ---------------------------------------------------------------- the activation
    def _activate(self, z):
        if self.swiglu:
            gate, up = np.split(z, 2, axis=-1)
            return gate / (1.0 + np.exp(-gate)) * up
        return 0.5 * z * (1.0 + np.tanh(_GELU_K * (z + _GELU_C * z**3)))

    def _activate_grad(self, z, grad):
        if self.swiglu:
            gate, up = np.split(z, 2, axis=-1)
            sig = 1.0 / (1.0 + np.exp(-gate))
            d_up = grad * gate * sig
            d_gate = grad * up * sig * (1.0 + gate * (1.0 - sig))
            return np.concatenate([d_gate, d_up], axis=-1)
        t = np.tanh(_GELU_K * (z + _GELU_C * z**3))
        dt = (1.0 - t * t) * _GELU_K * (1.0 + 3.0 * _GELU_C * z * z)
        return grad * (0.5 * (1.0 + t) + 0.5 * z * dt)

    # ---------------------------------------------------------------- routing
    def _gates(self, probs, selected):
        """(picked probabilities, gates) of each token's k choices."""
        picked = np.take_along_axis(probs, selected, axis=1)
        if not self.norm_topk:
            return picked, picked
        return picked, picked / picked.sum(axis=1, keepdims=True)

    def _dispatch(self, selected):
        """(route, counts): each buffer row's flat assignment ``t * k + j`` (-1: padding), and
        the rows of each expert's segment."""
        tokens, k = selected.shape
        E = self.experts
        choice = np.repeat(np.arange(k)[None, :], tokens, axis=0).reshape(-1)
        token = np.repeat(np.arange(tokens), k)
        expert = selected.reshape(-1)
        order = np.lexsort((token, choice, expert))  # by expert, first choices first, in order
        flat = token * k + choice
        chosen = np.bincount(expert, minlength=E)
        if self.capacity_factor is None:
            return flat[order].astype(np.int64), chosen.astype(np.int64)
        C = capacity(tokens, self.config)
        route = np.full(E * C, -1, dtype=np.int64)
        start = 0
        for e in range(E):
            kept = order[start : start + min(chosen[e], C)]
            route[e * C : e * C + kept.size] = flat[kept]
            start += chosen[e]
        return route, np.full(E, C, dtype=np.int64)

    def _segments(self, counts):
        bounds = np.concatenate([[0], np.cumsum(counts)])
        return [(e, slice(bounds[e], bounds[e + 1])) for e in range(self.experts)]

    def _experts_apply(self, rows_in, counts, weight, bias, out_width):
        out = np.zeros((rows_in.shape[0], out_width), dtype=self.dtype)
        for e, rows in self._segments(counts):
            out[rows] = rows_in[rows] @ self.params[weight][e]
            if bias in self.params:
                out[rows] += self.params[bias][e]
        return out

    # ---------------------------------------------------------------- forward
    def forward(self, mb, x):
        b, s, h = x.shape
        flat = x.reshape(-1, h)
        logits = flat @ self.params["router"]
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs = shifted / shifted.sum(axis=1, keepdims=True)
        selected = np.argsort(-probs, axis=1, kind="stable")[:, : self.top_k].astype(np.int64)
        _, gates = self._gates(probs, selected)
        route, counts = self._dispatch(selected)
        valid = route >= 0
        tokens = route[valid] // self.top_k
        xin = np.zeros((route.size, h), dtype=self.dtype)
        xin[valid] = flat[tokens]
        fc1 = self._experts_apply(xin, counts, "W1", "b1", self.params["W1"].shape[2])
        act = self._activate(fc1)
        eout = self._experts_apply(act, counts, "W2", "b2", h)
        y = np.zeros_like(flat)
        np.add.at(y, tokens, gates.reshape(-1)[route[valid]][:, None] * eout[valid])
        self.aux_loss = self._aux_loss(probs, selected, b)
        cached = dict(input=x, probs=probs, selected=selected, route=route, counts=counts)
        cached.update(xin=xin, fc1=fc1, act=act, eout=eout)
        if self.shared:
            shared_fc1 = flat @ self.params["S1"]
            if "c1" in self.params:
                shared_fc1 = shared_fc1 + self.params["c1"]
            shared_act = self._activate(shared_fc1)
            y += shared_act @ self.params["S2"]
            if "c2" in self.params:
                y += self.params["c2"]
            cached.update(shared_fc1=shared_fc1, shared_act=shared_act)
        for key in present_keys(FORWARD_KEYS + SHARED_FORWARD_KEYS, self.shared):
            self._put(mb, key, cached[key])
        return y.reshape(b, s, h)

    def _aux_weight(self, sequences: int) -> float:
        """This microbatch's share of the step's loss (its sequences times ``scale``)."""
        return self.aux_coef * self.experts * self.scale * sequences

    def _aux_loss(self, probs, selected, sequences: int) -> float:
        chosen = np.bincount(selected.reshape(-1), minlength=self.experts) / selected.size
        return float(self._aux_weight(sequences) * np.sum(chosen * probs.mean(axis=0)))

    # ---------------------------------------------------------------- backward
    def backward_input(self, mb, grad_out):
        saved = {k: self._peek(mb, k) for k in ("input", "counts", "xin", "act")}
        if self.shared:
            saved["shared_act"] = self._peek(mb, "shared_act")
        for key in present_keys(INPUT_FREES, self.shared):
            saved[key] = self._pop(mb, key)
        grad_in, kept = self._grad_input(saved, grad_out)
        for key in present_keys(INPUT_PUTS, self.shared):
            self._put(mb, key, kept[key])
        return grad_in

    def backward_weight(self, mb):
        self._accumulate(
            {key: self._pop(mb, key) for key in present_keys(WEIGHT_FREES, self.shared)}
        )

    def backward(self, mb, grad_out):
        keys = present_keys(FORWARD_KEYS + SHARED_FORWARD_KEYS, self.shared)
        saved = {key: self._pop(mb, key) for key in keys}
        grad_in, kept = self._grad_input(saved, grad_out)
        self._accumulate({**saved, **kept})
        return grad_in

    def _grad_input(self, saved, grad_out):
        """(input gradient, what the weight gradient needs: each GEMM's output gradient)."""
        x = saved["input"]
        b, s, h = x.shape
        dy = grad_out.reshape(-1, h)
        probs, selected, route, counts = (
            saved[k] for k in ("probs", "selected", "route", "counts")
        )
        valid = route >= 0
        assignment = route[valid]
        tokens = assignment // self.top_k
        picked, gates = self._gates(probs, selected)
        d_eout = np.zeros((route.size, h), dtype=self.dtype)
        d_eout[valid] = gates.reshape(-1)[assignment][:, None] * dy[tokens]
        d_gates = np.zeros(gates.size, dtype=self.dtype)
        d_gates[assignment] = np.sum(dy[tokens] * saved["eout"][valid], axis=1)
        d_gates = d_gates.reshape(gates.shape)
        d_act = np.zeros_like(saved["act"])
        for e, rows in self._segments(counts):
            d_act[rows] = d_eout[rows] @ self.params["W2"][e].T
        d_fc1 = self._activate_grad(saved["fc1"], d_act)
        d_xin = np.zeros((route.size, h), dtype=self.dtype)
        for e, rows in self._segments(counts):
            d_xin[rows] = d_fc1[rows] @ self.params["W1"][e].T
        dx = np.zeros_like(dy)
        np.add.at(dx, tokens, d_xin[valid])
        if self.norm_topk:
            sums = picked.sum(axis=1, keepdims=True)
            d_picked = (d_gates - np.sum(d_gates * gates, axis=1, keepdims=True)) / sums
        else:
            d_picked = d_gates
        d_probs = np.zeros_like(probs)
        np.put_along_axis(d_probs, selected, d_picked, axis=1)
        if self.aux_coef:
            chosen = np.bincount(selected.reshape(-1), minlength=self.experts) / selected.size
            d_probs += (self._aux_weight(b) / probs.shape[0] * chosen).astype(self.dtype)
        d_logits = probs * (d_probs - np.sum(d_probs * probs, axis=1, keepdims=True))
        dx += d_logits @ self.params["router"].T
        kept = dict(d_logits=d_logits, d_fc1=d_fc1, d_eout=d_eout, grad_out=grad_out)
        if self.shared:
            d_shared_act = dy @ self.params["S2"].T
            d_shared_fc1 = self._activate_grad(saved["shared_fc1"], d_shared_act)
            dx += d_shared_fc1 @ self.params["S1"].T
            kept["d_shared_fc1"] = d_shared_fc1
        return dx.reshape(b, s, h), kept

    def _accumulate(self, saved):
        h = self.in_features
        flat = saved["input"].reshape(-1, h)
        self.grads["router"] += flat.T @ saved["d_logits"]
        for e, rows in self._segments(saved["counts"]):
            self.grads["W1"][e] += saved["xin"][rows].T @ saved["d_fc1"][rows]
            self.grads["W2"][e] += saved["act"][rows].T @ saved["d_eout"][rows]
            if "b1" in self.grads:
                self.grads["b1"][e] += saved["d_fc1"][rows].sum(axis=0)
                self.grads["b2"][e] += saved["d_eout"][rows].sum(axis=0)
        if self.shared:
            dy = saved["grad_out"].reshape(-1, h)
            self.grads["S1"] += flat.T @ saved["d_shared_fc1"]
            self.grads["S2"] += saved["shared_act"].T @ dy
            if "c1" in self.grads:
                self.grads["c1"] += saved["d_shared_fc1"].sum(axis=0)
                self.grads["c2"] += dy.sum(axis=0)

    # ---------------------------------------------------------------- rules
    @classmethod
    def from_config(cls, layer_index, config, dtype, rng, seed):
        return cls(layer_index, config, dtype, rng)
