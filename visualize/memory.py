"""The memory timeline: cached activation bytes on each rank over time.

One small panel per rank (rank 0 at the top), all sharing the time and byte axes, so the ranks
compare at a glance: the first ranks of a 1F1B pipeline hold the most, GPipe holds everything
until the backward starts. Each rank's peak is marked and labelled in KiB/MiB/GiB; with data
parallelism every replica is drawn (replica 0 filled) and the label is the peak over replicas,
the same number ``Timeline.summary()`` reports.
"""

from __future__ import annotations

from matplotlib.figure import Figure

from simulator.timeline import Timeline
from simulator.units import human_bytes
from visualize.style import (
    new_figure,
    rank_palette,
    run_title,
    set_bytes_axis,
    set_time_axis,
    shade_optimizer_steps,
    time_span,
)


def memory_steps(timeline: Timeline, rank: int, replica: int = 0) -> tuple[list[float], list[int]]:
    """The step function drawn for one rank: starts at (0, 0) and holds its last value to the
    end of the run (``drawstyle="steps-post"``)."""
    times, totals = timeline.rank_memory(rank, replica)
    end = max(time_span(timeline), times[-1] if times else 0.0)
    return [0.0, *times, end], [0, *totals, totals[-1] if totals else 0]


def memory_peaks(timeline: Timeline) -> dict[int, tuple[int, float, int]]:
    """Per rank, (peak bytes, first time reached, replica) over all replicas."""
    dp = timeline.meta.dp
    out: dict[int, tuple[int, float, int]] = {}
    for rank in range(timeline.num_ranks):
        best = (0, 0.0, 0)
        for replica in range(dp):
            times, totals = timeline.rank_memory(rank, replica)
            for t, total in zip(times, totals, strict=True):
                if total > best[0]:
                    best = (total, t, replica)
        out[rank] = best
    return out


def memory_figure(timeline: Timeline, *, title: str | None = None) -> Figure:
    """Draw the memory timeline (see the module docstring); returns the Figure.

    Each rank's peak label is a Text with ``gid="peak:{rank}"`` reading ``peak 48.0 KiB``.
    """
    ranks = timeline.num_ranks
    dp = timeline.meta.dp
    span = time_span(timeline) or 1.0
    peaks = memory_peaks(timeline)
    largest = max((p[0] for p in peaks.values()), default=0) or 1
    colours = rank_palette(ranks)

    per_panel = 0.95 if ranks <= 6 else max(0.55, 6.5 / ranks)
    fig = new_figure(11, min(1.3 + per_panel * ranks, 15))
    axes = fig.subplots(ranks, 1, sharex=True, sharey=True, squeeze=False)[:, 0]
    for rank, ax in enumerate(axes):
        colour = colours[rank]
        for replica in range(dp):
            xs, ys = memory_steps(timeline, rank, replica)
            if replica == 0:
                ax.fill_between(xs, ys, step="post", color=colour, alpha=0.25, lw=0)
                ax.plot(xs, ys, drawstyle="steps-post", color=colour, lw=1.3)
            else:
                ax.plot(xs, ys, drawstyle="steps-post", color=colour, lw=0.8, ls="--", alpha=0.8)
        shade_optimizer_steps(ax, timeline.optimizer, span, zorder=1.0)
        peak, when, replica = peaks[rank]
        if peak > 0:
            ax.plot(
                [when],
                [peak],
                marker="v",
                color="black",
                markersize=5,
                zorder=5,
                gid=f"peak-marker:{rank}",
            )
            text = f"peak {human_bytes(peak)}"
            if replica:
                text += f" (replica {replica})"
            right = when > 0.72 * span
            ax.annotate(
                text,
                xy=(when, peak),
                xytext=(-6 if right else 6, 2),
                textcoords="offset points",
                ha="right" if right else "left",
                va="bottom",
                fontsize=8.5,
                gid=f"peak:{rank}",
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8},
            )
        ax.set_ylabel(f"rank {rank}", rotation=0, ha="right", va="center", fontsize=9)
        ax.grid(axis="both", color="#E6E6E6", lw=0.6)
        ax.set_axisbelow(True)
        for side in ("right", "top"):
            ax.spines[side].set_visible(False)
        ax.tick_params(axis="y", labelsize=7.5)

    axes[0].set_ylim(0, largest * 1.45)
    set_bytes_axis(axes[0], largest, nbins=3)
    axes[0].set_xlim(0, span * 1.02)
    set_time_axis(axes[-1], timeline, span)
    fig.supylabel("cached activations", fontsize=10)
    heading = title or run_title(timeline, "Activation memory")
    if dp > 1:
        heading += "\nsolid: replica 0, dashed: other replicas"
    fig.suptitle(heading, fontsize=11)
    return fig


__all__ = ["human_bytes", "memory_figure", "memory_peaks", "memory_steps"]
