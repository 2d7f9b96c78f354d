"""Many spans, one pixel column each: what a figure draws when its artists outnumber its pixels.

Why: a 64-rank pipeline of 512 microbatches is 65,536 boxes, and a rank's memory a step
function of 50,000 steps, on a figure about 1,600 pixels wide. One artist per span is slow to
draw, megabytes in an SVG, and looks like a solid band anyway. These functions reduce exactly
to the figure's pixel columns instead:

* ``occupancy`` gives, per lane, per colour and per column, the share of the column's time the
  spans of that colour cover (exact, from the spans' ends; nothing is sampled), and
  ``blend`` mixes those shares into one RGB image, white where nothing runs: a bubble stays
  white, a half-idle column is pale.
* ``rectangles`` draws many boxes as one artist (a PolyCollection): matplotlib draws it
  in one call where one Rectangle per box costs milliseconds each to add. Hatched boxes are one
  compound path: Agg hatches each path of a collection apart, about a millisecond each, so
  29,000 hatched boxes took 9 s as polygons and 0.1 s as one path.
* ``step_envelope`` gives, per column, the largest value a step function takes inside it, so
  a peak is never lost however many steps share a pixel.
"""

from __future__ import annotations

import numpy as np
from matplotlib.collections import PatchCollection, PolyCollection
from matplotlib.colors import to_rgb
from matplotlib.patches import PathPatch
from matplotlib.path import Path

COLUMNS = 1600  # about the pixel width of an 11-inch figure at 150 dpi


def occupancy(
    lanes: np.ndarray,
    colours: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    *,
    n_lanes: int,
    n_colours: int,
    t0: float,
    t1: float,
    columns: int = COLUMNS,
) -> np.ndarray:
    """Array (n_lanes, n_colours, columns): the share of each column's time ``[t0, t1]`` split
    evenly) that spans of each colour cover on each lane. Spans are clipped to the window; spans
    of one lane and colour are assumed not to overlap (then every share is at most 1)."""
    width = (t1 - t0) / columns
    xs = np.clip((np.asarray(starts, float) - t0) / width, 0, columns)
    xe = np.clip((np.asarray(ends, float) - t0) / width, 0, columns)
    keep = xe > xs
    cell = (np.asarray(lanes)[keep] * n_colours + np.asarray(colours)[keep]).astype(np.int64)
    xs, xe = xs[keep], xe[keep]
    # covered(k) = sum over spans of clamp(k - xs, 0, xe - xs): ramps that start at xs (+1) and
    # stop at xe (-1). With W(k) the weights of points below k and P(k) their weighted
    # positions, covered(k) = k W(k) - P(k); a column's share is covered(j + 1) - covered(j).
    points = np.concatenate([xs, xe])
    weights = np.concatenate([np.ones_like(xs), -np.ones_like(xe)])
    cells = np.concatenate([cell, cell])
    bins = np.minimum(np.floor(points).astype(np.int64) + 1, columns)  # first k above the point
    size = n_lanes * n_colours * (columns + 1)
    index = cells * (columns + 1) + bins
    w = np.bincount(index, weights, minlength=size).reshape(-1, columns + 1).cumsum(axis=1)
    p = np.bincount(index, weights * points, minlength=size).reshape(-1, columns + 1)
    p = p.cumsum(axis=1)
    k = np.arange(columns + 1, dtype=float)
    covered = k * w - p
    share = np.clip(np.diff(covered, axis=1), 0.0, 1.0)
    return share.reshape(n_lanes, n_colours, columns)


def blend(shares: np.ndarray, palette: list) -> np.ndarray:
    """RGB image (n_lanes, columns, 3) from ``occupancy``'s shares: each colour of ``palette``
    weighted by its share, white for the idle rest."""
    rgb = np.array([to_rgb(c) for c in palette])  # (n_colours, 3)
    total = np.clip(shares.sum(axis=1), 0.0, 1.0)  # (lanes, columns)
    scale = np.where(shares.sum(axis=1) > 1.0, 1.0 / np.maximum(shares.sum(axis=1), 1e-12), 1.0)
    mixed = np.einsum("lcx,cr->lxr", shares * scale[:, None, :], rgb)
    return mixed + (1.0 - total)[..., None]


