"""The memory timeline: cached activation bytes on each rank over time.

One small panel per rank (rank 0 at the top), all sharing the time and byte axes, so the ranks
compare at a glance: the first ranks of a 1F1B pipeline hold the most, GPipe holds everything
until the backward starts. Each rank's peak is marked and labelled in KiB/MiB/GiB, the same
number ``Timeline.summary()`` reports (the peak over replicas). Replicas other than 0 are drawn
dashed when the Timeline records them (an analytic run records replica 0 only: they are equal).

With a device (``--hardware``) a dashed black line marks the **room for activations**: the
device's memory less what the rank holds all step (weights, gradients, optimizer state, receive
buffers; ``meta.rank_memory``). Activations above it do not fit.

At scale a rank's step function has tens of thousands of steps: it is reduced to the figure's
pixel columns (``visualize.density.step_envelope``: each column shows the most bytes held in
it, so a peak is never lost), and past ``PANELS_UP_TO`` ranks the panels become one heat map,
rank by time, coloured by bytes. The title says which. ``window=`` draws a stretch of time.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from simulator.timeline import Timeline
from simulator.units import human_bytes
from visualize.density import COLUMNS, step_envelope
from visualize.host_memory import (
    HOST_LIMIT_STYLE,
    draw_host,
    host_handles,
    host_largest,
    host_limit_shown,
    host_note,
    host_series,
)
from visualize.style import (
    OKABE_ITO,
    OPTIMIZER_COLOR,
    fitted_legend,
    new_figure,
    rank_palette,
    run_title,
    set_bytes_axis,
    set_time_axis,
    shade_optimizer_steps,
    time_span,
    wrap_title,
)
from visualize.window import TimeWindow

PANELS_UP_TO = 16  # more ranks than this, and the panels become one heat map
DEVICE_COLOR = OKABE_ITO["vermillion"]  # with offload: red pebbles on the device
LIMIT_COLOR = OKABE_ITO["black"]  # as the breakdown's device line
WIDTH = 11.0


def _rank_series(timeline: Timeline) -> dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]:
    """(rank, replica) -> (times, running totals of cached bytes), for every pair recorded."""
    cache = timeline.cache.columns()
    out = {}
    if not len(cache["time"]):
        return out
    ranks, replicas = cache["rank"], cache["replica"]
    for rank, replica in sorted(set(zip(ranks.tolist(), replicas.tolist(), strict=True))):
        mine = (ranks == rank) & (replicas == replica)
        out[rank, replica] = (cache["time"][mine], np.cumsum(cache["bytes"][mine]))
    return out


def memory_steps(timeline: Timeline, rank: int, replica: int = 0) -> tuple[list[float], list[int]]:
    """The step function drawn for one rank: starts at (0, 0) and holds its last value to the
    end of the run (``drawstyle="steps-post"``)."""
    times, totals = timeline.rank_memory(rank, replica)
    end = max(time_span(timeline), times[-1] if times else 0.0)
    return [0.0, *times, end], [0, *totals, totals[-1] if totals else 0]


def memory_peaks(timeline: Timeline) -> dict[int, tuple[int, float, int]]:
    """Per rank, (peak bytes, first time reached, replica) over all replicas."""
    series = _rank_series(timeline)
    out: dict[int, tuple[int, float, int]] = {}
    for rank in range(timeline.num_ranks):
        best = (0, 0.0, 0)
        for replica in range(timeline.meta.dp):
            if (rank, replica) not in series:
                continue
            times, totals = series[rank, replica]
            if len(totals) and int(totals.max()) > best[0]:
                at = int(np.argmax(totals))
                best = (int(totals[at]), float(times[at]), replica)
        out[rank] = best
    return out


def activation_room(timeline: Timeline) -> dict[int, int]:
    """Per rank, the device's memory less what the rank holds all step (empty without a
    device or without whole-rank memory)."""
    capacity = timeline.meta.memory_capacity
    if not capacity or not timeline.meta.rank_memory:
        return {}
    return {r: capacity - m.total for r, m in enumerate(timeline.meta.rank_memory)}


def memory_figure(
    timeline: Timeline, *, title: str | None = None, window: TimeWindow | None = None
) -> Figure:
    """Draw the memory timeline (see the module docstring); returns the Figure.

    Each rank's peak label is a Text with ``gid="peak:{rank}"`` reading ``peak 48.0 KiB``; the
    room for activations a line ``gid="room:{rank}"``.
    """
    ranks = timeline.num_ranks
    span = time_span(timeline) or 1.0
    view = window or TimeWindow(0.0, span * 1.02, "whole run")
    series = _rank_series(timeline)
    peaks = memory_peaks(timeline)
    room = activation_room(timeline)
    host = host_series(timeline)
    largest = max([p[0] for p in peaks.values()] + [host_largest(host), 1])
    top = max([largest, *room.values()]) if room else largest
    if ranks > PANELS_UP_TO:
        fig, notes, shown = _heat_map(timeline, series, peaks, room, view)
        notes += [note] if (note := host_note(timeline, host, False, curves=False)) else []
    else:
        fig, notes, shown = _panels(timeline, series, peaks, room, view, largest, top, bool(host))
        limit = host_limit_shown(timeline, top)
        notes += [note] if (note := host_note(timeline, host, limit)) else []
        shown[1:1] = _draw_host(fig.axes[:ranks], timeline, host, limit, view)
    heading = title or run_title(timeline, "Activation memory")
    lines = [heading, *([window.note(timeline.time_unit)] if window else []), *notes]
    fig.suptitle(wrap_title("\n".join(lines), WIDTH, 11), fontsize=11)
    fitted_legend(fig, shown)
    return fig


def _panels(timeline, series, peaks, room, view, largest, top, offload=False):
    """One panel per rank; returns (figure, title notes, legend handles). With ``offload`` the
    device's curves are red (red pebbles) beside the host's blue ones."""
    ranks, dp = timeline.num_ranks, timeline.meta.dp
    colours = [DEVICE_COLOR] * ranks if offload else rank_palette(ranks)
    per_panel = 0.95 if ranks <= 6 else max(0.55, 6.5 / ranks)
    fig = new_figure(WIDTH, min(1.9 + per_panel * ranks, 15))
    axes = fig.subplots(ranks, 1, sharex=True, sharey=True, squeeze=False)[:, 0]
    columns = COLUMNS
    reduced = dashed = shaded = limit = False
    for rank, ax in enumerate(axes):
        colour = colours[rank]
        for replica in range(dp):
            if (rank, replica) not in series:
                continue
            xs, ys, thin = _drawn_steps(timeline, *series[rank, replica], view, columns)
            reduced |= thin
            if replica == 0:
                ax.fill_between(
                    xs, ys, step="post", color=colour, alpha=0.25, lw=0, rasterized=thin
                )
                ax.plot(xs, ys, drawstyle="steps-post", color=colour, lw=1.3)
            else:
                dashed = True
                ax.plot(xs, ys, drawstyle="steps-post", color=colour, lw=0.8, ls="--", alpha=0.8)
        visible = [o for o in timeline.optimizer if o.end >= view.start and o.start <= view.end]
        shade_optimizer_steps(ax, visible, view.length, zorder=1.0)
        shaded |= bool(visible)
        if rank in room:
            limit = True
            ax.axhline(room[rank], color=LIMIT_COLOR, ls="--", lw=1.1, gid=f"room:{rank}")
        _mark_peak(ax, rank, peaks[rank], view)
        ax.set_ylabel(f"rank {rank}", rotation=0, ha="right", va="center", fontsize=9)
        ax.grid(axis="both", color="#E6E6E6", lw=0.6)
        ax.set_axisbelow(True)
        for side in ("right", "top"):
            ax.spines[side].set_visible(False)
        ax.tick_params(axis="y", labelsize=7.5)
    axes[0].set_ylim(0, max(largest * 1.45, top * 1.12))
    set_bytes_axis(axes[0], max(largest * 1.2, top), nbins=3)
    axes[0].set_xlim(view.start, view.end)
    set_time_axis(axes[-1], timeline, max(abs(view.start), abs(view.end)))
    fig.supylabel("cached activations", fontsize=10)
    held = "on the device (replica 0)" if offload else "activations held (replica 0)"
    shown = [Patch(facecolor=colours[0], alpha=0.5, label=held)]
    shown.append(Line2D([], [], marker="v", color="black", ls="", markersize=5, label="peak"))
    if dashed:
        shown.append(Line2D([], [], color="#606060", ls="--", lw=0.8, label="other replicas"))
    if limit:
        label = "device memory less weights, gradients, optimizer state and buffers"
        shown.append(Line2D([], [], color=LIMIT_COLOR, ls="--", lw=1.1, label=label))
    if shaded:
        shown.append(Patch(facecolor=OPTIMIZER_COLOR, alpha=0.35, label="optimizer step"))
    notes = ["each pixel column shows the most bytes held within it"] if reduced else []
    return fig, notes, shown


def _draw_host(axes, timeline, host: dict, limit: bool, view: TimeWindow) -> list:
    """With offload: each rank's host bytes (``visualize.host_memory``), and the host memory
    per device when it is on the scale; returns the legend entries drawn."""
    if not host:
        return []
    room = timeline.meta.host_memory_capacity
    drawn = False
    for rank, ax in enumerate(axes):
        drawn |= draw_host(ax, host, rank, max(time_span(timeline), view.end))
        if limit and room is not None:
            ax.axhline(room, **HOST_LIMIT_STYLE, gid=f"host-room:{rank}")
    if limit and room is not None:
        axes[0].set_ylim(0, max(axes[0].get_ylim()[1], room * 1.12))
        set_bytes_axis(axes[0], axes[0].get_ylim()[1] / 1.12, nbins=3)
    return host_handles(drawn, limit, room)


def _drawn_steps(timeline, times, totals, view: TimeWindow, columns: int):
    """The step function of one rank in ``view``, from (0, 0), holding its last value to the
    end; reduced to pixel columns when it has more steps than ``columns``. (xs, ys, reduced)"""
    end = max(time_span(timeline), float(times[-1]) if len(times) else 0.0)
    xs = np.concatenate([[0.0], times, [end]])
    ys = np.concatenate([[0], totals, [totals[-1] if len(totals) else 0]])
    inside = int(((xs >= view.start) & (xs <= view.end)).sum())
    if inside <= 2 * columns:
        return xs, ys, False
    edges, top = step_envelope(xs, ys, view.start, view.end, columns)
    return edges, np.concatenate([top, top[-1:]]), True


def _mark_peak(ax, rank: int, peak_at: tuple[int, float, int], view: TimeWindow) -> None:
    peak, when, replica = peak_at
    if peak <= 0 or not view.start <= when <= view.end:
        return
    ax.plot(
        [when], [peak], marker="v", color="black", markersize=5, zorder=5, gid=f"peak-marker:{rank}"
    )
    text = f"peak {human_bytes(peak)}"
    if replica:
        text += f" (replica {replica})"
    right = when > view.start + 0.72 * view.length
    ax.annotate(
        text,
        xy=(when, peak),
        xytext=(-6 if right else 6, 2),
        textcoords="offset points",
        ha="right" if right else "left",
        va="bottom",
        fontsize=8.5,
        gid=f"peak:{rank}",
        bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8},
    )


def _heat_map(timeline, series, peaks, room, view):
    """Ranks by time, coloured by the most bytes each pixel column holds (replica 0); the
    peak of each rank marked. Returns (figure, title notes, legend handles)."""
    ranks = timeline.num_ranks
    fig = new_figure(WIDTH, min(3.2 + 0.09 * ranks, 12))
    ax = fig.add_subplot()
    columns = 1000
    image = np.zeros((ranks, columns))
    for rank in range(ranks):
        if (rank, 0) in series:
            times, totals = series[rank, 0]
            image[rank] = step_envelope(times, totals, view.start, view.end, columns)[1]
    largest = max(float(image.max()), 1.0)
    tightest = min(room.values()) if room else None
    if tightest is not None and tightest > 0:
        largest = max(largest, tightest * 1.05)
    shown_image = ax.imshow(
        image,
        extent=(view.start, view.end, ranks - 0.5, -0.5),
        aspect="auto",
        interpolation="nearest",
        cmap="magma_r",
        vmin=0,
        vmax=largest,
        rasterized=True,
        gid="heat",
    )
    bar = fig.colorbar(shown_image, ax=ax, pad=0.01, fraction=0.03)
    set_bytes_axis(bar.ax, largest, nbins=4)
    bar.set_label("cached activations (most in the pixel)")
    shown = []
    if tightest is not None and tightest > 0:
        bar.ax.axhline(tightest, color=LIMIT_COLOR, ls="--", lw=1.4, gid="room")
        label = f"device memory left for activations on the tightest rank ({human_bytes(tightest)})"
        shown.append(Line2D([], [], color=LIMIT_COLOR, ls="--", lw=1.4, label=label))
    for rank, (peak, when, _replica) in peaks.items():
        if peak > 0 and view.start <= when <= view.end:
            ax.plot([when], [rank], marker="|", color=OKABE_ITO["sky"], markersize=4, zorder=3)
    ax.set_ylim(ranks - 0.5, -0.5)
    every = max(1, ranks // 16)
    ax.set_yticks(range(0, ranks, every))
    ax.set_yticklabels([f"rank {r}" for r in range(0, ranks, every)], fontsize=7.5)
    ax.set_xlim(view.start, view.end)
    set_time_axis(ax, timeline, max(abs(view.start), abs(view.end)))
    fullest = max(peaks, key=lambda r: peaks[r][0]) if peaks else 0
    notes = [
        f"{ranks} ranks: one row each, colour = the most bytes held in each pixel column; "
        f"fullest rank {fullest}, peak {human_bytes(peaks.get(fullest, (0,))[0])}"
    ]
    marker = Line2D([], [], marker="|", color=OKABE_ITO["sky"], ls="", label="each rank's peak")
    return fig, notes, [marker, *shown]


__all__ = ["activation_room", "human_bytes", "memory_figure", "memory_peaks", "memory_steps"]
