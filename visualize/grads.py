"""Gradient availability: when each layer's weight gradient for a step is complete.

One row per layer with parameters (layer 0 at the top). Faint grey ticks are the backward work
on the layer's stage; the light purple bar is the gradient accumulating over microbatches (from
the stage's first backward of the step); the diamond is the moment it is complete
(``Timeline.grad_ready``), solid purple after it until the optimizer step. With data parallelism
each layer's all-reduce is a blue bar. A bracket measures the gap between the first layer to
finish (the last layer of the model) and the last (the first layer): the time a backward-overlap
all-reduce or a per-layer optimizer could win back.

At scale (more than ``visualize.rows.GROUP_ABOVE`` layers with parameters, or ``expand=False``)
a row stands for a block with parameters (``B12 · 14 layers``; see ``visualize.rows``). Its
light bar runs from its stage's first backward until the last of its layers' gradients is
complete; the diamond marks that moment (the maximum of the layers' ready times), solid purple
after it until the optimizer step; its all-reduce bar spans its layers' all-reduces, from the
first start to the last end. ``expand=True`` keeps one row per layer however many there are.

The time axis spans what matters: the whole step while the gradients complete over much of it;
when they all complete in its last ``FOCUS_BELOW`` (a long pipeline of many microbatches, where
the backward of the last microbatch ends the step) the axis zooms on that stretch, the
accumulating bars running in from the left, and the title says so. ``window=`` overrides.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from simulator.timeline import PIPELINE_RULE, DependencyRule, Timeline, backward_kinds
from visualize.density import rectangles
from visualize.grads_data import GradRow, chart_rows, step_window
from visualize.rows import GROUP_ABOVE, Row, row_fontsize, row_points
from visualize.style import (
    ALLREDUCE_COLOR,
    GRAD_COLOR,
    OPTIMIZER_COLOR,
    fitted_legend,
    format_time,
    new_figure,
    run_title,
    set_time_axis,
    shade_optimizer_steps,
    wrap_title,
)
from visualize.window import TimeWindow

WIDTH = 11.0
FOCUS_BELOW = 0.25  # every gradient completing in the step's last quarter: zoom on them


def grads_figure(
    timeline: Timeline,
    step: int = 0,
    replica: int = 0,
    *,
    title: str | None = None,
    expand: bool | None = None,
    rule: DependencyRule = PIPELINE_RULE,
    window: TimeWindow | None = None,
) -> Figure:
    """Draw gradient availability for one step (see the module docstring); returns the Figure.
    ``expand``: None groups layers into blocks above ``GROUP_ABOVE`` rows, True never, False
    always. ``rule``: the dependency rule the run followed (which kinds are backward work).

    Artists carry ids: the diamond of each row ``gid="ready:{key}"``, the all-reduce bars
    ``gid="allreduce:{key}"``, the gap bracket's text ``gid="gap"``; ``key`` is the layer index
    of a layer row, ``B12`` for block 12 (``Row.key``).
    """
    rows = chart_rows(timeline, step, replica, expand, rule)
    start, end = step_window(timeline, step, replica)
    view, zoomed = _view(rows, start, end, window)
    unit = timeline.time_unit

    n = max(len(rows), 1)
    height = min(max(3.0, 1.9 + 0.42 * n), 14)
    fig = new_figure(WIDTH, height)
    ax = fig.add_subplot()
    optimizer = [o for o in timeline.optimizer if o.step == step]
    opt_start = optimizer[0].start if optimizer else end
    axes = height - 1.5  # inches the rows share, about
    size = row_fontsize(n, axes, 7.5)  # ready times and diamonds shrink only past ~90 rows
    pad = max(1.0, 30.0 / row_points(n, axes)) if n > GROUP_ABOVE else 1.0  # the gap's room

    work = _stage_backward(timeline, step, replica, rule)
    _draw_backward_work(ax, [work.get(g.stage, ()) for _row, g in rows], view)
    for position, (row, g) in enumerate(rows):
        _draw_gradient_bars(ax, row.key, g, position, opt_start, view.length)
        _mark_ready(ax, row.key, g, position, format_time(g.ready - start, unit), size)

    visible = [o for o in optimizer if o.end >= view.start and o.start <= view.end]
    shade_optimizer_steps(ax, visible, view.length, alpha=0.45, zorder=0.5, min_fraction=0.003)
    if len(rows) >= 2:
        _draw_gap_bracket(ax, rows, view.start, view.end, unit, pad)
    _style_axes(ax, timeline, rows, view, pad)
    if row_fontsize(n, axes, 10.0) < 10.0:  # below the default size only when rows crowd
        ax.tick_params(axis="y", labelsize=row_fontsize(n, axes, 10.0))
    heading = title or run_title(timeline, "Gradient availability")
    if timeline.meta.steps > 1:
        heading += f", step {step}"
    lines = [heading, "labels: time since the step started"]
    if window is not None:
        lines.append(window.note(unit))
    elif zoomed:
        lines.append(
            f"zoomed on the step's last {format_time(end - view.start, unit)}, where the "
            f"gradients complete; they accumulate from {format_time(start, unit)} "
            "(bars run in from the left)"
        )
    ax.set_title(wrap_title("\n".join(lines), WIDTH, 11), fontsize=11)
    _add_legend(fig, [g for _row, g in rows], visible)
    return fig


def _view(rows, start: float, end: float, window: TimeWindow | None):
    """(the time shown, whether it was zoomed): ``window`` if given; else the step, or, when
    every gradient completes in the step's last ``FOCUS_BELOW``, from a little before the first
    of them to the step's end."""
    if window is not None:
        return window, False
    length = (end - start) or 1.0
    whole = TimeWindow(start - length * 0.02, end + length * 0.02, "step")
    if not rows:
        return whole, False
    first = min(g.ready for _row, g in rows)
    focus = end - first
    if focus >= FOCUS_BELOW * length:
        return whole, False
    focus = max(focus, length * 1e-4)
    return TimeWindow(max(start, first - 0.35 * focus), end + 0.05 * focus, "completion"), True


