"""The HTML viewer's data as numpy arrays: boxes, pebble spans, memory steps, per-action bytes.

Why arrays and not the figures' row objects: the viewer draws one trace per kind and packs the
whole run into its page as columns (half a million actions are half a million x values, not half a
million Python objects handed to the browser). Everything here comes from the same data
functions the matplotlib figures use (``pipeline_data``, ``pebble_data``, ``rows``), turned into
columns once, so the viewer and the figures never disagree about what a box or a pebble is.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from simulator.timeline import Timeline
from visualize.pebble_data import count_segments, counts_by_row, pebble_intervals, row_grads
from visualize.pipeline_data import Box, pipeline_boxes, recompute_boxes
from visualize.rows import Row, figure_rows
from visualize.style import layer_info

# a rank's memory line keeps at most this many points; above it, each time bucket keeps its
# first, lowest, highest and last point, so every peak and trough survives (see memory_steps)
MEMORY_POINTS = 20_000


class BoxColumns(NamedTuple):
    """The pipeline chart's boxes as columns, one entry per box (``pipeline_data.Box``)."""

    row: np.ndarray
    stage: np.ndarray
    kind: np.ndarray  # the action's letter ("F", "B", ...; "R" for a recompute span)
    microbatch: np.ndarray
    step: np.ndarray
    start: np.ndarray
    end: np.ndarray
    bytes: np.ndarray  # net cached bytes the action put (+) or freed (-); 0 for "R"

    @property
    def count(self) -> int:
        return len(self.start)


class Spans(NamedTuple):
    """Pebble-graph spans: figure row ``row`` shows ``value`` from ``start`` to ``end``."""

    row: np.ndarray
    start: np.ndarray
    end: np.ndarray
    value: np.ndarray  # microbatches held (pebbles), or the step (gradient spans)


class MemorySteps(NamedTuple):
    """One rank's cached bytes as a step function (the value holds until the next time)."""

    rank: int
    time: np.ndarray
    bytes: np.ndarray
    decimated: bool


def box_columns(boxes: list[Box], cached: np.ndarray | None = None) -> BoxColumns:
    """``boxes`` as columns; ``cached`` the bytes per box (zeros if None)."""
    count = len(boxes)

    def column(position: int, dtype) -> np.ndarray:
        return np.fromiter((b[position] for b in boxes), dtype=dtype, count=count)

    fields = Box._fields
    return BoxColumns(
        row=column(fields.index("row"), np.int64),
        stage=column(fields.index("stage"), np.int64),
        kind=np.array([b.kind for b in boxes], dtype=str),
        microbatch=column(fields.index("microbatch"), np.int64),
        step=column(fields.index("step"), np.int64),
        start=column(fields.index("start"), np.float64),
        end=column(fields.index("end"), np.float64),
        bytes=np.zeros(count, dtype=np.int64) if cached is None else cached,
    )


def action_boxes(timeline: Timeline, replica: int = 0) -> BoxColumns:
    """Replica ``replica``'s compute boxes with the net cached bytes of each action."""
    boxes = pipeline_boxes(timeline, replica)
    columns = box_columns(boxes)
    return columns._replace(bytes=action_bytes(timeline, columns, replica))


def recompute_columns(timeline: Timeline, replica: int = 0) -> BoxColumns:
    """Replica ``replica``'s recompute sub-spans (kind ``R``), inside their backward boxes."""
    return box_columns(recompute_boxes(timeline, replica))


def action_bytes(timeline: Timeline, boxes: BoxColumns, replica: int = 0) -> np.ndarray:
    """Per box, the cached bytes its action put minus those it freed.

    A cache change belongs to the action of its rank, stage (its layer's), microbatch and step
    that started last at or before it and has not ended before it: a rank runs one action at a
    time, so the windows of one (rank, stage, microbatch, step) never overlap. Found for all
    changes at once by merging the changes into the boxes' time order.
    """
    out = np.zeros(boxes.count, dtype=np.int64)
    cache = timeline.cache.columns()
    mine = cache["replica"] == replica
    if not boxes.count or not mine.any():
        return out
    stage_of_layer = np.full(int(cache["layer"].max()) + 1, -1, dtype=np.int64)
    for layer in timeline.meta.layers:
        if 0 <= layer.index < len(stage_of_layer):
            stage_of_layer[layer.index] = layer.stage
    change_stage = stage_of_layer[cache["layer"][mine]]
    known = change_stage >= 0
    # one code per (rank, stage, microbatch, step), over the boxes then the changes
    code = _code(
        np.concatenate([boxes.row, cache["rank"][mine][known]]),  # replica-local rows are ranks
        np.concatenate([boxes.stage, change_stage[known]]),
        np.concatenate([boxes.microbatch, cache["microbatch"][mine][known]]),
        np.concatenate([boxes.step, cache["step"][mine][known]]),
    )
    box_code, change_code = code[: boxes.count], code[boxes.count :]
    change_time = cache["time"][mine][known].astype(np.float64)
    change_bytes = cache["bytes"][mine][known].astype(np.int64)
    # boxes before changes at one time, so a change at an action's start is that action's
    codes = np.concatenate([box_code, change_code])
    times = np.concatenate([boxes.start, change_time])
    is_change = np.concatenate([np.zeros(boxes.count, bool), np.ones(len(change_code), bool)])
    order = np.lexsort((is_change, times, codes))
    # in merged order, where the latest box so far sits (-1: none yet)
    sorted_change = is_change[order]
    latest = np.maximum.accumulate(np.where(sorted_change, -1, np.arange(len(order))))
    changes = np.flatnonzero(sorted_change)
    valid = latest[changes] >= 0
    owner = order[latest[changes][valid]]
    change_index = order[changes][valid] - boxes.count
    same = (box_code[owner] == change_code[change_index]) & (
        change_time[change_index] <= boxes.end[owner]
    )
    np.add.at(out, owner[same], change_bytes[change_index[same]])
    return out


