"""Activation offload in the pipeline chart: a copy lane under each rank's compute lane.

Why a module of its own: a host-link copy is not an action but a span on one of the rank's two
copy streams (``Timeline.offload``): device to host after a forward (``offload``), host to
device before the backward (``prefetch``). The chart gives each rank a second, thinner lane for
them, offloads on its upper half and prefetches on its lower half, so one sees whether a
round trip hides under the compute. A backward held back for its prefetch (``wait``) is idle
time of the compute lane, drawn there hatched: the exposed transfer.
"""

from __future__ import annotations

from typing import NamedTuple

from matplotlib.collections import PolyCollection
from matplotlib.patches import Patch

from simulator.timeline import Timeline
from visualize.style import OKABE_ITO

OFFLOAD_COLOR = OKABE_ITO["blue"]  # towards the host: blue pebbles
PREFETCH_COLOR = OKABE_ITO["purple"]  # back towards the device
WAIT_EDGE = OKABE_ITO["vermillion"]
WAIT_HATCH = "xxxx"
RASTER_ABOVE = 400  # copies of one kind: more and they are drawn as pixels in an SVG
COPY_HALF = 0.34  # each stream's strip, within a copy lane of height 1


class CopySpan(NamedTuple):
    """One span of the ``offload`` table as drawn: ``kind`` offload, prefetch or wait."""

    rank: int
    stage: int
    kind: str
    microbatch: int
    step: int
    start: float
    end: float
    bytes: int


def copy_spans(timeline: Timeline, replica: int | None = 0) -> list[CopySpan]:
    """The offload table's spans of ``replica`` (replica 0 when None: the copy lanes are drawn
    for one replica's ranks), in the table's order."""
    want = replica or 0
    return [
        CopySpan(s.rank, s.stage, s.kind, s.microbatch, s.step, s.start, s.end, s.bytes)
        for s in timeline.offload
        if s.replica == want
    ]


def has_copy_lanes(timeline: Timeline, replica: int | None) -> bool:
    """The chart gains copy lanes when the run offloaded and one replica's ranks are shown."""
    return len(timeline.offload) > 0 and (replica is not None or timeline.meta.dp == 1)


def draw_copy_lanes(ax, spans: list[CopySpan], lane_of, t0: float, t1: float, least: float):
    """The copies of ``spans`` inside [t0, t1]: offloads on the upper half of rank r's copy
    lane (``lane_of(r) + 1``), prefetches on the lower half, waits hatched on the compute lane
    (``lane_of(r)``), each at least ``least`` long. One collection per kind (cheap at scale,
    ``gid="copies:offload"`` ...); returns the kinds drawn."""
    shapes: dict[str, list] = {"offload": [], "prefetch": [], "wait": []}
    for s in spans:
        if s.end < t0 or s.start > t1 or s.kind not in shapes:
            continue
        x0, x1 = s.start, max(s.end, s.start + least)
        if s.kind == "wait":
            y0, y1 = lane_of(s.rank) - 0.4, lane_of(s.rank) + 0.4
        else:
            middle = lane_of(s.rank) + 1
            y0, y1 = (
                (middle - COPY_HALF, middle)
                if s.kind == "offload"
                else (middle, middle + COPY_HALF)
            )
        shapes[s.kind].append([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])
    looks = {
        "offload": {"facecolors": OFFLOAD_COLOR, "edgecolors": "white", "linewidths": 0.3},
        "prefetch": {"facecolors": PREFETCH_COLOR, "edgecolors": "white", "linewidths": 0.3},
        "wait": {
            "facecolors": "none",
            "edgecolors": WAIT_EDGE,
            "hatch": WAIT_HATCH,
            "linewidths": 0.6,
        },
    }
    for kind, polygons in shapes.items():
        if polygons:
            ax.add_collection(
                PolyCollection(
                    polygons,
                    zorder=2.6,
                    gid=f"copies:{kind}",
                    rasterized=len(polygons) > RASTER_ABOVE,  # an SVG of thousands stays small
                    **looks[kind],
                )
            )
    return {kind for kind, polygons in shapes.items() if polygons}


def copy_handles(kinds: set[str]) -> list[Patch]:
    """Legend entries of the copy kinds drawn."""
    handles = []
    if "offload" in kinds:
        handles.append(Patch(facecolor=OFFLOAD_COLOR, label="offload to host"))
    if "prefetch" in kinds:
        handles.append(Patch(facecolor=PREFETCH_COLOR, label="prefetch from host"))
    if "wait" in kinds:
        label = "waits for prefetch (exposed)"
        handles.append(Patch(facecolor="none", edgecolor=WAIT_EDGE, hatch=WAIT_HATCH, label=label))
    return handles


__all__ = ["CopySpan", "copy_handles", "copy_spans", "draw_copy_lanes", "has_copy_lanes"]
