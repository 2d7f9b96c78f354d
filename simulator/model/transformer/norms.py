"""LayerNorm and RMSNorm over the last axis (the hidden features of each token).

Both cache only their input and recompute the statistics in the backward, like the MLP's
LayerNorm: the footprint is then the input (Korthikanti's 2sbh per norm) plus, between I and W,
the output gradient. Norms are replicated over a tensor-parallel group, or sequence-sharded
with SP.
"""

from __future__ import annotations

import numpy as np

from simulator.model.layers import ParametricLayer
from simulator.model.transformer.base import Rules, on_stream, parametric_footprint
from simulator.model.transformer.config import TransformerConfig
from simulator.model.transformer.dims import Dims


@on_stream
class _TokenNorm(Rules, ParametricLayer):
    """Shared parts: a gain ``gamma`` (and maybe a shift ``beta``), per-token statistics."""

    eps = 1e-5

    def __init__(self, layer_index, in_features, out_features, dtype, rng=None, bias=True):
        super().__init__(layer_index, in_features, out_features, dtype)
        self.params["gamma"] = np.ones(in_features, dtype=self.dtype)
        if bias:
            self.params["beta"] = np.zeros(in_features, dtype=self.dtype)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def _normalise(self, x):
        """``(x_hat, rstd)``: the normalised input and 1 / its scale, per token."""
        raise NotImplementedError

    def _forward(self, x):
        x_hat, _ = self._normalise(x)
        y = x_hat * self.params["gamma"]
        return y + self.params["beta"] if "beta" in self.params else y

    def _accumulate(self, x, grad_out):
        x_hat, _ = self._normalise(x)
        features = x.shape[-1]
        self.grads["gamma"] += (grad_out * x_hat).reshape(-1, features).sum(axis=0)
        if "beta" in self.grads:
            self.grads["beta"] += grad_out.reshape(-1, features).sum(axis=0)

    @classmethod
    def footprint(cls, dims: Dims):
        size = dims.activation_bytes(dims.seq_tokens * dims.h)
        return parametric_footprint(size, size)

    @classmethod
    def param_count(cls, dims: Dims) -> int:
        return dims.h * (2 if cls.has_shift(dims.config) else 1)

    @classmethod
    def has_shift(cls, config: TransformerConfig) -> bool:
        return config.bias

    @classmethod
    def from_config(cls, layer_index, config, dtype, rng, seed):
        h = config.hidden
        return cls(layer_index, h, h, dtype, rng=rng, bias=cls.has_shift(config))


class TokenLayerNorm(_TokenNorm):
    """``y = gamma * (x - mean) / std + beta`` per token (GPT). ``beta`` exists when the config
    has biases.

    Backward (the CS231n batchnorm derivation, over features): with ``d = dy * gamma``,
    ``dx = rstd / n * (n d - sum(d) - x_hat * sum(d * x_hat))``.
    """

    kind = "ln"

    def _normalise(self, x):
        mean = x.mean(axis=-1, keepdims=True)
        rstd = 1.0 / np.sqrt(x.var(axis=-1, keepdims=True) + self.eps)
        return (x - mean) * rstd, rstd

    def _grad_input(self, x, grad_out):
        x_hat, rstd = self._normalise(x)
        d_hat = grad_out * self.params["gamma"]
        n = x.shape[-1]
        total = d_hat.sum(axis=-1, keepdims=True)
        along = (d_hat * x_hat).sum(axis=-1, keepdims=True)
        return rstd / n * (n * d_hat - total - x_hat * along)


class RMSNorm(_TokenNorm):
    """``y = gamma * x / rms(x)``, ``rms = sqrt(mean(x^2) + eps)`` (Llama): no centring, no
    shift.

    Backward: with ``d = dy * gamma`` and ``x_hat = x / rms``,
    ``dx = (d - x_hat * mean(d * x_hat)) / rms``.
    """

    kind = "rmsnorm"

    @classmethod
    def has_shift(cls, config):
        return False

    def _normalise(self, x):
        rstd = 1.0 / np.sqrt((x * x).mean(axis=-1, keepdims=True) + self.eps)
        return x * rstd, rstd

    def _grad_input(self, x, grad_out):
        x_hat, rstd = self._normalise(x)
        d_hat = grad_out * self.params["gamma"]
        return rstd * (d_hat - x_hat * (d_hat * x_hat).mean(axis=-1, keepdims=True))
