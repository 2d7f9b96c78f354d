"""The HTML viewer's traces: one trace per kind of thing drawn, never one per action.

Why this shape: a browser stays smooth with a few traces of some thousand points each, and
chokes on half a million shapes. A box is a thick horizontal line segment (``start, middle,
end, gap``) in its kind's trace, which carries the numbers the hover shows (``customdata``)
at those points, so the drawing and the hover cost one trace. What is too narrow to draw one
by one is one image per panel (``viewer_lod``); the page's script refills every trace for
each zoom.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from matplotlib.colors import to_hex

from visualize.style import rank_palette
from visualize.viewer_lod import Plan, SegmentLayer


def segments(start: np.ndarray, end: np.ndarray, row: np.ndarray) -> tuple[np.ndarray, ...]:
    """x and y of line segments ``start -> end`` at height ``row``: per segment its start,
    middle and end (the hover's points: the nearest to the pointer shows), then a gap (x
    NaN). Times go to the page as float32 (7 digits: at half a million boxes on one axis, a
    ten-thousandth of a box), rows as int16 when they are whole (else float32)."""
    count = len(start)
    x = np.empty(4 * count, dtype=np.float32)
    x[0::4], x[1::4], x[2::4], x[3::4] = start, (start + end) / 2, end, np.nan
    whole = np.issubdtype(np.asarray(row).dtype, np.integer) and int(np.max(row, initial=0)) < 2**15
    y = np.empty(4 * count, dtype=np.int16 if whole else np.float32)
    for offset in range(4):
        y[offset::4] = row
    return x, y


def layer_traces(
    layer: SegmentLayer, drawn: Plan, axes: tuple[str, str], image: dict
) -> list[go.Scatter | go.Image]:
    """Per kind of ``layer``, one line trace of its segments drawn one by one, hovered at each
    segment's start, middle and end; then the image of the merged rest (``image``: the
    ``go.Image`` placement and ``source``). SVG, not WebGL: a few thousand segments are one
    path each kind, and a page without WebGL draws in a fraction of the time where the CPU
    draws WebGL. The page's script refills all of them for every window."""
    traces: list = []
    for number, kind in enumerate(layer.kinds):
        index = drawn.detail[layer.kind[drawn.detail] == number]
        x, y = segments(layer.start[index], layer.end[index], layer.lane_y[layer.lane[index]])
        custom = np.repeat(layer.customdata(index), 4, axis=0)
        text = np.repeat(np.array(layer.titles(index), dtype=object), 4)
        if not len(index):  # an empty trace would leave the legend; a NaN point draws nothing
            x, y = np.array([np.nan], np.float32), np.array([np.nan], np.float32)
            custom, text = None, None
        traces.append(
            go.Scatter(
                x=x, y=y, mode="lines", line={"color": kind.colour, "width": kind.width},
                name=kind.name, legendgroup=kind.group, customdata=custom, text=text,
                hovertemplate=layer.hovertemplate, xaxis=axes[0], yaxis=axes[1],
            )
        )  # fmt: skip
    traces.append(
        go.Image(**image, hoverinfo="skip", name=f"{layer.panel} overview",
                 xaxis=axes[0], yaxis=axes[1])
    )  # fmt: skip
    return traces


def memory_traces(
    lines: list[tuple[int, np.ndarray, np.ndarray]],
    *,
    ranks: int,
    unit: str,
    bytes_name: str,
    run: str = "",
    dash: str = "solid",
    axes: tuple[str, str],
) -> list[go.Scatter]:
    """One step line per rank (``hv``: a value holds until the next change); ``lines`` are
    (rank, time in axis units, bytes in ``bytes_name``)."""
    colours = [to_hex(c) for c in rank_palette(ranks)]
    traces = []
    for rank, time, value in lines:
        name = f"{run}rank {rank}"
        traces.append(
            go.Scatter(
                x=np.asarray(time, np.float32),
                y=np.asarray(value, np.float32),
                mode="lines",
                line={"color": colours[rank], "width": 1.4, "dash": dash, "shape": "hv"},
                name=name,
                legendgroup=f"{run}memory",
                legendgrouptitle_text=f"{run}cached activations",
                hovertemplate=(
                    f"<b>{name}</b><br>%{{y:.4~g}} {bytes_name} cached "
                    f"from %{{x:.6~g}} {unit}<extra></extra>"
                ),
                xaxis=axes[0],
                yaxis=axes[1],
            )
        )
    return traces


__all__ = ["layer_traces", "memory_traces", "segments"]
