"""The pipeline chart: what every rank computes when, with real durations.

One lane per rank (rank 0 at the top), time left to right. Each compute event is one box:
``F`` forward, ``B`` full backward, ``I`` input-gradient and ``W`` weight-gradient backward (any
kind of the dependency rule, labelled and coloured as its ``KindRule.display`` says), in
Okabe-Ito colours, with the microbatch number inside when it fits. White is idle time: the
bubble. Optimizer steps are grey columns; communication can be drawn as arrows (off by default).
With data parallelism replica 0 is shown unless asked for another (or ``replica=None`` for all).

With activation recomputation each recompute sub-span is a hatched ``R`` box drawn inside the
backward (``I`` or ``B``) that contains it: recomputation is part of that action, not an action.

``visualize.pipeline_data.pipeline_boxes`` lists exactly the boxes the figure draws, one per
compute event, and ``recompute_boxes`` the ``R`` boxes.
"""

from __future__ import annotations

from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.patheffects import withStroke

from simulator.timeline import PIPELINE_RULE, DependencyRule, Timeline, forward_kinds
from visualize.pipeline_data import Box, pipeline_boxes, recompute_boxes
from visualize.recompute import draw_recompute_boxes, hatched_patch
from visualize.style import (
    LANE_EDGE,
    OPTIMIZER_COLOR,
    format_time,
    kind_color,
    kind_name,
    new_figure,
    run_title,
    set_time_axis,
    shade_optimizer_steps,
    time_span,
)

BOX = 0.8  # box height within a lane of height 1


def box_color(kind: str, chunk: int = 0, rule: DependencyRule = PIPELINE_RULE):
    """The kind's colour (``style.kind_color``), lighter for each later chunk of an
    interleaved schedule."""
    rgb = to_rgb(kind_color(kind, rule))
    mix = min(0.45 * chunk, 0.7)
    return tuple(c + (1 - c) * mix for c in rgb)


def label_fontsize(
    widths_points: list[float], digits: int, largest: float, smallest: float = 5.5
) -> float:
    """One font size for every microbatch number in a chart: as large as ``largest`` but small
    enough that a ``digits``-wide number fits every box that can hold one at ``smallest``."""
    needed = [(w - 2) / (0.62 * digits) for w in widths_points]
    usable = [n for n in needed if n >= smallest]
    return max(smallest, min([largest, *usable]))


def label_fits(width_points: float, digits: int, fontsize: float) -> bool:
    """Whether a ``digits``-wide number at ``fontsize`` fits a box ``width_points`` wide. Every
    box is judged by the widest number of the chart, so equal boxes are labelled alike."""
    return width_points >= 0.62 * fontsize * digits + 2


def draw_boxes(
    ax,
    boxes: list[Box],
    *,
    x_range: float,
    axes_points: float,
    fontsize: float,
    y_of=None,
    height: float = BOX,
    filled: bool = True,
    show_labels: bool = True,
    gid_prefix: str = "box",
    rule: DependencyRule = PIPELINE_RULE,
) -> list[Rectangle]:
    """Add one Rectangle per box (``gid="{prefix}:{row}:{label}:{step}"``); ``y_of(box)`` gives
    the lane centre (default: the box's row). Outlined, hatched boxes when not ``filled``."""
    y_of = y_of or (lambda b: b.row)
    patches = []
    thin = axes_points / max(x_range, 1e-300)  # points per time unit
    digits = len(str(max((b.microbatch for b in boxes), default=0)))
    fontsize = label_fontsize([(b.end - b.start) * thin for b in boxes], digits, fontsize)
    for b in boxes:
        colour = box_color(b.kind, b.chunk, rule)
        tiny = (b.end - b.start) * thin < 3
        if filled:
            style = {
                "facecolor": colour,
                "edgecolor": "none" if tiny else "#303030",
                "linewidth": 0.4,
            }
        else:
            style = {
                "facecolor": (*colour, 0.18),
                "edgecolor": colour,
                "linewidth": 1.1,
                "hatch": None if tiny else "////",
            }
        rect = Rectangle(
            (b.start, y_of(b) - height / 2),
            b.end - b.start,
            height,
            zorder=2,
            gid=f"{gid_prefix}:{b.row}:{b.label}:{b.step}",
            **style,
        )
        ax.add_patch(rect)
        patches.append(rect)
        text = str(b.microbatch)
        if show_labels and label_fits((b.end - b.start) * thin, digits, fontsize):
            ax.text(
                (b.start + b.end) / 2,
                y_of(b),
                text,
                ha="center",
                va="center",
                fontsize=fontsize,
                zorder=3,
                color="#1A1A1A",
                clip_on=True,
            )
    return patches


def kind_handles(kinds, chunks: int = 1, rule: DependencyRule = PIPELINE_RULE) -> list[Patch]:
    """Legend entries for the rule's kinds present, in the rule's order (F, B, I, W), each
    with its display's label and colour."""
    handles = [
        Patch(
            facecolor=kind_color(k, rule),
            edgecolor="#303030",
            linewidth=0.4,
            label=kind_name(k, rule),
        )
        for k in rule.kinds
        if k in kinds
    ]
    if chunks > 1:
        handles.append(
            Patch(
                facecolor=box_color(forward_kinds(rule)[0], 1, rule),
                edgecolor="#303030",
                linewidth=0.4,
                label="lighter: later chunk",
            )
        )
    return handles


