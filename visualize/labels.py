"""Text labels beside scatter points, clear of each other, of the points and of the leader lines.

Why a module of its own: a comparison can put half a dozen points in one corner, and a label is
only read at a glance if it covers nothing. ``place`` is a greedy search over offsets, in points
from each point: the most crowded point first, each label takes the first offset (nearest
first) whose box stays inside the axes and clear of every marker, of every label placed before
it and of their leader lines, and whose own leader line crosses none of them; when none is
clear, the one overlapping least. ``label_points`` measures each text with the figure's
renderer once the layout is settled, so the boxes are the ones drawn.
"""

from __future__ import annotations

import math

from matplotlib.backends.backend_agg import FigureCanvasAgg

Box = tuple[float, float, float, float]  # left, bottom, right, top
Offset = tuple[float, float, str, str]  # dx, dy (points), ha, va


def corners(dx: float, dy: float) -> list[Offset]:
    """Up-right, down-right, up-left and down-left of the point: ``dx`` across, ``dy`` up or
    down, the label's near corner there."""
    return [
        (dx, dy, "left", "bottom"),
        (dx, -dy, "left", "top"),
        (-dx, dy, "right", "bottom"),
        (-dx, -dy, "right", "top"),
    ]


# beside the point first (right, then left, above, below), then a little further out
NEAR: list[Offset] = [
    *corners(7, 4),
    (0, 9, "center", "bottom"),
    (0, -9, "center", "top"),
    *corners(7, 16),
    *corners(7, 28),
]
_ANGLES = (30, -30, 150, -150, 0, 180, 90, -90, 60, -60, 120, -120, 10, -10, 170, -170)


def ring(radius: float, angles=_ANGLES) -> list[Offset]:
    """Offsets ``radius`` points from the point, the label's near side or corner toward it;
    up-right first, then the other diagonals, the sides, above and below."""
    out = []
    for degrees in angles:
        cos, sin = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
        ha = "left" if cos > 0.2 else "right" if cos < -0.2 else "center"
        va = "bottom" if sin > 0.2 else "top" if sin < -0.2 else "center"
        out.append((round(radius * cos, 2), round(radius * sin, 2), ha, va))
    return out


def rings(*radii: float) -> list[Offset]:
    return [offset for radius in radii for offset in ring(radius)]


# for a number or two: a corner of the point first, then rings further out (with leader lines)
NUMBERS: list[Offset] = [*corners(6, 3), *rings(13, 22, 32, 44, 58)]


def box(anchor: tuple[float, float], size: tuple[float, float], offset: Offset) -> Box:
    """The text box of a label of ``size`` (width, height) at ``offset`` from ``anchor``."""
    (x, y), (w, h), (dx, dy, ha, va) = anchor, size, offset
    left = x + dx - {"left": 0, "center": w / 2, "right": w}[ha]
    bottom = y + dy - {"bottom": 0, "center": h / 2, "top": h}[va]
    return left, bottom, left + w, bottom + h


def overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _inside(p: tuple[float, float], b: Box) -> bool:
    return b[0] < p[0] < b[2] and b[1] < p[1] < b[3]


_REL = {"left": 0.0, "bottom": 0.0, "center": 0.5, "right": 1.0, "top": 1.0}


def relpos(offset: Offset) -> tuple[float, float]:
    """Where on its box a label's leader line starts (fractions of the box): the side or
    corner toward the point."""
    return _REL[offset[2]], _REL[offset[3]]


def _leader(anchor, label: Box, offset: Offset, clear: float) -> list[tuple[float, float]]:
    """Points every 2 along the leader line from ``anchor`` (past its marker, ``clear``) to
    the label's box; none when the box is right beside the point."""
    (x, y), (rx, ry) = anchor, relpos(offset)
    nx, ny = label[0] + rx * (label[2] - label[0]), label[1] + ry * (label[3] - label[1])
    length = math.hypot(nx - x, ny - y)
    if length <= clear + 2:
        return []
    steps = int((length - clear) / 2)
    return [
        (x + (nx - x) * t, y + (ny - y) * t)
        for t in ((clear + 2 * i) / length for i in range(1, steps + 1))
    ]


def _distance(b: Box, p: tuple[float, float]) -> float:
    return math.hypot(max(b[0] - p[0], 0, p[0] - b[2]), max(b[1] - p[1], 0, p[1] - b[3]))


def _nearer(b: Box, anchors: list, own: int) -> int:
    """How many other anchors lie nearer the box than its own (whose label it would seem)."""
    mine = _distance(b, anchors[own])
    return sum(_distance(b, p) < mine + 2 for j, p in enumerate(anchors) if j != own)


