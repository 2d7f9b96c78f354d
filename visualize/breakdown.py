"""Whole-rank memory: one stacked bar per rank, by kind, against the device's capacity.

Why a bar per rank: "why is the first pipeline rank out of memory?" is answered by comparing
the ranks side by side. Parameters, gradients and optimizer state follow the model split; the
activations on top follow the schedule (1F1B's first rank holds p microbatches, its last one),
so a reader sees which part grows where. With a ``--hardware`` preset a dashed line marks the
device's memory and every bar says ``fits`` or ``over``; the totals stand in one row above the
bars and the line, so the line never crosses a label. The title is the figure's, wrapped to its
width: centred on the narrow axes beside the legend it was cut at the left edge.
"""

from __future__ import annotations

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from simulator.errors import PebbleError
from simulator.timeline import Timeline
from simulator.units import human_bytes
from visualize.style import OKABE_ITO, new_figure, run_title, set_bytes_axis, wrap_title

PARTS = (  # (summary key, legend label, colour), bottom to top
    ("parameters", "parameters", OKABE_ITO["blue"]),
    ("gradients", "gradients", OKABE_ITO["sky"]),
    ("optimizer_state", "optimizer state", OKABE_ITO["green"]),
    ("receive_buffers", "receive buffers", OKABE_ITO["yellow"]),
    ("activations", "activations (peak)", OKABE_ITO["orange"]),
)
CAPACITY_COLOR = OKABE_ITO["black"]
OVER_COLOR = OKABE_ITO["vermillion"]


def breakdown_rows(timeline: Timeline) -> list[dict]:
    """Per rank, the whole-rank memory the summary reports (``per_rank[].memory``)."""
    rows = [r.memory for r in timeline.summary().per_rank]
    if not rows or any(m is None for m in rows):
        raise PebbleError(
            "this Timeline does not record whole-rank memory (it predates it); simulate or "
            "train again to draw the breakdown."
        )
    return rows


def breakdown_figure(timeline: Timeline, *, title: str | None = None) -> Figure:
    """Draw the stacked bars (see the module docstring); returns the Figure. Each bar's total
    label is a Text with ``gid="total:{rank}"``."""
    rows = breakdown_rows(timeline)
    capacity = timeline.meta.memory_capacity
    ranks = len(rows)
    fig = new_figure(max(7.0, 0.55 * ranks + 3.5), 4.4)
    ax = fig.add_subplot()
    bottoms = [0] * ranks
    for key, _label, colour in PARTS:
        heights = [m[key] for m in rows]
        ax.bar(range(ranks), heights, bottom=bottoms, color=colour, width=0.7, lw=0)
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    largest = max(max(bottoms), capacity or 0) or 1
    # every total in one row above the bars and the device line, so the line never runs
    # through a label and no total sits above a line it is below
    above = max(max(bottoms), capacity or 0) + 0.02 * largest
    for rank, m in enumerate(rows):
        verdict = "" if m["fits"] is None else ("\nfits" if m["fits"] else "\nOVER")
        ax.text(
            rank,
            above,
            human_bytes(m["total"]) + verdict,
            ha="center",
            va="bottom",
            rotation=90 if ranks > 8 else 0,
            fontsize=8 if ranks <= 24 else 6,
            color=OVER_COLOR if m["fits"] is False else "black",
            fontweight="bold" if m["fits"] is False else "normal",
            gid=f"total:{rank}",
            zorder=4,
        )
    handles = [Patch(color=c, label=label) for _key, label, c in reversed(PARTS)]
    if capacity:
        ax.axhline(capacity, color=CAPACITY_COLOR, ls="--", lw=1.4)
        handles.insert(
            0,
            Line2D(
                [],
                [],
                color=CAPACITY_COLOR,
                ls="--",
                lw=1.4,
                label=f"device memory {human_bytes(capacity)}",
            ),
        )
    room = 1.45 if ranks > 8 else 1.22  # the totals' row, turned upright past 8 ranks
    set_bytes_axis(ax, largest * room)
    ax.set_ylim(0, largest * room)
    every = max(1, -(-ranks // 32))
    ax.set_xticks(range(0, ranks, every))
    ax.set_xticklabels(
        [f"rank {r}" for r in range(0, ranks, every)],
        fontsize=8,
        rotation=0 if ranks <= 12 else 90,
    )
    ax.set_ylabel("memory per rank")
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    for side in ("right", "top"):
        ax.spines[side].set_visible(False)
    heading = title or run_title(timeline, "Whole-rank memory").replace(" — ", "\n")
    fig.suptitle(wrap_title(heading, fig.get_figwidth(), 11), fontsize=11)
    return fig
