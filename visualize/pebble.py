"""The pebble graph: which layer holds how many cached activations ("pebbles") when, and when
each layer's weight gradient is ready.

Rows are layers in model order (layer 0 at the top), banded by stage and rank; time runs left to
right. A row fills while the layer holds cached activations: the bar's height and colour grow
with the number of microbatches cached, so the forward pass piles pebbles up and the backward
pass drains them. From the moment a layer's weight gradient for the step is complete the row
turns purple, until the step's optimizer step consumes it; layers without parameters never do.

At scale (more than ``visualize.rows.GROUP_ABOVE`` layers, or ``expand=False``) a row stands for
a block of layers (``B12 · 14 layers``). Its count at each moment is the most microbatches any
of its layers holds (the maximum of the layers' step functions), and it turns purple when the
last of its layers' gradients is complete (the maximum of their ready times), until the
optimizer step as before. ``expand=True`` keeps one row per layer however many there are.

With activation recomputation (``Timeline.recompute``) a pebble a recompute span put back is a
hatched slice on top of its row's bar, the checkpoint it was re-run from an outlined slice at the
bottom, and a dropped layer's wait a dotted line (``visualize.recompute``).

With activation offload (``Timeline.offload``) the bars are the device's pebbles; the host's
(blue) hang from the top of the row, pebbles in flight between the two hatched below them, on
one scale with the device's so they never overlap (``visualize.pebble_offload``).

Everything is derived from ``Timeline.cache`` and ``Timeline.grad_ready``::

    L0 linear  |▁▂▃▄▄▄▄▄▃▂▁        ████|   s0 · r0
    L1 relu    |▁▂▃▄▄▄▄▄▃▂▁            |
    L2 linear  | ▁▂▃▄▄▄▄▄▃▂▁     ██████|   s1 · r1
"""

from __future__ import annotations

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from simulator.timeline import Timeline
from visualize.density import rectangles, step_segments
from visualize.pebble_data import (
    RowGrad,
    count_segments,
    counts_by_row,
    pebble_intervals,
    row_grads,
)
from visualize.pebble_offload import draw_host_pebbles, host_handles, offload_rows
from visualize.recompute import (
    draw_recompute_pebbles,
    dropped_gaps,
    recompute_handles,
    recompute_pebbles,
)
from visualize.rows import (
    Row,
    RowCount,
    draw_stage_bands,
    figure_rows,
    row_fontsize,
    stage_bands,
)
from visualize.style import (
    GRAD_COLOR,
    OPTIMIZER_COLOR,
    count_ticks,
    fitted_legend,
    layer_info,
    new_figure,
    pebble_colormap,
    run_title,
    set_time_axis,
    shade_optimizer_steps,
    time_span,
    wrap_title,
)
from visualize.window import TimeWindow

PATCHES_UP_TO = 3000  # more pebble bars than this, and rows are reduced to pixel columns
ROW = 0.8  # height of a full row; a row's centre is at y = its position (0 at the top)


