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

from matplotlib.figure import Figure

from simulator.timeline import Timeline
from simulator.units import human_bytes
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
    """One dict per schedule, in the order given: ``schedule``, ``makespan``, ``time_unit``,
    ``bubble_percent``, ``peak_bytes`` (list, per rank), ``peak_bytes_max``, ``peak_inflight``
    (max over ranks), ``rank_memory_max`` (whole-rank memory of the fullest rank, or None) and
    ``fits`` (every rank within the device's memory; None when no device was given)."""
    rows = []
    for name, timeline in _pairs(named_timelines):
        summary = timeline.summary()
        peaks = [r.peak_activation_bytes for r in summary.per_rank]
        memory = [r.memory for r in summary.per_rank if r.memory]
        device = bool(memory) and timeline.meta.memory_capacity is not None
        rows.append(
            {
                "rank_memory_max": max((m["total"] for m in memory), default=None),
                "fits": all(m["fits"] for m in memory) if device else None,
                "schedule": name,
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


_CANDIDATES = [
    (7, 4, "left", "bottom"),
    (7, -4, "left", "top"),
    (-7, 4, "right", "bottom"),
    (-7, -4, "right", "top"),
    (0, 9, "center", "bottom"),
    (0, -9, "center", "top"),
    (7, 16, "left", "bottom"),
    (7, -16, "left", "top"),
    (-7, 16, "right", "bottom"),
    (-7, -16, "right", "top"),
]


def place_labels(
    anchors: list[tuple[float, float]],
    texts: list[str],
    fontsize: float,
    area: tuple[float, float],
) -> list[tuple[float, float, str, str]]:
    """Greedy label placement: for each point (in points from the axes' lower left), the first
    offset ``(dx, dy, ha, va)`` whose text box stays inside ``area`` and clear of every marker
    and every label placed before it (the first candidate if none is clear)."""

    def box(anchor, text, candidate):
        (x, y), (dx, dy, ha, va) = anchor, candidate
        w, h = 0.6 * fontsize * len(text), 1.25 * fontsize
        left = x + dx - {"left": 0, "center": w / 2, "right": w}[ha]
        bottom = y + dy - {"bottom": 0, "top": h}[va]
        return left, bottom, left + w, bottom + h

    def overlaps(a, b) -> bool:
        return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]

    taken = [(x - 5, y - 5, x + 5, y + 5) for x, y in anchors]
    placed = []
    for anchor, text in zip(anchors, texts, strict=True):
        choice = _CANDIDATES[0]
        for candidate in _CANDIDATES:
            b = box(anchor, text, candidate)
            inside = b[0] >= 0 and b[1] >= 0 and b[2] <= area[0] and b[3] <= area[1]
            if inside and not any(overlaps(b, t) for t in taken):
                choice = candidate
                break
        taken.append(box(anchor, text, choice))
        placed.append(choice)
    return placed


def compare_figure(
    named_timelines: Mapping[str, Timeline] | Iterable[tuple[str, Timeline]],
    *,
    title: str | None = None,
) -> Figure:
    """Scatter bubble % (x) against the worst rank's peak activation memory (y), one labelled
    point per schedule (markers ``gid="point:{schedule}"``); schedules that land on the same
    point share one label."""
    pairs = _pairs(named_timelines)
    rows = comparison_rows(pairs)
    fig = new_figure(7.5, 5.2)
    ax = fig.add_subplot()
    colours = rank_palette(len(rows))
    grouped: dict[tuple[float, int], list[str]] = {}
    for row, colour in zip(rows, colours, strict=True):
        x, y = row["bubble_percent"], row["peak_bytes_max"]
        ax.scatter(
            [x],
            [y],
            s=70,
            color=colour,
            edgecolor="black",
            linewidth=0.6,
            zorder=3,
            gid=f"point:{row['schedule']}",
        )
        grouped.setdefault((round(x, 6), y), []).append(str(row["schedule"]))

    largest = max((r["peak_bytes_max"] for r in rows), default=1) or 1
    xs = [r["bubble_percent"] for r in rows] or [0.0]
    x_top, y_top = max(max(xs) * 1.25, 5), largest * 1.2
    ax.set_xlim(0, x_top)
    ax.set_ylim(0, y_top)
    width_pts, height_pts = 7.5 * 72 * 0.82, 5.2 * 72 * 0.72  # the axes, roughly
    anchors = [(x / x_top * width_pts, y / y_top * height_pts) for x, y in grouped]
    texts = [", ".join(names) for names in grouped.values()]
    for (x, y), text, (dx, dy, ha, va) in zip(
        grouped, texts, place_labels(anchors, texts, 9, (width_pts, height_pts)), strict=True
    ):
        ax.annotate(
            text,
            xy=(x, y),
            xytext=(dx, dy),
            textcoords="offset points",
            ha=ha,
            va=va,
            fontsize=9,
            zorder=4,
        )
    set_bytes_axis(ax, largest, nbins=5)
    ax.set_xlabel("bubble (% of ranks × makespan idle)")
    ax.set_ylabel("peak activation memory (worst rank)")
    ax.grid(color="#E6E6E6", lw=0.6)
    ax.set_axisbelow(True)
    for side in ("right", "top"):
        ax.spines[side].set_visible(False)
    if title is None and pairs:
        meta = pairs[0][1].meta
        title = (
            f"Schedules compared — {meta.ranks or '?'} ranks · "
            f"{meta.microbatches or '?'} microbatches ({meta.source})"
        )
    ax.set_title(f"{title or 'Schedules compared'}\nlower left is better", fontsize=11)
    return fig


__all__ = ["compare_figure", "comparison_rows", "format_table"]
