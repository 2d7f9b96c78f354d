"""The boxes of the pipeline chart and the overlay: one Rectangle per action, coloured by kind
(lighter for a later chunk), numbered by microbatch where the number fits.

Why apart from the figures: the pipeline chart and the predicted-vs-measured overlay draw the
same boxes with the same colours and legend entries; one place decides how a box looks.
"""

from __future__ import annotations

from matplotlib.colors import to_rgb
from matplotlib.patches import Patch, Rectangle

from simulator.timeline import PIPELINE_RULE, DependencyRule, forward_kinds
from visualize.pipeline_data import Box
from visualize.style import kind_color, kind_name

BOX = 0.8  # box height within a lane of height 1


def box_color(kind: str, chunk: int = 0, rule: DependencyRule = PIPELINE_RULE):
    """The kind's colour (``style.kind_color``), lighter for each later chunk of an
    interleaved schedule."""
    rgb = to_rgb(kind_color(kind, rule))
    mix = min(0.45 * chunk, 0.7)
    return tuple(c + (1 - c) * mix for c in rgb)


def label_fontsize(
    widths_points: list[float], digits: int, largest: float, smallest: float = 5.5
) -> float:
    """One font size for every microbatch number in a chart: as large as ``largest`` but small
    enough that a ``digits``-wide number fits every box that can hold one at ``smallest``."""
    needed = [(w - 2) / (0.62 * digits) for w in widths_points]
    usable = [n for n in needed if n >= smallest]
    return max(smallest, min([largest, *usable]))


def label_fits(width_points: float, digits: int, fontsize: float) -> bool:
    """Whether a ``digits``-wide number at ``fontsize`` fits a box ``width_points`` wide. Every
    box is judged by the widest number of the chart, so equal boxes are labelled alike."""
    return width_points >= 0.62 * fontsize * digits + 2


def draw_boxes(
    ax,
    boxes: list[Box],
    *,
    x_range: float,
    axes_points: float,
    fontsize: float,
    y_of=None,
    height: float = BOX,
    filled: bool = True,
    show_labels: bool = True,
    gid_prefix: str = "box",
    rule: DependencyRule = PIPELINE_RULE,
) -> list[Rectangle]:
    """Add one Rectangle per box (``gid="{prefix}:{row}:{label}:{step}"``); ``y_of(box)`` gives
    the lane centre (default: the box's row). Outlined, hatched boxes when not ``filled``."""
    y_of = y_of or (lambda b: b.row)
    patches = []
    thin = axes_points / max(x_range, 1e-300)  # points per time unit
    digits = len(str(max((b.microbatch for b in boxes), default=0)))
    fontsize = label_fontsize([(b.end - b.start) * thin for b in boxes], digits, fontsize)
    for b in boxes:
        colour = box_color(b.kind, b.chunk, rule)
        tiny = (b.end - b.start) * thin < 3
        if filled:
            style = {
                "facecolor": colour,
                "edgecolor": "none" if tiny else "#303030",
                "linewidth": 0.4,
            }
        else:
            style = {
                "facecolor": (*colour, 0.18),
                "edgecolor": colour,
                "linewidth": 1.1,
                "hatch": None if tiny else "////",
            }
        rect = Rectangle(
            (b.start, y_of(b) - height / 2),
            b.end - b.start,
            height,
            zorder=2,
            gid=f"{gid_prefix}:{b.row}:{b.label}:{b.step}",
            **style,
        )
        ax.add_patch(rect)
        patches.append(rect)
        text = str(b.microbatch)
        if show_labels and label_fits((b.end - b.start) * thin, digits, fontsize):
            ax.text(
                (b.start + b.end) / 2,
                y_of(b),
                text,
                ha="center",
                va="center",
                fontsize=fontsize,
                zorder=3,
                color="#1A1A1A",
                clip_on=True,
            )
    return patches


def kind_handles(kinds, chunks: int = 1, rule: DependencyRule = PIPELINE_RULE) -> list[Patch]:
    """Legend entries for the rule's kinds present, in the rule's order (F, B, I, W), each
    with its display's label and colour."""
    handles = [
        Patch(
            facecolor=kind_color(k, rule),
            edgecolor="#303030",
            linewidth=0.4,
            label=kind_name(k, rule),
        )
        for k in rule.kinds
        if k in kinds
    ]
    if chunks > 1:
        handles.append(
            Patch(
                facecolor=box_color(forward_kinds(rule)[0], 1, rule),
                edgecolor="#303030",
                linewidth=0.4,
                label="lighter: later chunk",
            )
        )
    return handles


__all__ = ["BOX", "box_color", "draw_boxes", "kind_handles", "label_fits", "label_fontsize"]
