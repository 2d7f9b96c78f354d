"""The pipeline chart: what every rank computes when, with real durations.

One lane per rank (rank 0 at the top), time left to right. Each compute event is one box:
``F`` forward, ``B`` full backward, ``I`` input-gradient and ``W`` weight-gradient backward (any
kind of the dependency rule, labelled and coloured as its ``KindRule.display`` says), in
Okabe-Ito colours, with the microbatch number inside when it fits. White is idle time: the
bubble. Optimizer steps are grey columns; with data parallelism each rank's gradient all-reduces
are a blue strip under its lane; point-to-point transfers can be drawn as arrows (off by
default). With data parallelism replica 0 is shown unless asked for another (or
``replica=None`` for all).

With activation recomputation each recompute sub-span is a hatched ``R`` box drawn inside the
backward (``I`` or ``B``) that contains it: recomputation is part of that action, not an action.

At scale the boxes are thinner than a pixel and one artist each would be slow, huge in an SVG
and a solid band to the eye. So when the median box is under ``AGGREGATE_BELOW`` points wide
the lanes are **aggregated**: one image whose every pixel column mixes the kinds' colours by the
share of its time they ran (``visualize.density``), white for idle, and the title says so. A
chart of the whole run whose boxes are too thin to number adds two panels below, the warm-up
and the cool-down zoomed (``visualize.window``), so the pipeline's fill and drain stay visible.
``window=`` draws any stretch of time instead (``--window``).

``visualize.pipeline_data.pipeline_boxes`` lists exactly the boxes the figure draws, one per
compute event, and ``recompute_boxes`` the ``R`` boxes.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.patheffects import withStroke

from simulator.errors import PebbleError
from simulator.timeline import PIPELINE_RULE, DependencyRule, Timeline
from visualize.boxes import BOX, box_color, draw_boxes, kind_handles
from visualize.copies import copy_handles, copy_spans, draw_copy_lanes, has_copy_lanes
from visualize.density import COLUMNS, blend, occupancy
from visualize.pipeline_data import Box, pipeline_boxes, recompute_boxes
from visualize.pipeline_lanes import draw_lanes, label_lanes
from visualize.recompute import draw_recompute_boxes, hatched_patch
from visualize.style import (
    ALLREDUCE_COLOR,
    LANE_EDGE,
    OPTIMIZER_COLOR,
    fitted_legend,
    format_time,
    layer_info,
    new_figure,
    run_title,
    set_time_axis,
    shade_optimizer_steps,
    time_span,
    wrap_title,
)
from visualize.window import TimeWindow, parse_window

AGGREGATE_BELOW = 2.0  # points: a median box narrower than this and the lanes are aggregated
ZOOM_BELOW = 6.0  # points: boxes narrower than this (too thin to number) add the zoom panels
WIDTH = 11.0


def pipeline_figure(
    timeline: Timeline,
    replica: int | None = 0,
    *,
    comms: bool = False,
    title: str | None = None,
    rule: DependencyRule = PIPELINE_RULE,
    window: TimeWindow | None = None,
) -> Figure:
    """Draw the pipeline chart (see the module docstring); returns the Figure. ``rule``: the
    dependency rule the run followed, whose kinds' displays label and colour the boxes.
    ``window``: the stretch of time to draw (None: the whole run).

    Boxes carry ``gid="box:{row}:{stage}{kind}{mb}:{step}"``, one per ``pipeline_boxes`` entry
    in the window, and recompute sub-spans ``gid="recompute:{row}:{stage}R{mb}:{step}"``, one
    per ``recompute_boxes`` entry; aggregated lanes are one image, ``gid="aggregate"``.
    """
    boxes = pipeline_boxes(timeline, replica)
    recompute = recompute_boxes(timeline, replica)
    copies = copy_spans(timeline, replica) if has_copy_lanes(timeline, replica) else []
    if copies:  # each rank's compute lane, then its copy lane
        boxes = [b._replace(row=2 * b.row) for b in boxes]
        recompute = [b._replace(row=2 * b.row) for b in recompute]
    ranks, dp = timeline.num_ranks, timeline.meta.dp
    rows = (ranks * dp if replica is None else ranks) * (2 if copies else 1)
    span = time_span(timeline) or 1.0
    view = window or TimeWindow(0.0, span * 1.02, "whole run")
    zooms = _zoom_windows(timeline, boxes, view) if window is None else []

    lanes = min(max(1.0, 0.42 * rows), 9.0 if zooms else 12.0)
    panel = min(max(1.0, 0.2 * rows), 4.5)
    height = 1.7 + lanes + (panel + 0.9 if zooms else 0.0)
    fig = new_figure(WIDTH, height)
    if zooms:
        grid = fig.add_gridspec(2, len(zooms), height_ratios=[lanes, panel])
        ax = fig.add_subplot(grid[0, :])
        panels = [fig.add_subplot(grid[1, i]) for i in range(len(zooms))]
    else:
        ax, panels = fig.add_subplot(), []
    sizes = {"lane_inches": lanes, "rule": rule, "comms": comms, "replica": replica}
    sizes["copies"] = copies
    drawn, aggregated = _draw_chart(ax, timeline, boxes, recompute, view, WIDTH * 0.86, **sizes)
    for zoom, sub in zip(zooms, panels, strict=True):
        _outline_zoom(ax, zoom)
        sizes["lane_inches"] = panel
        more, dense = _draw_chart(
            sub, timeline, boxes, recompute, zoom, WIDTH * 0.86 / len(zooms), **sizes
        )
        drawn |= more
        aggregated |= dense
        sub.set_title(f"{zoom.name}, zoomed", fontsize=9.5)
        sub.set_xlabel(sub.get_xlabel(), fontsize=8.5)
    ax.set_xlim(view.start, view.end)
    _set_title(fig, timeline, replica, title, window, aggregated, bool(zooms))
    _add_legend(fig, timeline, drawn, comms, rule, replica, aggregated)
    return fig


def _zoom_windows(timeline: Timeline, boxes: list[Box], view: TimeWindow) -> list[TimeWindow]:
    """The warm-up and the cool-down, when the whole run's boxes are too thin to number."""
    if not boxes or _median_points(boxes, view, WIDTH * 0.86) >= ZOOM_BELOW:
        return []
    try:
        return [parse_window("warmup", timeline), parse_window("cooldown", timeline)]
    except PebbleError:
        return []


