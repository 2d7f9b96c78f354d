"""Shared look of every figure: colours, time and byte axes, titles, row labels, saving.

Why a module of its own: the figures are read side by side, so F is the same blue, a gradient
the same purple and "time (ms)" the same axis everywhere. Figures are built with the object API
(``matplotlib.figure.Figure``), never pyplot, so importing or drawing touches no global backend
state and works headless.
"""

from __future__ import annotations

import textwrap
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from simulator.timeline import PIPELINE_RULE, DependencyRule, LayerMeta, Timeline, kind_display
from simulator.units import byte_unit, human_bytes, human_time, time_scale

# Okabe-Ito, the colour-blind-safe qualitative palette.
OKABE_ITO = {
    "orange": "#E69F00",
    "sky": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
    "black": "#000000",
}


def kind_color(kind: str, rule: DependencyRule = PIPELINE_RULE) -> str:
    """The colour of ``kind``: its display's colour key in the palette (``sky``), or the key
    itself as a colour (``#CC79A7``); grey for a kind without a display."""
    key = kind_display(kind, rule).colour
    return OKABE_ITO.get(key, key)


def kind_name(kind: str, rule: DependencyRule = PIPELINE_RULE) -> str:
    """The legend label of ``kind`` (``F forward``); its letter for a kind without a display."""
    return kind_display(kind, rule).label


# the default rule's kinds (F, B, I, W), as tables for the figures that draw only those
KIND_COLORS = {kind: kind_color(kind) for kind in PIPELINE_RULE.kinds}
KIND_NAMES = {kind: kind_name(kind) for kind in PIPELINE_RULE.kinds}
GRAD_COLOR = "#6A3D9A"  # a true purple: "this layer's weight gradient is ready"
PEBBLE_CMAP = "YlOrBr"  # light yellow (1 pebble) to dark brown (many): never confused with purple
ALLREDUCE_COLOR = OKABE_ITO["blue"]
OPTIMIZER_COLOR = "#9E9E9E"
# recomputation re-runs a forward: F's sky blue, hatched, with a dark blue edge
RECOMPUTE_FACE = "#C6E3F5"
RECOMPUTE_EDGE = OKABE_ITO["blue"]
RECOMPUTE_HATCH = "////"
LANE_EDGE = "#C8C8C8"


# one colour and one marker per schedule family and per recompute policy, the same in every
# figure and every run (a comparison of three schedules colours 1f1b as one of seven does)
SCHEDULE_LOOKS = {
    "naive": ("#7F7F7F", "X"),
    "gpipe": (OKABE_ITO["black"], "o"),
    "1f1b": (OKABE_ITO["blue"], "s"),
    "interleaved-1f1b": (OKABE_ITO["sky"], "^"),
    "zb-h1": (OKABE_ITO["green"], "D"),
    "zb-h2": (OKABE_ITO["orange"], "v"),
    "zb-v": (OKABE_ITO["vermillion"], "P"),
    "dualpipe-v": (OKABE_ITO["purple"], "*"),
    "auto": ("#8C564B", "h"),
}
POLICY_MARKERS = {
    "none": "o",
    "selective": "s",
    "full": "^",
    "sqrt": "D",
    "every": "v",
    "budget": "P",
}
_SPARE_COLOURS = ("#17BECF", "#BCBD22", "#9467BD", "#E377C2", "#8C564B", "#393B79")
_SPARE_MARKERS = ("<", ">", "p", "H", "d", "8")


def _stable(name: str, choices: tuple) -> str:
    """One of ``choices`` picked by ``name`` alone (crc32, not Python's salted hash)."""
    return choices[zlib.crc32(name.encode()) % len(choices)]


def schedule_look(schedule: str) -> tuple[str, str]:
    """(colour, marker) of a schedule family (``meta.schedule``; ``auto ...`` is auto)."""
    family = schedule.split()[0] if schedule else ""
    family = "auto" if family.startswith("auto") else family
    if family in SCHEDULE_LOOKS:
        return SCHEDULE_LOOKS[family]
    return _stable(family, _SPARE_COLOURS), _stable(family, _SPARE_MARKERS)


def policy_marker(policy: str) -> str:
    """The marker of a recompute policy (``every:2`` is ``every``'s)."""
    family = policy.split(":")[0].split(",")[0]
    return POLICY_MARKERS.get(family) or _stable(policy, _SPARE_MARKERS)