def place(
    anchors: list[tuple[float, float]],
    sizes: list[tuple[float, float]],
    offsets: list[Offset],
    area: Box,
    marker: float = 5.0,
    leader_beyond: float = 0.0,
) -> list[tuple[Offset, int]]:
    """For each anchor (in points), ``(offset, collisions)``: the chosen offset and how much
    its box and leader line (drawn for offsets longer than ``leader_beyond``) hit, counting a
    label without a leader line nearer another point than its own (0 when clear, 1000 and
    more when outside ``area``). Markers are squares ``2 × marker`` wide; the most crowded
    anchors choose first."""
    markers = [(x - marker, y - marker, x + marker, y + marker) for x, y in anchors]
    near = [sum(math.hypot(ax - bx, ay - by) < 60 for bx, by in anchors) for ax, ay in anchors]
    order = sorted(range(len(anchors)), key=lambda i: -near[i])
    labels: list[Box] = []
    lines: list[tuple[float, float]] = []
    chosen: dict[int, tuple[Offset, int]] = {}
    for i in order:
        best = None
        for rank, offset in enumerate(offsets):
            b = box(anchors[i], sizes[i], offset)
            drawn = math.hypot(offset[0], offset[1]) > leader_beyond
            line = _leader(anchors[i], b, offset, marker) if drawn else []
            others = [m for j, m in enumerate(markers) if j != i]
            hits = sum(overlaps(b, t) for t in labels + markers)
            if not drawn:
                hits += _nearer(b, anchors, i)
            hits += sum(_inside(p, b) for p in lines)
            hits += sum(any(_inside(p, t) for p in line) for t in labels + others)
            outside = b[0] < area[0] or b[1] < area[1] or b[2] > area[2] or b[3] > area[3]
            score = (1000 * outside + hits, rank)
            if best is None or score < best[0]:
                best = (score, offset, b, line)
            if score[0] == 0:
                break
        (collisions, _), offset, b, line = best
        labels.append(b)
        lines += line
        chosen[i] = (offset, collisions)
    return [chosen[i] for i in range(len(anchors))]


def label_points(
    ax,
    points: list[tuple[float, float]],
    texts: list[str],
    offsets: list[Offset],
    *,
    colours: list,
    fontsize: float = 9,
    leader_beyond: float = 0.0,
    marker: float = 5.0,
    **text,
) -> tuple[list, bool]:
    """Annotate each data point with its text at the offset ``place`` chose (the layout is
    run first, the texts measured with the renderer); a thin leader line in the label's colour
    when the offset is longer than ``leader_beyond`` points; markers count as squares
    ``2 × marker`` points wide. Returns the annotations and
    whether every label is clear (inside the axes, covering no marker, label or line)."""
    fig = ax.figure
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    fig.draw_without_rendering()  # settle the layout: where the axes and the points are
    renderer = fig.canvas.get_renderer()
    scale = 72 / fig.dpi
    anchors = [tuple(float(p) * scale for p in ax.transData.transform(xy)) for xy in points]
    area = tuple(float(v) * scale for v in ax.bbox.extents)
    sizes = []
    for label in texts:
        probe = ax.text(0, 0, label, fontsize=fontsize, **text)
        extent = probe.get_window_extent(renderer)
        sizes.append((float(extent.width) * scale, float(extent.height) * scale))
        probe.remove()
    placed = place(anchors, sizes, offsets, area, marker, leader_beyond) if points else []
    annotations = []
    for xy, label, colour, ((dx, dy, ha, va), _) in zip(
        points, texts, colours, placed, strict=True
    ):
        line = math.hypot(dx, dy) > leader_beyond
        annotation = ax.annotate(
            label,
            xy=xy,
            xytext=(dx, dy),
            textcoords="offset points",
            ha=ha,
            va=va,
            fontsize=fontsize,
            zorder=4,
            color=colour,
            arrowprops={**LEADER, "color": colour, "relpos": relpos((dx, dy, ha, va))}
            if line
            else None,
            **text,
        )
        annotation.set_in_layout(False)
        annotations.append(annotation)
    return annotations, all(int(collisions) == 0 for _, collisions in placed)


LEADER = {"arrowstyle": "-", "lw": 0.5, "shrinkA": 1, "shrinkB": 5}

__all__ = ["LEADER", "NEAR", "NUMBERS", "corners", "label_points", "place", "ring", "rings"]
