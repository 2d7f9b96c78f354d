"""Linear layers over the last axis of (b, s, features) activations, one class per role.

The maths is seed 001's ``Y = X W + b`` applied to every token: ``dX = dY W^T``,
``dW = X^T dY`` and ``db`` = sum of ``dY`` over all tokens, with the (b, s) axes flattened into
rows for the weight gradient.

Why one class per role (QKV, attention output, MLP up/down, LM head): each role has its own
widths and its own Megatron tensor-parallel split, and those decide the footprint and FLOP rules:

* column-parallel (QKV, MLP up, LM head) shards the *output* features over ``t``; its input is
  the norm's output, replicated over the group, or sequence-sharded with SP (Korthikanti et al.
  2022 4.2.3: the all-gathered input is not kept, the shard is);
* row-parallel (attention output, MLP down) shards the *input* features; its output is
  all-reduced (replicated) or, with SP, reduce-scattered along the sequence.

Cached tensors are counted in the form a rank holds them at that moment.
"""

from __future__ import annotations

import math

import numpy as np

from simulator.model.layers import Flops, ParametricLayer
from simulator.model.transformer.base import Rules, on_stream, parametric_footprint
from simulator.model.transformer.config import TransformerConfig
from simulator.model.transformer.dims import Dims


@on_stream
class TokenLinear(Rules, ParametricLayer):
    """``y = x W (+ b)`` per token, with the split-backward cache protocol of ParametricLayer:
    F caches the input, I adds the output gradient, W frees both.

    Weights are ``N(0, 1/in_features)`` (variance-preserving), drawn from the ``rng`` passed in;
    biases start at zero.
    """

    kind = "token_linear"
    parallel = "column"

    def __init__(self, layer_index, in_features, out_features, dtype, rng=None, bias=True):
        super().__init__(layer_index, in_features, out_features, dtype)
        rng = rng if rng is not None else np.random.default_rng(layer_index)
        weight = rng.standard_normal((in_features, out_features)) / math.sqrt(in_features)
        self.params["W"] = weight.astype(self.dtype)
        if bias:
            self.params["b"] = np.zeros(out_features, dtype=self.dtype)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def _forward(self, x):
        y = x @ self.params["W"]
        return y + self.params["b"] if "b" in self.params else y

    def _grad_input(self, x, grad_out):
        return grad_out @ self.params["W"].T

    def _accumulate(self, x, grad_out):
        rows = grad_out.reshape(-1, self.out_features)
        self.grads["W"] += x.reshape(-1, self.in_features).T @ rows
        if "b" in self.grads:
            self.grads["b"] += rows.sum(axis=0)

    # ---------------------------------------------------------------- rules
    @classmethod
    def has_bias(cls, config: TransformerConfig) -> bool:
        return config.bias

    @classmethod
    def local_widths(cls, dims: Dims) -> tuple[int, int]:
        """(in, out) features on one tensor-parallel rank."""
        n_in, n_out = cls.widths(dims.config)
        if cls.parallel == "column":
            return n_in, n_out // dims.t
        return n_in // dims.t, n_out

    @classmethod
    def footprint(cls, dims: Dims):
        n_in, n_out = cls.local_widths(dims)
        if cls.parallel == "column":
            input_rows, grad_rows = dims.seq_tokens, dims.tokens
        else:
            input_rows, grad_rows = dims.tokens, dims.seq_tokens
        return parametric_footprint(
            dims.activation_bytes(input_rows * n_in), dims.activation_bytes(grad_rows * n_out)
        )

    @classmethod
    def flops(cls, dims: Dims) -> Flops:
        """One matrix multiply per phase, 2 FLOPs per multiply-add, for the tokens of one
        sequence on this rank (``s``, or ``s / c`` under context parallelism): ``Y = XW``,
        ``dX = dY W^T``, ``dW = X^T dY``. Bias adds are not counted (as in Narayanan et al.
        2021)."""
        n_in, n_out = cls.local_widths(dims)
        mac = 2.0 * dims.local_seq * n_in * n_out
        return Flops(F=mac, I=mac, W=mac)

    @classmethod
    def param_count(cls, dims: Dims) -> int:
        n_in, n_out = cls.local_widths(dims)
        if not cls.has_bias(dims.config):
            return n_in * n_out
        return n_in * n_out + n_out  # a row-parallel bias is replicated: n_out is full there

    @classmethod
    def from_config(cls, layer_index, config: TransformerConfig, dtype, rng, seed):
        n_in, n_out = cls.widths(config)
        return cls(layer_index, n_in, n_out, dtype, rng=rng, bias=cls.has_bias(config))


class QKVProjection(TokenLinear):
    """Hidden -> queries, keys and values packed as ``[q | k | v]``: ``a`` query heads and
    ``kv_heads`` key/value heads of width ``h / a`` (fewer kv heads is grouped-query attention).
    Caches its input, the output of the first norm (Korthikanti's "QKV input", 2sbh)."""

    kind = "qkv"
    parallel = "column"

    @classmethod
    def widths(cls, config):
        return config.hidden, (config.heads + 2 * config.num_kv_heads) * config.head_dim


class AttentionProjection(TokenLinear):
    """Concatenated heads -> hidden, row-parallel. Caches the attention output (Korthikanti's
    "projection input", 2sbh)."""

    kind = "attn_out"
    parallel = "row"


class MLPUp(TokenLinear):
    """Hidden -> the MLP's inner width (``ffn``; twice that for SwiGLU, ``[gate | up]``).
    Caches the second norm's output (Korthikanti's first-linear input, 2sbh)."""

    kind = "mlp_up"
    parallel = "column"

    @classmethod
    def widths(cls, config):
        factor = 2 if config.mlp == "swiglu" else 1
        return config.hidden, factor * config.ffn_hidden


class MLPDown(TokenLinear):
    """The MLP's inner width -> hidden, row-parallel. Caches the activation's output
    (Korthikanti's second-linear input, 8sbh for ffn = 4h)."""

    kind = "mlp_down"
    parallel = "row"

    @classmethod
    def widths(cls, config):
        return config.ffn_hidden, config.hidden


class LMHead(TokenLinear):
    """Hidden -> vocabulary logits, vocabulary-parallel, no bias.

    With ``tied_embeddings`` the real model reuses the token table; the numpy layer keeps its own
    copy (untied), which is also what a pipeline's last stage holds in Megatron, so a rank's
    parameter count includes it. ``parameter_count`` of the whole model counts it once.
    """

    kind = "lm_head"
    parallel = "column"

    @classmethod
    def has_bias(cls, config):
        return False

    @classmethod
    def widths(cls, config):
        return config.hidden, config.vocab

    @classmethod
    def local_widths(cls, dims):
        return dims.h, dims.local_vocab
