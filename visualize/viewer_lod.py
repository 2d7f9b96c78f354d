"""Level of detail for the HTML viewer: draw what the screen can show, keep the rest in the page.

Why: half a million actions are a few hundred boxes per pixel column of a 1,060-pixel chart.
Drawn one by one they cost seconds to draw and to redraw on every zoom where the CPU draws
(WebGL without a GPU), and the page carried every box three times (line, hover point, hover
numbers). Here a panel's segments (boxes, pebble spans) are one ``SegmentLayer``, and
for any window of time ``plan`` splits the visible ones in two:

* segments at least a pixel wide stay segments (drawn, hoverable), as long as there are at
  most ``MAX_BOXES`` of them;
* the rest, narrower than a pixel (or all of them, past ``MAX_BOXES``), are merged per lane
  and pixel column into the share of the column's time each kind covers (``occupancy``:
  exact, nothing sampled) and drawn as one image, each column's kinds blended by their shares
  and its opacity the busy share (``overview_image``): a bubble stays blank, a half-idle
  column is pale.

So a lane's busy time per pixel column is the same drawn as raw, and the figure holds at most
``MAX_BOXES`` boxes and one image per panel at any zoom. The page's script
(``viewer_script``) repeats the split for every zoom or pan from the full data, which the page
carries once, packed (``pack``: typed columns, bytes shuffled, deflated, base64). Memory lines
get the same treatment per rank: each bucket of pixels keeps its first, lowest, highest and
last point (``envelope``), so no peak is lost.
"""

from __future__ import annotations

import base64
import io
import zlib
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from matplotlib.colors import to_rgb
from PIL import Image

from visualize.density import occupancy

MAX_BOXES = 5000  # segments drawn one by one per panel; past it, the panel is one image
MEMORY_POINTS = 30_000  # points of all memory lines together, per view
MIN_ALPHA = 0.3  # a column with any work is at least this opaque (else a lone action vanishes)
IDLE = 1e-6  # a column busy for less than this share is idle (rounding, not work)


class Kind(NamedTuple):
    """One kind of segment of a layer: its legend name and group, colour, line width (pixels)
    and the heading of its hover, where ``{lane}`` is the lane's text and ``{name}`` a field's
    value (``{stage}F{microbatch}``)."""

    name: str
    colour: str
    width: float
    group: str
    title: str


@dataclass
class SegmentLayer:
    """A panel's segments: segment ``i`` covers ``[start[i], end[i]]`` (axis units) on lane
    ``lane[i]`` (at height ``lane_y``) in kind ``kind[i]``. Segments of one lane and kind must
    not overlap. ``fields`` are extra whole numbers per segment for the hover: its heading is
    the kind's ``title`` (as ``text``), its ``hovertemplate`` shows ``hover`` (names of
    fields, or ``row`` of the lane, ``start``, ``end``, ``duration``) as ``customdata``."""

    panel: str
    noun: str  # what a segment is, in the page's note: "actions", "spans"
    lane_y: np.ndarray
    lane_row: np.ndarray
    kinds: list[Kind]
    lane: np.ndarray
    kind: np.ndarray
    start: np.ndarray
    end: np.ndarray
    fields: dict[str, np.ndarray] = field(default_factory=dict)
    hover: list[str] = field(default_factory=list)
    hovertemplate: str = ""
    lane_text: list[str] | None = None  # a lane's ``{lane}`` in a title

    def __post_init__(self) -> None:
        order = np.lexsort((self.start, self.lane))
        self.lane = np.asarray(self.lane, np.int64)[order]
        self.kind = np.asarray(self.kind, np.int64)[order]
        self.start = np.asarray(self.start, np.float64)[order]
        self.end = np.asarray(self.end, np.float64)[order]
        self.fields = {name: np.asarray(v)[order] for name, v in self.fields.items()}
        self.lane_y = np.asarray(self.lane_y, np.float64)
        self.lane_row = np.asarray(self.lane_row, np.int64)

    @property
    def count(self) -> int:
        return len(self.start)

    def customdata(self, index: np.ndarray) -> np.ndarray:
        """The hover's numbers of segments ``index``, one row each (float32: 7 digits)."""
        columns = []
        for name in self.hover:
            if name == "row":
                columns.append(self.lane_row[self.lane[index]])
            elif name == "duration":
                columns.append(self.end[index] - self.start[index])
            elif name in ("start", "end"):
                columns.append(getattr(self, name)[index])
            else:
                columns.append(self.fields[name][index])
        return np.column_stack(columns).astype(np.float32) if columns else np.zeros((len(index), 0))

    def titles(self, index: np.ndarray) -> list[str]:
        """The hover headings of segments ``index`` (their kinds' ``title`` filled in)."""
        out = []
        for i in index:
            values = {name: int(v[i]) for name, v in self.fields.items() if "{" + name in
                      self.kinds[self.kind[i]].title}  # fmt: skip
            if self.lane_text is not None:
                values["lane"] = self.lane_text[self.lane[i]]
            out.append(self.kinds[self.kind[i]].title.format(**values))
        return out


