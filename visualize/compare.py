"""Comparing schedules on one model and size: the bubble against the activation memory.

The trade-off every schedule family makes fits in one scatter: the bubble fraction (idle share of
ranks × makespan) across, the peak cached activations of the worst rank up, one labelled point
per schedule; lower-left is better. ``visualize.compare_table`` gives the same numbers as a
table, each read from ``Timeline.summary()``.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Iterable, Mapping

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.transforms import offset_copy

from simulator.timeline import Timeline
from visualize.compare_table import comparison_rows, pairs_of
from visualize.labels import NEAR, NUMBERS, label_points, rings
from visualize.memory import activation_room
from visualize.style import (
    OKABE_ITO,
    format_time,
    new_figure,
    policy_marker,
    schedule_look,
    set_bytes_axis,
)

OVER_COLOR = OKABE_ITO["vermillion"]


def compare_figure(
    named_timelines: Mapping[str, Timeline] | Iterable[tuple[str, Timeline]],
    *,
    title: str | None = None,
) -> Figure:
    """Scatter bubble % (x) against the worst rank's peak activation memory (y), one labelled
    point per run (markers ``gid="point:{schedule}"``, ``schedule`` as in ``comparison_rows``);
    runs that land on the same point share one label. Labels sit clear of each other and of
    the points (``visualize.labels``); when that fails somewhere (a crowd of points) every
    point is numbered instead and a panel on the right lists ``n  label``, in the table's
    order, beside the point's marker.

    With recompute or offload policies (``meta.recompute``, ``meta.offload``) every (schedule,
    policy) pair is a point: the colour is the schedule, the marker the policy (``run_marker``;
    two legends), and each label ends in the makespan, since recomputation and exposed
    prefetch waits cost time that the bubble does not show. With offload the memory axis is
    the device's: what went to the host is in the table."""
    pairs = pairs_of(named_timelines)
    rows = comparison_rows(pairs)
    policies = list(dict.fromkeys(r["policy"] for r in rows))
    with_policies = any(p != "none" for p in policies)
    schedules = list(dict.fromkeys(t.meta.schedule for _, t in pairs))
    fig = new_figure(7.5 if not with_policies else 8.5, 5.2)
    ax = fig.add_subplot()
    palette = {s: schedule_look(s)[0] for s in schedules}
    colours = [palette[t.meta.schedule] for _, t in pairs]
    grouped: dict[tuple, list[tuple[str, Timeline, dict]]] = {}
    looks: dict[tuple, tuple] = {}  # a point's (colour, marker): its last run's, on top
    for (_name, timeline), row, colour in zip(pairs, rows, colours, strict=True):
        x, y = row["bubble_percent"], row["peak_bytes_max"]
        marker = run_marker(row) if with_policies else schedule_look(timeline.meta.schedule)[1]
        ax.scatter(
            [x],
            [y],
            s=70,
            color=colour,
            marker=marker,
            edgecolor="black",
            linewidth=0.6,
            zorder=3,
            gid=f"point:{row['schedule']}",
        )
        point = (round(x, 6), y)
        grouped.setdefault(point, []).append((shown_name(row["schedule"], timeline), timeline, row))
        looks[point] = (colour, marker)
    texts = [_point_label(runs, with_policies) for runs in grouped.values()]
    ink = {}  # with policies, a point's label in its schedule's colour (darkened), if just one
    for point, runs in grouped.items() if with_policies else ():
        if len({t.meta.schedule for _, t, _ in runs}) == 1:
            ink[point] = tuple(0.7 * c for c in to_rgb(palette[runs[0][1].meta.schedule]))
    if with_policies:
        _policy_legends(fig, ax, schedules, palette, rows)
    _finish(ax, pairs, title, with_policies)
    _limits(ax, rows, 1.6 if with_policies else 1.25)
    device = _device_line(ax, pairs, rows)
    _dodge(ax)
    inks = [ink.get(point, "black") for point in grouped]
    offsets = NEAR + rings(40) if with_policies else NEAR
    labels, clear = label_points(
        ax, list(grouped), texts, offsets, colours=inks, leader_beyond=10 if ink else 30
    )
    if not clear:
        for label in labels:
            label.remove()
        _numbered(ax, rows, list(grouped), texts, inks, [looks[p] for p in grouped])
        _finish(ax, pairs, title, with_policies, numbered=True)
        if device:
            _device_line(ax, pairs, rows)
    if device and not with_policies:
        fig.legend(handles=device, loc="outside lower center", frameon=False, fontsize=8.5)
    elif device:
        ax.legend(handles=device, loc="upper right", frameon=False, fontsize=8)
    return fig


def shown_name(name: str, timeline: Timeline) -> str:
    """``name`` as the figure shows it: with its stages per rank (``interleaved-1f1b v4``)
    when the schedule lets the user choose them and the name does not say it already."""
    chunks = timeline.meta.chunks
    fixed = timeline.meta.schedule.endswith("-v")  # zb-v, dualpipe-v: two by construction
    if chunks > 1 and not fixed and not re.search(rf"\bv{chunks}\b", name):
        return f"{name} v{chunks}"
    return name