def _median_points(boxes: list[Box], view: TimeWindow, axes_inches: float) -> float:
    inside = [b.end - b.start for b in boxes if b.end > view.start and b.start < view.end]
    if not inside:
        return float("inf")
    return float(np.median(inside)) / view.length * axes_inches * 72


def _draw_chart(
    ax,
    timeline: Timeline,
    boxes: list[Box],
    recompute: list[Box],
    view: TimeWindow,
    axes_inches: float,
    *,
    lane_inches: float,
    rule: DependencyRule,
    comms: bool,
    replica: int | None,
    copies: list,
) -> tuple[set[str], bool]:
    """One chart of ``view`` on ``ax``; returns (the kinds drawn, whether aggregated). With
    ``copies`` (``visualize.copies``) every rank's lane is followed by its copy lane."""
    ranks, dp = timeline.num_ranks, timeline.meta.dp
    spread = 2 if copies else 1
    rows = (ranks * dp if replica is None else ranks) * spread
    inside = [b for b in boxes if b.end > view.start and b.start < view.end]
    parts = [b for b in recompute if b.end > view.start and b.start < view.end]
    axes_points = axes_inches * 72
    aggregated = _median_points(inside, view, axes_inches) < AGGREGATE_BELOW
    lane_points = lane_inches * 72 / max(rows, 1)
    fontsize = max(5.0, min(8.0, lane_points * BOX * 0.55))

    draw_lanes(ax, rows, view)
    shade_optimizer_steps(ax, timeline.optimizer, view.length, alpha=0.45, zorder=1.5)
    if aggregated:
        _draw_aggregate(ax, inside, view, rows, rule, axes_points)
        parts = []  # a recompute sub-span is part of its backward's share
    else:
        draw_boxes(
            ax, inside, x_range=view.length, axes_points=axes_points, fontsize=fontsize, rule=rule
        )
        draw_recompute_boxes(ax, parts, height=BOX * 0.8, least=1.5 * view.length / axes_points)
        for text in ax.texts if parts else ():  # microbatch numbers stay legible over hatching
            text.set_path_effects([withStroke(linewidth=2.5, foreground="white")])
        if comms:
            _draw_comms(ax, timeline, replica, view)
    _draw_allreduce(ax, timeline, replica, view, spread)
    drawn = draw_copy_lanes(ax, copies, lambda r: 2 * r, view.start, view.end, view.length / 700)
    ax.set_xlim(view.start, view.end)
    all_replicas = replica is None and dp > 1
    label_lanes(ax, rows, ranks, all_replicas=all_replicas, lane_inches=lane_inches, copies=spread)
    set_time_axis(ax, timeline, max(abs(view.start), abs(view.end)))
    ax.grid(axis="x", color="#E6E6E6", lw=0.6, zorder=0)
    ax.set_axisbelow(True)
    return {b.kind for b in inside} | {b.kind for b in parts} | drawn, aggregated