class Plan(NamedTuple):
    """What one window of a layer draws: the segments drawn one by one (indices) and, per
    lane, kind and pixel column, the share of the column the merged rest covers."""

    detail: np.ndarray
    shares: np.ndarray  # (lanes, kinds, columns)
    visible: int
    merged: int


def plan(
    layer: SegmentLayer,
    t0: float,
    t1: float,
    columns: int,
    max_boxes: int = MAX_BOXES,
    shown: np.ndarray | None = None,
) -> Plan:
    """Split the segments inside ``[t0, t1]`` (``columns`` pixels wide) of the kinds ``shown``
    (a mask over kinds; all if None): those a pixel wide or more are drawn, if there are at
    most ``max_boxes``; the rest become pixel-column shares (see the module docstring)."""
    pixel = (t1 - t0) / columns
    visible = (layer.end > t0) & (layer.start < t1)
    if shown is not None:
        visible &= np.asarray(shown, bool)[layer.kind]
    wide = visible & (layer.end - layer.start >= pixel)
    if int(wide.sum()) > max_boxes:
        wide[:] = False
    narrow = visible & ~wide
    shares = occupancy(
        layer.lane[narrow], layer.kind[narrow], layer.start[narrow], layer.end[narrow],
        n_lanes=len(layer.lane_y), n_colours=len(layer.kinds), t0=t0, t1=t1, columns=columns,
    )  # fmt: skip
    return Plan(np.flatnonzero(wide), shares, int(visible.sum()), int(narrow.sum()))


def band_rows(centre: float, width: float, height: int) -> tuple[int, int]:
    """Pixel rows ``[first, stop)`` of a line ``width`` pixels thick centred at pixel row
    ``centre`` (at least one row), clipped to the image (the script's rule too)."""
    first = int(np.floor(centre - width / 2 + 0.5))
    stop = max(int(np.floor(centre + width / 2 + 0.5)), first + 1)
    return max(first, 0), min(stop, height)


def overview_rgba(
    layer: SegmentLayer, shares: np.ndarray, y_range: tuple[float, float], height: int
) -> np.ndarray:
    """The merged segments as an RGBA image (height x columns, uint8) over the plot area whose
    y axis spans ``y_range`` (bottom, top as plotly's ``range``). Per lane, each line width
    (widest first) is a band: its kinds blended by share, opacity the busy share (at least
    ``MIN_ALPHA`` where anything ran), painted over the wider bands."""
    columns = shares.shape[2]
    rgb = np.zeros((height, columns, 3))
    alpha = np.zeros((height, columns))
    colours = np.array([to_rgb(k.colour) for k in layer.kinds]).reshape(-1, 3)
    bottom, top = y_range
    for width in sorted({k.width for k in layer.kinds}, reverse=True):
        mine = np.array([k.width == width for k in layer.kinds])
        for lane, y in enumerate(layer.lane_y):
            share = shares[lane, mine]  # (kinds, columns)
            total = np.where(share.sum(axis=0) > IDLE, share.sum(axis=0), 0.0)
            if not total.any():
                continue
            first, stop = band_rows((y - top) / (bottom - top) * height, width, height)
            if first >= stop:
                continue
            colour = (share.T @ colours[mine]) / np.maximum(total, 1e-12)[:, None]
            a = np.where(total > 0, np.clip(total, MIN_ALPHA, 1.0), 0.0)
            under = alpha[first:stop]
            out = a + under * (1 - a)
            mixed = colour * a[:, None] + rgb[first:stop] * (under * (1 - a))[..., None]
            rgb[first:stop] = mixed / np.maximum(out, 1e-12)[..., None]
            alpha[first:stop] = out
    image = np.concatenate([rgb, alpha[..., None]], axis=2)
    return np.round(image * 255).astype(np.uint8)


