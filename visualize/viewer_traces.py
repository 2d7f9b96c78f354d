"""The HTML viewer's traces: one WebGL trace per kind of thing drawn, never one per action.

Why this shape: a browser stays smooth with a few WebGL traces of half a million points each,
and chokes on half a million shapes or SVG paths. A box is a thick horizontal line segment
(``start, end, gap``) in its kind's trace; a second, invisible marker trace of the same kind
holds one point per box at its middle with the numbers the hover shows (``customdata``), so
the drawing and the hover cost one array each. Colours and names are the figures' own
(``visualize.style``), so the viewer reads like the PNGs.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from matplotlib.colors import to_hex

from simulator.units import byte_unit
from visualize.style import (
    GRAD_COLOR,
    RECOMPUTE_FACE,
    kind_color,
    kind_name,
    pebble_colormap,
    rank_palette,
)
from visualize.viewer_data import BoxColumns, MemorySteps, Spans

PEBBLE_BINS = 8  # at most this many pebble-count colours (one trace each)
HOVER_SIZE = 6  # pixels: how near the pointer must come to a box's middle


def segments(start: np.ndarray, end: np.ndarray, row: np.ndarray) -> tuple[np.ndarray, ...]:
    """x and y of line segments ``start -> end`` at height ``row``, each followed by a gap (x
    NaN). Times go to the page as float32 (7 digits: at half a million boxes on one axis, a
    ten-thousandth of a box), rows as int16 when they are whole (else float32)."""
    count = len(start)
    x = np.empty(3 * count, dtype=np.float32)
    x[0::3], x[1::3], x[2::3] = start, end, np.nan
    whole = np.issubdtype(np.asarray(row).dtype, np.integer) and int(np.max(row, initial=0)) < 2**15
    y = np.empty(3 * count, dtype=np.int16 if whole else np.float32)
    y[0::3] = y[1::3] = y[2::3] = row
    return x, y


def box_traces(
    boxes: BoxColumns,
    *,
    factor: float,
    unit: str,
    width: float,
    offset: float = 0.0,
    run: str = "",
    axes: tuple[str, str] = ("x", "y"),
) -> list[go.Scattergl]:
    """Per kind, the boxes' line trace and their hover trace. ``factor`` converts Timeline
    times to the axis ``unit``; ``offset`` moves the lanes (predicted above measured); ``run``
    prefixes the legend ("predicted ")."""
    traces = []
    bytes_factor, bytes_name = byte_unit(max(float(np.abs(boxes.bytes).max(initial=0)), 1.0))
    kinds = list(dict.fromkeys(boxes.kind.tolist()))
    for kind in kinds:
        mine = boxes.kind == kind
        start, end = boxes.start[mine] * factor, boxes.end[mine] * factor
        lane = boxes.row[mine] + offset if offset else boxes.row[mine]
        colour = RECOMPUTE_FACE if kind == "R" else kind_color(kind)
        name = f"{run}{'R recompute' if kind == 'R' else kind_name(kind)}"
        group = f"{run}{kind}"
        x, y = segments(start, end, lane)
        traces.append(
            go.Scattergl(
                x=x,
                y=y,
                mode="lines",
                line={"color": colour, "width": width * (0.55 if kind == "R" else 1.0)},
                name=name,
                legendgroup=group,
                hoverinfo="skip",
                xaxis=axes[0],
                yaxis=axes[1],
            )
        )
        data = np.column_stack(
            [
                boxes.row[mine],
                boxes.stage[mine],
                boxes.microbatch[mine],
                boxes.step[mine],
                start,
                end,
                end - start,
                boxes.bytes[mine] / bytes_factor,
            ]
        ).astype(np.float32)  # hover text: 7 digits are plenty, and half the bytes
        action = f"%{{customdata[1]}}{kind}%{{customdata[2]}}"
        traces.append(
            go.Scattergl(
                x=((start + end) / 2).astype(np.float32),
                y=lane.astype(np.float32 if offset else np.int16),
                mode="markers",
                marker={"color": colour, "size": HOVER_SIZE, "opacity": 0},
                customdata=data,
                name=name,
                legendgroup=group,
                showlegend=False,
                hovertemplate=(
                    f"<b>{run}{action}</b> ({name.removeprefix(run)})<br>"
                    "rank %{customdata[0]} · stage %{customdata[1]} · "
                    "microbatch %{customdata[2]} · step %{customdata[3]}<br>"
                    f"%{{customdata[4]:.6~g}} → %{{customdata[5]:.6~g}} {unit} "
                    f"(%{{customdata[6]:.4~g}} {unit})<br>"
                    f"cached %{{customdata[7]:+.4~g}} {bytes_name}<extra></extra>"
                ),
                xaxis=axes[0],
                yaxis=axes[1],
            )
        )
    return traces


def count_bins(largest: int) -> list[tuple[int, int]]:
    """(lowest, highest) pebble counts per colour: one per count up to ``PEBBLE_BINS``, else
    ``PEBBLE_BINS`` ranges of about equal ratio (1, 2, 3-4, 5-8, ...)."""
    if largest <= PEBBLE_BINS:
        return [(c, c) for c in range(1, largest + 1)]
    uppers = np.unique(np.round(np.geomspace(1, largest, PEBBLE_BINS)).astype(int))
    lowers = np.r_[1, uppers[:-1] + 1]
    return [(int(lo), int(hi)) for lo, hi in zip(lowers, uppers, strict=True)]


def pebble_traces(
    spans: Spans,
    grads: Spans,
    names: list[str],
    *,
    factor: float,
    unit: str,
    width: float,
    axes: tuple[str, str],
) -> list[go.Scattergl]:
    """The pebble graph: one trace per count range (light: few microbatches cached, dark:
    many), then the weight gradients in purple, each with its hover trace."""
    traces: list[go.Scattergl] = []
    largest = int(spans.value.max(initial=0))
    cmap, _norm = pebble_colormap(largest)
    label = np.array(names, dtype=object)
    for low, high in count_bins(largest):
        mine = (spans.value >= low) & (spans.value <= high)
        if not mine.any():
            continue
        colour = to_hex(cmap(high - 1))
        name = f"{low} cached" if low == high else f"{low}–{high} cached"
        traces += _span_pair(
            spans, mine, label, factor, width, colour, name, axes,
            "<b>%{text}</b>: %{customdata[0]} microbatch(es) cached<br>"
            f"%{{customdata[1]:.6~g}} → %{{customdata[2]:.6~g}} {unit}<extra></extra>",
        )  # fmt: skip
    if len(grads.row):
        traces += _span_pair(
            grads, np.ones(len(grads.row), bool), label, factor, width * 0.45, GRAD_COLOR,
            "weight gradient ready", axes,
            "<b>%{text}</b>: weight gradient of step %{customdata[0]} complete<br>"
            f"%{{customdata[1]:.6~g}} → %{{customdata[2]:.6~g}} {unit}<extra></extra>",
        )  # fmt: skip
    return traces


def _span_pair(spans, mine, label, factor, width, colour, name, axes, hover) -> list:
    start, end = spans.start[mine] * factor, spans.end[mine] * factor
    rows = spans.row[mine]
    x, y = segments(start, end, rows)
    line = go.Scattergl(
        x=x,
        y=y,
        mode="lines",
        line={"color": colour, "width": width},
        name=name,
        legendgroup=name,
        hoverinfo="skip",
        xaxis=axes[0],
        yaxis=axes[1],
    )
    points = go.Scattergl(
        x=((start + end) / 2).astype(np.float32),
        y=rows.astype(np.int16),
        mode="markers",
        marker={"color": colour, "size": HOVER_SIZE, "opacity": 0},
        text=label[rows] if len(rows) else [],
        customdata=np.column_stack([spans.value[mine], start, end]).astype(np.float32),
        hovertemplate=hover,
        name=name,
        legendgroup=name,
        showlegend=False,
        xaxis=axes[0],
        yaxis=axes[1],
    )
    return [line, points]


def memory_traces(
    steps: list[MemorySteps],
    *,
    factor: float,
    unit: str,
    bytes_unit: tuple[float, str],
    run: str = "",
    dash: str = "solid",
    axes: tuple[str, str],
) -> list[go.Scattergl]:
    """One step line per rank (``hv``: a value holds until the next change)."""
    colours = [to_hex(c) for c in rank_palette(len(steps))]
    traces = []
    for memory in steps:
        name = f"{run}rank {memory.rank}" + (" (decimated)" if memory.decimated else "")
        traces.append(
            go.Scattergl(
                x=(memory.time * factor).astype(np.float32),
                y=(memory.bytes / bytes_unit[0]).astype(np.float32),
                mode="lines",
                line={"color": colours[memory.rank], "width": 1.4, "dash": dash, "shape": "hv"},
                name=name,
                legendgroup=f"{run}memory",
                legendgrouptitle_text=f"{run}cached activations",
                hovertemplate=(
                    f"<b>{name}</b><br>%{{y:.4~g}} {bytes_unit[1]} cached "
                    f"from %{{x:.6~g}} {unit}<extra></extra>"
                ),
                xaxis=axes[0],
                yaxis=axes[1],
            )
        )
    return traces


__all__ = [
    "HOVER_SIZE",
    "PEBBLE_BINS",
    "box_traces",
    "count_bins",
    "memory_traces",
    "pebble_traces",
    "segments",
]
