"""The zoomable HTML viewer: one self-contained page per run, opened from disk, no server.

It holds the pipeline chart, the pebble graph and the memory per rank on one linked time axis
(zoom or pan one and all three follow), the whole-rank memory per rank below them, a hover on
every box and pebble span (the action, microbatch, step, times and cached bytes), and a time
slider that plays the pebble graph. Given a prediction and a measurement of one configuration,
it draws both: each rank's predicted lane above its measured lane, both memory lines, both
breakdowns, and the makespan error in the title.

Why plotly: it is a well-kept library (plotly.py and plotly.js, MIT, released every few
months) that writes one standalone HTML file with plotly.js inlined (``include_plotlyjs=True``:
no CDN, no network), draws large data with WebGL (``scattergl``), links axes across subplots,
and has sliders with frames built in. Its numpy arrays go into the page as typed base64 arrays,
not JSON lists, so a half-million-action run stays a file a browser opens. Bokeh does most of
this too, but its standalone page needs its JavaScript inlined by hand and has no frame
animation; matplotlib's HTML (mpld3) has no WebGL.
"""

from __future__ import annotations

from typing import NamedTuple

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
from visualize.viewer_layout import (
    MARGIN_BOTTOM,
    MARGIN_TOP,
    WIDTH,
    Panels,
    breakdown_traces,
    optimizer_shapes,
    page_height,
    panel_domains,
    time_slider,
)
from visualize.viewer_traces import box_traces, memory_traces, pebble_traces

PLOT_ID = "pebblesim-viewer"  # the plot's element id in the page (the browser test finds it)
PAIR_OFFSET = 0.21
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


def _shift(columns, origin: float):
    return columns._replace(start=columns.start - origin, end=columns.end - origin)


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


def viewer_figure(timelines: list[Timeline]) -> go.Figure:
    """The viewer's figure for one run, or for a (predicted, measured) pair (see the module
    docstring). Raises PebbleError for a run without compute events or a pair of different
    configurations."""
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

    _add_pipeline(fig, runs, unit, panels.line_width("pipeline", ranks * len(runs)))
    _add_pebbles(fig, runs[-1], rows, unit, panels.line_width("pebble", len(rows)))
    span, bytes_name = _add_memory(fig, runs, unit)
    _axes(fig, rows, ranks, span, axis_label, bytes_name)
    if with_breakdown:
        capacity = runs[-1].timeline.meta.memory_capacity
        bars, breakdown_unit = breakdown_traces(recorded, capacity, ("x4", "y4"))
        fig.add_traces(bars)
        fig.layout.yaxis4.update(
            title={"text": breakdown_unit}, rangemode="tozero", gridcolor="#E6E6E6"
        )
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
        margin={"t": MARGIN_TOP, "b": MARGIN_BOTTOM, "l": 110, "r": 30},
        shapes=frames[-1].layout.shapes,
        sliders=[slider],
        updatemenus=[buttons],
        barmode="stack",
        hovermode="closest",
        dragmode="zoom",
        plot_bgcolor="white",
        legend={"groupclick": "toggleitem", "font": {"size": 10}},
    )
    return fig


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


def _add_pipeline(fig: go.Figure, runs: list[Placed], unit: str, width: float) -> None:
    for run in runs:
        boxes = _shift(action_boxes(run.timeline), run.origin)
        recompute = _shift(recompute_columns(run.timeline), run.origin)
        for columns in (boxes, recompute):
            if columns.count:
                fig.add_traces(
                    box_traces(
                        columns, factor=run.factor, unit=unit, width=width,
                        offset=run.lane, run=run.label, axes=("x", "y"),
                    )
                )  # fmt: skip


def _add_pebbles(fig: go.Figure, run: Placed, rows, unit: str, width: float) -> None:
    spans = _shift(pebble_spans(run.timeline, rows), run.origin)
    grads = _shift(gradient_spans(run.timeline, rows), run.origin)
    fig.add_traces(
        pebble_traces(
            spans, grads, [row.name for row in rows], factor=run.factor, unit=unit,
            width=width, axes=("x2", "y2"),
        )
    )  # fmt: skip


def _add_memory(fig: go.Figure, runs: list[Placed], unit: str) -> tuple[float, str]:
    """Every run's memory lines; returns the time axis's span and the bytes unit."""
    span = 0.0
    memories = []
    for run in runs:
        end = time_span(run.timeline)
        span = max(span, (end - run.origin) * run.factor)
        memories.append(memory_steps(run.timeline, end))
    largest = max((float(m.bytes.max(initial=0)) for ms in memories for m in ms), default=0.0)
    unit_bytes = byte_unit(max(largest, 1.0))
    for run, steps in zip(runs, memories, strict=True):
        placed = [s._replace(time=s.time - run.origin) for s in steps]
        fig.add_traces(
            memory_traces(
                placed, factor=run.factor, unit=unit, bytes_unit=unit_bytes, run=run.label,
                dash="dot" if run.label == "predicted " else "solid", axes=("x3", "y3"),
            )
        )  # fmt: skip
    return span, unit_bytes[1]


def _axes(fig, rows, ranks, span, axis_label, bytes_name) -> None:
    grid = {"showgrid": True, "gridcolor": "#E6E6E6", "zeroline": False}
    for axis in ("xaxis", "xaxis2", "xaxis3"):
        fig.layout[axis].update(range=[0, span * 1.02], **grid)
    fig.layout.xaxis2.matches = "x"
    fig.layout.xaxis3.matches = "x"
    for axis in ("xaxis", "xaxis2", "xaxis3"):
        fig.layout[axis].update(title={"text": axis_label, "standoff": 4}, showticklabels=True)
    fig.layout.yaxis.update(
        tickvals=list(range(ranks)),
        ticktext=[f"rank {r}" for r in range(ranks)],
        range=[ranks - 0.5, -0.5],
        showgrid=False,
        zeroline=False,
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
    )
    fig.layout.yaxis3.update(title={"text": bytes_name}, rangemode="tozero", **grid)


def viewer_html(timelines: list[Timeline]) -> str:
    """The whole page: the figure with plotly.js inlined, scroll-zoom on, no link out."""
    return viewer_figure(timelines).to_html(
        include_plotlyjs=True,
        full_html=True,
        div_id=PLOT_ID,
        auto_play=False,
        config={"scrollZoom": True, "displaylogo": False, "responsive": False},
    )


__all__ = ["PLOT_ID", "Placed", "place", "viewer_figure", "viewer_html"]
