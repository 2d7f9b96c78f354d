"""The losses a model spec can end with: softmax cross-entropy and mean squared error."""

from __future__ import annotations

import numpy as np

from simulator.model.layers import Flops, Footprint, Loss


class SoftmaxCrossEntropy(Loss):
    """Softmax followed by negative log-likelihood of integer class targets (seed 002).

    Caches the probabilities and the targets; the gradient is (p - onehot(y)) * scale.
    """

    kind = "cross_entropy"

    def forward(self, mb, x, targets=None):
        shifted = x - x.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        probs = exp / exp.sum(axis=1, keepdims=True)
        targets = np.asarray(targets, dtype=np.int64)
        self._put(mb, "probs", probs)
        self._put(mb, "targets", targets)
        log_norm = np.log(exp.sum(axis=1))
        picked = shifted[np.arange(len(targets)), targets]
        return float((log_norm - picked).sum() * self.scale)

    def backward_input(self, mb, grad_out=None):
        probs = self._pop(mb, "probs")
        targets = self._pop(mb, "targets")
        grad = probs.copy()
        grad[np.arange(len(targets)), targets] -= 1.0
        return grad * self.scale

    @classmethod
    def footprint(cls, in_features, out_features, rows, itemsize):
        probs = rows * in_features * itemsize
        targets = rows * 8
        return Footprint(F=(probs, targets), I=(-probs, -targets), W=(), B=(-probs, -targets))

    @classmethod
    def flops(cls, in_features, out_features):
        return Flops(F=5.0 * in_features, I=2.0 * in_features, W=0.0)


class MSE(Loss):
    """Sum of squared errors per row, times ``scale``: L = scale * sum((x - y)^2).

    With scale = 1 this is seed 001's loss, whose gradient is 2 (x - y). Caches the difference.
    """

    kind = "mse"

    def forward(self, mb, x, targets=None):
        diff = x - np.asarray(targets, dtype=x.dtype).reshape(x.shape)
        self._put(mb, "diff", diff)
        return float((diff * diff).sum() * self.scale)

    def backward_input(self, mb, grad_out=None):
        return 2.0 * self._pop(mb, "diff") * self.scale

    @classmethod
    def flops(cls, in_features, out_features):
        return Flops(F=3.0 * in_features, I=2.0 * in_features, W=0.0)
