"""Optimizers over accumulated gradients: SGD with momentum, and Adam.

State is keyed by (layer index, parameter name), so an optimizer that holds any subset of the
model's layers (one pipeline rank) updates them exactly as the whole-model optimizer would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.errors import PebbleError
from simulator.model.layers import Layer


@dataclass(frozen=True)
class OptimizerConfig:
    """Which optimizer and its hyper-parameters; frozen so it pickles to actors."""

    name: str = "sgd"
    lr: float = 0.5
    momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def __post_init__(self) -> None:
        if self.name not in ("sgd", "adam"):
            raise PebbleError(f"unknown optimizer {self.name!r}; choose sgd or adam.")

    def build(self) -> Optimizer:
        return SGD(self) if self.name == "sgd" else Adam(self)


class Optimizer:
    """Base: ``step(layers)`` updates every parameter of ``layers`` from its ``grads``."""

    def __init__(self, config: OptimizerConfig):
        self.config = config
        self.state: dict[tuple[int, str], dict[str, np.ndarray]] = {}
        self.steps_taken = 0

    def step(self, layers: list[Layer]) -> None:
        self.steps_taken += 1
        for layer in layers:
            for name, param in layer.params.items():
                slot = self.state.setdefault((layer.layer_index, name), {})
                self._update(param, layer.grads[name], slot)

    def _update(self, param: np.ndarray, grad: np.ndarray, slot: dict[str, np.ndarray]) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """v = momentum * v + g; p -= lr * v (PyTorch's convention)."""

    def _update(self, param, grad, slot):
        if self.config.momentum:
            velocity = slot.setdefault("velocity", np.zeros_like(param))
            velocity *= self.config.momentum
            velocity += grad
            param -= self.config.lr * velocity
        else:
            param -= self.config.lr * grad


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction."""

    def _update(self, param, grad, slot):
        c = self.config
        m = slot.setdefault("m", np.zeros_like(param))
        v = slot.setdefault("v", np.zeros_like(param))
        m *= c.beta1
        m += (1 - c.beta1) * grad
        v *= c.beta2
        v += (1 - c.beta2) * grad * grad
        m_hat = m / (1 - c.beta1**self.steps_taken)
        v_hat = v / (1 - c.beta2**self.steps_taken)
        param -= c.lr * m_hat / (np.sqrt(v_hat) + c.eps)