def pebble_figure(
    timeline: Timeline,
    replica: int = 0,
    *,
    min_grad_width: float = 0.012,
    min_recompute_width: float = 0.004,
    title: str | None = None,
    width: float = 11.0,
    expand: bool | None = None,
    window: TimeWindow | None = None,
) -> Figure:
    """Draw the pebble graph (see the module docstring); returns the Figure. ``expand``: None
    groups layers into blocks above ``GROUP_ABOVE`` rows, True never, False always.

    Artists carry ids for checking: each pebble bar ``gid="pebble:{key}"`` (one per RowCount),
    each purple span ``gid="grad:{key}:{step}"`` (one per RowGrad, drawn at least
    ``min_grad_width`` of the run long so a gradient completed at the very end still shows);
    ``key`` is the layer index of a layer row, ``B12`` for block 12 (``Row.key``). With
    recomputation, hatched ``recompute:{key}:{mb}:{step}`` and outlined ``checkpoint:...``
    one-pebble slices, at least ``min_recompute_width`` of the run long
    (``visualize.recompute.draw_recompute_pebbles``). ``window``: the stretch of time drawn
    (None: the whole run); past ``PATCHES_UP_TO`` bars in it the rows are one ``gid="pebbles"``
    collection, reduced to pixel columns, and the title says so.
    """
    rows = figure_rows(layer_info(timeline), expand)
    view = window or TimeWindow(0.0, (time_span(timeline) or 1.0) * 1.03, "whole run")
    span = view.length
    intervals = pebble_intervals(timeline, replica)
    per_layer = count_segments(intervals)
    max_count = max((c.count for c in per_layer), default=1)
    cmap, norm = pebble_colormap(max_count)

    height = min(max(3.4, 1.5 + 0.3 * len(rows)), 16)
    fig = new_figure(width, height)
    ax = fig.add_subplot()
    ax.set_facecolor("white")

    bands = stage_bands(rows)
    draw_stage_bands(ax, bands)
    optimizer = [o for o in timeline.optimizer if o.end >= view.start and o.start <= view.end]
    shade_optimizer_steps(ax, optimizer, span)  # thin grey columns
    grads = [g for g in row_grads(timeline, rows, replica, intervals) if g.end >= view.start]
    grads = [g for g in grads if g.start <= view.end]
    _draw_grad_segments(ax, grads, rows, min_grad_width * span)
    counts = counts_by_row(per_layer, rows)
    offload = offload_rows(timeline, intervals, rows, counts, replica)
    scale = offload.scale or max_count
    reduced = _draw_pebbles(ax, counts, rows, scale, lambda count: cmap(norm(count)), view)
    draw_host_pebbles(ax, offload, rows, ROW)
    recomputed, checkpoints = recompute_pebbles(timeline, intervals, replica)
    single = {row.layers[0] for row in rows if len(row.layers) == 1}  # a block row: no gaps
    gaps = [g for g in dropped_gaps(recomputed, checkpoints, intervals) if g[0] in single]
    marks = (recomputed, checkpoints, gaps)
    sizes = {"height": ROW / scale, "row_height": ROW, "min_width": min_recompute_width * span}
    draw_recompute_pebbles(ax, marks, rows, counts, **sizes)

    ax.set_xlim(view.start, view.end)
    normal = 9 if len(rows) <= 24 else 7
    _label_rows(ax, rows, bands, row_fontsize(len(rows), height - 1.5, normal))
    set_time_axis(ax, timeline, max(abs(view.start), abs(view.end)))
    ax.grid(axis="x", color="#E0E0E0", lw=0.6, zorder=0)
    ax.set_axisbelow(True)
    lines = [title or run_title(timeline, "Pebble graph")]
    if window is not None:
        lines.append(window.note(timeline.time_unit))
    if reduced:
        lines.append("each pixel column shows the most pebbles a row holds within it")
    ax.set_title(wrap_title("\n".join(lines), width, 11), fontsize=11)

    _colour_bar(fig, ax, cmap, norm, max_count, height)
    extra = recompute_handles(bool(recomputed), bool(checkpoints), bool(gaps))
    extra += host_handles(offload)
    colour = cmap(norm(max_count))
    _add_legend(fig, bool(optimizer), bool(grads), rows, colour, extra, offload.active)
    return fig


def _colour_bar(fig, ax, cmap, norm, max_count: int, height: float) -> None:
    """The count scale on the right, about as tall as the rows however many."""
    bar = fig.colorbar(
        ScalarMappable(norm=norm, cmap=cmap),
        ax=ax,
        ticks=count_ticks(max_count),
        pad=0.02,
        fraction=0.025,
        aspect=max(20.0, 7.0 * height),
    )
    bar.set_label("microbatches cached")
    bar.ax.tick_params(length=0)


def _draw_grad_segments(ax, segments: list[RowGrad], rows: list[Row], min_length: float) -> None:
    """Purple spans where a gradient is ready, at least ``min_length`` long."""
    for segment in segments:
        length = max(segment.end - segment.start, min_length)
        ax.add_patch(
            Rectangle(
                (segment.start, segment.row - ROW / 2),
                length,
                ROW,
                facecolor=GRAD_COLOR,
                edgecolor="none",
                zorder=1,
                gid=f"grad:{rows[segment.row].key}:{segment.step}",
            )
        )


