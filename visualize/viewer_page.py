"""The viewer's page: plotly's HTML, the full data packed beside it, and the script that
redraws each zoom from that data (``viewer_script``).

Why apart from the figure: the figure is what a browser draws first, small at any size of run
(``viewer_lod``); the page adds, once, everything a zoom may need. The data sits in a
``<script type="application/json">`` block after plotly.js and before the plot, so it is
parsed (not run) and is there when plotly's ``newPlot`` hands over to the script.
"""

from __future__ import annotations

import json
from typing import NamedTuple

import numpy as np
from matplotlib.colors import to_rgb

from visualize.viewer_layout import PLOT_WIDTH
from visualize.viewer_lod import IDLE, MAX_BOXES, MEMORY_POINTS, MIN_ALPHA, Plan, SegmentLayer, pack
from visualize.viewer_script import SCRIPT

CONFIG = {"scrollZoom": True, "displaylogo": False, "responsive": False}


class OnPage(NamedTuple):
    """A segment layer on the page: kind ``k``'s line trace is ``first + k``, the layer's
    image the one after the last kind's; ``note`` is an annotation index."""

    layer: SegmentLayer
    axes: tuple[str, str]
    first: int
    note: int


class MemoryLine(NamedTuple):
    """A memory line in full (axis units, the panel's bytes unit) and its trace."""

    trace: int
    time: np.ndarray
    value: np.ndarray


def layer_note(noun: str, drawn: Plan) -> str:
    """What a panel shows at this zoom (the script writes the same for every later zoom)."""
    visible, merged = drawn.visible, drawn.merged
    if not visible:
        return f"no {noun} in view"
    if not merged:
        return f"each of the {visible:,} {noun} in view drawn"
    if merged == visible:
        return f"aggregated per pixel: {visible:,} {noun} · zoom in for each"
    return f"{visible - merged:,} drawn, {merged:,} under a pixel wide aggregated"


def memory_note(decimated: bool, pixels: float) -> str:
    if not decimated:
        return ""
    return f"lines keep the first, lowest, highest, last point per {_round(pixels)} px"


def _round(value: float) -> int:
    return max(1, int(np.floor(value + 0.5)))  # JavaScript's Math.round


def _axis(name: str) -> str:
    return "xaxis" + name[1:] if name[0] == "x" else "yaxis" + name[1:]


def page_data(page) -> dict:
    """The JSON the page carries: every layer's segments and every memory line, packed
    (``viewer_lod.pack``), and where their traces and notes are."""
    columns: dict[str, np.ndarray] = {}
    layers = []
    for on in page.layers:
        layer, name = on.layer, on.layer.panel
        columns |= {f"{name}.lane": layer.lane, f"{name}.kind": layer.kind}
        columns |= {f"{name}.start": layer.start, f"{name}.end": layer.end}
        columns |= {f"{name}.{field}": values for field, values in layer.fields.items()}
        layers.append(
            {
                "panel": name,
                "noun": layer.noun,
                "xaxis": _axis(on.axes[0]),
                "yaxis": _axis(on.axes[1]),
                "first": on.first,
                "note": on.note,
                "laneY": layer.lane_y.tolist(),
                "laneRow": layer.lane_row.tolist(),
                "laneText": layer.lane_text,
                "kinds": [
                    {
                        "rgb": to_rgb(k.colour),
                        "colour": k.colour,
                        "width": k.width,
                        "title": k.title,
                    }
                    for k in layer.kinds
                ],  # fmt: skip
                "fields": list(layer.fields),
                "hover": layer.hover,
            }
        )
    lines, offset = [], 0
    for line in page.memory:
        lines.append({"trace": line.trace, "offset": offset, "count": len(line.time)})
        offset += len(line.time)
    if page.memory:
        columns["memory.time"] = np.concatenate([line.time for line in page.memory])
        columns["memory.value"] = np.concatenate([line.value for line in page.memory])
    blob, table = pack(columns)
    return {
        "drawnColumns": PLOT_WIDTH,
        "maxBoxes": MAX_BOXES,
        "minAlpha": MIN_ALPHA,
        "idle": IDLE,
        "memoryPoints": MEMORY_POINTS,
        "layers": layers,
        "memory": {"note": page.memory_note, "lines": lines},
        "columns": table,
        "blob": blob,
    }


def page_html(page, plot_id: str, post_script: str = "") -> str:
    """The page: plotly.js inlined, the figure, its data block and the script."""
    html = page.figure.to_html(
        include_plotlyjs=True,
        full_html=True,
        div_id=plot_id,
        auto_play=False,
        config=CONFIG,
        post_script=[SCRIPT, post_script] if post_script else SCRIPT,
    )
    data = json.dumps(page_data(page), separators=(",", ":")).replace("<", "\\u003c")
    block = f'<script type="application/json" id="{plot_id}-data">{data}</script>'
    at = html.index(f'<div id="{plot_id}"')  # after plotly.js, before the plot's script
    return html[:at] + block + html[at:]


__all__ = ["CONFIG", "MemoryLine", "OnPage", "layer_note", "memory_note", "page_data", "page_html"]
