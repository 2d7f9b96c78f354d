"""Where a step's time goes: one stacked bar per rank, split into compute, recompute, exposed
tensor-parallel communication, pipeline wait (the bubble), exposed data-parallel communication
and the optimizer (``simulator.timeline.breakdown``).

Why a bar per rank: the step time is the same on every rank, but not what fills it. The first
rank of 1F1B waits at the end of the step, the last at its start; with more replicas the rank
whose gradients finish last waits for their reduction. Side by side, a reader sees which part
to shrink: the bubble (more microbatches, another schedule), the exposed communication (another
layout) or the recompute (another policy). Each bar is its rank's mean over the steps; the
bubble is hatched, so it reads as "nothing ran" in grey print too.
"""

from __future__ import annotations

import re

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from simulator.errors import PebbleError
from simulator.timeline import Timeline
from simulator.timeline.breakdown import PART_LABELS, PARTS, step_breakdown
from visualize.style import (
    OKABE_ITO,
    new_figure,
    run_title,
    time_axis,
    wrap_title,
)

COLOURS = {  # bottom to top, in PARTS' order
    "compute": OKABE_ITO["blue"],
    "recompute": OKABE_ITO["sky"],
    "tensor_comm": OKABE_ITO["orange"],
    "offload_wait": OKABE_ITO["purple"],
    "pipeline_wait": "#DDDDDD",
    "data_comm": OKABE_ITO["vermillion"],
    "optimizer": OKABE_ITO["green"],
}
WAIT_HATCH = "///"
SHORT_LABELS = {  # the legend's: the long ones (PART_LABELS) overflow a 7-inch figure
    **PART_LABELS,
    "tensor_comm": "exposed TP comm",
    "offload_wait": "exposed copy wait",
    "pipeline_wait": "pipeline wait (bubble)",
    "data_comm": "exposed DP comm",
}


def _label(part: str, layout: str) -> str:
    """The legend's label of ``part``; the layer-internal exchanges are named by the degrees
    of the layout that make them (``p4 v2 t1 c1 e8 d8 z1``: "exposed EP comm"). The layout is
    read from the Timeline's text (``visualize`` reads nothing of the model package), leniently:
    a hand-edited file's odd text only names the part "TP"."""
    if part != "tensor_comm":
        return SHORT_LABELS[part]
    degrees = dict(re.findall(r"\b([tce])(\d+)", layout))
    names = [
        name
        for key, name in (("t", "TP"), ("c", "CP"), ("e", "EP"))
        if int(degrees.get(key, 1)) > 1
    ]
    return f"exposed {'/'.join(names or ['TP'])} comm"


def step_breakdown_figure(timeline: Timeline, *, title: str | None = None) -> Figure:
    """Draw the stacked bars (see the module docstring); returns the Figure. Each bar segment's
    ``gid`` is ``part:{name}:{rank}``, its height the part's mean time in the axis unit."""
    breakdown = step_breakdown(timeline)
    if not len(breakdown.step_times):
        raise PebbleError("the Timeline holds no steps to break down.")
    means = breakdown.mean_per_rank()
    ranks = breakdown.ranks
    step = float(breakdown.step_times.mean())
    factor, label = time_axis(timeline, step)
    fig = new_figure(max(7.0, min(0.3 * ranks + 4.0, 16.0)), 4.6)
    ax = fig.add_subplot()
    bottoms = np.zeros(ranks)
    width = 0.75 if ranks <= 32 else 0.9
    handles = []
    for i, part in enumerate(PARTS):
        heights = means[:, i] * factor
        hatch = WAIT_HATCH if part == "pipeline_wait" else None
        bars = ax.bar(
            range(ranks),
            heights,
            bottom=bottoms,
            width=width,
            color=COLOURS[part],
            hatch=hatch,
            edgecolor="#888888" if hatch else COLOURS[part],
            lw=0,
        )
        for rank, bar in enumerate(bars):
            bar.set_gid(f"part:{part}:{rank}")
        bottoms += heights
        if means[:, i].sum() > 0:
            share = 100 * means[:, i].sum() / max(means.sum(), 1e-300)
            handles.append(
                Patch(
                    facecolor=COLOURS[part],
                    hatch=hatch,
                    edgecolor="#888888" if hatch else COLOURS[part],
                    label=f"{_label(part, timeline.meta.layout)} {share:.1f}%",
                )
            )
    ax.set_ylim(0, max(float(bottoms.max()), 1e-300) * 1.05)
    ax.set_ylabel(f"step {label}")
    every = max(1, -(-ranks // 32))
    ax.set_xticks(range(0, ranks, every))
    ax.set_xticklabels(
        [str(r) for r in range(0, ranks, every)], fontsize=8, rotation=0 if ranks <= 32 else 90
    )
    ax.set_xlabel("pipeline rank")
    ax.set_xlim(-0.6, ranks - 0.4)
    for side in ("right", "top"):
        ax.spines[side].set_visible(False)
    # two rows of three: the labels are short enough for the narrowest figure (7 in)
    fig.legend(
        handles=handles,
        ncol=min(3, len(handles)),
        loc="outside lower center",
        frameon=False,
        fontsize=8.5,
    )
    steps = len(breakdown.step_times)
    what = "Where each step goes" + (f" (mean of {steps} steps)" if steps > 1 else "")
    heading = title or run_title(timeline, what).replace(" — ", "\n")
    fig.suptitle(wrap_title(heading, fig.get_figwidth(), 11), fontsize=11)
    return fig
