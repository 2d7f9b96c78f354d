"""The pebble graph's data, without drawing: when each layer holds how many cached activations
(intervals and step counts, per layer or per figure row) and when its weight gradient is ready
until the optimizer step consumes it.

Why apart from the figure (``visualize.pebble``): the tests, the animation and the at-scale
grouping read these numbers; the figure only places them. Everything comes from
``Timeline.cache``, ``Timeline.grad_ready`` and ``Timeline.optimizer``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import NamedTuple

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
    open when the records end closes at the end of the run. Sorted by (layer, step, mb, start)."""
    end_of_run = time_span(timeline)
    running: dict[tuple[int, int, int], int] = defaultdict(int)
    opened: dict[tuple[int, int, int], float] = {}
    out: list[PebbleInterval] = []
    changes = [c for c in timeline.cache if c.replica == replica]
    # each rank's records are in order; a stable sort by time keeps ties in that order
    changes.sort(key=lambda c: c.time)
    for change in changes:
        key = (change.layer, change.microbatch, change.step)
        before = running[key]
        running[key] = after = before + change.bytes
        if before <= 0 < after:
            opened[key] = change.time
        elif after <= 0 < before:
            out.append(PebbleInterval(*key, opened.pop(key), change.time))
    for key, start in opened.items():
        out.append(PebbleInterval(*key, start, max(end_of_run, start)))
    out.sort(key=lambda i: (i.layer, i.step, i.microbatch, i.start))
    return out


def pebble_counts(timeline: Timeline, replica: int = 0) -> list[CountSegment]:
    """The step function drawn per row: maximal spans of constant, non-zero pebble count."""
    return count_segments(pebble_intervals(timeline, replica))


def count_segments(intervals: list[PebbleInterval]) -> list[CountSegment]:
    edges: dict[int, list[tuple[float, int]]] = defaultdict(list)
    for interval in intervals:
        if interval.end > interval.start:
            edges[interval.layer].append((interval.start, +1))
            edges[interval.layer].append((interval.end, -1))
    out: list[CountSegment] = []
    for layer in sorted(edges):
        count, since = 0, None
        items = sorted(edges[layer])
        position = 0
        while position < len(items):
            time = items[position][0]
            new = count
            while position < len(items) and items[position][0] == time:
                new += items[position][1]
                position += 1
            if new != count:
                if count > 0 and since is not None and time > since:
                    out.append(CountSegment(layer, since, time, count))
                count, since = new, time
    return out


def grad_segments(timeline: Timeline, replica: int = 0) -> list[GradSegment]:
    """When each parametric layer's weight gradient is complete, per step (see GradSegment)."""
    optimizer_end = {o.step: o.end for o in timeline.optimizer}
    first_use: dict[tuple[int, int], float] = {}
    for interval in pebble_intervals(timeline, replica):
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


def row_grads(timeline: Timeline, rows: list[Row], replica: int = 0) -> list[RowGrad]:
    """What each row draws in purple: its layers' ``grad_segments``, per step, from the last
    one's start to the latest end. Sorted by (row, step)."""
    row_of = row_of_layer(rows)
    spans: dict[tuple[int, int], tuple[float, float]] = {}
    for g in grad_segments(timeline, replica):
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
