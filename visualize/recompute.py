"""Activation recomputation in the figures: which pebbles were put back, which were checkpoints.

Why a module of its own: recomputation is not an action but a flagged sub-span of a backward
(``Timeline.recompute``), and what it did to the cache is read off the cache table around those
spans. Under a recompute policy a stage's forward caches nothing inside a dropped segment but a
*checkpoint* (the segment's input) at its first layer; the backward's recompute span pops the
checkpoint and re-runs the segment's forward, putting its layers' pebbles back just before their
own backward needs them (a selective attention core adds its scores to the pebble it kept).

* A **recomputed pebble** is one positive cache row whose time lies inside a recompute span of
  the same rank, microbatch, step and replica. It lasts from that row until the layer's bytes
  for the microbatch return to zero (the lifetime of ``pebble_intervals`` that holds it).
* A **checkpoint pebble** is a lifetime that began before a span and ended inside it, of a
  layer no later than the first layer the span puts back, on the span's rank: the checkpoint
  the span popped.

The pebble graph draws both over its count bars as one-pebble slices at the bottom of the row:
recomputed hatched, checkpoints outlined. The pipeline chart draws each span as a hatched box
inside its backward.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from typing import NamedTuple

from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from simulator.timeline import Timeline
from visualize.style import RECOMPUTE_EDGE, RECOMPUTE_FACE, RECOMPUTE_HATCH


class _SpanPebble(NamedTuple):
    """A pebble tied to the recompute span that began at ``span_start``: ``layer``'s, for
    (``microbatch``, ``step``), held from ``start`` to ``end``."""

    layer: int
    microbatch: int
    step: int
    start: float
    end: float
    span_start: float


class RecomputedPebble(_SpanPebble):
    """``layer``'s pebble for (``microbatch``, ``step``), put back at ``start`` by the
    recompute span that began at ``span_start``, held until ``end``."""

    __slots__ = ()


class CheckpointPebble(_SpanPebble):
    """A checkpoint kept at ``layer`` from ``start`` (the forward) until ``end`` (popped by the
    recompute span of (``microbatch``, ``step``) that began at ``span_start``)."""

    __slots__ = ()


def _spans_by_key(timeline: Timeline, replica: int) -> dict[tuple, list]:
    """(rank, microbatch, step) -> that replica's recompute spans, sorted by start."""
    spans: dict[tuple, list] = defaultdict(list)
    for s in timeline.recompute:
        if s.replica == replica:
            spans[s.rank, s.microbatch, s.step].append(s)
    for found in spans.values():
        found.sort(key=lambda s: s.start)
    return spans


def _span_at(spans: list, time: float):
    """The span of ``spans`` (sorted by start) holding ``time``, ends included; else None."""
    position = bisect_right([s.start for s in spans], time) - 1
    if position >= 0 and time <= spans[position].end:
        return spans[position]
    return None


def recompute_pebbles(
    timeline: Timeline, intervals: list, replica: int = 0
) -> tuple[list[RecomputedPebble], list[CheckpointPebble]]:
    """The recomputed and the checkpoint pebbles of ``replica`` (see the module docstring);
    ``intervals`` are that replica's ``pebble_intervals``. Both empty without recomputation."""
    if not len(timeline.recompute):
        return [], []
    spans = _spans_by_key(timeline, replica)
    lifetimes: dict[tuple, list] = defaultdict(list)
    for i in intervals:  # sorted by start within a key
        lifetimes[i.layer, i.microbatch, i.step].append(i)
    recomputed = []
    first_put: dict[tuple, int] = {}  # (rank, mb, step, span start) -> lowest layer put back
    for c in timeline.cache:
        if c.replica != replica or c.bytes <= 0:
            continue
        span = _span_at(spans.get((c.rank, c.microbatch, c.step), []), c.time)
        if span is None:
            continue
        held = lifetimes[c.layer, c.microbatch, c.step]
        starts = [i.start for i in held]
        position = bisect_right(starts, c.time) - 1
        end = held[position].end if position >= 0 else c.time
        recomputed.append(
            RecomputedPebble(c.layer, c.microbatch, c.step, c.time, max(end, c.time), span.start)
        )
        key = (c.rank, c.microbatch, c.step, span.start)
        first_put[key] = min(first_put.get(key, c.layer), c.layer)
    return recomputed, _checkpoints(timeline, spans, lifetimes, first_put)


