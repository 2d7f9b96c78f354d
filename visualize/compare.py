"""Comparing schedules on one model and size: the bubble against the activation memory.

The trade-off every schedule family makes fits in one scatter: the bubble fraction (idle share of
ranks × makespan) across, the peak cached activations of the worst rank up, one labelled point
per schedule; lower-left is better. ``comparison_rows`` gives the same numbers as a table
(``format_table``: aligned text, CSV or Markdown), each read from ``Timeline.summary()``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping

from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from simulator.timeline import Timeline
from simulator.units import human_bytes
from visualize.labels import NEAR, NUMBERS, label_points, rings
from visualize.style import (
    byte_unit,
    format_time,
    new_figure,
    rank_palette,
    set_bytes_axis,
)

STYLES = ("text", "csv", "markdown")


def _pairs(named_timelines) -> list[tuple[str, Timeline]]:
    if isinstance(named_timelines, Mapping):
        return list(named_timelines.items())
    return [(str(name), timeline) for name, timeline in named_timelines]


def comparison_rows(
    named_timelines: Mapping[str, Timeline] | Iterable[tuple[str, Timeline]],
) -> list[dict]:
    """One dict per run, in the order given: ``schedule`` (the name; ``name [policy]`` when
    some run recomputes and the name does not say its policy), ``recompute`` (the policy,
    ``none`` without), ``makespan``, ``time_unit``,
    ``bubble_percent``, ``peak_bytes`` (list, per rank), ``peak_bytes_max``, ``peak_inflight``
    (max over ranks), ``rank_memory_max`` (whole-rank memory of the fullest rank, or None) and
    ``fits`` (every rank within the device's memory; None when no device was given)."""
    rows = []
    pairs = _pairs(named_timelines)
    policies = any(timeline.meta.recompute for _, timeline in pairs)
    for name, timeline in pairs:
        summary = timeline.summary()
        peaks = [r.peak_activation_bytes for r in summary.per_rank]
        memory = [r.memory for r in summary.per_rank if r.memory]
        device = bool(memory) and timeline.meta.memory_capacity is not None
        rows.append(
            {
                "rank_memory_max": max((m["total"] for m in memory), default=None),
                "fits": all(m["fits"] for m in memory) if device else None,
                "schedule": run_label(name, timeline) if policies else name,
                "recompute": policy_of(timeline),
                "makespan": summary.makespan,
                "time_unit": timeline.time_unit,
                "bubble_percent": summary.bubble_fraction * 100,
                "peak_bytes": peaks,
                "peak_bytes_max": max(peaks, default=0),
                "peak_inflight": max(
                    (r.peak_inflight_microbatches for r in summary.per_rank), default=0
                ),
            }
        )
    return rows


def policy_of(timeline: Timeline) -> str:
    """The run's recompute policy (``meta.recompute``), ``none`` without one."""
    return timeline.meta.recompute or "none"


def run_label(name: str, timeline: Timeline) -> str:
    """``name [policy]``, unless ``name`` already says the run's policy in brackets or
    parentheses (the CLI names its (schedule, policy) pairs ``1f1b [full]``)."""
    policy = policy_of(timeline)
    if f"[{policy}]" in name or f"({policy})" in name:
        return name
    return f"{name} [{policy}]"


_HEADERS = ("schedule", "makespan", "bubble %", "peak memory", "peak per rank", "in-flight")
_RIGHT = (False, True, True, True, False, True)


def _per_rank(peaks: list[int]) -> str:
    """``322 / 224 / 40.5 KiB``: every rank in the unit of the largest."""
    if not peaks:
        return "-"
    factor, unit = byte_unit(max(peaks))
    if unit == "B":
        return " / ".join(str(int(b)) for b in peaks) + " B"
    return " / ".join(f"{b / factor:.3g}" for b in peaks) + f" {unit}"


_DEVICE_HEADERS = ("rank memory", "fits")


def _with_device(rows: list[dict]) -> bool:
    """The table gets whole-rank memory and fits columns when a device was given."""
    return any(row.get("fits") is not None for row in rows)


def _human_cells(row: dict, device: bool = False) -> list[str]:
    cells = [
        str(row["schedule"]),
        format_time(row["makespan"], row.get("time_unit", "s")),
        f"{row['bubble_percent']:.1f}",
        human_bytes(row["peak_bytes_max"]),
        _per_rank(row["peak_bytes"]),
        str(row["peak_inflight"]),
    ]
    if device:
        cells += [human_bytes(row["rank_memory_max"]), "yes" if row["fits"] else "no"]
    return cells


def format_table(rows: list[dict], style: str = "text") -> str:
    """The rows as aligned text columns, CSV (raw numbers; per-rank peaks ``;``-separated) or a
    Markdown table. Ends without a newline."""
    if style not in STYLES:
        raise ValueError(f"table style must be one of {', '.join(STYLES)}, not {style!r}.")
    if style == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        device = _with_device(rows)
        extra = ["rank_memory_max", "fits"] if device else []
        writer.writerow(
            [
                "schedule",
                "makespan",
                "time_unit",
                "bubble_percent",
                "peak_bytes_max",
                "peak_bytes_per_rank",
                "peak_inflight",
                *extra,
            ]
        )
        for row in rows:
            values = [row["rank_memory_max"], row["fits"]] if device else []
            writer.writerow(
                [
                    row["schedule"],
                    f"{row['makespan']:.6g}",
                    row.get("time_unit", "s"),
                    f"{row['bubble_percent']:.4f}",
                    row["peak_bytes_max"],
                    ";".join(str(b) for b in row["peak_bytes"]),
                    row["peak_inflight"],
                    *values,
                ]
            )
        return out.getvalue().rstrip("\n")
    device = _with_device(rows)
    headers = _HEADERS + (_DEVICE_HEADERS if device else ())
    right = right_flags = _RIGHT + ((True, False) if device else ())
    cells = [_human_cells(row, device) for row in rows]
    if style == "markdown":
        lines = ["| " + " | ".join(headers) + " |"]
        lines.append("|" + "|".join("---:" if r else "---" for r in right) + "|")
        lines += ["| " + " | ".join(c) + " |" for c in cells]
        return "\n".join(lines)
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]

    def line(values) -> str:
        parts = [
            v.rjust(w) if right else v.ljust(w)
            for v, w, right in zip(values, widths, right_flags, strict=True)
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), line("-" * w for w in widths), *map(line, cells)])


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
    pairs = _pairs(named_timelines)
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


__all__ = ["compare_figure", "comparison_rows", "format_table", "policy_of", "run_label"]
