"""Activation offload in the pebble graph: blue pebbles on the host, hatched ones in flight.

Why a module of its own: the cache table is the device's (a pebble leaves it when its offload
ends and comes back when its prefetch starts), so the pebble graph's bars show red pebbles
only. What went to the host is read off the ``offload`` table: for each offload of (stage,
microbatch, step), the stage's layers whose device lifetime ends exactly when the copy ends and
resumes exactly when the matching prefetch starts are the pebbles that went out. Each is then

* **in flight out** from the offload's start to its end (on the device still, being copied),
* **on the host** from the offload's end to the prefetch's start (a blue pebble), and
* **in flight back** from the prefetch's start to its end (on the device again, being filled).

The graph draws the host and in-flight counts from the top of each row down, the device's
count from the bottom up, both on one scale (the most pebbles a layer has anywhere at once),
so the two never overlap and a row's full height is that most.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import NamedTuple

import numpy as np
from matplotlib.patches import Patch

from simulator.timeline import Timeline
from visualize.density import rectangles
from visualize.pebble_data import PebbleInterval, count_segments, counts_by_row
from visualize.rows import Row, RowCount
from visualize.style import OKABE_ITO, layer_info

HOST_COLOR = OKABE_ITO["blue"]
FLIGHT_HATCH = "////"


def host_pebbles(
    timeline: Timeline, intervals: list[PebbleInterval], replica: int = 0
) -> tuple[list[PebbleInterval], list[PebbleInterval]]:
    """(on the host, in flight): one PebbleInterval per offloaded pebble on the host, and two
    per pebble in flight (out, then back), of ``replica``."""
    spans = [s for s in timeline.offload if s.replica == replica and s.kind != "wait"]
    if not spans:
        return [], []
    prefetch = {(s.stage, s.microbatch, s.step): s for s in spans if s.kind == "prefetch"}
    layers_of: dict[int, list[int]] = defaultdict(list)
    for layer in layer_info(timeline):
        layers_of[layer.stage].append(layer.index)
    lives: dict[tuple[int, int, int], list[PebbleInterval]] = defaultdict(list)
    for i in intervals:
        lives[i.layer, i.microbatch, i.step].append(i)
    host, flight = [], []
    for out in (s for s in spans if s.kind == "offload"):
        back = prefetch.get((out.stage, out.microbatch, out.step))
        if back is None:
            continue
        for layer in layers_of.get(out.stage, ()):
            mine = lives.get((layer, out.microbatch, out.step), ())
            left = any(math.isclose(i.end, out.end, abs_tol=1e-12) for i in mine)
            came = any(math.isclose(i.start, back.start, abs_tol=1e-12) for i in mine)
            if not (left and came):
                continue
            key = (layer, out.microbatch, out.step)
            host.append(PebbleInterval(*key, out.end, back.start))
            flight.append(PebbleInterval(*key, out.start, out.end))
            flight.append(PebbleInterval(*key, back.start, back.end))
    return host, flight


class OffloadRows(NamedTuple):
    """What the pebble graph draws of offload: per row, the host's and the in-flight counts,
    and the pebbles a row's height stands for (0 without offload: the device's most)."""

    host: list[RowCount]
    flight: list[RowCount]
    scale: int

    @property
    def active(self) -> bool:
        return bool(self.host or self.flight)


def offload_rows(
    timeline: Timeline,
    intervals: list[PebbleInterval],
    rows: list[Row],
    device: list[RowCount],
    replica: int = 0,
) -> OffloadRows:
    """``host_pebbles`` counted per figure row (``counts_by_row``), with ``row_scale`` over
    them and the device's row counts ``device``."""
    on_host, in_flight = host_pebbles(timeline, intervals, replica)
    if not on_host and not in_flight:
        return OffloadRows([], [], 0)
    host = counts_by_row(count_segments(on_host), rows)
    flight = counts_by_row(count_segments(in_flight), rows)
    return OffloadRows(host, flight, row_scale(device, host, flight))


