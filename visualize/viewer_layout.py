"""The HTML viewer's page layout: panel sizes, the linked time axis, the time slider and the
whole-rank memory bars.

Why apart from the traces: the traces say what is drawn, this says where and how it moves.
The three time panels (pipeline, pebble graph, memory) share one x axis (``matches``), so a
zoom or pan in any of them moves all three. The time slider does not copy any data: each of
its frames only moves two shapes, a cursor line through the time panels and a veil over the
pebble graph's future, so playing it reveals the pebbles as they are cached and drained, at
any size of run, for a few hundred bytes a frame.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import plotly.graph_objects as go

from simulator.timeline import Timeline
from simulator.units import byte_unit, human_bytes
from visualize.breakdown import CAPACITY_COLOR, PARTS
from visualize.style import OPTIMIZER_COLOR

SLIDER_FRAMES = 100  # positions of the time slider
WIDTH = 1200  # pixels; the page scrolls down through the panels


class Panels(NamedTuple):
    """Pixel heights of the panels, top to bottom (a breakdown of 0: no panel for it)."""

    pipeline: int
    pebble: int
    memory: int
    breakdown: int

    @classmethod
    def for_sizes(cls, lanes: int, rows: int, breakdown: bool = True) -> Panels:
        return cls(
            pipeline=int(np.clip(70 + 26 * lanes, 220, 560)),
            pebble=int(np.clip(40 + 16 * rows, 220, 620)),
            memory=260,
            breakdown=300 if breakdown else 0,
        )

    def line_width(self, which: str, lanes: int) -> float:
        """Pixels of a box's line so that lanes nearly touch (at least 1)."""
        height = getattr(self, which) * 0.8
        return float(np.clip(0.7 * height / max(lanes, 1), 1.0, 40.0))


PANEL_GAP = 80  # pixels between panels (room for the time axis title and the panel title)
MARGIN_TOP = 110  # the title, the play button
MARGIN_BOTTOM = 130  # the slider
MARGIN_LEFT = 110  # the rank and row labels
MARGIN_RIGHT = 30
PLOT_WIDTH = WIDTH - MARGIN_LEFT - MARGIN_RIGHT  # pixels of a time axis (the legend floats)


def page_height(panels: Panels) -> int:
    shown = [size for size in panels if size]
    return MARGIN_TOP + sum(shown) + PANEL_GAP * (len(shown) - 1) + MARGIN_BOTTOM


def panel_domains(panels: Panels) -> list[tuple[float, float]]:
    """Each shown panel's [bottom, top] in paper fractions, top panel first."""
    usable = page_height(panels) - MARGIN_TOP - MARGIN_BOTTOM
    top = 1.0
    out = []
    for size in (size for size in panels if size):
        bottom = top - size / usable
        out.append((max(bottom, 0.0), top))
        top = bottom - PANEL_GAP / usable
    return out


def optimizer_shapes(timelines_spans: list[tuple[Timeline, float, float]]) -> list[dict]:
    """Grey columns where optimizer steps ran, through the three time panels. Each entry is
    (timeline, origin, factor): a band is at ``(start - origin) * factor``."""
    shapes = []
    for timeline, origin, factor in timelines_spans:
        for opt in timeline.optimizer:
            start, end = (opt.start - origin) * factor, (opt.end - origin) * factor
            for axis in ("y", "y2", "y3"):
                shapes.append(
                    {
                        "type": "rect",
                        "xref": "x",
                        "yref": f"{axis} domain",
                        "x0": start,
                        "x1": max(end, start),
                        "y0": 0,
                        "y1": 1,
                        "fillcolor": OPTIMIZER_COLOR,
                        "opacity": 0.3,
                        "line": {"width": 0},
                        "layer": "below",
                    }
                )
    return shapes


def cursor_shapes(time: float, span: float) -> list[dict]:
    """The slider's two shapes at ``time``: the cursor line through the time panels, and the
    veil over the pebble graph from ``time`` to the end."""
    line = {"color": "#D55E00", "width": 2}
    cursor = [
        {"type": "line", "xref": "x", "yref": f"{axis} domain", "x0": time, "x1": time,
         "y0": 0, "y1": 1, "line": line}
        for axis in ("y", "y2", "y3")
    ]  # fmt: skip
    veil = {
        "type": "rect",
        "xref": "x",
        "yref": "y2 domain",
        "x0": time,
        "x1": max(span, time),
        "y0": 0,
        "y1": 1,
        "fillcolor": "white",
        "opacity": 0.85,
        "line": {"width": 0},
    }
    return [*cursor, veil]


