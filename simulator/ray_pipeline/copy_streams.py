"""Activation offload on a Ray rank: two copy streams that really move cached arrays between
the rank's activation cache (its "device") and the node's Ray object store (its "host").

Why the object store as the host: it is the node's shared memory, outside every actor's heap,
and it is what a Ray cluster has for host memory on each node; a copy into it is a real copy
(``ray.put`` serialises the array into shared memory) and a copy back is a real one too
(``ray.get`` maps it, and the rank copies it into a fresh buffer of its own). A per-node
host-store actor would add a second process and a round trip per copy for nothing the object
store lacks: the store already lives per node and counts its bytes.

Why threads: a copy stream runs beside the compute. Each direction has one worker thread, so
copies of one direction run one at a time, in the order they were issued, as on a GPU's copy
engine; numpy and the object store release the GIL for the bulk of a copy.

The rules, the same as the analytic clock's (``simulator.analytic.offload_clock``):

* after a forward whose microbatch goes out (``simulator.model.offload_pairs``), its cached
  arrays inside the offloaded blocks are copied to the host; the device frees them when the
  copy ends;
* a prefetch is issued at its issue point (``simulator.analytic.prefetch_plan``,
  ``RankOffload.prefetch_at``): as the rank finishes the action before that position, so a
  copy can run in the idle gap before a backward whose input has not arrived; it starts once
  the offload has ended, allocates each array on the device as it starts, and fills it; the
  host frees its copy when the prefetch ends;
* the backward waits for its prefetch; the wait is exposed transfer time (a ``wait`` span).

Every cache change a copy makes is stamped with the copy's own start or end time, so the
Timeline's memory levels and its ``offload`` spans tell one story to the microsecond.
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

OFFLOAD, PREFETCH, WAIT = "offload", "prefetch", "wait"


def host_copy_seconds(nbytes: int, repeats: int = 3) -> tuple[float, float]:
    """Median seconds of a copy of ``nbytes`` to the host (the object store) and of one back
    into a fresh array: the host link a rank reaches, timed as its copy streams copy."""
    array = np.ones(max(1, nbytes // 8))
    out, back = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        ref = CopyStreams.to_host([array])
        middle = time.perf_counter()
        np.copyto(np.empty_like(array), CopyStreams.from_host(ref)[0])
        out.append(middle - start)
        back.append(time.perf_counter() - middle)
        del ref
    return statistics.median(out), statistics.median(back)


@dataclass(frozen=True)
class RankOffload:
    """What one rank sends to the host, frozen so it pickles to the actor.

    ``layers``: per stage of the rank, the layer indices whose cached arrays go out;
    ``sends``: the (stage, microbatch) pairs that go out; ``prefetch_at``: (position in the
    rank's action list, stage, microbatch) of each prefetch: issued as the rank finishes the
    action before that position (``prefetch_plan.IssuePoint`` without its delay)."""

    layers: tuple[tuple[int, frozenset[int]], ...] = ()
    sends: frozenset[tuple[int, int]] = frozenset()
    prefetch_at: tuple[tuple[int, int, int], ...] = ()

    @property
    def active(self) -> bool:
        return bool(self.sends)

    def stage_layers(self, stage: int) -> frozenset[int]:
        return dict(self.layers).get(stage, frozenset())

    def issued_at(self, position: int) -> list[tuple[int, int]]:
        return [(s, mb) for p, s, mb in self.prefetch_at if p == position]


@dataclass
class _Sent:
    """One microbatch's arrays on their way out and back: what the host holds, and when."""

    slots: list[tuple[int, int, str]]
    offload: Future
    ref: object = None  # the host's copy: one object holding the microbatch's arrays
    shapes: list[tuple[tuple[int, ...], np.dtype]] = field(default_factory=list)
    prefetch: Future | None = None


class CopyStreams:
    """A rank's two copy streams over its ``cache``, recording spans on ``recorder`` (what the
    host holds is read from those spans: ``Timeline.host_peak_bytes``)."""

    def __init__(self, plan: RankOffload, cache, recorder) -> None:
        self.plan = plan
        self.cache = cache
        self.recorder = recorder
        self._out = ThreadPoolExecutor(1, thread_name_prefix="offload")
        self._back = ThreadPoolExecutor(1, thread_name_prefix="prefetch")
        self._sent: dict[tuple[int, int], _Sent] = {}

    # --------------------------------------------------------------- called by the rank
    def after_forward(self, stage: int, mb: int) -> None:
        """The forward of (stage, mb) ended: send its pebbles out if the plan says so."""
        if (stage, mb) not in self.plan.sends:
            return
        sent = _Sent(self.cache.slots_of(mb, self.plan.stage_layers(stage)), Future())
        self._sent[(stage, mb)] = sent
        sent.offload = self._out.submit(self._offload, stage, mb, sent)

    def after_action(self, position: int) -> None:
        """The action at ``position`` of the rank's list has ended: issue the prefetches the
        plan ties to the next position."""
        for stage, mb in self.plan.issued_at(position + 1):
            sent = self._sent.get((stage, mb))
            if sent is not None and sent.prefetch is None:
                sent.prefetch = self._back.submit(self._prefetch, stage, mb, sent)

    def before_backward(self, stage: int, mb: int) -> None:
        """The backward of (stage, mb) may start only once its pebbles are back: wait, and
        record the wait when there was one."""
        sent = self._sent.pop((stage, mb), None)
        if sent is None:
            return
        if sent.prefetch is None:  # no earlier action issued it: issue it now
            sent.prefetch = self._back.submit(self._prefetch, stage, mb, sent)
        if sent.prefetch.done():
            sent.prefetch.result()
            return
        start = self.recorder.now()
        sent.prefetch.result()
        self.recorder.on_copy(stage, WAIT, mb, start, self.recorder.now(), 0)

    def drain(self) -> None:
        """Wait for every copy in flight (the end of a step: the cache must be whole)."""
        for sent in list(self._sent.values()):
            sent.offload.result()
            if sent.prefetch is not None:
                sent.prefetch.result()

    def reset(self) -> None:
        """Forget every copy (a failed step is abandoned; the cache is cleared beside): each
        copy in flight is let finish, whatever it raised."""
        for sent in self._sent.values():
            for future in (sent.offload, sent.prefetch):
                if future is not None:
                    future.exception()
        self._sent.clear()

    def close(self) -> None:
        self._out.shutdown(wait=True)
        self._back.shutdown(wait=True)

    # --------------------------------------------------------------- on the copy threads
    def _offload(self, stage: int, mb: int, sent: _Sent) -> None:
        start = self.recorder.now()
        arrays = [self.cache.peek(*slot) for slot in sent.slots]
        sent.ref = self.to_host(arrays)
        sent.shapes = [(a.shape, a.dtype) for a in arrays]
        nbytes = sum(a.nbytes for a in arrays)
        del arrays
        end = self.recorder.now()
        with self.recorder.at(end):  # the device frees the bytes as the copy ends
            for slot in sent.slots:
                self.cache.pop(*slot)
        self.recorder.on_copy(stage, OFFLOAD, mb, start, end, nbytes)

    def _prefetch(self, stage: int, mb: int, sent: _Sent) -> None:
        sent.offload.result()
        start = self.recorder.now()
        buffers = []
        with self.recorder.at(start):  # the device takes the bytes as the copy starts
            for slot, (shape, dtype) in zip(sent.slots, sent.shapes, strict=True):
                buffer = np.empty(shape, dtype)
                self.cache.put(*slot, buffer)
                buffers.append(buffer)
        for buffer, held in zip(buffers, self.from_host(sent.ref), strict=True):
            np.copyto(buffer, held)
        nbytes = sum(b.nbytes for b in buffers)
        sent.ref = None  # the host lets go of its copy
        self.recorder.on_copy(stage, PREFETCH, mb, start, self.recorder.now(), nbytes)

    @staticmethod
    def to_host(arrays: list[np.ndarray]):
        """A copy of ``arrays`` in the node's object store (one object), by reference."""
        import ray  # start-up: the driver imports this module for RankOffload, Ray or not

        return ray.put(arrays)

    @staticmethod
    def from_host(ref) -> list[np.ndarray]:
        """The arrays behind ``ref``, mapped from the object store (read-only)."""
        import ray  # start-up: as above

        return ray.get(ref)
