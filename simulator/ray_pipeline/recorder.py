"""The recorder inside each Ray actor: what ran when, what the cache did, when gradients completed.

Why a separate piece: the actor's job is to train; knowing *when* is this object's. It listens
to the rank's ActivationCache (the one choke point of cached bytes) and is told of each action
and each finished weight gradient. Times are wall-clock seconds since an origin the driver picks,
so the clocks of all actors on a machine agree (across machines, as far as NTP keeps them).
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

from simulator.model.cache import CacheEvent
from simulator.ray_pipeline.records import Received
from simulator.timeline import (
    ActionCpu,
    CacheChange,
    ComputeEvent,
    GradReady,
    OffloadSpan,
    OptimizerStep,
    RecomputeSpan,
)

TABLES = (
    "events",
    "cache",
    "grad_ready",
    "received",
    "optimizer",
    "recompute",
    "action_cpu",
    "offload",
)


class Recorder:
    """Buffers the Timeline's own row types; the driver drains them with ``drain``."""

    def __init__(self, rank: int, replica: int, origin: float):
        self.rank = rank
        self.replica = replica
        self.origin = origin
        self.step = 0
        self.microbatches_per_step = 1
        self._contributions: dict[int, int] = {}
        self._tables: dict[str, list] = {name: [] for name in TABLES}
        self._pinned = threading.local()  # a copy thread's cache changes carry the copy's time

    def now(self) -> float:
        pinned = getattr(self._pinned, "time", None)
        return time.time() - self.origin if pinned is None else pinned

    @contextmanager
    def at(self, moment: float):
        """Inside, this thread's ``now`` is ``moment``: the cache changes a copy makes are
        stamped with the copy's start or end, so memory and the ``offload`` spans agree."""
        self._pinned.time = moment
        try:
            yield
        finally:
            self._pinned.time = None

    def begin_step(self, step: int, microbatches: int) -> None:
        self.step = step
        self.microbatches_per_step = microbatches
        self._contributions.clear()

    def on_cache(self, event: CacheEvent) -> None:
        self._tables["cache"].append(
            CacheChange(
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
            self._tables["grad_ready"].append(
                GradReady(layer_index, self.step, self.now(), self.replica)
            )

    def on_action(
        self, stage: int, kind: str, mb: int, start: float, end: float, cpu: float
    ) -> None:
        """An action ran from ``start`` to ``end`` (``now``) and its thread ran ``cpu`` CPU
        seconds of that (``time.thread_time``: BLAS is pinned to this one thread)."""
        self._tables["events"].append(
            ComputeEvent(self.rank, stage, kind, mb, self.step, start, end, self.replica)
        )
        self._tables["action_cpu"].append(
            ActionCpu(self.rank, stage, kind, mb, self.step, cpu, self.replica)
        )

    def on_recompute(self, stage: int, mb: int, start: float, end: float) -> None:
        """A recompute sub-span of the running backward (``Stage.on_recompute``)."""
        self._tables["recompute"].append(
            RecomputeSpan(self.rank, stage, mb, self.step, start, end, self.replica)
        )

    def on_receive(self, stage: int, kind: str, mb: int, nbytes: int) -> None:
        """Action (stage, kind, mb) started with a payload of ``nbytes`` from another rank."""
        self._tables["received"].append(Received(self.replica, stage, kind, mb, self.step, nbytes))

    def on_copy(self, stage: int, kind: str, mb: int, start: float, end: float, nbytes: int):
        """A host-link copy (``offload``/``prefetch``) or a backward's ``wait`` for one."""
        self._tables["offload"].append(
            OffloadSpan(self.rank, stage, kind, mb, self.step, start, end, nbytes, self.replica)
        )

    def on_optimizer(self, start: float, end: float) -> None:
        self._tables["optimizer"].append(OptimizerStep(self.step, start, end))

    def drain(self) -> dict[str, list]:
        out = self._tables
        self._tables = {name: [] for name in TABLES}
        return out
