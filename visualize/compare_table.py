"""Schedules compared as a table: one row of numbers per run, as aligned text, CSV or Markdown.

Why apart from the figure (``visualize.compare``): ``compare`` prints and writes the table
whether or not it draws, and the demo's report embeds it; every number is read from
``Timeline.summary()`` and the Timeline's meta.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping

from simulator.timeline import Timeline
from simulator.timeline.report import offload_waits
from simulator.timeline.run_policy import policy_text
from simulator.units import human_bytes
from visualize.style import byte_unit, format_time

STYLES = ("text", "csv", "markdown")


def pairs_of(named_timelines) -> list[tuple[str, Timeline]]:
    if isinstance(named_timelines, Mapping):
        return list(named_timelines.items())
    return [(str(name), timeline) for name, timeline in named_timelines]


def comparison_rows(
    named_timelines: Mapping[str, Timeline] | Iterable[tuple[str, Timeline]],
) -> list[dict]:
    """One dict per run, in the order given: ``schedule`` (the name; ``name [policy]`` when
    some run recomputes or offloads and the name does not say its policy), ``recompute`` (the
    policy, ``none`` without), ``offload`` (likewise), ``policy`` (both in words,
    ``run_policy.policy_text``), ``host_bytes_max`` (the most offloaded bytes a rank's host
    held; 0 without offload), ``offload_wait_max`` (the longest exposed prefetch wait of a
    rank, all steps), ``makespan``, ``time_unit``,
    ``bubble_percent``, ``peak_bytes`` (list, per rank), ``peak_bytes_max``, ``peak_inflight``
    (max over ranks), ``rank_memory_max`` (whole-rank memory of the fullest rank, or None) and
    ``fits`` (every rank within the device's memory; None when no device was given)."""
    rows = []
    pairs = pairs_of(named_timelines)
    policies = any(timeline.meta.recompute or timeline.meta.offload for _, timeline in pairs)
    for name, timeline in pairs:
        summary = timeline.summary()
        peaks = [r.true_peak_bytes for r in summary.per_rank]
        memory = [r.memory for r in summary.per_rank if r.memory]
        device = bool(memory) and timeline.meta.memory_capacity is not None
        rows.append(
            {
                "rank_memory_max": max((m["total"] for m in memory), default=None),
                "fits": all(m["fits"] for m in memory) if device else None,
                "schedule": run_label(name, timeline) if policies else name,
                "recompute": policy_of(timeline),
                "offload": timeline.meta.offload or "none",
                "policy": run_policy(timeline),
                "host_bytes_max": max(timeline.host_peak_bytes().values(), default=0),
                "offload_wait_max": max(offload_waits(timeline).values(), default=0.0),
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


def run_policy(timeline: Timeline) -> str:
    """The run's recompute and offload policies in words: ``full``, ``offload full``,
    ``full + offload selective`` or ``none``."""
    return policy_text(timeline.meta.recompute, timeline.meta.offload)


def run_label(name: str, timeline: Timeline) -> str:
    """``name [policy]``, unless ``name`` already says the run's policy in brackets or
    parentheses (the CLI names its (schedule, policy) pairs ``1f1b [full]``)."""
    policy = run_policy(timeline)
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
_OFFLOAD_HEADERS = ("host peak", "prefetch wait")


def _with_offload(rows: list[dict]) -> bool:
    """The table gets the host's peak and the exposed prefetch wait when some run offloads."""
    return any(row.get("offload", "none") != "none" for row in rows)


def _with_device(rows: list[dict]) -> bool:
    """The table gets whole-rank memory and fits columns when a device was given."""
    return any(row.get("fits") is not None for row in rows)


def _human_cells(row: dict, device: bool = False, offload: bool = False) -> list[str]:
    cells = [
        str(row["schedule"]),
        format_time(row["makespan"], row.get("time_unit", "s")),
        f"{row['bubble_percent']:.1f}",
        human_bytes(row["peak_bytes_max"]),
        _per_rank(row["peak_bytes"]),
        str(row["peak_inflight"]),
    ]
    if offload:
        wait = format_time(row["offload_wait_max"], row.get("time_unit", "s"))
        cells += [human_bytes(row["host_bytes_max"]), wait]
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
        device, offload = _with_device(rows), _with_offload(rows)
        extra = ["host_bytes_max", "offload_wait_max"] if offload else []
        extra += ["rank_memory_max", "fits"] if device else []
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
            values = [row["host_bytes_max"], f"{row['offload_wait_max']:.6g}"] if offload else []
            values += [row["rank_memory_max"], row["fits"]] if device else []
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
    device, offload = _with_device(rows), _with_offload(rows)
    headers = _HEADERS + (_OFFLOAD_HEADERS if offload else ()) + (_DEVICE_HEADERS if device else ())
    right = right_flags = (
        _RIGHT + ((True, True) if offload else ()) + ((True, False) if device else ())
    )
    cells = [_human_cells(row, device, offload) for row in rows]
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


__all__ = ["comparison_rows", "format_table", "pairs_of", "policy_of", "run_label", "run_policy"]
