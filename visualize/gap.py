"""Where the measured time went beyond the prediction, per rank: the overlay's lower panel.

Why: a makespan error says how far off a prediction is, not why. Each run's time on a rank,
from the first compared step's start to the run's end, splits into six parts that add up to
that span (``time_split``), read from the Timeline alone:

* **compute**: the rank's actions' work: their CPU time where the Timeline has it
  (``action_cpu``: a measured run, a prediction with shared cores), else their whole spans;
* **waiting for a core**: the rest of the actions' spans, while an action was under way but
  had no core to run on (the **contention** of ranks sharing cores);
* **call overhead**: a gap before an action whose inputs were already there (on Ray, taking
  the actor call: returning the previous result, unpacking the next);
* **transfer wait**: from a remote input's departure to the action's start, while the rank sat
  waiting for it (the object store hop and the dispatch of the call);
* **waiting on other ranks**: idle until a producer on another rank finished (the bubble);
* **step overhead**: between steps (the commit, the optimizer step, the next step's submission)
  and after the last step.

The measured minus the predicted part, per part, adds up on every rank to the difference of
the two spans (the error the title gives), so the panel shows where the gap comes from.
"""

from __future__ import annotations

import statistics
from collections import defaultdict

from simulator.timeline import PIPELINE_RULE, DependencyRule, Timeline, received_flows
from simulator.units import time_scale
from visualize.style import OKABE_ITO

PARTS = {  # part: colour (none of the action kinds' colours, which the chart above uses)
    "compute": "#8C510A",
    "waiting for a core": OKABE_ITO["vermillion"],
    "call overhead": OKABE_ITO["purple"],
    "transfer wait": OKABE_ITO["blue"],
    "waiting on other ranks": "#C4C4C4",
    "step overhead": "#5E5E5E",
}


def compared_span(timeline: Timeline, first_step: int = 0) -> tuple[float, float]:
    """(start, end) of replica 0 from ``first_step`` on: its first action's start to its last
    action's or optimizer step's end."""
    events = [e for e in timeline.events if e.replica == 0 and e.step >= first_step]
    if not events:
        return 0.0, 0.0
    end = max(e.end for e in events)
    end = max([end] + [o.end for o in timeline.optimizer if o.step >= first_step])
    return min(e.start for e in events), end


def time_split(
    timeline: Timeline, first_step: int = 0, rule: DependencyRule = PIPELINE_RULE
) -> dict[int, dict[str, float]]:
    """Per rank, the compared span (``compared_span``) split into ``PARTS`` (module docstring).
    An action waited for a transfer of the flow its kind receives (``received_flows``)."""
    t0, end = compared_span(timeline, first_step)
    flow_of = received_flows(rule)
    events = [e for e in timeline.events if e.replica == 0 and e.step >= first_step]
    step_start: dict[int, float] = {}
    for e in events:
        step_start[e.step] = min(step_start.get(e.step, e.start), e.start)
    sent = {
        (c.step, c.stage, c.microbatch, c.kind): c.start  # a comm's kind is its flow
        for c in timeline.comms
        if c.replica == 0 and c.step >= first_step
    }
    last_end = max((e.end for e in events), default=t0)
    cpu = timeline.action_work()
    by_rank: dict[int, list] = defaultdict(list)
    for e in events:
        by_rank[e.rank].append(e)
    split = {}
    for rank, mine in sorted(by_rank.items()):
        parts = dict.fromkeys(PARTS, 0.0)
        previous, step = t0, first_step
        for e in sorted(mine, key=lambda e: (e.step, e.start)):
            if e.step != step:  # the step boundary: the commit, then the next step's start
                parts["step overhead"] += max(0.0, step_start[e.step] - previous)
                previous, step = max(previous, step_start[e.step]), e.step
            arrived = sent.get((e.step, e.stage, e.microbatch, flow_of.get(e.kind)))
            if arrived is not None and arrived > previous:
                departed = min(arrived, e.start)
                parts["waiting on other ranks"] += departed - previous
                parts["transfer wait"] += e.start - departed
            else:
                parts["call overhead"] += max(0.0, e.start - previous)
            span = e.end - e.start
            work = min(span, cpu.get((0, e.rank, e.stage, e.kind, e.microbatch, e.step), span))
            parts["compute"] += work
            parts["waiting for a core"] += span - work
            previous = max(previous, e.end)
        parts["waiting on other ranks"] += max(0.0, last_end - previous)
        parts["step overhead"] += end - max(last_end, previous)
        split[rank] = parts
    return split


