"""Activation offload in the memory figure: the bytes each rank has on the host, over time.

Why a module of its own: the memory figure's curves are the device's (the cache table frees a
pebble when its offload ends and takes it back when its prefetch starts); what is on the host
is read from the ``offload`` table instead, held from an offload's start to its prefetch's end
(``Timeline.host_peak_bytes`` counts it the same way), and checked against the device's share
of its node's host memory (``meta.host_memory_capacity``), which is often far above the
device's bytes, so the figure says so rather than flatten the device curves under it.
"""

from __future__ import annotations

import numpy as np
from matplotlib.lines import Line2D

from simulator.timeline import Timeline
from simulator.units import human_bytes
from visualize.style import OKABE_ITO

HOST_COLOR = OKABE_ITO["blue"]  # blue pebbles: on the host
HOST_LIMIT_STYLE = {"color": HOST_COLOR, "ls": ":", "lw": 1.3}
ON_SCALE = 3.0  # the host limit is drawn when under this many times the largest curve


def host_series(timeline: Timeline) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per rank (replica 0), (times, bytes on the host after each change), from (0, 0)."""
    spans = timeline.offload.columns()
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    if not len(spans["rank"]):
        return out
    for rank in np.unique(spans["rank"]).tolist():
        mine = (spans["rank"] == rank) & (spans["replica"] == 0)
        up = mine & (spans["kind"] == "offload")
        down = mine & (spans["kind"] == "prefetch")
        times = np.r_[spans["start"][up], spans["end"][down]]
        delta = np.r_[spans["bytes"][up], -spans["bytes"][down]].astype(np.int64)
        order = np.argsort(times, kind="stable")
        times, totals = times[order], np.cumsum(delta[order])
        last = np.r_[times[1:] != times[:-1], True]  # the level once a time's changes are done
        out[int(rank)] = (np.r_[0.0, times[last]], np.r_[0, totals[last]])
    return out


def host_largest(series: dict) -> int:
    return max((int(totals.max()) for _, totals in series.values()), default=0)


def draw_host(ax, series: dict, rank: int, end: float) -> bool:
    """Rank ``rank``'s host bytes as a blue step line to ``end``; returns whether drawn."""
    if rank not in series:
        return False
    times, totals = series[rank]
    xs, ys = np.r_[times, max(end, float(times[-1]))], np.r_[totals, totals[-1]]
    ax.plot(xs, ys, drawstyle="steps-post", color=HOST_COLOR, lw=1.2, gid=f"host:{rank}")
    return True


def host_limit_shown(timeline: Timeline, top: float) -> bool:
    """Is the host memory's share small enough to draw on an axis reaching ``top``?"""
    room = timeline.meta.host_memory_capacity
    return room is not None and room <= ON_SCALE * top


def host_handles(drawn: bool, limit: bool, room: int | None) -> list:
    handles = []
    if drawn:
        handles.append(Line2D([], [], color=HOST_COLOR, lw=1.2, label="on the host"))
    if limit and room is not None:
        label = f"host memory per device, {human_bytes(room)}"
        handles.append(Line2D([], [], **HOST_LIMIT_STYLE, label=label))
    return handles


def host_note(
    timeline: Timeline, series: dict, limit_drawn: bool, curves: bool = True
) -> str | None:
    """The title's line on the host: its fullest rank and the host memory per device, said
    to be off the scale when ``curves`` are drawn but the limit is not."""
    if not series:
        return None
    held = host_largest(series)
    room = timeline.meta.host_memory_capacity
    note = f"on the host{' (blue)' if curves else ''}: at most {human_bytes(held)} on a rank"
    if room is not None and not limit_drawn:
        share = f"{held / room:.1%}" if room else "?"
        where = "; off the scale" if curves else ""
        note += f", of {human_bytes(room)} host memory per device ({share}{where})"
    return note


__all__ = ["HOST_COLOR", "draw_host", "host_handles", "host_note", "host_series"]