def _device_line(ax, pairs, rows: list[dict]) -> list:
    """With a device: the activation room of the tightest rank of any run (its memory less
    weights, gradients, optimizer state and buffers) dashed, and a ring on every run that does
    not fit the device. Returns the legend entries drawn."""
    rooms = [min(activation_room(t).values()) for _, t in pairs if activation_room(t)]
    handles: list = []
    if not rooms or len(rooms) != len(pairs):
        return handles
    room = min(rooms)
    largest = max(r["peak_bytes_max"] for r in rows)
    if room > 0:
        ax.axhline(room, color="black", ls="--", lw=1.1, zorder=1, gid="device")
        bottom, top = ax.get_ylim()
        ax.set_ylim(bottom, max(top, room * 1.1, largest * 1.2))
        set_bytes_axis(ax, max(top, room * 1.1, largest * 1.2) / 1.2, nbins=5)
        label = "device memory less weights, gradients, optimizer state, buffers"
        handles.append(Line2D([], [], color="black", ls="--", lw=1.1, label=label))
    over = [r for r in rows if r["fits"] is False]
    for r in over:
        ax.scatter(
            [r["bubble_percent"]],
            [r["peak_bytes_max"]],
            s=240,
            facecolors="none",
            edgecolors=OVER_COLOR,
            linewidths=1.4,
            zorder=2.5,
            gid=f"over:{r['schedule']}",
        )
    if over:
        handles.append(
            Line2D(
                [],
                [],
                marker="o",
                ls="",
                markersize=12,
                markerfacecolor="none",
                markeredgecolor=OVER_COLOR,
                label="does not fit the device (whole rank)",
            )
        )
    return handles


OFFLOAD_MARKERS = {"full": "X", "selective": "*", "budget": "h"}
BOTH_MARKERS = {  # (recompute, offload) families: the pairs one compares most, each its own
    ("full", "full"): "p",
    ("full", "selective"): "H",
    ("selective", "full"): "<",
    ("selective", "selective"): ">",
}
_OTHER_PAIRS = ("d", "8")


def run_marker(row: dict) -> str:
    """The marker of a run's memory policy, the same in every figure: recompute's
    (``style.policy_marker``) without offload, offload's own (full ``X``, selective ``*``,
    budget ``h``) without recompute, ``BOTH_MARKERS`` for the common pairs of both, and one
    picked by the pair's words for the rest."""
    recompute, offload = row["recompute"], row.get("offload", "none")
    if offload == "none":
        return policy_marker(recompute)
    family = offload.split(":")[0].split(",")[0]
    if recompute == "none":
        return OFFLOAD_MARKERS.get(family) or _stable(offload, _OTHER_PAIRS)
    pair = (recompute.split(":")[0].split(",")[0], family)
    return BOTH_MARKERS.get(pair) or _stable(row["policy"], _OTHER_PAIRS)


def _stable(name: str, choices: tuple) -> str:
    """One of ``choices`` picked by ``name`` alone (crc32: the same in every run)."""
    return choices[zlib.crc32(name.encode()) % len(choices)]


def _dodge(ax, clear: float = 9.0) -> None:
    """Move a marker a few points aside where it would cover another's (two schedules at
    nearly the same place, like dualpipe-v and zb-v): the data stay exact, only the drawing
    shifts."""
    fig = ax.figure
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    fig.draw_without_rendering()
    scale = 72 / fig.dpi
    placed: list[tuple[float, float]] = []
    for points in [c for c in ax.collections if (c.get_gid() or "").startswith("point:")]:
        x, y = (float(v) * scale for v in ax.transData.transform(points.get_offsets()[0]))
        for dx, dy in _DODGES:
            if all(math.hypot(x + dx - px, y + dy - py) >= clear for px, py in placed):
                break
        if (dx, dy) != (0, 0):
            points.set_offset_transform(
                offset_copy(ax.transData, fig=fig, x=dx, y=dy, units="points")
            )
        placed.append((x + dx, y + dy))


_DODGES = [(0, 0), (7, 0), (-7, 0), (0, 7), (0, -7), (7, 7), (-7, -7), (7, -7), (-7, 7)]


