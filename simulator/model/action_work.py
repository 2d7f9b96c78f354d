"""What one action does, layer by layer: the work items the memory plan places in time.

Why a list of items: with recomputation a backward is no longer "each layer's backward, last to
first". It pops a segment's checkpoint, re-runs the segment's forward (caching again), then runs
the segment's backward; a selective attention core first puts back its scores. Each step is an
item with its FLOPs (its share of the action's time), its net cache change and whether it is
part of a recompute sub-span, in exactly the order ``simulator.model.stage.Stage`` runs them, so
the analytic peak equals the measured one.
"""

from __future__ import annotations

from dataclasses import dataclass

from schedules.dependencies import KindRule
from simulator.model.recompute import StageRecompute


@dataclass(frozen=True)
class WorkItem:
    """One step of an action: a layer (index relative to the stage's first), its FLOPs per row,
    its net cache change (placed at the item's start when ``at_start``, else at its end),
    whether it completes the layer's weight-gradient share, whether it recomputes, and the
    bytes it holds only while it runs (``working``: a backward's gradient tensors, which no
    cache keeps; ``simulator.model.transformer.gradient_buffers``), and what a recompute item
    re-runs of its layer (``rerun``: "forward", all of it; "selective", the part selective
    recomputation drops; "" for everything else), which a cost model times."""

    layer: int
    flops: float
    delta: int
    at_start: bool
    weight_grad: bool = False
    recompute: bool = False
    working: int = 0
    rerun: str = ""


def _forward_bytes(info, footprint, selective: bool) -> int:
    """What a layer's forward caches: all of it, or without what selective recompute drops."""
    slots = getattr(info.cls, "RECOMPUTED_SLOTS", None)
    dropped = sum(footprint.F[slots]) if selective and slots is not None else 0
    return sum(footprint.F) - dropped


def _selective_item(j: int, info, footprint, flops) -> WorkItem | None:
    """Layer ``j``'s selective recompute (an attention core puts its scores back before its
    backward); None for a layer without one."""
    slots = getattr(info.cls, "RECOMPUTED_SLOTS", None)
    if slots is None:
        return None
    share = info.cls.RECOMPUTED_FLOPS_SHARE
    return WorkItem(
        j, share * flops.F, sum(footprint.F[slots]), True, recompute=True, rerun="selective"
    )


def action_work(
    stage_infos,
    rows: int,
    itemsize: int,
    kind_rule: KindRule,
    recompute: StageRecompute,
    checkpoint_bytes: tuple[int, ...] = (),
) -> list[WorkItem]:
    """The work items of one action of ``kind_rule`` on one stage, in run order.

    ``recompute`` has layer indices relative to the stage's first layer; ``checkpoint_bytes``
    is each segment's input size. A forward caches each segment's input at the segment's start
    and nothing inside it; a backward that produces the input gradient (``I``, ``B``) re-runs
    each segment's forward before the segment's own backward; ``W`` is unchanged.
    """
    kind = kind_rule.kind
    flops = [info.flops() for info in stage_infos]
    footprints = [info.footprint(rows, itemsize) for info in stage_infos]
    dropped = {j for a, b in recompute.segments for j in range(a, b + 1)}
    starts = {a: n for n, (a, _) in enumerate(recompute.segments)}
    items: list[WorkItem] = []
    if kind_rule.is_forward:  # first layer to last
        for j, info in enumerate(stage_infos):
            if j in starts:
                items.append(WorkItem(j, 0.0, checkpoint_bytes[starts[j]], True))
            cached = 0 if j in dropped else _forward_bytes(info, footprints[j], recompute.selective)
            held = _forward_buffers(info, rows, itemsize)
            items.append(WorkItem(j, flops[j].of(kind_rule.work), cached, True, working=held))
        return items
    reruns = kind_rule.sends_gradient
    buffers = gradient_buffers(stage_infos, rows, itemsize) if reruns else [0] * len(flops)
    ends = {b: n for n, (_, b) in enumerate(recompute.segments)}
    for j in range(len(stage_infos) - 1, -1, -1):
        info = stage_infos[j]
        if reruns and j in ends:
            a, b = recompute.segments[ends[j]]
            items.append(WorkItem(a, 0.0, -checkpoint_bytes[ends[j]], True, recompute=True))
            items.extend(
                WorkItem(k, flops[k].F, sum(footprints[k].F), True, recompute=True, rerun="forward")
                for k in range(a, b + 1)
            )
        if reruns and recompute.selective:
            item = _selective_item(j, info, footprints[j], flops[j])
            if item is not None:
                items.append(item)
        grad = info.has_params and kind_rule.completes_weight_gradient
        work = flops[j].of(kind_rule.work)
        delta = sum(footprints[j].phase(kind))
        items.append(WorkItem(j, work, delta, False, grad, working=buffers[j]))
    return items


def _forward_buffers(info, rows: int, itemsize: int) -> int:
    """Bytes a layer's forward holds only while it runs (an attention core's K/V in flight under
    context parallelism: ``simulator.model.transformer.context_parallel``); 0 for the layers
    that have no such rule."""
    rule = getattr(info, "forward_buffer_bytes", None)
    return rule(rows, itemsize) if rule is not None else 0


def gradient_buffers(stage_infos, rows: int, itemsize: int) -> list[int]:
    """Per layer of a stage, the gradient bytes its backward holds while it runs: the gradient
    arriving and the one it produces (``info.gradient_bytes``), and inside a residual branch
    the residual's gradient, which waits from the branch's ``add`` to its ``fork``."""
    out, held = [0] * len(stage_infos), 0
    for j in range(len(stage_infos) - 1, -1, -1):
        info = stage_infos[j]
        own = info.gradient_bytes(rows, itemsize)
        if info.kind == "add":
            out[j], held = own, info.residual_gradient_bytes(rows, itemsize)
        else:
            out[j] = own + held
            if info.kind == "fork":
                held = 0
    return out


def recompute_time_share(stage_infos, itemsize: int, rule, recompute, seconds) -> float:
    """Recompute seconds over forward seconds of one stage's backward, from each layer's
    ``(forward, selective)`` seconds (``seconds``, in the stage's order; a cost model's own
    timing of the two): what one backward re-runs, priced as the kernels it re-runs rather than
    as its FLOPs' share (a math attention core's selective recompute is mostly its softmax and
    dropout, which move bytes and do few FLOPs). 0 without recomputation."""
    forward = sum(full for full, _ in seconds)
    if not recompute.active or forward <= 0:
        return 0.0
    backward = next(r for r in rule.kinds.values() if r.sends_gradient)
    items = action_work(
        stage_infos, 1, itemsize, backward, recompute, (0,) * len(recompute.segments)
    )
    which = {"forward": 0, "selective": 1}
    again = sum(seconds[item.layer][which[item.rerun]] for item in items if item.rerun)
    return again / forward


def recompute_flops(stage_infos, rows: int, itemsize: int, rule, recompute) -> tuple[float, float]:
    """(recompute FLOPs, forward FLOPs) of one microbatch row on one stage: what one backward
    re-runs, and the forward it is a share of. (0, forward) without recomputation."""
    forward = sum(info.flops().F for info in stage_infos)
    if not recompute.active:
        return 0.0, forward
    backward = next(r for r in rule.kinds.values() if r.sends_gradient)
    items = action_work(
        stage_infos, rows, itemsize, backward, recompute, (0,) * len(recompute.segments)
    )
    return sum(item.flops for item in items if item.recompute), forward
