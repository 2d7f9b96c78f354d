"""The activation cache: the one choke point every cached tensor goes through.

Why one object: memory is the quantity pebblesim exists to show. If every layer kept its own
dict, nobody could say how many bytes a rank holds at a given moment. Here every ``put`` and
``pop`` knows the bytes it moves and tells its listeners, which is where the recorder attaches.
It is thread-safe: with activation offload a rank's copy streams put and pop beside its compute
(``simulator.ray_pipeline.copy_streams``), and a byte count that two threads update must not lose
an update.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CacheEvent:
    """One put (positive ``delta_bytes``) or pop (negative) on the cache."""

    layer_index: int
    microbatch_index: int
    key: str
    delta_bytes: int
    total_bytes: int


Listener = Callable[[CacheEvent], None]


class ActivationCache:
    """Tensors cached for the backward pass, keyed by (layer, microbatch, name).

    A layer's forward ``put``s what its backward needs; the backward ``pop``s it. The cache
    counts the bytes it holds, in total and per layer, and notifies every listener of each change.
    """

    def __init__(self) -> None:
        self._store: dict[tuple[int, int, str], np.ndarray] = {}
        self._layer_bytes: dict[int, int] = {}
        self.total_bytes = 0
        self._listeners: list[Listener] = []
        self._lock = threading.RLock()

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        self._listeners.remove(listener)

    def put(self, layer_index: int, microbatch_index: int, key: str, array: np.ndarray) -> None:
        slot = (layer_index, microbatch_index, key)
        with self._lock:
            if slot in self._store:
                raise KeyError(f"cache slot {slot} is already filled")
            self._store[slot] = array
            self._change(slot, array.nbytes)

    def pop(self, layer_index: int, microbatch_index: int, key: str) -> np.ndarray:
        slot = (layer_index, microbatch_index, key)
        with self._lock:
            try:
                array = self._store.pop(slot)
            except KeyError:
                raise KeyError(
                    f"layer {layer_index} has no cached {key!r} for microbatch {microbatch_index}"
                ) from None
            self._change(slot, -array.nbytes)
        return array

    def peek(self, layer_index: int, microbatch_index: int, key: str) -> np.ndarray:
        return self._store[(layer_index, microbatch_index, key)]

    def layer_bytes(self, layer_index: int) -> int:
        return self._layer_bytes.get(layer_index, 0)

    def __len__(self) -> int:
        return len(self._store)

    def keys(self) -> list[tuple[int, int, str]]:
        with self._lock:
            return sorted(self._store)

    def slots_of(self, microbatch_index: int, layers) -> list[tuple[int, int, str]]:
        """The slots ``microbatch_index`` fills in ``layers`` (what an offload sends)."""
        with self._lock:
            return sorted(k for k in self._store if k[1] == microbatch_index and k[0] in layers)

    def clear(self) -> None:
        """Drop everything without notifying (used when a failed step is abandoned)."""
        with self._lock:
            self._clear()

    def _clear(self) -> None:
        self._store.clear()
        self._layer_bytes.clear()
        self.total_bytes = 0

    def _change(self, slot: tuple[int, int, str], delta: int) -> None:
        layer_index, microbatch_index, key = slot
        self._layer_bytes[layer_index] = self._layer_bytes.get(layer_index, 0) + delta
        self.total_bytes += delta
        if self._listeners:
            event = CacheEvent(layer_index, microbatch_index, key, delta, self.total_bytes)
            for listener in self._listeners:
                listener(event)