def _numbered(ax, rows, points: list, texts: list[str], inks: list, looks: list) -> None:
    """The crowded case: each point numbered (in the table's order) and the numbered labels
    listed on the right, beside each point's marker; the figure widens to make room."""
    fig = ax.figure
    width, height = fig.get_size_inches()
    panel = 0.6 + 0.065 * max(map(len, texts), default=0)  # inches: marker, number, label
    fig.set_size_inches(width + panel, max(height, 1.4 + 0.2 * len(points)))
    dot = {"linestyle": "none", "markersize": 7, "markeredgecolor": "black"}
    pad = "\u2007"  # a figure space: as wide as a digit, so the numbers line up
    fig.legend(
        handles=[
            Line2D(
                [], [], marker=marker, color=colour, label=f"{str(n).rjust(2, pad)}  {text}", **dot
            )
            for n, (text, (colour, marker)) in enumerate(zip(texts, looks, strict=True), 1)
        ],
        loc="outside right upper",
        frameon=False,
        fontsize=8.5,
        labelspacing=0.45,
        handletextpad=0.3,
        title="the points, as in the table",
        title_fontsize=8.5,
        alignment="left",
    )
    for points_drawn in ax.collections:  # smaller markers: a crowd overlaps less
        if (points_drawn.get_gid() or "").startswith("point:"):
            points_drawn.set_sizes([50])
    _limits(ax, rows, 1.12, below=0.04)
    numbers = [str(n) for n in range(1, len(points) + 1)]
    label_points(
        ax,
        points,
        numbers,
        NUMBERS,
        colours=inks,
        fontsize=8.5,
        leader_beyond=9,
        marker=5.5,
        weight="bold",
    )


def _point_label(runs: list[tuple[str, Timeline, dict]], with_policies: bool) -> str:
    """The names of the runs on one point; with policies, one schedule's runs as
    ``1f1b [full, sqrt]`` and the makespan(s) after them."""
    if not with_policies:
        return ", ".join(name for name, _, _ in runs)
    by_schedule: dict[str, list[str]] = {}
    for _name, timeline, row in runs:
        by_schedule.setdefault(timeline.meta.schedule, []).append(row["policy"])
    names = ", ".join(f"{s} [{', '.join(p)}]" for s, p in by_schedule.items())
    plain = all(row["schedule"] == f"{t.meta.schedule} [{row['policy']}]" for _, t, row in runs)
    if not plain or len({row["schedule"] for _, _, row in runs}) != len(runs):
        names = ", ".join(name for name, _, _ in runs)  # names of their own, or one twice
    spans = dict.fromkeys(format_time(r["makespan"], r["time_unit"]) for _, _, r in runs)
    return f"{names} · {' / '.join(spans)}"


def _limits(ax, rows: list[dict], room: float, below: float = 0.0) -> None:
    """Axes from 0 to ``room`` × the largest bubble (at least 5 %) and from ``-below`` to 1.2
    × the largest peak (a margin under 0 for labels), the memory axis in round binary units."""
    largest = max((r["peak_bytes_max"] for r in rows), default=1) or 1
    xs = [r["bubble_percent"] for r in rows] or [0.0]
    ax.set_xlim(0, max(max(xs) * room, 5))
    ax.set_ylim(-below * largest * 1.2, largest * 1.2)
    set_bytes_axis(ax, largest, nbins=5)


def _policy_legends(fig, ax, schedules: list[str], palette: dict, rows: list[dict]) -> None:
    """Colour = schedule, marker = recompute (and offload) policy, below the axes."""
    looks = {row["policy"]: run_marker(row) for row in rows}
    offloads = any(row["offload"] != "none" for row in rows)
    what = "recompute · offload policy" if offloads else "recompute policy"
    dot = {"linestyle": "none", "markersize": 7, "markeredgecolor": "black"}
    colour_handles = [
        Line2D([], [], marker="o", color=palette[s], label=s, **dot) for s in schedules
    ]
    marker_handles = [
        Line2D([], [], marker=marker, color="#BDBDBD", label=policy, **dot)
        for policy, marker in looks.items()
    ]
    fig.legend(
        handles=colour_handles + marker_handles,
        loc="outside lower center",
        ncol=max(len(colour_handles), len(marker_handles)),
        frameon=False,
        fontsize=8.5,
        title=f"colour: schedule   ·   marker: {what}",
        title_fontsize=8.5,
    )


def _finish(ax, pairs, title: str | None, with_policies: bool, numbered: bool = False) -> None:
    ax.set_xlabel("bubble (% of ranks × makespan idle)")
    ax.set_ylabel("peak activation memory (worst rank)")
    ax.grid(color="#E6E6E6", lw=0.6)
    ax.set_axisbelow(True)
    for side in ("right", "top"):
        ax.spines[side].set_visible(False)
    offloads = any(t.meta.offload for _, t in pairs)
    what = "Schedules × recompute policies" if with_policies else "Schedules compared"
    what = "Schedules × memory policies" if offloads else what
    if offloads:
        ax.set_ylabel("peak activation memory on the device (worst rank)")
    if title is None and pairs:
        meta = pairs[0][1].meta
        title = (
            f"{what} — {meta.ranks or '?'} ranks · "
            f"{meta.microbatches or '?'} microbatches ({meta.source})"
        )
    below = "lower left is better"
    if with_policies:
        note = "makespans in the list" if numbered else "labels end in the makespan"
        cost = "recomputation and prefetch waits cost" if offloads else "recomputation costs"
        below += f" · {note}: {cost} time, not bubble"
    ax.set_title(f"{title or what}\n{below}", fontsize=11)


__all__ = ["compare_figure"]