def time_axis(timeline: Timeline | str, span: float | None = None) -> tuple[float, str]:
    """(factor, label): multiply a time in the Timeline's unit by ``factor`` to read it in the
    axis label's unit. Measured runs shorter than a second read in ms (or µs)."""
    unit = timeline if isinstance(timeline, str) else timeline.time_unit
    if unit != "s":
        return 1.0, "time (units)" if unit == "unit" else f"time ({unit})"
    if span is None:
        span = 0.0 if isinstance(timeline, str) else time_span(timeline)
    factor, name = time_scale(span)
    return factor, f"time ({name})"


def time_span(timeline: Timeline) -> float:
    """The last moment anything happens (events, optimizer, all-reduce, cache changes)."""
    ends = [
        float(table.columns()[name].max()) for table, name in _end_columns(timeline) if len(table)
    ]
    return max(ends, default=0.0)


def _end_columns(timeline: Timeline) -> list:
    """(table, column) pairs holding the times a run reaches (read as numpy columns: a run at
    scale has a million cache records)."""
    return [
        (timeline.events, "end"),
        (timeline.optimizer, "end"),
        (timeline.allreduce, "end"),
        (timeline.cache, "time"),
    ]


format_time = human_time  # the figures format times exactly as the CLI does


def set_time_axis(ax, timeline: Timeline | str, span: float | None = None) -> tuple[float, str]:
    """Label the x axis in readable units; the data stay in the Timeline's own unit, so every
    artist's x is a Timeline time exactly."""
    factor, label = time_axis(timeline, span)
    ax.set_xlabel(label)
    if factor != 1.0:
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x * factor:g}"))
    return factor, label


def set_bytes_axis(ax, largest: float, axis: str = "y", nbins: int = 4) -> None:
    """Ticks at round numbers of one binary unit (``0 KiB, 16 KiB, 32 KiB``)."""
    factor, name = byte_unit(max(largest, 1.0))
    top = max(largest, 1.0) / factor
    ticks = [t * factor for t in MaxNLocator(nbins=nbins, integer=False).tick_values(0, top)]
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_ticks([t for t in ticks if 0 <= t <= largest * 1.25 + factor])
    target.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v / factor:g} {name}"))


def run_title(timeline: Timeline, what: str) -> str:
    """``what — 1f1b · 4 ranks · 8 microbatches (analytic)`` (``· recompute full`` with one);
    with the run's layout known, ``what — 1f1b · p4 v1 t2 sp c1 e1 d2 z1 · 8 microbatches``."""
    meta = timeline.meta
    microbatches = "?" if meta.microbatches is None else meta.microbatches
    if meta.layout:
        parts = [meta.schedule, meta.layout, f"{microbatches} microbatches"]
    else:
        parts = [meta.schedule, f"{timeline.num_ranks} ranks", f"{microbatches} microbatches"]
        parts += [f"{meta.chunks} chunks"] if meta.chunks > 1 else []
        parts += [f"dp={meta.dp}"] if meta.dp > 1 else []
    if meta.steps > 1:
        parts.append(f"{meta.steps} steps")
    if meta.recompute:
        parts.append(f"recompute {meta.recompute}")
    source = meta.source
    source = "measured on Ray" if source == "ray" else source
    return f"{what} — {' · '.join(parts)} ({source})"


def layer_info(timeline: Timeline) -> list[LayerMeta]:
    """``meta.layers``, or a stand-in built from the cache records if the meta lacks it."""
    layers = timeline.meta.layers
    if layers:
        return sorted(layers, key=lambda layer: layer.index)
    seen: dict[int, int] = {}
    for change in timeline.cache:
        seen.setdefault(change.layer, change.rank)
    params = {g.layer for g in timeline.grad_ready}
    return [
        LayerMeta(i, f"{i}", "layer", rank, rank, i in params) for i, rank in sorted(seen.items())
    ]


def layer_label(layer: LayerMeta) -> str:
    """``L2 linear``."""
    return f"L{layer.index} {layer.kind}".rstrip()


def rank_palette(count: int) -> list:
    """One distinguishable colour per rank (Okabe-Ito first, then a colormap)."""
    base = [
        OKABE_ITO[k]
        for k in ("blue", "orange", "green", "vermillion", "sky", "purple", "yellow", "black")
    ]
    if count <= len(base):
        return base[:count]
    cmap = colormaps["viridis"]
    return [cmap(i / max(count - 1, 1)) for i in range(count)]


def shade_optimizer_steps(
    ax,
    optimizer,
    span: float,
    *,
    alpha: float = 0.35,
    zorder: float = 0.6,
    min_fraction: float = 0.002,
) -> None:
    """Grey columns where optimizer steps ran; at least ``min_fraction`` of ``span`` wide so
    an instant step (the analytic default) still shows."""
    for opt in optimizer:
        ax.axvspan(
            opt.start,
            max(opt.end, opt.start + span * min_fraction),
            color=OPTIMIZER_COLOR,
            alpha=alpha,
            lw=0,
            zorder=zorder,
        )


