"""The ``advise`` search as one picture: step time against the fullest GPU's memory for every
configuration it simulated, the memory limit, the Pareto front of those that fit, and the top
configurations numbered (their names listed beside the plot).

It takes plain data (``ParetoPoint``), not Timelines: a search simulates dozens of runs and keeps
only their headline figures. Lower-left is better; nothing right of the limit line fits.
"""

from __future__ import annotations

from dataclasses import dataclass

from matplotlib.figure import Figure

from simulator.units import byte_unit, human_bytes, human_time
from visualize.style import OKABE_ITO, new_figure

MAX_LABELLED = 10


@dataclass(frozen=True)
class ParetoPoint:
    """One simulated configuration: its name, step time (s), whole-rank bytes of its fullest
    GPU, whether every GPU fits, and its place in the ranked table (None: not listed)."""

    label: str
    step_time: float
    peak_bytes: int
    fits: bool
    rank: int | None = None


def pareto_front(points: list[ParetoPoint]) -> list[ParetoPoint]:
    """The fitting points no other fitting point beats on both time and memory, by memory."""
    front: list[ParetoPoint] = []
    for p in sorted((p for p in points if p.fits), key=lambda p: (p.peak_bytes, p.step_time)):
        if not front or p.step_time < front[-1].step_time:
            front.append(p)
    return front


def pareto_figure(
    points: list[ParetoPoint], limit_bytes: int, title: str = "", note: str = ""
) -> Figure:
    """Step time (s) against peak memory per GPU, one marker per simulated configuration;
    ``note`` (e.g. how many were pruned unsimulated) goes under the legend."""
    fig = new_figure(11.0, 5.6)
    ax, side = fig.subplots(1, 2, width_ratios=[2.6, 1])
    largest = max([limit_bytes, *(p.peak_bytes for p in points)])
    factor, unit = byte_unit(largest)
    fits = [p for p in points if p.fits]
    over = [p for p in points if not p.fits]
    ax.scatter(
        [p.peak_bytes / factor for p in fits],
        [p.step_time for p in fits],
        s=22,
        color=OKABE_ITO["blue"],
        alpha=0.55,
        label=f"fits ({len(fits)})",
        zorder=2,
    )
    ax.scatter(
        [p.peak_bytes / factor for p in over],
        [p.step_time for p in over],
        s=22,
        marker="x",
        color="#9E9E9E",
        label=f"over the limit ({len(over)})",
        zorder=2,
    )
    front = pareto_front(points)
    ax.step(
        [p.peak_bytes / factor for p in front],
        [p.step_time for p in front],
        where="post",
        color=OKABE_ITO["green"],
        lw=1.5,
        label="Pareto front (fits)",
        zorder=1,
    )
    ax.axvline(
        limit_bytes / factor,
        color=OKABE_ITO["vermillion"],
        ls="--",
        lw=1.2,
        label=f"memory limit {human_bytes(limit_bytes)}",
    )
    _number_top(ax, side, points, factor)
    ax.set_xlabel(f"peak memory of the fullest GPU ({unit})")
    ax.set_ylabel("step time (s)")
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    legend = side.legend(handles, labels, loc="lower left", fontsize=8, frameon=False)
    if note:
        legend.set_title(note, prop={"size": 7.5})
        legend._legend_box.align = "left"
    ax.set_title(title or "advise: step time against memory", fontsize=10, loc="left")
    return fig


def _number_top(ax, side, points: list[ParetoPoint], factor: float) -> None:
    """Number the best configurations on the plot and name them in the side panel."""
    ranked = sorted((p for p in points if p.rank is not None), key=lambda p: p.rank)
    ranked = ranked[:MAX_LABELLED]
    for p in ranked:
        ax.scatter(
            [p.peak_bytes / factor],
            [p.step_time],
            s=90,
            facecolors="none",
            edgecolors=OKABE_ITO["orange"],
            lw=1.5,
            zorder=3,
        )
        ax.annotate(
            str(p.rank),
            (p.peak_bytes / factor, p.step_time),
            xytext=(5, 4),
            textcoords="offset points",
            fontsize=8,
            color=OKABE_ITO["black"],
            zorder=4,
        )
    side.axis("off")
    lines = [f"{p.rank:>2}  {human_time(p.step_time)}  {p.label}" for p in ranked]
    side.text(
        0.0,
        1.0,
        "top configurations (circled)\n\n" + "\n".join(lines),
        va="top",
        ha="left",
        family="monospace",
        fontsize=7.5,
        transform=side.transAxes,
    )