def _checkpoints(timeline: Timeline, spans, lifetimes, first_put) -> list[CheckpointPebble]:
    """Lifetimes popped inside a span that began before it, at or before its first put layer."""
    rank_of = {layer.index: layer.rank for layer in timeline.meta.layers}
    out = []
    for (layer, microbatch, step), held in lifetimes.items():
        if layer in rank_of:
            candidates = [spans.get((rank_of[layer], microbatch, step), [])]
        else:  # no layer meta: any rank's spans of this microbatch
            candidates = [found for key, found in spans.items() if key[1:] == (microbatch, step)]
        for i in held:
            for found in candidates:
                span = _span_at(found, i.end)
                if span is None or i.start >= span.start:
                    continue
                lowest = first_put.get((span.rank, microbatch, step, span.start))
                if lowest is not None and layer <= lowest:
                    out.append(CheckpointPebble(*i[:5], span.start))
    out.sort(key=lambda c: (c.layer, c.step, c.microbatch, c.start))
    return out


def dropped_gaps(
    recomputed: list[RecomputedPebble], checkpoints: list[CheckpointPebble], intervals: list
) -> list[tuple[int, int, int, float, float]]:
    """(layer, microbatch, step, start, end) for each recomputed pebble of a layer that held
    nothing for its microbatch before: from its segment's checkpoint (the forward) to the
    put. A selective core, which kept part of its pebble, has none."""
    since = {(c.microbatch, c.step, c.span_start): c.start for c in checkpoints}
    first: dict[tuple, float] = {}
    for i in intervals:
        key = (i.layer, i.microbatch, i.step)
        first[key] = min(first.get(key, i.start), i.start)
    out = []
    for p in recomputed:
        start = since.get((p.microbatch, p.step, p.span_start))
        held_before = first.get(p[:3], float("inf")) < p.start
        if start is not None and not held_before and start < p.start:
            out.append((p.layer, p.microbatch, p.step, start, p.start))
    return out


def draw_recompute_pebbles(
    ax,
    marks: tuple[list[RecomputedPebble], list[CheckpointPebble], list],
    rows: list,
    counts: list,
    *,
    height: float,
    row_height: float,
    min_width: float,
) -> None:
    """``marks`` are ``recompute_pebbles`` and ``dropped_gaps``. One-pebble slices (``height``
    tall, at least ``min_width`` long): every recomputed pebble hatched on top of its row's
    bar (``gid="recompute:{key}:{mb}:{step}"``), every checkpoint outlined at the bar's bottom
    (``gid="checkpoint:{key}:{mb}:{step}"``), and a dotted line along the bottom where a
    dropped layer held nothing (``gid="dropped:{key}:{mb}:{step}"``). ``counts`` (the rows'
    ``RowCount``) place the hatched slice. With grouped rows, what a row's layers did in one
    span is one slice or line; on a layer row that is one slice per recompute cache row."""
    recomputed, checkpoints, gaps = marks
    row_of = {layer: number for number, row in enumerate(rows) for layer in row.layers}
    bottom = row_height / 2
    merged: dict[tuple, list[float]] = {}
    for p in recomputed:
        if p.layer in row_of:
            key = (row_of[p.layer], p.microbatch, p.step, p.span_start)
            start, end = merged.get(key, (p.start, p.end))
            merged[key] = [min(start, p.start), max(end, p.end)]
    level = _levels(counts)
    for (row, microbatch, step, _span), (start, end) in merged.items():
        top = max(level(row, (start + end) / 2), 1) * height
        _slice(ax, row + bottom - top, start, max(end - start, min_width), height, True).set_gid(
            f"recompute:{rows[row].key}:{microbatch}:{step}"
        )
    for c in checkpoints:
        if c.layer in row_of:
            row, width = row_of[c.layer], max(c.end - c.start, min_width)
            _slice(ax, row + bottom - height, c.start, width, height, False).set_gid(
                f"checkpoint:{rows[row].key}:{c.microbatch}:{c.step}"
            )
    lines: dict[tuple, list[float]] = {}
    for layer, microbatch, step, start, end in gaps:
        if layer in row_of:
            key = (row_of[layer], microbatch, step, start)
            lines[key] = [start, max(lines.get(key, [0, end])[1], end)]
    for (row, microbatch, step, _), (start, end) in lines.items():
        y = row + bottom - 0.04 * row_height
        ax.plot(
            [start, end],
            [y, y],
            **DROPPED_STYLE,
            gid=f"dropped:{rows[row].key}:{microbatch}:{step}",
        )