def _draw_aggregate(
    ax, boxes: list[Box], view: TimeWindow, rows: int, rule: DependencyRule, axes_points: float
) -> None:
    """The lanes as one image: per pixel column, the kinds' colours mixed by their share of
    its time, white for the idle rest (``visualize.density``)."""
    looks = sorted({(b.kind, b.chunk) for b in boxes})
    index = {look: i for i, look in enumerate(looks)}
    columns = int(min(COLUMNS, max(axes_points * 150 / 72, 100)))
    shares = occupancy(
        np.array([b.row for b in boxes], dtype=np.int64),
        np.array([index[b.kind, b.chunk] for b in boxes], dtype=np.int64),
        np.array([b.start for b in boxes]),
        np.array([b.end for b in boxes]),
        n_lanes=rows,
        n_colours=max(len(looks), 1),
        t0=view.start,
        t1=view.end,
        columns=columns,
    )
    rgb = blend(shares, [box_color(k, c, rule) for k, c in looks] or ["white"])
    sub = 10  # pixel rows per lane: the box's 0.8 of the lane in the middle eight
    image = np.zeros((rows * sub, columns, 4))
    for row in range(rows):
        image[row * sub + 1 : row * sub + sub - 1, :, :3] = rgb[row]
        image[row * sub + 1 : row * sub + sub - 1, :, 3] = 1.0
    ax.imshow(
        image,
        extent=(view.start, view.end, rows - 0.5, -0.5),
        aspect="auto",
        interpolation="nearest",
        zorder=2,
        gid="aggregate",
        rasterized=True,
    )


def _allreduce_spans(timeline: Timeline) -> dict[int, list[tuple[float, float]]]:
    """Per rank, its layers' all-reduces merged into spans."""
    rank_of = {layer.index: layer.rank for layer in layer_info(timeline)}
    spans: dict[int, list[tuple[float, float]]] = {}
    for a in sorted(timeline.allreduce, key=lambda a: a.start):
        rank = rank_of.get(a.layer)
        if rank is None:
            continue
        mine = spans.setdefault(rank, [])
        if mine and a.start <= mine[-1][1]:
            mine[-1] = (mine[-1][0], max(mine[-1][1], a.end))
        else:
            mine.append((a.start, a.end))
    return spans


