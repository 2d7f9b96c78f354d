"""Predicted vs measured: two Timelines of one configuration on one pipeline chart.

Each rank gets two thin lanes: the prediction (outlined, hatched) above the measurement
(filled), on one time axis, so a box that drifts right is an action the model thought would run
earlier. Both runs are shifted to start at their first compute event. The title gives both
makespans and the relative error of the prediction. If the two Timelines use different time units
(unit costs against seconds) each is drawn as a fraction of its own makespan.
"""

from __future__ import annotations

from typing import NamedTuple

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from simulator.errors import PebbleError
from simulator.timeline import Timeline
from visualize.pipeline import Box, box_color, draw_boxes, kind_handles, pipeline_boxes
from visualize.style import (
    LANE_EDGE,
    format_time,
    new_figure,
    run_title,
    set_time_axis,
)

LANE = 0.4  # height of one sub-lane; a rank's two sub-lanes sit at rank -/+ 0.21


class MakespanError(NamedTuple):
    predicted: float
    measured: float
    error: float  # (predicted - measured) / measured

    def text(self, unit: str = "s") -> str:
        """``predicted 1.23 s, measured 1.30 s, error 5.4% (under)``."""
        side = "under" if self.error < 0 else "over"
        return (
            f"predicted {format_time(self.predicted, unit)}, measured "
            f"{format_time(self.measured, unit)}, error {abs(self.error) * 100:.1f}% ({side})"
        )


def makespan_error(predicted: Timeline, measured: Timeline) -> MakespanError:
    """Both makespans (``Timeline.summary``) and the prediction's relative error."""
    p = predicted.summary().makespan
    m = measured.summary().makespan
    return MakespanError(p, m, (p - m) / m if m else 0.0)


def _check_same_configuration(predicted: Timeline, measured: Timeline) -> None:
    for key in ("schedule", "ranks", "microbatches", "stages", "steps"):
        a, b = getattr(predicted.meta, key), getattr(measured.meta, key)
        if a is not None and b is not None and a != b:
            raise PebbleError(
                f"these Timelines are not the same configuration: {key} {a} (predicted) "
                f"vs {b} (measured)."
            )


def _origin(timeline: Timeline, replica: int) -> float:
    return min((e.start for e in timeline.events if e.replica == replica), default=0.0)


def _placed_boxes(timeline: Timeline, replica: int, scale: float) -> list[Box]:
    """The run's boxes shifted to start at its first event, times multiplied by ``scale``."""
    origin = _origin(timeline, replica)
    return [
        b._replace(start=(b.start - origin) * scale, end=(b.end - origin) * scale)
        for b in pipeline_boxes(timeline, replica)
    ]


def overlay_figure(
    predicted: Timeline,
    measured: Timeline,
    replica: int = 0,
    *,
    title: str | None = None,
) -> Figure:
    """Draw predicted and measured on one chart; returns the Figure.

    Boxes carry ``gid="predicted:{rank}:{label}:{step}"`` and ``gid="measured:..."``.
    Raises PebbleError if the Timelines are not the same configuration.
    """
    _check_same_configuration(predicted, measured)
    same_unit = predicted.time_unit == measured.time_unit
    error = makespan_error(predicted, measured)
    ranks = max(predicted.num_ranks, measured.num_ranks)

    pred_scale = 1.0 if same_unit else 1.0 / (error.predicted or 1.0)
    meas_scale = 1.0 if same_unit else 1.0 / (error.measured or 1.0)
    pred_boxes = _placed_boxes(predicted, replica, pred_scale)
    meas_boxes = _placed_boxes(measured, replica, meas_scale)
    span = max((b.end for b in pred_boxes + meas_boxes), default=1.0) or 1.0
    if same_unit:
        span = max(span, error.predicted, error.measured)
    x_max = span * 1.03

    width = 11.0
    height = min(max(3.0, 1.7 + 0.62 * ranks), 15)
    fig = new_figure(width, height)
    ax = fig.add_subplot()
    axes_points = width * 72 * 0.8
    lane_points = height * 72 * 0.62 / ranks * LANE
    fontsize = max(5.0, min(7.5, lane_points * 0.6))

    _draw_lanes(ax, ranks, span / x_max)
    for boxes, name, lane_offset in (
        (pred_boxes, "predicted", -0.21),
        (meas_boxes, "measured", 0.21),
    ):
        draw_boxes(
            ax,
            boxes,
            x_range=x_max,
            axes_points=axes_points,
            fontsize=fontsize,
            y_of=lambda b, lane_offset=lane_offset: b.rank + lane_offset,
            height=LANE,
            filled=name == "measured",
            gid_prefix=name,
        )
    if same_unit:
        for end, style in ((error.predicted, "--"), (error.measured, "-")):
            ax.axvline(end, color="#333333", lw=0.9, ls=style, zorder=4)

    ax.set_xlim(0, x_max)
    _label_lanes(ax, ranks)
    unit_text = _time_axis_and_error(ax, predicted, measured, error, span)
    ax.grid(axis="x", color="#E6E6E6", lw=0.6, zorder=0)
    ax.set_axisbelow(True)
    heading = title or run_title(measured, "Predicted vs measured")
    ax.set_title(f"{heading}\n{unit_text}", fontsize=11)
    _add_legend(fig, {b.kind for b in pred_boxes + meas_boxes}, measured.meta.chunks, same_unit)
    return fig