def _stage_backward(
    timeline: Timeline, step: int, replica: int, rule: DependencyRule
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per stage, (starts, ends) of the step's B, W and I events there (the rule's
    ``backward_kinds``): the backward work feeding its gradients."""
    columns = timeline.events.columns()
    if not len(columns["start"]):
        return {}
    mine = (columns["step"] == step) & (columns["replica"] == replica)
    mine &= np.isin(columns["kind"], list(backward_kinds(rule)))
    stages = columns["stage"][mine]
    starts, ends = columns["start"][mine], columns["end"][mine]
    return {int(s): (starts[stages == s], ends[stages == s]) for s in np.unique(stages)}


def _draw_backward_work(ax, per_row: list, view: TimeWindow) -> None:
    """Faint grey ticks under each row, one per backward event on its stage (one artist)."""
    x0, x1, y0 = [], [], []
    for position, work in enumerate(per_row):
        if len(work):
            starts, ends = work
            inside = (ends >= view.start) & (starts <= view.end)
            x0.append(starts[inside])
            x1.append(ends[inside])
            y0.append(np.full(int(inside.sum()), position + 0.12))
    if not x0:
        return
    bottoms = np.concatenate(y0)
    rectangles(
        ax,
        np.concatenate(x0),
        np.concatenate(x1),
        bottoms,
        bottoms + 0.22,
        facecolor="#BDBDBD",
        edgecolor="none",
        zorder=1,
        gid="backward-work",
    )


def _draw_gradient_bars(
    ax, key: str, row: GradRow, position: int, opt_start: float, window: float
) -> None:
    """The light (accumulating) and solid (ready) purple bars, and the all-reduce bar if any."""
    ax.add_patch(
        Rectangle(
            (row.first_backward, position - 0.3),
            row.ready - row.first_backward,
            0.42,
            facecolor=GRAD_COLOR,
            alpha=0.22,
            edgecolor="none",
            zorder=2,
        )
    )
    after = max(opt_start - row.ready, 0.0)
    ax.add_patch(
        Rectangle(
            (row.ready, position - 0.3),
            after,
            0.42,
            facecolor=GRAD_COLOR,
            edgecolor="none",
            zorder=2,
        )
    )
    if row.allreduce:
        a0, a1 = row.allreduce
        ax.add_patch(
            Rectangle(
                (a0, position + 0.12),
                max(a1 - a0, window * 0.003),
                0.22,
                facecolor=ALLREDUCE_COLOR,
                edgecolor="none",
                zorder=3,
                gid=f"allreduce:{key}",
            )
        )


def _mark_ready(ax, key: str, row: GradRow, position: int, label: str, size: float) -> None:
    """The diamond at the moment the gradient is complete, labelled with ``label`` in ``size``
    points (7.5 unless rows crowd); the diamond no bigger than the label."""
    ax.plot(
        [row.ready],
        [position - 0.09],
        marker="D",
        color=GRAD_COLOR,
        markersize=min(size, 7),
        markeredgecolor="white",
        zorder=4,
        gid=f"ready:{key}",
    )
    ax.annotate(
        label,
        xy=(row.ready, position - 0.09),
        xytext=(-min(size, 7), 0),
        textcoords="offset points",
        ha="right",
        va="center",
        fontsize=size,
        color="#3A1F5D",
        zorder=5,
    )


def _draw_gap_bracket(
    ax, rows: list[tuple[Row, GradRow]], start: float, end: float, unit: str, pad: float
) -> None:
    """The bracket below the rows from the first gradient ready to the last, with its text;
    ``pad`` scales its distances (in rows) where rows are thinner than usual."""
    window = (end - start) or 1.0
    first_row, earliest = min(rows, key=lambda r: r[1].ready)
    last_row, latest = max(rows, key=lambda r: r[1].ready)
    gap = latest.ready - earliest.ready
    y = len(rows) - 0.5 + 0.35 * pad
    ax.annotate(
        "",
        xy=(latest.ready, y),
        xytext=(earliest.ready, y),
        arrowprops={
            "arrowstyle": "<|-|>",
            "color": "#3A1F5D",
            "lw": 1.0,
            "shrinkA": 0,
            "shrinkB": 0,
            "mutation_scale": 8,
        },
    )
    for x in (earliest.ready, latest.ready):
        ax.plot([x, x], [y, y - 0.3 * pad], color="#3A1F5D", lw=0.6, ls=":")
    middle = (earliest.ready + latest.ready) / 2
    near_left = middle - start < 0.3 * window
    near_right = end - middle < 0.3 * window
    x_text = earliest.ready if near_left else latest.ready if near_right else middle
    what = "gradient is" if len(first_row.layers) == 1 else "gradients are"
    ax.text(
        x_text,
        y + 0.12 * pad,
        f"{first_row.name}'s {what} ready {format_time(gap, unit)} before {last_row.name}'s",
        ha="left" if near_left else "right" if near_right else "center",
        va="top",
        fontsize=8.5,
        color="#3A1F5D",
        gid="gap",
    )


def _style_axes(
    ax, timeline: Timeline, rows: list[tuple[Row, GradRow]], view: TimeWindow, pad: float
) -> None:
    """Limits around the view, one labelled row per layer (or block), the time axis, grid."""
    ax.set_xlim(view.start, view.end)
    ax.set_ylim(len(rows) - 0.5 + 0.75 * pad, -0.6)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([row.label for row, _g in rows])
    ax.tick_params(axis="y", length=0)
    for side in ("right", "top"):
        ax.spines[side].set_visible(False)
    set_time_axis(ax, timeline, max(abs(view.start), abs(view.end)) or 1.0)
    ax.grid(axis="x", color="#E6E6E6", lw=0.6, zorder=0)
    ax.set_axisbelow(True)


def _add_legend(fig: Figure, rows: list[GradRow], optimizer: list) -> None:
    """The legend below the chart; all-reduce and optimizer entries only when drawn."""
    handles = [
        Patch(facecolor="#BDBDBD", label="backward on the layer's stage"),
        Patch(facecolor=GRAD_COLOR, alpha=0.22, label="gradient accumulating"),
        Line2D(
            [],
            [],
            marker="D",
            color=GRAD_COLOR,
            ls="",
            markeredgecolor="white",
            markersize=7,
            label="complete (grad_ready)",
        ),
        Patch(facecolor=GRAD_COLOR, label="ready, waiting for optimizer"),
    ]
    if any(r.allreduce for r in rows):
        handles.append(Patch(facecolor=ALLREDUCE_COLOR, label="all-reduce"))
    if optimizer:
        handles.append(Patch(facecolor=OPTIMIZER_COLOR, alpha=0.45, label="optimizer step"))
    fitted_legend(fig, handles)


__all__ = ["grads_figure"]
