"""A Timeline as one plain dict: what ``simulate --json`` and ``train --json`` print, and what
the notebooks tabulate.

Why in the Timeline package: it reads nothing but the Timeline, and every reader of a run (the
CLI, the course, a user's script) wants the same keys.
"""

from __future__ import annotations

from simulator.timeline.breakdown import breakdown_rows
from simulator.timeline.store import Timeline


def summary_dict(timeline: Timeline) -> dict:
    """The keys ``simulate --json`` and ``train --json`` share."""
    meta = timeline.meta
    summary = timeline.summary()
    out = {
        "schedule": meta.schedule,
        "ranks": meta.ranks,
        "microbatches": meta.microbatches,
        "chunks": meta.chunks,
        "dp": meta.dp,
        "layout": meta.layout or None,
        "steps": meta.steps,
        "time_unit": meta.time_unit,
        "makespan": summary.makespan,
        "bubble_fraction": summary.bubble_fraction,
        "step_times": summary.step_times,
        "per_rank": [vars(r) for r in summary.per_rank],
        **timeline.throughput(),
        "memory_capacity": meta.memory_capacity,
        "gradient_ready": [
            {"layer": g["layer"], "time": g["time"]}
            for g in summary.gradient_ready
            if g["step"] == 0
        ],
        "breakdown": breakdown_rows(timeline),  # per rank: its mean step time, in parts
    }
    if meta.recompute:  # per rank: FLOPs one step recomputes, and the time it took (all steps)
        out["recompute"] = meta.recompute
        times = timeline.recompute_time()
        for rank in out["per_rank"]:
            r = rank["rank"]
            rank["recompute_time"] = times.get(r, 0.0)
            flops = meta.recompute_flops
            rank["recompute_flops"] = flops[r] if r < len(flops) else None
    if meta.offload:  # per rank: the host's peak of offloaded bytes and the exposed waits
        out["offload"] = meta.offload
        host, waits = timeline.host_peak_bytes(), offload_waits(timeline)
        for rank in out["per_rank"]:
            rank["host_activation_bytes"] = int(host.get(rank["rank"], 0))
            rank["offload_wait"] = waits.get(rank["rank"], 0.0)
    return out


def offload_waits(timeline: Timeline) -> dict[int, float]:
    """Per rank (first replica), the time its backwards waited for prefetches, all steps: the
    exposed transfer time of activation offload."""
    spans = timeline.offload.columns()
    out: dict[int, float] = {}
    if not len(spans["rank"]):
        return out
    for rank, kind, start, end, replica in zip(
        spans["rank"], spans["kind"], spans["start"], spans["end"], spans["replica"], strict=True
    ):
        if str(kind) == "wait" and replica == 0:
            out[int(rank)] = out.get(int(rank), 0.0) + float(end - start)
    return out
