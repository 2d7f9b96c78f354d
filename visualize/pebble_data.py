"""The pebble graph's data, without drawing: when each layer holds how many cached activations
(intervals and step counts, per layer or per figure row) and when its weight gradient is ready
until the optimizer step consumes it.

Why apart from the figure (``visualize.pebble``): the tests, the animation and the at-scale
grouping read these numbers; the figure only places them. Everything comes from
``Timeline.cache``, ``Timeline.grad_ready`` and ``Timeline.optimizer``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from simulator.timeline import Timeline
from visualize.rows import Row, RowCount, max_counts, row_of_layer
from visualize.style import time_span


class PebbleInterval(NamedTuple):
    """One cache lifetime: ``layer`` held ``microbatch``'s activations of ``step`` from
    ``start`` until ``end``."""

    layer: int
    microbatch: int
    step: int
    start: float
    end: float


class GradSegment(NamedTuple):
    """``layer``'s weight gradient for ``step`` is complete from ``start`` until ``end`` (the
    step's optimizer step, else the layer's next use, else the end of the run)."""

    layer: int
    step: int
    start: float
    end: float


class CountSegment(NamedTuple):
    """``layer`` holds ``count`` microbatches from ``start`` to ``end``."""

    layer: int
    start: float
    end: float
    count: int


def pebble_intervals(timeline: Timeline, replica: int = 0) -> list[PebbleInterval]:
    """Every cache lifetime, one per (layer, microbatch, step) time the bytes go above zero and
    back: a microbatch is held from its first put until its bytes return to 0. A lifetime still
    open when the records end closes at the end of the run. Sorted by (layer, step, mb, start).

    Computed on the cache's numpy columns (a run at scale has a million records): each key's
    records in time order (ties in record order), its running total, and where it crosses 0."""
    cache = timeline.cache.columns()
    mine = cache["replica"] == replica if len(cache["time"]) else np.zeros(0, dtype=bool)
    if not mine.any():
        return []
    times = cache["time"][mine].astype(float)
    layer = cache["layer"][mine].astype(np.int64)
    microbatch = cache["microbatch"][mine].astype(np.int64)
    step = cache["step"][mine].astype(np.int64)
    change = cache["bytes"][mine].astype(np.int64)
    order = np.lexsort((np.arange(len(times)), times, microbatch, step, layer))
    times, layer, microbatch, step, change = (
        v[order] for v in (times, layer, microbatch, step, change)
    )
    first = np.ones(len(times), dtype=bool)
    first[1:] = (np.diff(layer) != 0) | (np.diff(step) != 0) | (np.diff(microbatch) != 0)
    group = np.cumsum(first) - 1
    total = np.cumsum(change)
    base = (total - change)[first]  # the running total before each key's first record
    after = total - base[group]
    before = after - change
    opens = np.flatnonzero((before <= 0) & (after > 0))
    closes = np.flatnonzero((after <= 0) & (before > 0))
    match = np.searchsorted(closes, opens)  # a key's opens and closes alternate
    found = match < len(closes)
    found[found] = group[closes[match[found]]] == group[opens[found]]
    end_of_run = time_span(timeline)
    ends = np.where(
        found,
        times[closes[np.minimum(match, max(len(closes) - 1, 0))]] if len(closes) else 0.0,
        np.maximum(end_of_run, times[opens]),
    )
    out = [
        PebbleInterval(*values)
        for values in zip(
            layer[opens].tolist(),
            microbatch[opens].tolist(),
            step[opens].tolist(),
            times[opens].tolist(),
            ends.tolist(),
            strict=True,
        )
    ]
    out.sort(key=lambda i: (i.layer, i.step, i.microbatch, i.start))
    return out


def pebble_counts(timeline: Timeline, replica: int = 0) -> list[CountSegment]:
    """The step function drawn per row: maximal spans of constant, non-zero pebble count."""
    return count_segments(pebble_intervals(timeline, replica))


def count_segments(intervals: list[PebbleInterval]) -> list[CountSegment]:
    """Per layer, the maximal spans of constant, non-zero count of intervals holding (numpy:
    each interval a +1 at its start and a -1 at its end, summed per layer and moment)."""
    kept = [i for i in intervals if i.end > i.start]
    if not kept:
        return []
    layer = np.array([i.layer for i in kept], dtype=np.int64)
    starts = np.array([i.start for i in kept], dtype=float)
    ends = np.array([i.end for i in kept], dtype=float)
    layers = np.concatenate([layer, layer])
    times = np.concatenate([starts, ends])
    delta = np.concatenate([np.ones(len(kept), np.int64), -np.ones(len(kept), np.int64)])
    order = np.lexsort((times, layers))
    layers, times, delta = layers[order], times[order], delta[order]
    new = np.ones(len(times), dtype=bool)  # the first record of each (layer, moment)
    new[1:] = (np.diff(layers) != 0) | (np.diff(times) != 0)
    moment = np.cumsum(new) - 1
    net = np.bincount(moment, weights=delta).astype(np.int64)
    at_layer, at_time = layers[new], times[new]
    level = np.cumsum(net)  # every layer's intervals close, so each layer starts from 0
    keep = net != 0  # a moment whose changes cancel leaves the count as it was
    at_layer, at_time, level = at_layer[keep], at_time[keep], level[keep]
    same = at_layer[1:] == at_layer[:-1]
    span = same & (level[:-1] > 0) & (at_time[1:] > at_time[:-1])
    pick = np.flatnonzero(span)
    return [
        CountSegment(*values)
        for values in zip(
            at_layer[pick].tolist(),
            at_time[pick].tolist(),
            at_time[pick + 1].tolist(),
            level[pick].tolist(),
            strict=True,
        )
    ]


def grad_segments(
    timeline: Timeline, replica: int = 0, intervals: list[PebbleInterval] | None = None
) -> list[GradSegment]:
    """When each parametric layer's weight gradient is complete, per step (see GradSegment);
    ``intervals``: the replica's ``pebble_intervals``, when the caller has them already."""
    optimizer_end = {o.step: o.end for o in timeline.optimizer}
    first_use: dict[tuple[int, int], float] = {}
    if intervals is None:
        intervals = pebble_intervals(timeline, replica)
    for interval in intervals:
        key = (interval.layer, interval.step)
        first_use[key] = min(first_use.get(key, interval.start), interval.start)
    end_of_run = time_span(timeline)
    out = []
    for ready in sorted(timeline.grad_ready, key=lambda g: (g.layer, g.step)):
        if ready.replica != replica:
            continue
        if ready.step in optimizer_end:
            end = optimizer_end[ready.step]
        else:
            end = first_use.get((ready.layer, ready.step + 1), end_of_run)
        out.append(GradSegment(ready.layer, ready.step, ready.time, max(end, ready.time)))
    return out