def draw_host_pebbles(ax, offload: OffloadRows, rows: list[Row], row_height: float) -> None:
    """Per row, the host count (solid blue) from the top of the row down, and the in-flight
    count (hatched) below it, each pebble ``row_height / offload.scale`` tall: one collection
    each, ``gid="host-pebbles"`` and ``gid="in-flight"``."""
    if not offload.active:
        return
    host, flight = offload.host, offload.flight
    unit = row_height / offload.scale
    times: dict[int, set[float]] = defaultdict(set)
    host_of, flight_of = _by_row(host), _by_row(flight)
    for c in (*host, *flight):
        times[c.row] |= {c.start, c.end}
    boxes: dict[str, list[tuple[float, float, float, float]]] = {"host": [], "flight": []}
    for row, moments in times.items():
        edges = np.array(sorted(moments))
        if len(edges) < 2:
            continue
        middles = (edges[:-1] + edges[1:]) / 2
        on_host = _level(host_of.get(row, []), middles)
        moving = _level(flight_of.get(row, []), middles)
        top = row - row_height / 2
        for x0, x1, h, f in zip(edges[:-1], edges[1:], on_host, moving, strict=True):
            if h:
                boxes["host"].append((x0, x1, top, top + h * unit))
            if f:
                boxes["flight"].append((x0, x1, top + h * unit, top + (h + f) * unit))
    looks = {
        "host": {"facecolors": HOST_COLOR, "edgecolor": "none", "gid": "host-pebbles"},
        "flight": {
            "facecolors": "white",
            "edgecolor": HOST_COLOR,
            "hatch": FLIGHT_HATCH,
            "linewidths": 0.0,
            "gid": "in-flight",
        },
    }
    for kind, found in boxes.items():
        if found:
            x0, x1, y0, y1 = np.array(found).T
            rectangles(ax, x0, x1, y0, y1, zorder=2.2, **looks[kind])


def row_scale(device: list[RowCount], host: list[RowCount], flight: list[RowCount]) -> int:
    """The most pebbles a row has at once, on the device, on the host and in flight together
    (a pebble in flight is on the device too, and counted in both): the number of pebbles a
    row's full height stands for, so the device's bar and the host's never overlap."""
    rows = [_by_row(counts) for counts in (device, host, flight)]
    most = 1
    for row in set().union(*rows):
        mine = [found.get(row, []) for found in rows]
        edges = np.array(sorted({t for counts in mine for c in counts for t in (c.start, c.end)}))
        if len(edges) < 2:
            continue
        middles = (edges[:-1] + edges[1:]) / 2
        most = max(most, int(sum(_level(counts, middles) for counts in mine).max()))
    return most


def _by_row(counts: list[RowCount]) -> dict[int, list[RowCount]]:
    out: dict[int, list[RowCount]] = defaultdict(list)
    for c in counts:
        out[c.row].append(c)
    return out


def _level(counts: list[RowCount], at: np.ndarray) -> np.ndarray:
    """A row's count (its segments, which do not overlap) at each sorted time of ``at``."""
    out = np.zeros(len(at), dtype=np.int64)
    for c in counts:
        lo, hi = np.searchsorted(at, c.start, "right"), np.searchsorted(at, c.end, "left")
        out[lo:hi] = c.count
    return out


def host_handles(offload: OffloadRows) -> list[Patch]:
    """Legend entries of the host's and the in-flight pebbles drawn."""
    handles = []
    if offload.host:
        handles.append(Patch(facecolor=HOST_COLOR, label="offloaded: on the host (blue)"))
    if offload.flight:
        label = "in flight: copying out or back (the device holds it too)"
        handles.append(
            Patch(facecolor="white", edgecolor=HOST_COLOR, hatch=FLIGHT_HATCH, label=label)
        )
    return handles


__all__ = [
    "OffloadRows",
    "draw_host_pebbles",
    "host_handles",
    "host_pebbles",
    "offload_rows",
    "row_scale",
]