def _draw_allreduce(
    ax, timeline: Timeline, replica: int | None, view: TimeWindow, spread: int = 1
) -> None:
    """A blue strip under each rank's lane while its gradients are all-reduced across the
    data-parallel replicas (at least a pixel wide, so a fast one still shows)."""
    if timeline.meta.dp <= 1:
        return
    least = view.length / 700
    replicas = range(timeline.meta.dp) if replica is None else [None]
    for rank, spans in _allreduce_spans(timeline).items():
        for copy in replicas:
            row = spread * (rank if copy is None else copy * timeline.num_ranks + rank)
            for start, end in spans:
                if end < view.start or start > view.end:
                    continue
                ax.add_patch(
                    Rectangle(
                        (start, row + BOX / 2),
                        max(end - start, least),
                        (1 - BOX) / 2,
                        facecolor=ALLREDUCE_COLOR,
                        edgecolor="none",
                        zorder=2.2,
                        gid=f"allreduce:{row}",
                    )
                )


def _draw_comms(ax, timeline: Timeline, replica: int | None, view: TimeWindow) -> None:
    """One arrow per transfer, from the sender's lane edge to the receiver's."""
    ranks = timeline.num_ranks
    for c in timeline.comms:
        if replica is not None and c.replica != replica:
            continue
        if c.end < view.start or c.start > view.end:
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


def _outline_zoom(ax, zoom: TimeWindow) -> None:
    """Where a zoomed panel below looks: a light frame over the lanes, named on top."""
    ax.axvspan(zoom.start, zoom.end, facecolor="none", edgecolor="#404040", lw=0.8, zorder=3)
    ax.annotate(
        zoom.name,
        xy=((zoom.start + zoom.end) / 2, 1.0),
        xycoords=("data", "axes fraction"),
        xytext=(0, 2),
        textcoords="offset points",
        ha="center",
        va="bottom",
        fontsize=7.5,
        color="#404040",
        gid=f"zoom:{zoom.name}",
    )


def _set_title(
    fig: Figure,
    timeline: Timeline,
    replica: int | None,
    title: str | None,
    window: TimeWindow | None,
    aggregated: bool,
    zoomed: bool,
) -> None:
    """The run, its makespan and bubble share, and what was aggregated or zoomed."""
    summary = timeline.summary()
    heading = title or run_title(timeline, "Pipeline chart")
    if timeline.meta.dp > 1 and replica is not None:
        heading += f", replica {replica}"
    lines = [
        heading,
        f"makespan {format_time(summary.makespan, timeline.time_unit)} · "
        f"bubble {summary.bubble_fraction * 100:.1f}% (idle share of ranks × makespan)",
    ]
    if window is not None:
        lines.append(window.note(timeline.time_unit))
    if aggregated:
        lines.append(
            f"{len(timeline.events):,} actions, too thin for boxes: each pixel column mixes "
            "the kinds' colours by their share of its time (pale = partly idle)"
        )
    if zoomed:
        lines.append("below: the warm-up and the cool-down zoomed (--window to choose another)")
    fig.axes[0].set_title(wrap_title("\n".join(lines), WIDTH, 10.5), fontsize=10.5)


def _add_legend(
    fig: Figure,
    timeline: Timeline,
    kinds: set[str],
    comms: bool,
    rule: DependencyRule,
    replica: int | None,
    aggregated: bool,
) -> None:
    """The kinds drawn, idle, and the optimizer, all-reduce and transfer entries when shown."""
    handles = kind_handles(kinds - {"offload", "prefetch", "wait"}, timeline.meta.chunks, rule)
    if "R" in kinds:
        handles.append(hatched_patch("R (recompute) inside its backward"))
    idle = "idle (bubble); pale: partly idle" if aggregated else "idle (bubble)"
    handles.append(Patch(facecolor="white", edgecolor=LANE_EDGE, label=idle))
    if timeline.optimizer:
        handles.append(Patch(facecolor=OPTIMIZER_COLOR, alpha=0.45, label="optimizer step"))
    if timeline.meta.dp > 1 and _allreduce_spans(timeline):
        handles.append(Patch(facecolor=ALLREDUCE_COLOR, label="data-parallel all-reduce"))
    if comms and not aggregated:
        handles.append(
            Line2D([], [], color="#555555", lw=0.8, marker=">", markersize=4, label="transfer")
        )
    handles += copy_handles(kinds)
    fitted_legend(fig, handles)


__all__ = ["box_color", "draw_boxes", "kind_handles", "pipeline_figure"]
