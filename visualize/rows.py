"""The rows of the layer-by-layer figures (pebble graph, gradient availability), grouped at scale.

One row per layer reads well for a few dozen layers; a transformer has a dozen or more layers per
block (GPT-3 175B has 1,349), and that many rows are a grey smear. So a figure that would have
more than ``GROUP_ABOVE`` rows draws one row per block instead: ``LayerMeta.block``, the partition
unit, labelled ``B12 · 14 layers · L157–L170``: the layer names ``simulate`` prints (``L161``)
are found in the row that holds them. A Timeline written before blocks were recorded (block -1)
groups each run of consecutive layers on one stage. A group never spans two stages, so the
stage / rank bands stay as they are. Should even the blocks be more than ``MAX_GROUPED_ROWS``
(a model of many hundreds of blocks), runs of consecutive blocks on one stage share a row
(``B12–B15 · 56 layers``).

The figures' ``expand`` keyword decides: None groups above the threshold, True always draws one
row per layer, False always groups. What a grouped row shows is each figure's business (see
their module docstrings); the rule is the same: a group is as busy as its busiest layer and
done when its last layer is done.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

from simulator.timeline import LayerMeta
from visualize.style import layer_label

GROUP_ABOVE = 48  # more rows than this, and a figure groups them (expand=None)
MAX_GROUPED_ROWS = 160  # more blocks than this, and consecutive blocks share a row


class Row(NamedTuple):
    """One row of a figure: the ``layers`` (indices, in order) it stands for."""

    key: str  # in artist gids: "3" for layer 3, "B12" for block 12, "L40-L79" for a run
    name: str  # in sentences: "L3", "B12", "L40–L79"
    label: str  # on the axis: "L3 linear", "B12 · 14 layers"
    layers: tuple[int, ...]
    stage: int
    rank: int
    has_params: bool


class RowCount(NamedTuple):
    """Row number ``row`` shows ``count`` from ``start`` to ``end``."""

    row: int
    start: float
    end: float
    count: int


def should_group(rows: int, expand: bool | None) -> bool:
    """Whether a figure of ``rows`` layer rows groups them (see the module docstring)."""
    return rows > GROUP_ABOVE if expand is None else not expand


def layer_rows(layers: Iterable[LayerMeta]) -> list[Row]:
    """One row per layer, labelled ``L2 linear``."""
    return [
        Row(
            str(layer.index),
            f"L{layer.index}",
            layer_label(layer),
            (layer.index,),
            layer.stage,
            layer.rank,
            layer.has_params,
        )
        for layer in layers
    ]


def block_rows(layers: list[LayerMeta], max_rows: int = MAX_GROUPED_ROWS) -> list[Row]:
    """One row per block (per run of one stage's layers where the block is -1); at most
    ``max_rows``, by sharing rows between consecutive blocks of one stage."""
    runs: list[list[LayerMeta]] = []
    for layer in layers:
        last = runs[-1][-1] if runs else None
        if last is not None and (last.stage, last.block) == (layer.stage, layer.block):
            runs[-1].append(layer)
        else:
            runs.append([layer])
    share = -(-len(runs) // max(max_rows, 1))
    if share > 1:
        runs = _merge_runs(runs, share)
    return [_group_row(run) for run in runs]


def _merge_runs(runs: list[list[LayerMeta]], share: int) -> list[list[LayerMeta]]:
    """Runs of ``share`` consecutive groups on one stage, merged."""
    out: list[list[LayerMeta]] = []
    taken = 0
    for run in runs:
        if out and taken < share and out[-1][-1].stage == run[0].stage:
            out[-1].extend(run)
            taken += 1
        else:
            out.append(list(run))
            taken = 1
    return out


def _group_row(run: list[LayerMeta]) -> Row:
    first, last = run[0], run[-1]
    size = f"{len(run)} layer{'s' if len(run) != 1 else ''}"
    if first.block >= 0 and last.block >= 0:
        blocks = f"B{first.block}" + (f"–B{last.block}" if last.block != first.block else "")
        key = blocks.replace("–", "-")
    else:
        blocks = f"L{first.index}–L{last.index}"
        key = f"L{first.index}-L{last.index}"
    layers = f" · L{first.index}–L{last.index}" if first.block >= 0 and len(run) > 1 else ""
    return Row(
        key,
        blocks,
        f"{blocks} · {size}{layers}",
        tuple(layer.index for layer in run),
        first.stage,
        first.rank,
        any(layer.has_params for layer in run),
    )


def figure_rows(layers: list[LayerMeta], expand: bool | None) -> list[Row]:
    """The rows to draw for ``layers``: per layer, or per block when ``should_group``."""
    return block_rows(layers) if should_group(len(layers), expand) else layer_rows(layers)


def row_of_layer(rows: list[Row]) -> dict[int, int]:
    """Layer index -> row number."""
    return {layer: number for number, row in enumerate(rows) for layer in row.layers}


def max_counts(counts, rows: list[Row]) -> list[RowCount]:
    """Each row's step function: at every moment, the largest ``count`` of any of its layers.
    ``counts`` are per-layer spans (``.layer``, ``.start``, ``.end``, ``.count``) of constant,
    non-zero count; the result has maximal spans of constant, non-zero count, by row and time."""
    row_of = row_of_layer(rows)
    spans: dict[int, dict[int, list]] = defaultdict(lambda: defaultdict(list))
    for c in counts:
        if c.layer in row_of and c.end > c.start:
            spans[row_of[c.layer]][c.layer].append((c.start, c.end, c.count))
    out: list[RowCount] = []
    for row in sorted(spans):
        members = spans[row]
        times = np.unique([t for segs in members.values() for s in segs for t in s[:2]])
        level = np.zeros(len(times), dtype=np.int64)
        for segs in members.values():
            segs.sort()
            starts = np.array([s[0] for s in segs])
            position = np.searchsorted(starts, times, side="right") - 1
            inside = position >= 0
            ends = np.array([s[1] for s in segs])[np.maximum(position, 0)]
            values = np.array([s[2] for s in segs])[np.maximum(position, 0)]
            level = np.maximum(level, np.where(inside & (times < ends), values, 0))
        out.extend(_spans(row, times, level))
    return out


def _spans(row: int, times: np.ndarray, level: np.ndarray) -> list[RowCount]:
    """Maximal spans of constant, non-zero ``level`` (``level[i]`` holds from ``times[i]``)."""
    out: list[RowCount] = []
    since = 0
    for i in range(1, len(times) + 1):
        if i == len(times) or level[i] != level[since]:
            if level[since] > 0 and i < len(times):
                out.append(RowCount(row, float(times[since]), float(times[i]), int(level[since])))
            since = i
    return out


def row_fontsize(rows: int, axes_inches: float, normal: float) -> float:
    """The font size for one label per row: ``normal`` while ``rows`` rows on ``axes_inches``
    leave a quarter of it between lines, else the largest half point that does (at least 4)."""
    spacing = 72.0 * axes_inches / max(rows, 1)  # points between row centres
    if spacing >= 1.25 * normal:
        return normal
    return max(math.floor(spacing / 1.25 * 2) / 2, 4.0)


def row_points(rows: int, axes_inches: float) -> float:
    """Points between row centres when ``rows`` rows share ``axes_inches``."""
    return 72.0 * axes_inches / max(rows, 1)


def stage_bands(rows: list[Row]) -> list[tuple[int, int, int, int]]:
    """(first row, last row, stage, rank) for each run of consecutive rows on one stage."""
    bands: list[list[int]] = []
    for number, row in enumerate(rows):
        if bands and bands[-1][2] == row.stage:
            bands[-1][1] = number
        else:
            bands.append([number, number, row.stage, row.rank])
    return [tuple(b) for b in bands]


def draw_stage_bands(ax, bands: list[tuple[int, int, int, int]]) -> None:
    """Alternating light background per stage, with a rule between stages."""
    for number, (first, last, _stage, _rank) in enumerate(bands):
        if number % 2 == 1:
            ax.axhspan(first - 0.5, last + 0.5, color="#F2F2F2", zorder=0, lw=0)
        if number:
            ax.axhline(first - 0.5, color="#BDBDBD", lw=0.8, zorder=0.5)


__all__ = [
    "GROUP_ABOVE",
    "MAX_GROUPED_ROWS",
    "Row",
    "RowCount",
    "block_rows",
    "draw_stage_bands",
    "figure_rows",
    "row_fontsize",
    "layer_rows",
    "max_counts",
    "row_of_layer",
    "row_points",
    "should_group",
    "stage_bands",
]