def step_envelope(
    times: np.ndarray, values: np.ndarray, t0: float, t1: float, columns: int = COLUMNS
) -> tuple[np.ndarray, np.ndarray]:
    """(column left edges and ``t1``, per column the largest value): the step function that
    takes ``values[i]`` from ``times[i]`` (0 before the first) reduced to ``columns`` columns of
    ``[t0, t1]``; the value held into a column counts in it."""
    times = np.asarray(times, float)
    values = np.asarray(values, float)
    edges = np.linspace(t0, t1, columns + 1)
    # the value held at each column's left edge
    before = np.searchsorted(times, edges[:-1], side="right") - 1
    held = np.where(before >= 0, values[np.maximum(before, 0)], 0.0)
    top = held.copy()
    inside = (times >= t0) & (times < t1)
    column = np.minimum(((times[inside] - t0) / (t1 - t0) * columns).astype(np.int64), columns - 1)
    np.maximum.at(top, column, values[inside])
    return edges, top


_BOX_CODES = [Path.MOVETO, Path.LINETO, Path.LINETO, Path.LINETO, Path.CLOSEPOLY]


def rectangles(
    ax, x0, x1, y0, y1, *, rasterize_above: int = 2000, **style
) -> PolyCollection | PatchCollection:
    """Add boxes ``[x0, x1] x [y0, y1]`` (arrays) to ``ax`` as one collection and return it;
    more than ``rasterize_above`` boxes are drawn as pixels inside an SVG (a vector box each
    would be megabytes). With a ``hatch`` the boxes (one look for all) are one compound path."""
    x0, x1, y0, y1 = (np.asarray(v, float) for v in (x0, x1, y0, y1))
    verts = np.stack(
        [
            np.stack([x0, y0], -1),
            np.stack([x0, y1], -1),
            np.stack([x1, y1], -1),
            np.stack([x1, y0], -1),
        ],
        axis=1,
    )
    if style.get("hatch"):
        closed = np.concatenate([verts, verts[:, :1]], axis=1).reshape(-1, 2)
        compound = PathPatch(Path(closed, np.tile(_BOX_CODES, len(x0))))
        collection = PatchCollection([compound], match_original=False, **style)
    else:
        collection = PolyCollection(verts, **style)
    collection.set_rasterized(len(x0) > rasterize_above)
    ax.add_collection(collection, autolim=False)
    return collection


def step_segments(starts, ends, values, t0: float, t1: float, columns: int = COLUMNS):
    """Non-overlapping spans (``starts``..``ends`` holding ``values``, 0 elsewhere) reduced to
    ``columns`` columns of ``[t0, t1]``: (starts, ends, values) of the runs of equal column
    maxima, zero runs left out."""
    starts, ends, values = (np.asarray(v, float) for v in (starts, ends, values))
    order = np.argsort(starts, kind="stable")
    starts, ends, values = starts[order], ends[order], values[order]
    # a span ends (to 0) before the next one at the same time begins
    times = np.concatenate([ends, starts])
    levels = np.concatenate([np.zeros_like(values), values])
    rank = np.concatenate([np.zeros(len(ends)), np.ones(len(starts))])
    order = np.lexsort((rank, times))
    edges, top = step_envelope(times[order], levels[order], t0, t1, columns)
    change = np.flatnonzero(np.diff(top)) + 1
    first = np.concatenate([[0], change])
    last = np.concatenate([change, [len(top)]])
    keep = top[first] > 0
    return edges[first][keep], edges[last][keep], top[first][keep]


__all__ = ["COLUMNS", "blend", "occupancy", "rectangles", "step_envelope", "step_segments"]
