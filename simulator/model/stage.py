"""A stage: a contiguous slice of layers that runs one action kind for one microbatch.

Why one class for both the sequential reference and the Ray actors: "pipelined training equals
sequential training" is only a meaningful test when both run exactly the same stage code. The
Ray actor adds transport and recording around it; the reference adds a loop.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from simulator.model.cache import ActivationCache
from simulator.model.layers import Layer, Loss


class Stage:
    """Layers ``layers`` of the model, all caching into one (per-rank) ActivationCache.

    ``run(kind, microbatch_index, payload)`` dispatches through a table, one handler per action
    kind: ``F`` takes the input activation (and targets on the last stage) and returns the output
    (or the loss); ``I`` and ``B`` take the output gradient (``None`` on the last stage, which
    starts from its loss) and return the input gradient; ``W`` takes nothing.
    """

    def __init__(self, stage_index: int, layers: list[Layer], cache: ActivationCache | None = None):
        if not layers:
            raise ValueError("a stage needs at least one layer")
        self.stage_index = stage_index
        self.layers = layers
        self.cache = cache if cache is not None else ActivationCache()
        for layer in layers:
            layer.cache = self.cache
        self.is_last = isinstance(layers[-1], Loss)
        self.losses: dict[int, float] = {}
        # Called with (layer_index, microbatch_index) right after a layer has added that
        # microbatch's contribution to its weight gradient (in W or B).
        self.on_weight_grad: Callable[[int, int], None] | None = None
        # one handler per action kind, all called as handler(mb, payload, targets)
        self.handlers: dict[str, Callable] = {
            "F": self.forward,
            "I": lambda mb, grad, _targets: self.backward_input(mb, grad),
            "W": lambda mb, _payload, _targets: self.backward_weight(mb),
            "B": lambda mb, grad, _targets: self.backward(mb, grad),
        }

    @property
    def layer_indices(self) -> range:
        return range(self.layers[0].layer_index, self.layers[-1].layer_index + 1)

    @property
    def param_layers(self) -> list[Layer]:
        return [layer for layer in self.layers if layer.has_params]

    def run(self, kind: str, microbatch_index: int, payload=None, targets=None):
        """Run one action of ``kind``: a table lookup, one handler per kind."""
        return self.handlers[kind](microbatch_index, payload, targets)

    def forward(self, mb: int, x: np.ndarray, targets: np.ndarray | None = None):
        for layer in self.layers:
            if isinstance(layer, Loss):
                loss = layer.forward(mb, x, targets)
                self.losses[mb] = loss
                return loss
            x = layer.forward(mb, x)
        return x

    def _backward(self, mb: int, grad: np.ndarray | None, split: bool) -> np.ndarray:
        for layer in reversed(self.layers):
            if isinstance(layer, Loss):
                grad = layer.backward_input(mb)
            elif split:
                grad = layer.backward_input(mb, grad)
            else:
                grad = layer.backward(mb, grad)
                self._weight_grad_done(layer, mb)
        return grad

    def backward_input(self, mb: int, grad: np.ndarray | None = None) -> np.ndarray:
        return self._backward(mb, grad, split=True)

    def backward(self, mb: int, grad: np.ndarray | None = None) -> np.ndarray:
        return self._backward(mb, grad, split=False)

    def backward_weight(self, mb: int) -> None:
        for layer in reversed(self.layers):
            if layer.has_params:
                layer.backward_weight(mb)
                self._weight_grad_done(layer, mb)

    def _weight_grad_done(self, layer: Layer, mb: int) -> None:
        if layer.has_params and self.on_weight_grad is not None:
            self.on_weight_grad(layer.layer_index, mb)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Forward without the loss, for evaluation; caches into a throwaway cache."""
        scratch = ActivationCache()
        for layer in self.layers:
            if isinstance(layer, Loss):
                break
            layer.cache = scratch
            try:
                x = layer.forward(-1, x)
            finally:
                layer.cache = self.cache
        return x

    def zero_grad(self) -> None:
        for layer in self.layers:
            layer.zero_grad()