class RowGrad(NamedTuple):
    """Row number ``row``'s weight gradients for ``step`` are complete from ``start`` until
    ``end`` (a GradSegment for a row: the last of its layers' start, the latest end)."""

    row: int
    step: int
    start: float
    end: float


def row_counts(timeline: Timeline, rows: list[Row], replica: int = 0) -> list[RowCount]:
    """What each row draws: a layer row its layer's ``pebble_counts``; a grouped row, at every
    moment, the most microbatches cached by any of its layers."""
    return counts_by_row(pebble_counts(timeline, replica), rows)


def counts_by_row(counts: list[CountSegment], rows: list[Row]) -> list[RowCount]:
    row_of = row_of_layer(rows)
    if all(len(row.layers) == 1 for row in rows):
        return [RowCount(row_of[c.layer], *c[1:]) for c in counts if c.layer in row_of]
    return max_counts(counts, rows)


def row_grads(
    timeline: Timeline,
    rows: list[Row],
    replica: int = 0,
    intervals: list[PebbleInterval] | None = None,
) -> list[RowGrad]:
    """What each row draws in purple: its layers' ``grad_segments``, per step, from the last
    one's start to the latest end. Sorted by (row, step)."""
    row_of = row_of_layer(rows)
    spans: dict[tuple[int, int], tuple[float, float]] = {}
    for g in grad_segments(timeline, replica, intervals):
        if g.layer not in row_of:
            continue
        key = (row_of[g.layer], g.step)
        start, end = spans.get(key, (g.start, g.end))
        spans[key] = (max(start, g.start), max(end, g.end))
    return [RowGrad(row, step, *spans[row, step]) for row, step in sorted(spans)]


__all__ = [
    "CountSegment",
    "GradSegment",
    "PebbleInterval",
    "RowGrad",
    "count_segments",
    "counts_by_row",
    "grad_segments",
    "pebble_counts",
    "pebble_intervals",
    "row_counts",
    "row_grads",
]
