"""The concrete layers of an MLP model spec: Linear, ReLU, Sigmoid, Tanh, GELU and LayerNorm.

Why apart from ``layers``: that module is the machinery every layer shares (the phases, the
cache protocol of a split backward, the footprint and FLOP rules' types, the loss base); this
one is only the math of six layers written on it, each a forward, an input gradient and, with
weights, a weight gradient. The transformer's layers (``transformer/``) and the losses
(``losses``) sit on the same machinery beside these.
"""

from __future__ import annotations

import math

import numpy as np

from simulator.model.layers import Flops, Layer, ParametricLayer


class Linear(ParametricLayer):
    """``Y = X W + b`` with ``W`` of shape (in, out), as in seed 001.

    Backward: ``dX = dY W^T``, ``dW = X^T dY``, ``db`` = column sum of ``dY``.
    """

    kind = "linear"

    def __init__(self, layer_index: int, in_features: int, out_features: int, dtype, rng=None):
        super().__init__(layer_index, in_features, out_features, dtype)
        rng = rng if rng is not None else np.random.default_rng(layer_index)
        scale = math.sqrt(2.0 / in_features)
        self.params["W"] = (rng.standard_normal((in_features, out_features)) * scale).astype(
            self.dtype
        )
        self.params["b"] = np.zeros(out_features, dtype=self.dtype)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def _forward(self, x):
        return x @ self.params["W"] + self.params["b"]

    def _grad_input(self, x, grad_out):
        return grad_out @ self.params["W"].T

    def _accumulate(self, x, grad_out):
        self.grads["W"] += x.T @ grad_out
        self.grads["b"] += grad_out.sum(axis=0)

    @classmethod
    def flops(cls, in_features, out_features):
        mac = 2.0 * in_features * out_features
        return Flops(F=mac + out_features, I=mac, W=mac + out_features)


class ReLU(Layer):
    """max(0, x); caches its input, routes the gradient where the input was positive."""

    kind = "relu"

    def forward(self, mb, x):
        self._put(mb, "input", x)
        return np.maximum(x, 0)

    def backward_input(self, mb, grad_out):
        x = self._pop(mb, "input")
        return grad_out * (x > 0)

    @classmethod
    def flops(cls, in_features, out_features):
        return Flops(F=1.0 * in_features, I=2.0 * in_features, W=0.0)


class Sigmoid(Layer):
    """1/(1+e^-x); caches its *output* y, since dsigma/dx = y(1 - y)."""

    kind = "sigmoid"
    input_key = None

    def forward(self, mb, x):
        y = 1.0 / (1.0 + np.exp(-x))
        self._put(mb, "output", y)
        return y

    def backward_input(self, mb, grad_out):
        y = self._pop(mb, "output")
        return grad_out * y * (1.0 - y)


class Tanh(Layer):
    """tanh(x); caches its *output* y, since dtanh/dx = 1 - y^2."""

    kind = "tanh"
    input_key = None

    def forward(self, mb, x):
        y = np.tanh(x)
        self._put(mb, "output", y)
        return y

    def backward_input(self, mb, grad_out):
        y = self._pop(mb, "output")
        return grad_out * (1.0 - y * y)


class GELU(Layer):
    """GELU, tanh approximation: 0.5 x (1 + tanh(k (x + 0.044715 x^3))), k = sqrt(2/pi)."""

    kind = "gelu"
    _K = math.sqrt(2.0 / math.pi)
    _C = 0.044715

    def forward(self, mb, x):
        self._put(mb, "input", x)
        return 0.5 * x * (1.0 + np.tanh(self._K * (x + self._C * x**3)))

    def backward_input(self, mb, grad_out):
        x = self._pop(mb, "input")
        t = np.tanh(self._K * (x + self._C * x**3))
        dt = (1.0 - t * t) * self._K * (1.0 + 3.0 * self._C * x * x)
        return grad_out * (0.5 * (1.0 + t) + 0.5 * x * dt)

    @classmethod
    def flops(cls, in_features, out_features):
        return Flops(F=10.0 * in_features, I=16.0 * in_features, W=0.0)


class LayerNorm(ParametricLayer):
    """Normalise each row, then scale and shift: y = gamma * x_hat + beta.

    Caches only its input; x_hat and 1/std are recomputed in the backward (cheap, and it keeps
    the cache rule the same as Linear's: input in F, plus the output gradient between I and W).
    """

    kind = "layernorm"
    eps = 1e-5

    def __init__(self, layer_index, in_features, out_features, dtype, rng=None):
        super().__init__(layer_index, in_features, out_features, dtype)
        self.params["gamma"] = np.ones(in_features, dtype=self.dtype)
        self.params["beta"] = np.zeros(in_features, dtype=self.dtype)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def _normalise(self, x):
        mean = x.mean(axis=1, keepdims=True)
        rstd = 1.0 / np.sqrt(x.var(axis=1, keepdims=True) + self.eps)
        return (x - mean) * rstd, rstd

    def _forward(self, x):
        x_hat, _ = self._normalise(x)
        return x_hat * self.params["gamma"] + self.params["beta"]

    def _grad_input(self, x, grad_out):
        x_hat, rstd = self._normalise(x)
        d_hat = grad_out * self.params["gamma"]
        n = x.shape[1]
        return (
            rstd
            / n
            * (
                n * d_hat
                - d_hat.sum(axis=1, keepdims=True)
                - x_hat * (d_hat * x_hat).sum(axis=1, keepdims=True)
            )
        )

    def _accumulate(self, x, grad_out):
        x_hat, _ = self._normalise(x)
        self.grads["gamma"] += (grad_out * x_hat).sum(axis=0)
        self.grads["beta"] += grad_out.sum(axis=0)

    @classmethod
    def flops(cls, in_features, out_features):
        return Flops(F=8.0 * in_features, I=14.0 * in_features, W=8.0 * in_features)