def pipeline_figure(
    timeline: Timeline,
    replica: int | None = 0,
    *,
    comms: bool = False,
    title: str | None = None,
    rule: DependencyRule = PIPELINE_RULE,
) -> Figure:
    """Draw the pipeline chart (see the module docstring); returns the Figure. ``rule``: the
    dependency rule the run followed, whose kinds' displays label and colour the boxes.

    Boxes carry ``gid="box:{row}:{stage}{kind}{mb}:{step}"``, one per ``pipeline_boxes`` entry,
    and recompute sub-spans ``gid="recompute:{row}:{stage}R{mb}:{step}"``, one per
    ``recompute_boxes`` entry.
    """
    boxes = pipeline_boxes(timeline, replica)
    ranks = timeline.num_ranks
    dp = timeline.meta.dp
    rows = ranks * dp if replica is None else ranks
    span = time_span(timeline) or 1.0
    x_max = span * 1.02

    width = 11.0
    height = min(max(2.6, 1.55 + 0.42 * rows), 14)
    fig = new_figure(width, height)
    ax = fig.add_subplot()
    axes_points = width * 72 * 0.86
    lane_points = height * 72 * 0.62 / rows
    fontsize = max(5.0, min(8.0, lane_points * BOX * 0.55))

    _draw_lanes(ax, rows, span)
    shade_optimizer_steps(ax, timeline.optimizer, span, alpha=0.45, zorder=1.5)
    draw_boxes(ax, boxes, x_range=x_max, axes_points=axes_points, fontsize=fontsize, rule=rule)
    recompute = recompute_boxes(timeline, replica)
    draw_recompute_boxes(ax, recompute, height=BOX * 0.8, least=1.5 * x_max / axes_points)
    for text in ax.texts if recompute else ():  # microbatch numbers stay legible over hatching
        text.set_path_effects([withStroke(linewidth=2.5, foreground="white")])
    if comms:
        _draw_comms(ax, timeline, replica)

    ax.set_xlim(0, x_max)
    _label_lanes(ax, rows, ranks, all_replicas=replica is None and dp > 1)
    set_time_axis(ax, timeline, span)
    ax.grid(axis="x", color="#E6E6E6", lw=0.6, zorder=0)
    ax.set_axisbelow(True)
    _set_title(ax, timeline, replica, title)
    drawn = {b.kind for b in boxes} | {b.kind for b in recompute}
    _add_legend(fig, timeline, drawn, comms, rule)
    return fig


def _draw_lanes(ax, rows: int, span: float) -> None:
    """One empty white lane per row: white is idle."""
    for row in range(rows):
        ax.add_patch(
            Rectangle(
                (0, row - BOX / 2),
                span,
                BOX,
                facecolor="white",
                edgecolor=LANE_EDGE,
                linewidth=0.6,
                zorder=1,
            )
        )


def _draw_comms(ax, timeline: Timeline, replica: int | None) -> None:
    """One arrow per transfer, from the sender's lane edge to the receiver's."""
    ranks = timeline.num_ranks
    for c in timeline.comms:
        if replica is not None and c.replica != replica:
            continue
        offset = 0 if replica is not None else c.replica * ranks
        src, dst = c.src_rank + offset, c.dst_rank + offset
        sign = 1 if dst > src else -1
        ax.annotate(
            "",
            xy=(c.end, dst - sign * BOX / 2),
            xytext=(c.start, src + sign * BOX / 2),
            arrowprops={
                "arrowstyle": "-|>",
                "color": "#555555",
                "lw": 0.6,
                "mutation_scale": 6,
                "shrinkA": 0,
                "shrinkB": 0,
            },
            zorder=4,
        )


def _label_lanes(ax, rows: int, ranks: int, *, all_replicas: bool) -> None:
    """Rank 0 at the top, one label per lane (``replica r · rank k`` when stacked)."""
    ax.set_ylim(rows - 0.5, -0.5)
    ax.set_yticks(range(rows))
    if all_replicas:
        labels = [f"replica {r // ranks} · rank {r % ranks}" for r in range(rows)]
    else:
        labels = [f"rank {r}" for r in range(rows)]
    ax.set_yticklabels(labels)
    ax.tick_params(axis="y", length=0)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)


def _set_title(ax, timeline: Timeline, replica: int | None, title: str | None) -> None:
    """The run, then its makespan and bubble share."""
    summary = timeline.summary()
    heading = title or run_title(timeline, "Pipeline chart")
    if timeline.meta.dp > 1 and replica is not None:
        heading += f", replica {replica}"
    ax.set_title(
        f"{heading}\nmakespan {format_time(summary.makespan, timeline.time_unit)} · "
        f"bubble {summary.bubble_fraction * 100:.1f}% (idle share of ranks × makespan)",
        fontsize=11,
    )


def _add_legend(
    fig: Figure, timeline: Timeline, kinds: set[str], comms: bool, rule: DependencyRule
) -> None:
    """The kinds drawn, idle, and the optimizer and transfer entries when shown."""
    handles = kind_handles(kinds, timeline.meta.chunks, rule)
    if "R" in kinds:
        handles.append(hatched_patch("R (recompute) inside its backward"))
    handles.append(Patch(facecolor="white", edgecolor=LANE_EDGE, label="idle (bubble)"))
    if timeline.optimizer:
        handles.append(Patch(facecolor=OPTIMIZER_COLOR, alpha=0.45, label="optimizer step"))
    if comms:
        handles.append(
            Line2D([], [], color="#555555", lw=0.8, marker=">", markersize=4, label="transfer")
        )
    fig.legend(
        handles=handles, loc="outside lower center", ncol=len(handles), frameon=False, fontsize=8.5
    )


__all__ = ["box_color", "draw_boxes", "pipeline_figure"]
