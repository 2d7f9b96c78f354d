"""Gradient availability's data, without drawing: when each layer's (or block's) weight
gradient starts accumulating in a step, when it is complete, and its all-reduce.

Why apart from the figure (``visualize.grads``): the tests and the at-scale grouping read these
times; the figure only places them. Everything comes from ``Timeline.events`` (the stage's first
action completing a weight-gradient share), ``Timeline.grad_ready``, ``Timeline.allreduce`` and
``Timeline.optimizer``.
"""

from __future__ import annotations

from typing import NamedTuple

from simulator.timeline import PIPELINE_RULE, DependencyRule, Timeline, weight_gradient_kinds
from visualize.rows import Row, block_rows, layer_rows, row_of_layer, should_group
from visualize.style import layer_info


class GradRow(NamedTuple):
    """What one row shows: ``layer`` (on ``stage``) starts accumulating at ``first_backward``,
    is complete at ``ready``; its all-reduce ran from ``allreduce[0]`` to ``allreduce[1]``."""

    layer: int
    stage: int
    first_backward: float
    ready: float
    allreduce: tuple[float, float] | None


def step_window(timeline: Timeline, step: int, replica: int = 0) -> tuple[float, float]:
    """From the step's first compute event to its optimizer step's end (or its last record)."""
    events = [e for e in timeline.events if e.step == step and e.replica == replica]
    start = min((e.start for e in events), default=0.0)
    ends = [e.end for e in events]
    ends += [g.time for g in timeline.grad_ready if g.step == step and g.replica == replica]
    ends += [a.end for a in timeline.allreduce if a.step == step]
    ends += [o.end for o in timeline.optimizer if o.step == step]
    return start, max(ends, default=start)


def grad_rows(
    timeline: Timeline, step: int = 0, replica: int = 0, rule: DependencyRule = PIPELINE_RULE
) -> list[GradRow]:
    """One GradRow per layer with a gradient-ready record in ``step``, in layer order; its
    gradient accumulates from its stage's first action that completes a weight-gradient share
    (B or W: the rule's ``weight_gradient_kinds``)."""
    stage_of = {layer.index: layer.stage for layer in layer_info(timeline)}
    completes = weight_gradient_kinds(rule)
    first_backward: dict[int, float] = {}
    for e in timeline.events:
        if e.step == step and e.replica == replica and e.kind in completes:
            first_backward[e.stage] = min(first_backward.get(e.stage, e.start), e.start)
    reduce = {a.layer: (a.start, a.end) for a in timeline.allreduce if a.step == step}
    rows = []
    for g in sorted(timeline.grad_ready, key=lambda g: g.layer):
        if g.step != step or g.replica != replica:
            continue
        stage = stage_of.get(g.layer, 0)
        rows.append(
            GradRow(
                g.layer,
                stage,
                min(first_backward.get(stage, g.time), g.time),
                g.time,
                reduce.get(g.layer),
            )
        )
    return rows


def chart_rows(
    timeline: Timeline,
    step: int = 0,
    replica: int = 0,
    expand: bool | None = None,
    rule: DependencyRule = PIPELINE_RULE,
) -> list[tuple[Row, GradRow]]:
    """What ``grads_figure`` draws, top to bottom: each row (its key, name and label) with its
    GradRow; one per layer, or per block when ``should_group`` (see ``visualize.grads``)."""
    per_layer = grad_rows(timeline, step, replica, rule)
    layers = layer_info(timeline)
    if should_group(len(per_layer), expand):
        return block_grad_rows(per_layer, block_rows(layers))
    known = {row.layers[0]: row for row in layer_rows(layers)}
    out = []
    for g in per_layer:
        row = known.get(g.layer)
        if row is None:  # a layer the meta does not describe shows its index only
            label = f"L{g.layer} · s{g.stage} · r?"
            row = Row(str(g.layer), f"L{g.layer}", label, (g.layer,), g.stage, -1, True)
        else:
            row = row._replace(label=f"{row.label} · s{g.stage} · r{row.rank}")
        out.append((row, g))
    return out


def block_grad_rows(per_layer: list[GradRow], groups: list[Row]) -> list[tuple[Row, GradRow]]:
    """One GradRow per group with gradients: its ``layer`` is the member completing last, ready
    at the latest of the members' ready times, accumulating from the earliest first backward,
    the all-reduce from the first member's start to the last one's end."""
    row_of = row_of_layer(groups)
    members: dict[int, list[GradRow]] = {}
    for g in per_layer:
        if g.layer in row_of:
            members.setdefault(row_of[g.layer], []).append(g)
    out = []
    for number in sorted(members):
        rows = members[number]
        last = max(rows, key=lambda g: g.ready)
        reduces = [g.allreduce for g in rows if g.allreduce]
        reduce = (min(a[0] for a in reduces), max(a[1] for a in reduces)) if reduces else None
        first = min(g.first_backward for g in rows)
        group = groups[number]
        label = f"{group.label} · s{group.stage} · r{group.rank}"
        grad = last._replace(first_backward=first, allreduce=reduce)
        out.append((group._replace(label=label), grad))
    return out


__all__ = ["GradRow", "block_grad_rows", "chart_rows", "grad_rows", "step_window"]