def warmup_extra(timeline: Timeline) -> float | None:
    """How much longer step 0 took, to the next step's start, than the median later step did
    (None with fewer than three steps)."""
    starts: dict[int, float] = {}
    for e in timeline.events:
        if e.replica == 0:
            starts[e.step] = min(starts.get(e.step, e.start), e.start)
    steps = sorted(starts)
    if len(steps) < 3:
        return None
    lengths = [starts[b] - starts[a] for a, b in zip(steps, steps[1:], strict=False)]
    return lengths[0] - statistics.median(lengths[1:])


def step_overhead(predicted: Timeline) -> float:
    """The time a prediction puts between steps (its optimizer rows), median."""
    spans = [o.end - o.start for o in predicted.optimizer]
    return statistics.median(spans) if spans else 0.0


def draw_gap(ax, predicted: Timeline, measured: Timeline, first_step: int) -> None:
    """Per rank, one bar per part of measured minus predicted, stacked to the right where the
    measurement spent more and to the left where it spent less; the dotted line is the
    difference of the two spans, where every rank's bars net out."""
    mine, theirs = time_split(measured, first_step), time_split(predicted, first_step)
    ranks = sorted(set(mine) | set(theirs))
    zero = dict.fromkeys(PARTS, 0.0)
    deltas = {
        rank: {part: mine.get(rank, zero)[part] - theirs.get(rank, zero)[part] for part in PARTS}
        for rank in ranks
    }
    (p0, p1), (m0, m1) = compared_span(predicted, first_step), compared_span(measured, first_step)
    gap = (m1 - m0) - (p1 - p0)
    biggest = max((abs(d) for row in deltas.values() for d in row.values()), default=0.0)
    factor, unit = _unit(predicted.time_unit, max(biggest, abs(gap)))
    for rank, row in deltas.items():
        right = left = 0.0
        for part, delta in row.items():
            delta *= factor
            ax.barh(
                rank,
                delta,
                left=right if delta >= 0 else left,
                height=0.6,
                color=PARTS[part],
                edgecolor="white",
                lw=0.5,
                label=part if rank == ranks[0] else None,
            )
            right, left = (right + delta, left) if delta >= 0 else (right, left + delta)
    ax.axvline(0, color="#333333", lw=0.8)
    ax.axvline(gap * factor, color="#333333", lw=1.2, ls=":")
    ax.set_yticks(ranks)
    ax.set_yticklabels([f"rank {r}" for r in ranks], fontsize=8)
    ax.set_ylim(max(ranks, default=0) + 0.6, -0.6)
    ax.set_xlabel(f"measured minus predicted ({unit}); right: the run spent more than predicted")
    ax.set_title(
        "Where the measured time went beyond the prediction, per rank "
        f"(dotted: the net gap, {gap * factor:+.3g} {unit})",
        fontsize=10,
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    ax.grid(axis="x", color="#E6E6E6", lw=0.6)
    ax.set_axisbelow(True)
    for side in ("right", "top"):
        ax.spines[side].set_visible(False)


def _unit(time_unit: str, largest: float) -> tuple[float, str]:
    """(factor, name) to read times of about ``largest`` in a readable unit."""
    if time_unit != "s":
        return 1.0, "units" if time_unit == "unit" else time_unit
    return time_scale(largest)
