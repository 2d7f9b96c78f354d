"""The pipeline chart's lanes: one white lane per row (white is idle) and the labels on the left.

Why apart from the chart (``visualize.pipeline``): with activation offload each rank's compute
lane is followed by its copy lane (``visualize.copies``), and the labels say which is which.
"""

from __future__ import annotations

from matplotlib.patches import Rectangle

from visualize.boxes import BOX
from visualize.rows import row_fontsize
from visualize.style import LANE_EDGE
from visualize.window import TimeWindow


def draw_lanes(ax, rows: int, view: TimeWindow) -> None:
    """One empty white lane per row: white is idle."""
    for row in range(rows):
        ax.add_patch(
            Rectangle(
                (view.start, row - BOX / 2),
                view.length,
                BOX,
                facecolor="white",
                edgecolor=LANE_EDGE,
                linewidth=0.6,
                zorder=1,
            )
        )


def label_lanes(
    ax, rows: int, ranks: int, *, all_replicas: bool, lane_inches: float, copies: int = 1
) -> None:
    """Rank 0 at the top, one label per lane (``replica r · rank k`` when stacked; ``copies``
    2: each rank's copy lane follows it, ``copies``); past the rows the labels fit, every
    k-th."""
    ax.set_ylim(rows - 0.5, -0.5)
    if all_replicas:
        labels = [f"replica {r // ranks} · rank {r % ranks}" for r in range(rows)]
    else:
        labels = [f"rank {r}" for r in range(rows)]
    if copies == 2:
        labels = [f"rank {r // 2}" if r % 2 == 0 else "copies" for r in range(rows)]
    size = row_fontsize(rows, lane_inches, 10.0)
    every = 1 if size > 4.0 else -(-rows * 5 // int(lane_inches * 72))
    ax.set_yticks(range(0, rows, every))
    ax.set_yticklabels(labels[::every])
    ax.tick_params(axis="y", length=0, labelsize=size if every == 1 else 5.0)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)


__all__ = ["draw_lanes", "label_lanes"]