def text_points(text: str, fontsize: float) -> float:
    """About how wide ``text`` is in points at ``fontsize`` (DejaVu Sans averages 0.6 em a
    character; a little more, so an estimate errs on the wide side)."""
    return 0.62 * fontsize * len(text)


def legend_columns(labels: list[str], width_inches: float, fontsize: float = 8.5) -> int:
    """The most legend columns whose entries (a handle, its label, the gaps) fit in
    ``width_inches``; matplotlib fills a legend column by column."""
    room = width_inches * 72 - 16
    count = len(labels)
    for ncol in range(max(count, 1), 1, -1):
        rows, large = divmod(count, ncol)  # as matplotlib deals them: the first columns longer
        sizes = [rows + 1] * large + [rows] * (ncol - large)
        starts = [sum(sizes[:i]) for i in range(ncol)]
        columns = [labels[s : s + n] for s, n in zip(starts, sizes, strict=True)]
        entry = 4.2 * fontsize  # handle, its padding and the gap to the next column
        widths = [max(text_points(t, fontsize) for t in column) + entry for column in columns]
        if sum(widths) <= room:
            return ncol
    return 1


def fitted_legend(fig: Figure, handles: list, *, fontsize: float = 8.5, **options):
    """A legend below the axes with as many columns as fit the figure's width, so no entry is
    ever cut at the figure's edge; returns it."""
    labels = [h.get_label() for h in handles]
    ncol = legend_columns(labels, fig.get_figwidth(), fontsize)
    options.setdefault("loc", "outside lower center")
    return fig.legend(handles=handles, ncol=ncol, frameon=False, fontsize=fontsize, **options)


def wrap_title(text: str, width_inches: float, fontsize: float = 11) -> str:
    """``text`` with each line broken at spaces so it fits ``width_inches`` at ``fontsize``:
    a title wider than its figure is cut at both edges."""
    limit = max(int((width_inches * 72 - 24) / (0.62 * fontsize)), 20)
    lines = []
    for line in text.split("\n"):
        lines += textwrap.wrap(line, limit, break_long_words=False) or [""]
    return "\n".join(lines)


def new_figure(width: float, height: float) -> Figure:
    """A pyplot-free figure with constrained layout."""
    return Figure(figsize=(width, height), layout="constrained")


def save(
    fig: Figure, path_stem, formats: Iterable[str] = ("png", "svg"), dpi: int = 150
) -> list[Path]:
    """Write ``path_stem.png``, ``path_stem.svg`` (...); returns the paths written. The layout
    is settled by the first format and kept for the rest (laying out a figure of a hundred
    labelled rows again costs as much as drawing it)."""
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    engine = fig.get_layout_engine()
    try:
        for fmt in formats:
            path = stem.with_name(f"{stem.name}.{fmt}")
            fig.savefig(path, format=fmt, dpi=dpi)
            paths.append(path)
            fig.set_layout_engine("none")
    finally:
        fig.set_layout_engine(engine)
    return paths


def count_ticks(max_count: int) -> list[int]:
    """Colorbar ticks: every count up to 10, else 1, round steps, and the maximum."""
    if max_count <= 10:
        return list(range(1, max_count + 1))
    step = -(-max_count // 6)
    ticks = [1, *range(step, max_count + 1, step)]
    if max_count - ticks[-1] > step / 2:
        ticks.append(max_count)
    return ticks


def pebble_colormap(max_count: int) -> tuple[ListedColormap, BoundaryNorm]:
    """Discrete colours for 1..max_count pebbles (light = few, dark = many)."""
    max_count = max(max_count, 1)
    base = colormaps[PEBBLE_CMAP]
    colours = base(np.linspace(0.3, 0.95, max_count))
    cmap = ListedColormap(colours, name="pebbles")
    norm = BoundaryNorm(np.arange(0.5, max_count + 1.5), cmap.N)
    return cmap, norm


__all__ = [
    "GRAD_COLOR",
    "KIND_COLORS",
    "OKABE_ITO",
    "RECOMPUTE_EDGE",
    "RECOMPUTE_FACE",
    "RECOMPUTE_HATCH",
    "byte_unit",
    "policy_marker",
    "schedule_look",
    "fitted_legend",
    "legend_columns",
    "wrap_title",
    "count_ticks",
    "kind_color",
    "kind_name",
    "format_time",
    "human_bytes",
    "layer_info",
    "layer_label",
    "new_figure",
    "pebble_colormap",
    "run_title",
    "save",
    "shade_optimizer_steps",
    "set_bytes_axis",
    "set_time_axis",
    "time_axis",
]
