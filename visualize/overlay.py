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
from visualize.gap import compared_span, draw_gap, step_overhead, warmup_extra
from visualize.pipeline import box_color, draw_boxes, kind_handles
from visualize.pipeline_data import Box, pipeline_boxes
from visualize.style import (
    LANE_EDGE,
    format_time,
    new_figure,
    run_title,
    set_time_axis,
)

LANE = 0.4  # height of one sub-lane; a rank's two sub-lanes sit at rank -/+ 0.21
WARMUP_SHADE = "#EDEDED"


class MakespanError(NamedTuple):
    predicted: float
    measured: float
    error: float  # (predicted - measured) / measured
    first_step: int = 0  # compared from this step on (1: step 0, the warm-up, left out)
    steps: int = 1

    def text(self, unit: str = "s") -> str:
        """``predicted 1.23 s, measured 1.30 s, error 5.4% (under)``, after ``steps 1-3:``
        when step 0 is left out."""
        side = "under" if self.error < 0 else "over"
        body = (
            f"predicted {format_time(self.predicted, unit)}, measured "
            f"{format_time(self.measured, unit)}, error {abs(self.error) * 100:.1f}% ({side})"
        )
        if not self.first_step:
            return body
        last = self.steps - 1
        which = f"step {last}" if last == self.first_step else f"steps {self.first_step}-{last}"
        return f"{which}: {body}"


BUSY_CORES = 0.1  # other processes' load, in cores, from which a run's machine counts as busy


def busy_machine_text(
    outside_load: float, cores: int | None, quiet: MakespanError | None, unit: str = "s"
) -> str | None:
    """The caption's line when other processes kept the machine busy during the compared
    steps (``outside_load`` cores of ``cores``), with the prediction for a quiet machine
    (``quiet``: that prediction's error against the same measurement); None on a quiet one."""
    if outside_load < BUSY_CORES:
        return None
    of = f" of its {cores}" if cores else ""
    text = (
        f"the machine was busy: other processes used {outside_load:.2f}{of} cores during the "
        "compared steps, which the prediction charges"
    )
    if quiet is None:
        return text
    side = "under" if quiet.error < 0 else "over"
    return (
        f"{text}; on a quiet machine it would predict {format_time(quiet.predicted, unit)} "
        f"({abs(quiet.error) * 100:.1f}% {side} this run)"
    )