def _draw_lanes(ax, ranks: int, x_fraction: float) -> None:
    """Two empty white sub-lanes per rank, ``x_fraction`` of the axes wide."""
    for rank in range(ranks):
        for y in (rank - 0.21, rank + 0.21):
            ax.axhspan(
                y - LANE / 2,
                y + LANE / 2,
                xmin=0,
                xmax=x_fraction,
                facecolor="white",
                edgecolor=LANE_EDGE,
                lw=0.5,
                zorder=1,
            )


def _label_lanes(ax, ranks: int) -> None:
    """Rank 0 at the top, a ``rank r predicted`` / ``rank r measured`` label per sub-lane."""
    ax.set_ylim(ranks - 0.5, -0.5)
    ticks, labels = [], []
    for rank in range(ranks):
        ticks += [rank - 0.21, rank + 0.21]
        labels += [f"rank {rank} predicted", f"rank {rank} measured"]
    ax.set_yticks(ticks)
    ax.set_yticklabels(labels, fontsize=8)
    ax.tick_params(axis="y", length=0)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)


def _time_axis_and_error(
    ax, predicted: Timeline, measured: Timeline, error: MakespanError, span: float
) -> str:
    """Label the x axis (time, or fractions of each makespan); returns the error line."""
    if predicted.time_unit == measured.time_unit:
        set_time_axis(ax, predicted.time_unit, span)
        return error.text(predicted.time_unit)
    ax.set_xlabel("time (fraction of each run's makespan)")
    return (
        f"predicted {format_time(error.predicted, predicted.time_unit)}, measured "
        f"{format_time(error.measured, measured.time_unit)} (different units: "
        "each drawn against its own makespan)"
    )


def _add_legend(fig: Figure, kinds: set[str], chunks: int, same_unit: bool) -> None:
    """The kinds, how each run is drawn, and the makespan lines when they are drawn."""
    handles = kind_handles(kinds, chunks)
    some = sorted(kinds)[0] if kinds else "F"
    handles.append(
        Patch(
            facecolor=(*box_color(some), 0.18),
            edgecolor=box_color(some),
            hatch="////",
            label="predicted (outline)",
        )
    )
    handles.append(
        Patch(
            facecolor=box_color(some), edgecolor="#303030", linewidth=0.4, label="measured (filled)"
        )
    )
    if same_unit:
        handles.append(Line2D([], [], color="#333333", ls="--", lw=0.9, label="predicted end"))
        handles.append(Line2D([], [], color="#333333", ls="-", lw=0.9, label="measured end"))
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncol=min(len(handles), 7),
        frameon=False,
        fontsize=8.5,
    )


__all__ = ["MakespanError", "makespan_error", "overlay_figure"]
