"""Comparing schedules on one model and size: the bubble against the activation memory.

The trade-off every schedule family makes fits in one scatter: the bubble fraction (idle share of
ranks × makespan) across, the peak cached activations of the worst rank up, one labelled point
per schedule; lower-left is better. ``visualize.compare_table`` gives the same numbers as a
table, each read from ``Timeline.summary()``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from simulator.timeline import Timeline
from visualize.compare_table import comparison_rows, pairs_of
from visualize.labels import NEAR, NUMBERS, label_points, rings
from visualize.style import (
    format_time,
    new_figure,
    rank_palette,
    set_bytes_axis,
)

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p")


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

    With recompute policies (``meta.recompute``) every (schedule, policy) pair is a point: the
    colour is the schedule, the marker the policy (two legends), and each label ends in the
    makespan, since recomputation costs time that the bubble does not show."""
    pairs = pairs_of(named_timelines)
    rows = comparison_rows(pairs)
    policies = list(dict.fromkeys(r["recompute"] for r in rows))
    with_policies = any(p != "none" for p in policies)
    schedules = list(dict.fromkeys(t.meta.schedule for _, t in pairs))
    fig = new_figure(7.5 if not with_policies else 8.5, 5.2)
    ax = fig.add_subplot()
    if with_policies:
        palette = dict(zip(schedules, rank_palette(len(schedules)), strict=True))
        colours = [palette[t.meta.schedule] for _, t in pairs]
    else:
        colours = rank_palette(len(rows))
    grouped: dict[tuple, list[tuple[str, Timeline, dict]]] = {}
    looks: dict[tuple, tuple] = {}  # a point's (colour, marker): its last run's, on top
    for (_name, timeline), row, colour in zip(pairs, rows, colours, strict=True):
        x, y = row["bubble_percent"], row["peak_bytes_max"]
        marker = MARKERS[policies.index(row["recompute"]) % len(MARKERS)]
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
        grouped.setdefault(point, []).append((str(row["schedule"]), timeline, row))
        looks[point] = (colour, marker)
    texts = [_point_label(runs, with_policies) for runs in grouped.values()]
    ink = {}  # with policies, a point's label in its schedule's colour (darkened), if just one
    for point, runs in grouped.items() if with_policies else ():
        if len({t.meta.schedule for _, t, _ in runs}) == 1:
            ink[point] = tuple(0.7 * c for c in to_rgb(palette[runs[0][1].meta.schedule]))
    if with_policies:
        _policy_legends(fig, ax, schedules, palette, policies)
    _finish(ax, pairs, title, with_policies)
    _limits(ax, rows, 1.6 if with_policies else 1.25)
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
    return fig


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
        by_schedule.setdefault(timeline.meta.schedule, []).append(row["recompute"])
    names = ", ".join(f"{s} [{', '.join(p)}]" for s, p in by_schedule.items())
    plain = all(row["schedule"] == f"{t.meta.schedule} [{row['recompute']}]" for _, t, row in runs)
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


def _policy_legends(fig, ax, schedules: list[str], palette: dict, policies: list[str]) -> None:
    """Colour = schedule, marker = recompute policy, below the axes."""
    dot = {"linestyle": "none", "markersize": 7, "markeredgecolor": "black"}
    colour_handles = [
        Line2D([], [], marker="o", color=palette[s], label=s, **dot) for s in schedules
    ]
    marker_handles = [
        Line2D([], [], marker=MARKERS[i % len(MARKERS)], color="#BDBDBD", label=p, **dot)
        for i, p in enumerate(policies)
    ]
    fig.legend(
        handles=colour_handles + marker_handles,
        loc="outside lower center",
        ncol=max(len(colour_handles), len(marker_handles)),
        frameon=False,
        fontsize=8.5,
        title="colour: schedule   ·   marker: recompute policy",
        title_fontsize=8.5,
    )


def _finish(ax, pairs, title: str | None, with_policies: bool, numbered: bool = False) -> None:
    ax.set_xlabel("bubble (% of ranks × makespan idle)")
    ax.set_ylabel("peak activation memory (worst rank)")
    ax.grid(color="#E6E6E6", lw=0.6)
    ax.set_axisbelow(True)
    for side in ("right", "top"):
        ax.spines[side].set_visible(False)
    what = "Schedules × recompute policies" if with_policies else "Schedules compared"
    if title is None and pairs:
        meta = pairs[0][1].meta
        title = (
            f"{what} — {meta.ranks or '?'} ranks · "
            f"{meta.microbatches or '?'} microbatches ({meta.source})"
        )
    below = "lower left is better"
    if with_policies:
        note = "makespans in the list" if numbered else "labels end in the makespan"
        below += f" · {note}: recomputation costs time, not bubble"
    ax.set_title(f"{title or what}\n{below}", fontsize=11)


__all__ = ["compare_figure"]
