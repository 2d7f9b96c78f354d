"""The zoomable HTML viewer: one self-contained page per run, opened from disk, no server.

It holds the pipeline chart, the pebble graph and the memory per rank on one linked time axis
(zoom or pan one and all three follow), the whole-rank memory per rank below them, a hover on
every box and pebble span (the action, microbatch, step, times and cached bytes), and a time
slider that plays the pebble graph. Given a prediction and a measurement of one configuration,
it draws both: each rank's predicted lane above its measured lane, both memory lines, both
breakdowns, and the makespan error in the title.

Why plotly: it is a well-kept library (plotly.py and plotly.js, MIT, released every few
months) that writes one standalone HTML file with plotly.js inlined (``include_plotlyjs=True``:
no CDN, no network), links axes across subplots, hovers any trace, draws images in data
coordinates, and has sliders with frames built in. Bokeh does most of this too, but its
standalone page needs its JavaScript inlined by hand and has no frame animation; matplotlib's
HTML (mpld3) draws every artist as SVG.

At any size the figure holds what the screen can show (``viewer_lod``): boxes and pebble spans
a pixel wide or more, one by one and hoverable, up to a few thousand; the rest merged per pixel
column into one image per panel; memory lines cut to their extremes per few pixels. The page
carries the whole run once, packed, and its script (``viewer_script``) redraws every zoom and
pan from it, so half a million actions are a page of a few MiB that draws and zooms like a
small one; a note under each panel says whether it shows every action or an aggregate.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from simulator.errors import PebbleError
from simulator.timeline import Timeline
from simulator.units import byte_unit
from visualize.breakdown import breakdown_rows
from visualize.overlay import _check_same_configuration, makespan_error
from visualize.style import run_title, time_axis, time_span
from visualize.viewer_data import (
    action_boxes,
    gradient_spans,
    memory_steps,
    pebble_rows,
    pebble_spans,
    recompute_columns,
)
from visualize.viewer_layers import RunBoxes, pebble_layer, pipeline_layer
from visualize.viewer_layout import (
    MARGIN_BOTTOM,
    MARGIN_LEFT,
    MARGIN_RIGHT,
    MARGIN_TOP,
    PLOT_WIDTH,
    WIDTH,
    Panels,
    breakdown_traces,
    optimizer_shapes,
    page_height,
    panel_domains,
    time_slider,
)
from visualize.viewer_lod import (
    SegmentLayer,
    envelope,
    memory_buckets,
    overview_rgba,
    plan,
    png_uri,
)
from visualize.viewer_page import MemoryLine, OnPage, layer_note, memory_note, page_html
from visualize.viewer_traces import layer_traces, memory_traces

PLOT_ID = "pebblesim-viewer"  # the plot's element id in the page (the browser test finds it)
PAIR_OFFSET = 0.21
RANK_LABELS = 32  # rank labels on the pipeline chart, at most
BAR_LABELS = 16  # and under the whole-rank memory bars
TITLES = (
    "pipeline: what each rank computes when (hover a box; drag to zoom, double-click to reset)",
    "pebble graph: microbatches cached per layer, purple once its weight gradient is ready",
    "cached activations per rank",
    "whole-rank memory per rank (the largest activations held, at once)",
)  # a rank's predicted lane sits this far above its measured lane


class Placed(NamedTuple):
    """One run on the shared axis: ``(t - origin) * factor`` is a Timeline time on the axis."""

    timeline: Timeline
    label: str  # "" alone; "predicted " / "measured " in a pair
    origin: float
    factor: float
    lane: float  # offset of its lanes from the rank


def _origin(timeline: Timeline) -> float:
    starts = timeline.events.columns()["start"]
    return float(starts.min()) if len(starts) else 0.0


def place(timelines: list[Timeline]) -> tuple[list[Placed], str]:
    """Each run's origin and factor, and the axis title. One run keeps its own times; a pair
    starts both at their first compute event, in the same unit if they share one, else each as
    a percentage of its own makespan (the overlay figure's rule)."""
    if len(timelines) == 1:
        factor, label = time_axis(timelines[0])
        return [Placed(timelines[0], "", 0.0, factor, 0.0)], label
    predicted, measured = timelines
    if predicted.time_unit == measured.time_unit:
        span = max(
            time_span(predicted) - _origin(predicted), time_span(measured) - _origin(measured)
        )
        factor, label = time_axis(predicted.time_unit, span)
        factors = (factor, factor)
    else:
        label = "time (% of each run's makespan)"
        factors = tuple(100.0 / (t.summary().makespan or 1.0) for t in timelines)
    return [
        Placed(predicted, "predicted ", _origin(predicted), factors[0], -PAIR_OFFSET),
        Placed(measured, "measured ", _origin(measured), factors[1], PAIR_OFFSET),
    ], label


def _unit(axis_label: str) -> str:
    return axis_label[axis_label.find("(") + 1 : axis_label.rfind(")")] if "(" in axis_label else ""


def _breakdown(timeline: Timeline) -> list[dict] | None:
    try:
        return breakdown_rows(timeline)
    except PebbleError:
        return None


def _title(runs: list[Placed]) -> str:
    if len(runs) == 1:
        return run_title(runs[0].timeline, "pebblesim viewer")
    predicted, measured = runs[0].timeline, runs[1].timeline
    error = makespan_error(predicted, measured)
    unit = measured.time_unit if predicted.time_unit == measured.time_unit else "unit"
    return (
        run_title(measured, "pebblesim viewer: predicted against measured")
        + f"<br><sup>{error.text(unit)}</sup>"
    )


class Page(NamedTuple):
    """The figure as first drawn, and what the page's script needs to redraw it at any zoom:
    the segment layers and memory lines in full, where their traces and notes are."""

    figure: go.Figure
    layers: list[OnPage]
    memory: list[MemoryLine]
    memory_note: int  # the memory panel's note (an annotation's index)


def viewer_figure(timelines: list[Timeline]) -> go.Figure:
    """The viewer's figure for one run, or for a (predicted, measured) pair (see the module
    docstring), as first drawn. Raises PebbleError for a run without compute events or a pair
    of different configurations."""
    return viewer_page(timelines).figure


def viewer_page(timelines: list[Timeline]) -> Page:
    """``viewer_figure`` with the full data its page carries (``Page``)."""
    if len(timelines) not in (1, 2):
        raise PebbleError("the viewer shows one Timeline, or a predicted and a measured one.")
    for timeline in timelines:
        if not len(timeline.events):
            raise PebbleError("this Timeline holds no compute events to view.")
    if len(timelines) == 2:
        _check_same_configuration(*timelines)
    runs, axis_label = place(timelines)
    unit = _unit(axis_label)
    ranks = max(run.timeline.num_ranks for run in runs)
    rows = pebble_rows(runs[-1].timeline)  # the measured run's pebbles in a pair
    recorded = [(run.label, _breakdown(run.timeline)) for run in runs]
    with_breakdown = any(parts is not None for _label, parts in recorded)
    panels = Panels.for_sizes(ranks * len(runs), len(rows), with_breakdown)
    fig = _panels(panels, paired=len(runs) == 2)
    span = max((time_span(r.timeline) - r.origin) * r.factor for r in runs)
    x_range = (0.0, span * 1.02)

    width = panels.line_width("pipeline", ranks * len(runs))
    pipeline = pipeline_layer(_run_boxes(runs), ranks, unit, width)
    layers = [_add_layer(fig, pipeline, ("x", "y"), x_range, (ranks - 0.5, -0.5), panels.pipeline)]
    pebbles = _pebble_layer(runs[-1], rows, unit, panels.line_width("pebble", len(rows)))
    y_rows = (len(rows) - 0.5, -0.5)
    layers.append(_add_layer(fig, pebbles, ("x2", "y2"), x_range, y_rows, panels.pebble))
    memory, bytes_name, note = _add_memory(fig, runs, unit, x_range, ranks)
    _axes(fig, rows, ranks, x_range, axis_label, bytes_name)
    if with_breakdown:
        capacity = runs[-1].timeline.meta.memory_capacity
        bars, breakdown_unit = breakdown_traces(recorded, capacity, ("x4", "y4"))
        fig.add_traces(bars)
        fig.layout.yaxis4.update(
            title={"text": breakdown_unit}, rangemode="tozero", gridcolor="#E6E6E6"
        )
        every = max(1, -(-ranks // BAR_LABELS))  # upright labels, never crowded into the slider
        labels = [f"rank {r}" for r in range(0, ranks, every)]
        fig.layout.xaxis4.update(tickvals=labels, ticktext=labels, tickangle=0)
    fixed = optimizer_shapes([(r.timeline, r.origin, r.factor) for r in runs])
    frames, slider, buttons = time_slider(span, unit, fixed)
    fig.frames = frames
    fig.update_layout(
        title={
            "text": _title(runs),
            "x": 0.0,
            "xanchor": "left",
            "yref": "container",
            "y": 1.0,
            "yanchor": "top",
            "pad": {"t": 12},
        },  # fmt: skip
        width=WIDTH,
        height=page_height(panels),
        margin={"t": MARGIN_TOP, "b": MARGIN_BOTTOM, "l": MARGIN_LEFT, "r": MARGIN_RIGHT},
        shapes=frames[-1].layout.shapes,
        sliders=[slider],
        updatemenus=[buttons],
        barmode="stack",
        hovermode="closest",
        dragmode="zoom",
        plot_bgcolor="white",
        legend={"groupclick": "toggleitem", "font": {"size": 10}},
    )
    return Page(fig, layers, memory, note)


def _panels(panels: Panels, paired: bool) -> go.Figure:
    """An empty figure with one subplot per shown panel, placed and titled."""
    domains = panel_domains(panels)
    titles = TITLES[: len(domains)]
    if paired:
        titles = (titles[0], titles[1] + " (measured run)", *titles[2:])
    fig = make_subplots(rows=len(domains), cols=1, subplot_titles=titles)
    for number, ((bottom, top), title) in enumerate(
        zip(domains, fig.layout.annotations, strict=True), start=1
    ):
        fig.update_yaxes(domain=[bottom, top], row=number, col=1)
        title.update(y=top, yanchor="bottom", x=0.0, xanchor="left", yshift=4)
    return fig


def _run_boxes(runs: list[Placed]) -> list[RunBoxes]:
    """Each run's boxes and recompute spans in axis units."""
    out = []
    for run in runs:
        boxes, recompute = action_boxes(run.timeline), recompute_columns(run.timeline)
        out.append(RunBoxes(run.label, run.lane, _to_axis(boxes, run), _to_axis(recompute, run)))
    return out


def _to_axis(columns, run: Placed):
    return columns._replace(
        start=(columns.start - run.origin) * run.factor,
        end=(columns.end - run.origin) * run.factor,
    )


def _pebble_layer(run: Placed, rows, unit: str, width: float) -> SegmentLayer:
    spans = _to_axis(pebble_spans(run.timeline, rows), run)
    grads = _to_axis(gradient_spans(run.timeline, rows), run)
    return pebble_layer(spans, grads, [row.name for row in rows], unit, width)


def _add_layer(fig, layer: SegmentLayer, axes, x_range, y_range, height: int) -> OnPage:
    """The layer's traces as drawn over ``x_range`` (the whole run), and its note."""
    drawn = plan(layer, x_range[0], x_range[1], PLOT_WIDTH)
    pixel = (x_range[1] - x_range[0]) / PLOT_WIDTH
    row = (y_range[0] - y_range[1]) / height
    image = {
        "x0": x_range[0] + pixel / 2, "dx": pixel, "y0": y_range[1] + row / 2, "dy": row,
        "visible": bool(drawn.merged),
        "source": png_uri(overview_rgba(layer, drawn.shares, y_range, height)),
    }  # fmt: skip
    first = len(fig.data)
    fig.add_traces(layer_traces(layer, drawn, axes, image))
    return OnPage(layer, axes, first, _note(fig, axes[1], layer_note(layer.noun, drawn)))


def _note(fig, yaxis: str, text: str) -> int:
    """A note under a panel, right of its time axis's title: what the panel shows at this
    zoom (every action, or aggregated)."""
    domain = fig.layout[f"yaxis{yaxis[1:]}"].domain
    fig.add_annotation(
        text=text, x=1.0, xref="paper", xanchor="right", y=domain[0], yref="paper",
        yanchor="top", yshift=-22, showarrow=False, font={"size": 11, "color": "#8C510A"},
    )  # fmt: skip
    return len(fig.layout.annotations) - 1


def _add_memory(fig, runs: list[Placed], unit: str, x_range, ranks: int):
    """Every run's memory lines as first drawn (each bucket of pixels keeps its first, lowest,
    highest and last point); returns the full lines, the bytes unit and the note's index."""
    memories = [memory_steps(run.timeline, time_span(run.timeline)) for run in runs]
    largest = max((float(m.bytes.max(initial=0)) for ms in memories for m in ms), default=0.0)
    scale, bytes_name = byte_unit(max(largest, 1.0))
    buckets = memory_buckets(PLOT_WIDTH, sum(len(m) for m in memories))
    lines, decimated = [], False
    for run, steps in zip(runs, memories, strict=True):
        drawn = []
        for memory in steps:
            time = ((memory.time - run.origin) * run.factor).astype(np.float32)
            value = (memory.bytes / scale).astype(np.float32)
            kept, collapsed = envelope(time, value, x_range[0], x_range[1], buckets)
            decimated |= collapsed
            lines.append(MemoryLine(len(fig.data) + len(drawn), time, value))
            drawn.append((memory.rank, time[kept], value[kept]))
        fig.add_traces(
            memory_traces(
                drawn, ranks=ranks, unit=unit, bytes_name=bytes_name, run=run.label,
                dash="dot" if run.label == "predicted " else "solid", axes=("x3", "y3"),
            )
        )  # fmt: skip
    pixels = PLOT_WIDTH / buckets
    return lines, bytes_name, _note(fig, "y3", memory_note(decimated, pixels))


def _axes(fig, rows, ranks, x_range, axis_label, bytes_name) -> None:
    grid = {"showgrid": True, "gridcolor": "#E6E6E6", "zeroline": False}
    for axis in ("xaxis", "xaxis2", "xaxis3"):
        fig.layout[axis].update(range=list(x_range), **grid)
    fig.layout.xaxis2.matches = "x"
    fig.layout.xaxis3.matches = "x"
    for axis in ("xaxis", "xaxis2", "xaxis3"):
        fig.layout[axis].update(title={"text": axis_label, "standoff": 4}, showticklabels=True)
    every = max(1, -(-ranks // RANK_LABELS))  # at most RANK_LABELS labels; zoom in for the rest
    fig.layout.yaxis.update(
        tickvals=list(range(0, ranks, every)),
        ticktext=[f"rank {r}" for r in range(0, ranks, every)],
        range=[ranks - 0.5, -0.5],
        showgrid=False,
        zeroline=False,
        scaleanchor=False,  # an image trace would tie its scale to x
    )
    labels = [row.label for row in rows]
    step = max(1, -(-len(rows) // 40))  # at most 40 row labels; zoom in for the rest
    fig.layout.yaxis2.update(
        tickvals=list(range(0, len(rows), step)),
        ticktext=labels[::step],
        range=[len(rows) - 0.5, -0.5],
        showgrid=False,
        zeroline=False,
        tickfont={"size": 9},
        scaleanchor=False,
    )
    fig.layout.yaxis3.update(title={"text": bytes_name}, rangemode="tozero", **grid)


def viewer_html(timelines: list[Timeline]) -> str:
    """The whole page: the figure with plotly.js inlined, scroll-zoom on, no link out, and
    the full data with the script that redraws it at every zoom (``viewer_page``)."""
    return page_html(viewer_page(timelines), PLOT_ID)


__all__ = ["PLOT_ID", "Page", "Placed", "place", "viewer_figure", "viewer_html", "viewer_page"]
