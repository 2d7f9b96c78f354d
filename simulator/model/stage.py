"""A stage: a contiguous slice of layers that runs one action kind for one microbatch.

Why one class for both the sequential reference and the Ray actors: "pipelined training equals
sequential training" is only a meaningful test when both run exactly the same stage code. The
Ray actor adds transport and recording around it; the reference adds a loop.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

from schedules.dependencies import PIPELINE_RULE, DependencyRule, KindRule
from simulator.model.cache import ActivationCache
from simulator.model.layers import Layer, Loss
from simulator.model.recompute import CHECKPOINT, NO_RECOMPUTE, StageRecompute


class Stage:
    """Layers ``layers`` of the model, all caching into one (per-rank) ActivationCache.

    ``run(kind, microbatch_index, payload)`` dispatches through a table, one handler per action
    kind of ``rule``, chosen by the kind's traits (``handler_for``): a forward (``F``) takes the
    input activation (and targets on the last stage) and returns the output (or the loss); a
    backward that sends the gradient takes the output gradient (``None`` on the last stage,
    which starts from its loss) and returns the input gradient, adding the weight gradient too
    if it completes it (``B``) or leaving that to a later kind (``I``); one that sends nothing
    but completes the weight gradient (``W``) takes nothing; any other kind re-runs its share of
    the forward (``KindRule.work``) on a throwaway cache.

    With ``recompute`` (``simulator.model.recompute``) the forward keeps only the input of each
    dropped segment (under the segment's first layer, key ``checkpoint``) and runs the segment
    on a throwaway cache; the backward (``I`` or ``B``) re-runs the segment's forward from the
    checkpoint, caching as usual, just before the segment's own backward. Each such re-run is
    reported to ``on_recompute(stage_index, microbatch_index, start, end)`` (times from
    ``clock``), as is a selective attention core's.
    """

    def __init__(
        self,
        stage_index: int,
        layers: list[Layer],
        cache: ActivationCache | None = None,
        recompute: StageRecompute = NO_RECOMPUTE,
        rule: DependencyRule = PIPELINE_RULE,
    ):
        if not layers:
            raise ValueError("a stage needs at least one layer")
        self.stage_index = stage_index
        self.layers = layers
        self.cache = cache if cache is not None else ActivationCache()
        for layer in layers:
            layer.cache = self.cache
        self.recompute = recompute
        position = {layer.layer_index: i for i, layer in enumerate(layers)}
        # segment start position -> end position (exclusive), and end position -> start
        self._dropped = {position[a]: position[b] + 1 for a, b in recompute.segments}
        self._rerun = {position[b]: position[a] for a, b in recompute.segments}
        for layer in layers:
            if hasattr(layer, "selective"):
                layer.selective = recompute.selective
                layer.recomputing = self.recomputing
        self.clock: Callable[[], float] = time.perf_counter
        self.on_recompute: Callable[[int, int, float, float], None] | None = None
        self.is_last = isinstance(layers[-1], Loss)
        self.losses: dict[int, float] = {}
        # Called with (layer_index, microbatch_index) right after a layer has added that
        # microbatch's contribution to its weight gradient (in W or B).
        self.on_weight_grad: Callable[[int, int], None] | None = None
        self.handlers: dict[str, Callable] = {}
        self.follow(rule)

    def follow(self, rule: DependencyRule) -> None:
        """Run ``rule``'s kinds: one handler per kind, all called as handler(mb, payload,
        targets), each chosen by its kind's traits (``handler_for``)."""
        self.handlers = {kind: self.handler_for(r) for kind, r in rule.kinds.items()}

    def handler_for(self, rule: KindRule) -> Callable:
        """The handler of a kind, from its traits (see the class docstring)."""
        if rule.is_forward:
            return self.forward
        if rule.sends_gradient and rule.completes_weight_gradient:
            return lambda mb, grad, _targets: self.backward(mb, grad)
        if rule.sends_gradient:
            return lambda mb, grad, _targets: self.backward_input(mb, grad)
        if rule.completes_weight_gradient:
            return lambda mb, _payload, _targets: self.backward_weight(mb)
        return lambda mb, _payload, _targets: self.forward_share(mb, rule.work.F)

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
        position = 0
        while position < len(self.layers):
            layer = self.layers[position]
            if position in self._dropped:  # keep the input only; the rest is thrown away
                end = self._dropped[position]
                self.cache.put(layer.layer_index, mb, CHECKPOINT, x)
                x = _forward_on(self.layers[position:end], mb, x, ActivationCache())
                position = end
                continue
            if isinstance(layer, Loss):
                loss = layer.forward(mb, x, targets)
                self.losses[mb] = loss
                return loss
            x = layer.forward(mb, x)
            position += 1
        return x

    def forward_share(self, mb: int, share: float) -> None:
        """Re-run ``share`` of this stage's forward for microbatch ``mb`` (its first layers,
        rounded up, the loss left out) from the input its forward cached, on a throwaway cache:
        work that changes no state. Nothing when ``share`` is 0."""
        layers = self.layers[:-1] if self.is_last else self.layers
        count = min(len(layers), math.ceil(share * len(layers) - 1e-9))
        if count <= 0:
            return None
        first = self.layers[0]
        key = CHECKPOINT if 0 in self._dropped else first.input_key
        if key is None:
            raise ValueError(f"layer {first.name} keeps no input to re-run a forward from")
        x = self.cache.peek(first.layer_index, mb, key)
        _forward_on(layers[:count], mb, x, ActivationCache())
        return None

    @contextmanager
    def recomputing(self, mb: int) -> Iterator[None]:
        """Marks a recompute sub-span of the running backward for ``on_recompute``."""
        if self.on_recompute is None:
            yield
            return
        start = self.clock()
        yield
        self.on_recompute(self.stage_index, mb, start, self.clock())

    @contextmanager
    def recompute_off(self) -> Iterator[None]:
        """Run without recomputation for a while (calibration times each kind's own cost)."""
        saved = self._dropped, self._rerun
        self._dropped, self._rerun = {}, {}
        selective = [layer for layer in self.layers if getattr(layer, "selective", False)]
        for layer in selective:
            layer.selective = False
        try:
            yield
        finally:
            self._dropped, self._rerun = saved
            for layer in selective:
                layer.selective = True

    def _rerun_segment(self, mb: int, start: int, end: int) -> None:
        """Put back what the forward of layers ``start .. end`` (positions) cached."""
        with self.recomputing(mb):
            first = self.layers[start]
            x = self.cache.pop(first.layer_index, mb, CHECKPOINT)
            _forward_on(self.layers[start : end + 1], mb, x, self.cache)

    def _backward(self, mb: int, grad: np.ndarray | None, split: bool) -> np.ndarray:
        for position in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[position]
            if position in self._rerun:
                self._rerun_segment(mb, self._rerun[position], position)
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
        layers = self.layers[:-1] if self.is_last else self.layers
        return _forward_on(layers, -1, x, ActivationCache())

    def zero_grad(self) -> None:
        for layer in self.layers:
            layer.zero_grad()


def _forward_on(layers: list[Layer], mb: int, x, cache: ActivationCache):
    """The forward of ``layers`` caching into ``cache`` (each layer's own cache restored)."""
    for layer in layers:
        own, layer.cache = layer.cache, cache
        try:
            x = layer.forward(mb, x)
        finally:
            layer.cache = own
    return x