def png_uri(rgba: np.ndarray) -> str:
    """An RGBA array as a PNG data URI (the image trace's ``source``)."""
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def envelope(
    time: np.ndarray, value: np.ndarray, t0: float, t1: float, buckets: int
) -> tuple[np.ndarray, bool]:
    """Indices of the points of a step function (sorted ``time``) that draw it over
    ``[t0, t1]`` in ``buckets`` buckets, and whether any point was left out: the point holding
    at ``t0``, the first after ``t1``, and per bucket its first, lowest, highest and last
    point; every point in between if that is no more."""
    first = max(int(np.searchsorted(time, t0, side="right")) - 1, 0)
    stop = min(int(np.searchsorted(time, t1, side="left")) + 1, len(time))
    index = np.arange(first, stop)
    if len(index) <= 4 * buckets:
        return index, False
    bucket = np.clip(((time[index] - t0) / (t1 - t0) * buckets).astype(np.int64), 0, buckets - 1)
    opens = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    closes = np.r_[opens[1:], len(index)] - 1
    values = value[index]
    lowest = np.lexsort((values, bucket))  # per bucket, ascending value: its first is the lowest
    highest = np.lexsort((-values, bucket))
    firsts = np.r_[0, np.flatnonzero(np.diff(bucket[lowest])) + 1]
    keep = np.concatenate([opens, closes, lowest[firsts], highest[firsts]])
    return index[np.unique(keep)], True


def memory_buckets(columns: int, lines: int) -> int:
    """Buckets per memory line so that all lines together keep about ``MEMORY_POINTS``."""
    return int(max(1, min(columns, MEMORY_POINTS // (4 * max(lines, 1)))))


def _small(array: np.ndarray) -> np.ndarray:
    """An integer column in the smallest type that holds it; anything else as float32."""
    array = np.asarray(array)
    if np.issubdtype(array.dtype, np.integer) or array.dtype == bool:
        low, high = (int(array.min()), int(array.max())) if len(array) else (0, 0)
        for dtype in (np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32):
            info = np.iinfo(dtype)
            if info.min <= low and high <= info.max:
                return array.astype(dtype)
    return array.astype(np.float32)


def pack(columns: dict[str, np.ndarray]) -> tuple[str, dict[str, dict]]:
    """Columns as one base64 string of deflated bytes and a table ``name -> {dtype, offset,
    count}``. Each column is stored in its smallest type with its bytes shuffled (all first
    bytes, then all second bytes, ...), which deflate packs far better for numbers that vary
    slowly; the page's script undoes both."""
    table, parts, offset = {}, [], 0
    for name, values in columns.items():
        array = _small(values)
        size = array.dtype.itemsize
        raw = array.astype(array.dtype.newbyteorder("<")).view(np.uint8).reshape(-1, size)
        parts.append(raw.T.tobytes())
        dtype = array.dtype.str.lstrip("<>|")
        table[name] = {"dtype": dtype, "offset": offset, "count": len(array)}
        offset += raw.size
    blob = zlib.compress(b"".join(parts), 6)
    return base64.b64encode(blob).decode("ascii"), table


def unpack(blob: str, table: dict[str, dict]) -> dict[str, np.ndarray]:
    """``pack`` undone (the tests read the page's data with it)."""
    raw = np.frombuffer(zlib.decompress(base64.b64decode(blob)), np.uint8)
    out = {}
    for name, entry in table.items():
        dtype = np.dtype("<" + entry["dtype"])
        size, count = dtype.itemsize, entry["count"]
        planes = raw[entry["offset"] : entry["offset"] + size * count].reshape(size, count)
        out[name] = planes.T.copy().view(dtype).reshape(count)
    return out


__all__ = [
    "MAX_BOXES",
    "MEMORY_POINTS",
    "IDLE",
    "MIN_ALPHA",
    "Kind",
    "Plan",
    "SegmentLayer",
    "band_rows",
    "envelope",
    "memory_buckets",
    "overview_rgba",
    "pack",
    "plan",
    "png_uri",
    "unpack",
]