def _draw_pebbles(
    ax, counts: list[RowCount], rows: list[Row], max_count: int, colour_of, view
) -> bool:
    """Pebble bars whose height and colour (``colour_of(count)``) both grow with the count;
    past ``PATCHES_UP_TO`` bars, each row reduced to the figure's pixel columns (the most
    pebbles held in each) and drawn as one artist. Returns whether it was reduced."""
    inside = [c for c in counts if c.end > view.start and c.start < view.end]
    if len(inside) <= PATCHES_UP_TO:
        for segment in inside:
            h = ROW * segment.count / max_count
            ax.add_patch(
                Rectangle(
                    (segment.start, segment.row + ROW / 2 - h),
                    segment.end - segment.start,
                    h,
                    facecolor=colour_of(segment.count),
                    edgecolor="none",
                    zorder=2,
                    gid=f"pebble:{rows[segment.row].key}",
                )
            )
        return False
    by_row: dict[int, list[RowCount]] = {}
    for c in inside:
        by_row.setdefault(c.row, []).append(c)
    x0, x1, level, where = [], [], [], []
    for row, found in by_row.items():
        starts, ends, tops = step_segments(
            [c.start for c in found],
            [c.end for c in found],
            [c.count for c in found],
            view.start,
            view.end,
        )
        x0.append(starts)
        x1.append(ends)
        level.append(tops)
        where.append(np.full(len(starts), row))
    x0, x1, level, where = (np.concatenate(v) for v in (x0, x1, level, where))
    bottom = where + ROW / 2
    rectangles(
        ax,
        x0,
        x1,
        bottom - ROW * level / max_count,
        bottom,
        facecolors=colour_of(level.astype(np.int64)),
        edgecolor="none",
        zorder=2,
        gid="pebbles",
    )
    return True


def _label_rows(
    ax, rows: list[Row], bands: list[tuple[int, int, int, int]], fontsize: float
) -> None:
    """Row labels on the left (grey italic without parameters), stage · rank on the right."""
    ax.set_ylim(max(len(rows), 1) - 0.5, -0.5)  # row 0 at the top
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([row.label for row in rows])
    for tick, row in zip(ax.get_yticklabels(), rows, strict=True):
        if not row.has_params:
            tick.set_color("#7A7A7A")
            tick.set_fontstyle("italic")
    ax.tick_params(axis="y", length=0)
    ax.tick_params(axis="y", labelsize=fontsize)

    right = ax.secondary_yaxis("right")
    right.set_yticks([(first + last) / 2 for first, last, _s, _r in bands])
    right.set_yticklabels([f"s{stage} · r{rank}" for _f, _l, stage, rank in bands])
    right.tick_params(axis="y", length=0, labelsize=max(fontsize, 7))
    right.set_ylabel("stage · rank")


def _add_legend(
    fig: Figure,
    optimizer: bool,
    grads: bool,
    rows: list[Row],
    pebble_colour,
    extra: list,
    offload: bool = False,
) -> None:
    """Pebbles, and gradients, the optimizer and no-parameter entries when drawn; what a
    grouped row means, when there is one; then ``extra`` (recomputation)."""
    grouped = any(len(row.layers) > 1 for row in rows)
    pebbles = "cached activations on the device" if offload else "cached activations (pebbles)"
    ready = "weight gradient ready, until optimizer step"
    if grouped:
        pebbles += ": the most of any layer in the row"
        ready = "all the row's weight gradients ready, until optimizer step"
    handles = [Patch(facecolor=pebble_colour, label=pebbles)]
    if grads:
        handles.append(Patch(facecolor=GRAD_COLOR, label=ready))
    if optimizer:
        handles.append(Patch(facecolor=OPTIMIZER_COLOR, alpha=0.35, label="optimizer step"))
    if any(not row.has_params for row in rows):
        handles.append(
            Patch(
                facecolor="white", edgecolor="none", label="grey italic: no parameters, no gradient"
            )
        )
    fitted_legend(fig, handles + extra)