def short_number(value: float) -> str:
    """A slider label of three digits at most: ``6.6``, ``998``, ``2.99k``, ``12.7k``, ``1.2M``."""
    for limit, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}"


def time_slider(span: float, unit: str, fixed: list[dict]) -> tuple[list[go.Frame], dict, dict]:
    """Frames, the slider and its play / pause buttons. Each frame replaces the layout's
    shapes with ``fixed`` plus the cursor at its time; the first frame is the end of the run
    (everything shown)."""
    times = np.linspace(0.0, span, SLIDER_FRAMES + 1)
    frames = [
        go.Frame(name=f"t{i}", layout={"shapes": fixed + cursor_shapes(float(t), span)})
        for i, t in enumerate(times)
    ]
    play = {"frame": {"duration": 80, "redraw": False}, "transition": {"duration": 0},
            "fromcurrent": True, "mode": "immediate"}  # fmt: skip
    pause = {"frame": {"duration": 0, "redraw": False}, "mode": "immediate"}
    buttons = {
        "type": "buttons",
        "direction": "left",
        "x": 0.0,
        "y": 0,
        "xanchor": "left",
        "yanchor": "top",
        "pad": {"t": 62, "r": 10},
        "buttons": [
            {"label": "▶ play", "method": "animate", "args": [None, play]},
            {"label": "❚❚ pause", "method": "animate", "args": [[None], pause]},
        ],
    }
    slider = {
        "active": SLIDER_FRAMES,
        "x": 0.13,
        "len": 0.87,
        "y": 0,
        "yanchor": "top",
        "pad": {"t": 40},
        "currentvalue": {"prefix": "time ", "suffix": f" {unit}", "visible": True},
        "steps": [
            {
                "label": short_number(float(t)),
                "method": "animate",
                "args": [[f"t{i}"], pause],
            }
            for i, t in enumerate(times)
        ],
    }
    return frames, slider, buttons


def breakdown_traces(
    runs: list[tuple[str, list[dict] | None]], capacity: int | None, axes: tuple[str, str]
) -> tuple[list[go.Bar | go.Scatter], str]:
    """Stacked bars of whole-rank memory per rank (``visualize.breakdown``'s parts and
    colours), one stack per run side by side (a run without the record: none); a dashed line
    at the device's capacity. Returns the traces and the bytes unit of their y values."""
    totals = [m["total"] for _run, rows in runs for m in rows or []]
    scale, unit = byte_unit(max([*totals, capacity or 0, 1]))
    traces: list = []
    for number, (run, rows) in enumerate(runs):
        if rows is None:
            continue
        ranks = [f"rank {r}" for r in range(len(rows))]
        for key, label, colour in PARTS:
            values = np.array([m[key] for m in rows], dtype=np.float64)
            traces.append(
                go.Bar(
                    x=ranks,
                    y=values / scale,
                    name=f"{run}{label}",
                    legendgroup=f"{run}breakdown",
                    legendgrouptitle_text=f"{run}whole-rank memory",
                    marker={"color": colour, "opacity": 1.0 if number == 0 else 0.6},
                    offsetgroup=str(number),
                    customdata=[human_bytes(v) for v in values],
                    hovertemplate=f"%{{x}}: {label} %{{customdata}}<extra>{run}</extra>",
                    xaxis=axes[0],
                    yaxis=axes[1],
                )
            )
    if capacity and traces:
        traces.append(
            go.Scatter(
                x=[traces[0].x[0], traces[0].x[-1]],
                y=[capacity / scale] * 2,
                mode="lines",
                line={"color": CAPACITY_COLOR, "dash": "dash", "width": 1.5},
                name=f"device memory {human_bytes(capacity)}",
                hoverinfo="name",
                xaxis=axes[0],
                yaxis=axes[1],
            )
        )
    return traces, unit


__all__ = [
    "MARGIN_BOTTOM",
    "MARGIN_LEFT",
    "MARGIN_RIGHT",
    "MARGIN_TOP",
    "PLOT_WIDTH",
    "PANEL_GAP",
    "SLIDER_FRAMES",
    "WIDTH",
    "Panels",
    "breakdown_traces",
    "cursor_shapes",
    "optimizer_shapes",
    "page_height",
    "panel_domains",
    "short_number",
    "time_slider",
]