DROPPED_STYLE = {"color": RECOMPUTE_EDGE, "linestyle": (0, (1, 2)), "linewidth": 1.0, "zorder": 2.4}


def _levels(counts: list):
    """``level(row, time)``: the count a row's bar shows at ``time`` (0 where none)."""
    by_row: dict[int, list] = defaultdict(list)
    for c in counts:
        by_row[c.row].append(c)
    for found in by_row.values():
        found.sort(key=lambda c: c.start)
    starts = {row: [c.start for c in found] for row, found in by_row.items()}

    def level(row: int, time: float) -> int:
        position = bisect_right(starts.get(row, []), time) - 1
        if position < 0 or time > by_row[row][position].end:
            return 0
        return by_row[row][position].count

    return level


def _slice(ax, y: float, start: float, width: float, height: float, hatched: bool):
    rect = Rectangle(
        (start, y),
        width,
        height,
        facecolor=RECOMPUTE_FACE if hatched else "none",
        edgecolor=RECOMPUTE_EDGE,
        hatch=RECOMPUTE_HATCH if hatched else None,
        linewidth=0.5 if hatched else 1.0,
        zorder=3 if hatched else 2.5,
    )
    ax.add_patch(rect)
    return rect


def hatched_patch(label: str) -> Patch:
    """The legend entry of a hatched recompute mark."""
    return Patch(
        facecolor=RECOMPUTE_FACE,
        edgecolor=RECOMPUTE_EDGE,
        hatch=RECOMPUTE_HATCH,
        linewidth=0.5,
        label=label,
    )


def draw_recompute_boxes(ax, boxes: list, *, height: float, least: float) -> None:
    """The pipeline chart's ``R`` boxes (``visualize.pipeline_data.recompute_boxes``): hatched,
    ``gid="recompute:{row}:{stage}R{mb}:{step}"``, ``height`` tall (less than the backward
    box, so its colour frames them) and at least ``least`` long."""
    for b in boxes:
        ax.add_patch(
            Rectangle(
                (b.start, b.row - height / 2),
                max(b.end - b.start, least),
                height,
                facecolor=RECOMPUTE_FACE,
                edgecolor=RECOMPUTE_EDGE,
                hatch=RECOMPUTE_HATCH,
                linewidth=0.5,
                zorder=2.5,
                gid=f"recompute:{b.row}:{b.label}:{b.step}",
            )
        )


def recompute_handles(recomputed: bool, checkpoints: bool, gaps: bool) -> list:
    """Legend entries for the pebble graph, in the story's order: dropped, put back, and the
    checkpoint it was recomputed from."""
    handles: list = []
    if gaps:
        label = "dropped after the forward: nothing cached"
        handles.append(Line2D([], [], **DROPPED_STYLE, label=label))
    if recomputed:
        handles.append(hatched_patch("recomputed: put back just before its backward"))
    if checkpoints:
        label = "checkpoint: input kept to recompute from"
        handles.append(Patch(facecolor="none", edgecolor=RECOMPUTE_EDGE, label=label))
    return handles


__all__ = [
    "CheckpointPebble",
    "RecomputedPebble",
    "draw_recompute_boxes",
    "draw_recompute_pebbles",
    "dropped_gaps",
    "hatched_patch",
    "recompute_handles",
    "recompute_pebbles",
]