def makespan_error(
    predicted: Timeline, measured: Timeline, skip_warmup: bool = True
) -> MakespanError:
    """Both runs' spans and the prediction's relative error. With several steps and
    ``skip_warmup`` (the default) the spans start at step 1: step 0's warm-up (first calls,
    first optimizer step) is measured, not modelled, so it is left out of the comparison; the
    steps after it, and the overhead between them, are compared. With one step, or without
    ``skip_warmup``, the spans are the makespans (``Timeline.summary``)."""
    steps = min(predicted.meta.steps, measured.meta.steps)
    first = 1 if skip_warmup and steps > 1 else 0
    (p0, p1), (m0, m1) = compared_span(predicted, first), compared_span(measured, first)
    p, m = p1 - p0, m1 - m0
    return MakespanError(p, m, (p - m) / m if m else 0.0, first, steps)


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
    machine: str | None = None,
) -> Figure:
    """Draw predicted and measured on one chart; returns the Figure.

    ``machine``: a line on the machine the run had (``busy_machine_text``), under the title.
    Boxes carry ``gid="predicted:{rank}:{label}:{step}"`` and ``gid="measured:..."``. When both
    runs share a time unit a lower panel (``gap.draw_gap``) shows per rank where the measured
    time went beyond the prediction. Raises PebbleError if the Timelines are not the same
    configuration.
    """
    _check_same_configuration(predicted, measured)
    same_unit = predicted.time_unit == measured.time_unit
    error = makespan_error(predicted, measured)
    ends = predicted.summary().makespan, measured.summary().makespan
    ranks = max(predicted.num_ranks, measured.num_ranks)

    pred_scale = 1.0 if same_unit else 1.0 / (ends[0] or 1.0)
    meas_scale = 1.0 if same_unit else 1.0 / (ends[1] or 1.0)
    pred_boxes = _placed_boxes(predicted, replica, pred_scale)
    meas_boxes = _placed_boxes(measured, replica, meas_scale)
    span = max((b.end for b in pred_boxes + meas_boxes), default=1.0) or 1.0
    if same_unit:
        span = max(span, *ends)
    x_max = span * 1.03

    width = 11.0
    chart = min(max(3.0, 1.7 + 0.62 * ranks), 15)
    panel = min(max(1.6, 0.9 + 0.3 * ranks), 6) if same_unit else 0.0
    fig = new_figure(width, chart + panel)
    grid = fig.add_gridspec(2 if panel else 1, 1, height_ratios=[chart, panel] if panel else [1])
    ax = fig.add_subplot(grid[0])
    axes_points = width * 72 * 0.8
    lane_points = chart * 72 * 0.62 / ranks * LANE
    fontsize = max(5.0, min(7.5, lane_points * 0.6))

    _draw_lanes(ax, ranks, span / x_max)
    warmup = error.first_step and same_unit
    if warmup:  # step 0 of each run, left out of the error: its sub-lanes greyed
        for timeline, offset in ((predicted, -0.21), (measured, 0.21)):
            step_one = compared_span(timeline, 1)[0] - _origin(timeline, replica)
            _draw_lanes(ax, ranks, step_one / x_max, offset, WARMUP_SHADE)
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
        for end, style in zip(ends, ("--", "-"), strict=True):
            ax.axvline(end, color="#333333", lw=0.9, ls=style, zorder=4)

    ax.set_xlim(0, x_max)
    _label_lanes(ax, ranks)
    unit_text = _time_axis_and_error(ax, predicted, measured, error, span)
    ax.grid(axis="x", color="#E6E6E6", lw=0.6, zorder=0)
    ax.set_axisbelow(True)
    lines = [title or run_title(measured, "Predicted vs measured"), unit_text]
    lines += [*_choices(predicted, measured, error), *_machine_lines(machine)]
    ax.set_title("\n".join(lines), fontsize=11 if len(lines) < 3 else 10)
    if panel:
        draw_gap(fig.add_subplot(grid[1]), predicted, measured, error.first_step)
    _add_legend(
        fig, {b.kind for b in pred_boxes + meas_boxes}, measured.meta.chunks, same_unit, warmup
    )
    return fig


def _machine_lines(machine: str | None) -> list[str]:
    """A busy machine, said plainly (``busy_machine_text``), one clause a line."""
    return [part[0].upper() + part[1:] for part in (machine or "").split("; ") if part]


def _choices(predicted: Timeline, measured: Timeline, error: MakespanError) -> list[str]:
    """The title's line on what the prediction models and what the error leaves out."""
    if predicted.time_unit != measured.time_unit or measured.meta.steps < 2:
        return []
    unit = measured.time_unit
    overhead = step_overhead(predicted)
    parts = [
        f"step overhead (commit, optimizer) modelled: {format_time(overhead, unit)} a step"
        if overhead
        else "step overhead not modelled"
    ]
    if error.first_step:
        extra = warmup_extra(measured)
        more = f", {format_time(extra, unit)} longer" if extra is not None and extra > 0 else ""
        parts.append(f"step 0 (warm-up{more}) excluded from the error")
    cores = predicted.meta.cores
    parts.append(f"{cores} shared cores" if cores else "a device per rank")
    return [" · ".join(parts)]


def _draw_lanes(
    ax, ranks: int, x_fraction: float, offset: float | None = None, colour: str = "white"
) -> None:
    """Empty sub-lanes ``x_fraction`` of the axes wide: both of each rank, or the one at
    ``offset`` (-0.21: predicted, 0.21: measured)."""
    for rank in range(ranks):
        for y in (rank - 0.21, rank + 0.21) if offset is None else (rank + offset,):
            ax.axhspan(
                y - LANE / 2,
                y + LANE / 2,
                xmin=0,
                xmax=x_fraction,
                facecolor=colour,
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


def _add_legend(
    fig: Figure, kinds: set[str], chunks: int, same_unit: bool, warmup: bool = False
) -> None:
    """The kinds, how each run is drawn, the makespan lines when they are drawn, and the
    warm-up shade when step 0 is left out of the error."""
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
    if warmup:
        handles.append(
            Patch(facecolor=WARMUP_SHADE, edgecolor=LANE_EDGE, label="step 0: warm-up, not timed")
        )
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncol=len(handles) if len(handles) <= 6 else (len(handles) + 1) // 2,
        frameon=False,
        fontsize=8.5,
    )


__all__ = ["MakespanError", "makespan_error", "overlay_figure"]
