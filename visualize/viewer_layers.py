"""The HTML viewer's panels as segment layers: the pipeline's boxes, the pebble graph's spans.

Why apart from the data: ``viewer_data`` says what a box or a pebble span is (the figures'
own data functions, as columns); this puts them on lanes, in kinds with a colour, a line
width and a hover, in the one form the level of detail (``viewer_lod``) and the page's
script read. Colours and names are the figures' own (``visualize.style``), so the viewer
reads like the PNGs.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from matplotlib.colors import to_hex

from simulator.units import byte_unit
from visualize.style import GRAD_COLOR, RECOMPUTE_FACE, kind_color, kind_name, pebble_colormap
from visualize.viewer_data import BoxColumns, Spans
from visualize.viewer_lod import Kind, SegmentLayer

PEBBLE_BINS = 8  # at most this many pebble-count colours (one trace each)
RECOMPUTE_WIDTH = 0.55  # a recompute span's line, of its box's
GRADIENT_WIDTH = 0.45  # a gradient span's line, of a pebble span's


class RunBoxes(NamedTuple):
    """One run's boxes on the shared axis (times already in axis units)."""

    label: str  # "" alone; "predicted " / "measured " in a pair
    lane: float  # offset of its lanes from the rank
    boxes: BoxColumns
    recompute: BoxColumns


def _box_hover(unit: str, bytes_name: str) -> str:
    return (
        "<b>%{text}</b><br>"
        "rank %{customdata[0]} · stage %{customdata[1]} · "
        "microbatch %{customdata[2]} · step %{customdata[3]}<br>"
        f"%{{customdata[4]:.6~g}} → %{{customdata[5]:.6~g}} {unit} "
        f"(%{{customdata[6]:.4~g}} {unit})<br>"
        f"cached %{{customdata[7]:+.4~g}} {bytes_name}<extra></extra>"
    )


def pipeline_layer(runs: list[RunBoxes], ranks: int, unit: str, width: float) -> SegmentLayer:
    """Every run's boxes, then its recompute spans (narrower, over their backward boxes): one
    kind per (run, letter), one lane per (run, rank)."""
    largest = max((float(np.abs(r.boxes.bytes).max(initial=0)) for r in runs), default=0.0)
    bytes_factor, bytes_name = byte_unit(max(largest, 1.0))
    kinds: list[Kind] = []
    parts = []
    for number, run in enumerate(runs):
        for columns, recompute in ((run.boxes, False), (run.recompute, True)):
            for letter in dict.fromkeys(columns.kind.tolist()):
                name = "R recompute" if recompute else kind_name(letter)
                kinds.append(
                    Kind(
                        name=f"{run.label}{name}",
                        colour=RECOMPUTE_FACE if recompute else kind_color(letter),
                        width=width * (RECOMPUTE_WIDTH if recompute else 1.0),
                        group=f"{run.label}{letter}",
                        title=f"{run.label}{{stage}}{letter}{{microbatch}} ({name})",
                    )
                )
                mine = columns.kind == letter
                parts.append((number * ranks + columns.row[mine], len(kinds) - 1, columns, mine))
    lane = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)

    def column(name: str) -> np.ndarray:
        if not parts:
            return np.zeros(0)
        return np.concatenate([getattr(c, name)[mine] for _lane, _kind, c, mine in parts])

    return SegmentLayer(
        panel="pipeline",
        noun="actions",
        lane_y=np.concatenate([np.arange(ranks) + run.lane for run in runs]),
        lane_row=np.tile(np.arange(ranks), len(runs)),
        kinds=kinds,
        lane=lane,
        kind=np.concatenate([np.full(mine.sum(), k) for _l, k, _c, mine in parts])
        if parts
        else np.zeros(0, np.int64),
        start=column("start"),
        end=column("end"),
        fields={
            "stage": column("stage").astype(np.int64),
            "microbatch": column("microbatch").astype(np.int64),
            "step": column("step").astype(np.int64),
            "bytes": column("bytes") / bytes_factor,
        },
        hover=["row", "stage", "microbatch", "step", "start", "end", "duration", "bytes"],
        hovertemplate=_box_hover(unit, bytes_name),
    )


def count_bins(largest: int) -> list[tuple[int, int]]:
    """(lowest, highest) pebble counts per colour: one per count up to ``PEBBLE_BINS``, else
    ``PEBBLE_BINS`` ranges of about equal ratio (1, 2, 3-4, 5-8, ...)."""
    if largest <= PEBBLE_BINS:
        return [(c, c) for c in range(1, largest + 1)]
    uppers = np.unique(np.round(np.geomspace(1, largest, PEBBLE_BINS)).astype(int))
    lowers = np.r_[1, uppers[:-1] + 1]
    return [(int(lo), int(hi)) for lo, hi in zip(lowers, uppers, strict=True)]


def pebble_layer(
    spans: Spans, grads: Spans, names: list[str], unit: str, width: float
) -> SegmentLayer:
    """The pebble graph: one kind per count range (light: few microbatches cached, dark:
    many), then the weight gradients in purple, narrower, over them. One lane per row."""
    largest = int(spans.value.max(initial=0))
    cmap, _norm = pebble_colormap(largest)
    kinds: list[Kind] = []
    kind = np.full(len(spans.row), -1, np.int64)
    for low, high in count_bins(largest):
        mine = (spans.value >= low) & (spans.value <= high)
        if not mine.any():
            continue
        name = f"{low} cached" if low == high else f"{low}–{high} cached"
        kind[mine] = len(kinds)
        title = "{lane}: {value} microbatch(es) cached"
        kinds.append(Kind(name, to_hex(cmap(high - 1)), width, name, title))
    keep = kind >= 0
    grad_kind = np.full(len(grads.row), len(kinds), np.int64)
    if len(grads.row):
        name = "weight gradient ready"
        title = "{lane}: weight gradient of step {value} complete"
        kinds.append(Kind(name, GRAD_COLOR, width * GRADIENT_WIDTH, name, title))
    return SegmentLayer(
        panel="pebble",
        noun="spans",
        lane_y=np.arange(len(names), dtype=np.float64),
        lane_row=np.arange(len(names)),
        kinds=kinds,
        lane=np.r_[spans.row[keep], grads.row].astype(np.int64),
        kind=np.r_[kind[keep], grad_kind],
        start=np.r_[spans.start[keep], grads.start],
        end=np.r_[spans.end[keep], grads.end],
        fields={"value": np.r_[spans.value[keep], grads.value].astype(np.int64)},
        hover=["value", "start", "end"],
        hovertemplate=(
            f"<b>%{{text}}</b><br>%{{customdata[1]:.6~g}} → %{{customdata[2]:.6~g}} {unit}"
            "<extra></extra>"
        ),
        lane_text=list(names),
    )


__all__ = [
    "GRADIENT_WIDTH",
    "PEBBLE_BINS",
    "RECOMPUTE_WIDTH",
    "RunBoxes",
    "count_bins",
    "pebble_layer",
    "pipeline_layer",
]
