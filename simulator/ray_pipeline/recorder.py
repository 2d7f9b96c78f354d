"""The recorder inside each Ray actor: what ran when, what the cache did, when gradients completed.

Why a separate piece: the actor's job is to train; knowing *when* is this object's. It listens
to the rank's ActivationCache (the one choke point of cached bytes) and is told of each action
and each finished weight gradient. Times are wall-clock seconds since an origin the driver picks,
so the clocks of all actors on a machine agree (across machines, as far as NTP keeps them).
"""

from __future__ import annotations

import time

from simulator.model.cache import CacheEvent


class Recorder:
    """Buffers rows in the Timeline's field order; the driver drains them with ``drain``."""

    def __init__(self, rank: int, replica: int, origin: float):
        self.rank = rank
        self.replica = replica
        self.origin = origin
        self.step = 0
        self.microbatches_per_step = 1
        self._contributions: dict[int, int] = {}
        self.events: list[tuple] = []
        self.cache: list[tuple] = []
        self.grad_ready: list[tuple] = []
        self.received: list[tuple] = []
        self.optimizer: list[tuple] = []

    def now(self) -> float:
        return time.time() - self.origin

    def begin_step(self, step: int, microbatches: int) -> None:
        self.step = step
        self.microbatches_per_step = microbatches
        self._contributions.clear()

    def on_cache(self, event: CacheEvent) -> None:
        self.cache.append(
            (
                self.now(),
                self.rank,
                event.layer_index,
                event.microbatch_index,
                self.step,
                event.delta_bytes,
                self.replica,
            )
        )

    def on_weight_grad(self, layer_index: int, microbatch_index: int) -> None:
        """Called after each microbatch's contribution; the last one completes the gradient."""
        count = self._contributions.get(layer_index, 0) + 1
        self._contributions[layer_index] = count
        if count == self.microbatches_per_step:
            self.grad_ready.append((layer_index, self.step, self.now(), self.replica))

    def on_action(self, stage: int, kind: str, mb: int, start: float, end: float) -> None:
        self.events.append((self.rank, stage, kind, mb, self.step, start, end, self.replica))

    def on_receive(self, stage: int, kind: str, mb: int, nbytes: int) -> None:
        """Action (stage, kind, mb) started with a payload of ``nbytes`` from another rank."""
        self.received.append((self.replica, stage, kind, mb, self.step, nbytes))

    def drain(self) -> dict[str, list[tuple]]:
        out = {
            "events": self.events,
            "cache": self.cache,
            "grad_ready": self.grad_ready,
            "received": self.received,
            "optimizer": self.optimizer,
        }
        self.events, self.cache, self.grad_ready, self.received, self.optimizer = (
            [],
            [],
            [],
            [],
            [],
        )
        return out