def _code(*columns: np.ndarray) -> np.ndarray:
    """One int64 per row of the non-negative integer ``columns`` (a mixed-radix number)."""
    code = np.zeros(len(columns[0]), dtype=np.int64)
    for column in columns:
        column = column.astype(np.int64)
        code = code * (int(column.max(initial=0)) + 1) + column
    return code


def pebble_rows(timeline: Timeline) -> list[Row]:
    """The pebble graph's rows: the figures' rows (per layer, or per block at scale)."""
    return figure_rows(layer_info(timeline), None)


def pebble_spans(timeline: Timeline, rows: list[Row], replica: int = 0) -> Spans:
    """Each row's pebble counts as spans (``pebble_data.counts_by_row``)."""
    counts = counts_by_row(count_segments(pebble_intervals(timeline, replica)), rows)
    return Spans(
        np.fromiter((c.row for c in counts), np.int64, len(counts)),
        np.fromiter((c.start for c in counts), np.float64, len(counts)),
        np.fromiter((c.end for c in counts), np.float64, len(counts)),
        np.fromiter((c.count for c in counts), np.int64, len(counts)),
    )


def gradient_spans(timeline: Timeline, rows: list[Row], replica: int = 0) -> Spans:
    """When each row's weight gradients are complete, per step (``pebble_data.row_grads``)."""
    grads = row_grads(timeline, rows, replica)
    return Spans(
        np.fromiter((g.row for g in grads), np.int64, len(grads)),
        np.fromiter((g.start for g in grads), np.float64, len(grads)),
        np.fromiter((g.end for g in grads), np.float64, len(grads)),
        np.fromiter((g.step for g in grads), np.int64, len(grads)),
    )


def memory_steps(timeline: Timeline, end: float, replica: int = 0) -> list[MemorySteps]:
    """Per rank, the running total of cached bytes (``Timeline.rank_memory``) from (0, 0) to
    ``end``; a rank with more than ``MEMORY_POINTS`` changes is decimated per time bucket to
    its first, lowest, highest and last point, so its peak stays exact."""
    out = []
    for rank in range(timeline.num_ranks):
        times, totals = timeline.rank_memory(rank, replica)
        time = np.array([0.0, *times, max(end, times[-1] if times else 0.0)], dtype=np.float64)
        total = np.array([0, *totals, totals[-1] if totals else 0], dtype=np.int64)
        decimated = len(time) > MEMORY_POINTS
        if decimated:
            time, total = _envelope(time, total, MEMORY_POINTS // 4)
        out.append(MemorySteps(rank, time, total, decimated))
    return out


def _envelope(time: np.ndarray, value: np.ndarray, buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """Per equal-count bucket of points, its first, lowest, highest and last, in time order."""
    edges = np.linspace(0, len(time), buckets + 1).astype(np.int64)
    starts, stops = edges[:-1], edges[1:] - 1
    keep = [starts, stops]
    for reduce in (np.argmin, np.argmax):
        picks = [a + reduce(value[a : b + 1]) for a, b in zip(starts, stops, strict=True)]
        keep.append(np.array(picks, dtype=np.int64))
    chosen = np.unique(np.concatenate(keep))
    return time[chosen], value[chosen]


__all__ = [
    "MEMORY_POINTS",
    "BoxColumns",
    "MemorySteps",
    "Spans",
    "action_boxes",
    "action_bytes",
    "box_columns",
    "gradient_spans",
    "memory_steps",
    "pebble_rows",
    "pebble_spans",
    "recompute_columns",
]
