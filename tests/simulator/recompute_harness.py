"""Run a schedule in this process, one ActivationCache per rank, exactly as the Ray workers do
(``Stage`` per stage, the dry run's order), and report what it did: the step's gradients, each
rank's peak cached bytes, the bytes left after the step and the recompute sub-spans."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from schedules.validate import validate
from simulator.model.cache import ActivationCache
from simulator.model.recompute import NO_RECOMPUTE
from simulator.model.reference import gradients_of, set_loss_scale
from simulator.model.stage import Stage
from simulator.model.transformer.dropout import set_row_offset


@dataclass
class Played:
    gradients: dict
    peaks: dict[int, int]
    left: dict[int, int]
    spans: list = field(default_factory=list)  # (stage, microbatch, start, end) per recompute
    losses: dict = field(default_factory=dict)


def play(schedule, spec, parts, x, y, recompute=None) -> Played:
    """One training step of ``schedule``; ``recompute`` is a RecomputePlan (None: none)."""
    run = validate(schedule)
    m = schedule.num_microbatches
    rows = len(x) // m
    caches = {r: ActivationCache() for r in range(schedule.num_ranks)}
    running = {r: [0, 0] for r in caches}  # total, peak

    def listener(rank):
        def on_change(event):
            running[rank][0] += event.delta_bytes
            running[rank][1] = max(running[rank][1], running[rank][0])

        return on_change

    for rank, cache in caches.items():
        cache.add_listener(listener(rank))
    stages, spans, clock = {}, [], iter(range(10**9))
    for s, layer_range in enumerate(parts.stage_layers):
        layers = spec.build(layer_range)
        set_loss_scale(layers, len(x))
        set_row_offset(layers, 0)
        plan = recompute.stages[s] if recompute is not None else NO_RECOMPUTE
        stage = Stage(s, layers, caches[schedule.stage_to_rank[s]], plan)
        stage.clock = lambda: float(next(clock))
        stage.on_recompute = lambda st, mb, a, b: spans.append((st, mb, a, b))
        stages[s] = stage
    acts, grads = {}, {}
    last = schedule.num_stages - 1
    for i in range(len(run)):
        s, kind, mb = int(run.stages[i]), str(run.kinds[i]), int(run.microbatches[i])
        stage = stages[s]
        piece = slice(mb * rows, (mb + 1) * rows)
        if kind == "F":
            inp = x[piece] if s == 0 else acts.pop((s, mb))
            out = stage.forward(mb, inp, y[piece] if s == last else None)
            if s < last:
                acts[(s + 1, mb)] = out
        elif kind in ("I", "B"):
            grad = None if s == last else grads.pop((s, mb))
            out = stage.run(kind, mb, grad)
            if s > 0:
                grads[(s - 1, mb)] = out
        else:
            stage.run(kind, mb)
    all_layers = [layer for s in sorted(stages) for layer in stages[s].layers]
    return Played(
        gradients=gradients_of(all_layers),
        peaks={r: running[r][1] for r in caches},
        left={r: cache.total_bytes + len(cache) for r, cache in caches.items()},
        spans=spans,
        losses={mb: loss for st in stages.values() for mb, loss in st.losses.items()},
    )


def same_bits(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype and np.array_equal(a[k].view(np.uint8), b[k].view(np.uint8))
        for k in a
    )
