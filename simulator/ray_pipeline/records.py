"""From the rank actors' records to one Timeline: times aligned, transfers reconstructed.

Each actor records Timeline rows in wall-clock seconds since an origin the driver chose (see
``recorder``). Here they are merged, shifted so the first action starts at 0, and the
point-to-point transfers are rebuilt from what each action received, using the dry run to find
each payload's producer (no dependency is re-derived).
"""

from __future__ import annotations

from collections import defaultdict
from typing import NamedTuple

from schedules.validate import DryRun
from simulator.timeline import (
    AllReduce,
    CommEvent,
    ComputeEvent,
    OptimizerStep,
    Timeline,
    TimelineMeta,
)


class Received(NamedTuple):
    """Action (stage, kind, microbatch) of ``step`` started with a payload of ``bytes`` from
    another rank."""

    replica: int
    stage: int
    kind: str
    microbatch: int
    step: int
    bytes: int


class ReduceTiming(NamedTuple):
    """When one layer's data-parallel sum ran, in wall-clock seconds (``time.time()``)."""

    layer: int
    step: int
    start: float
    end: float


def merge_records(records: list[dict[str, list]]) -> dict[str, list]:
    """Concatenate every actor's drained records, table by table."""
    rows: dict[str, list] = defaultdict(list)
    for record in records:
        for name, values in record.items():
            rows[name].extend(values)
    return rows


def timeline_from_records(
    records: list[dict[str, list]],
    run: DryRun,
    meta: TimelineMeta,
    reduce_times: list[ReduceTiming],
    origin: float,
) -> Timeline:
    """Merge every actor's records into one Timeline, times from the first action."""
    rows = merge_records(records)
    events: list[ComputeEvent] = rows["events"]
    t0 = min((e.start for e in events), default=0.0)
    events = [e._replace(start=e.start - t0, end=e.end - t0) for e in events]
    events.sort(key=lambda e: (e.replica, e.rank, e.start))
    timeline = Timeline(meta=meta, events=events)
    cache = sorted(rows["cache"], key=lambda c: (c.replica, c.rank, c.time))
    timeline.cache = [c._replace(time=c.time - t0) for c in cache]
    timeline.grad_ready = sorted(
        (g._replace(time=g.time - t0) for g in rows["grad_ready"]),
        key=lambda g: (g.replica, g.step, g.layer),
    )
    by_step: dict[int, list[float]] = defaultdict(list)
    for o in rows["optimizer"]:
        by_step[o.step].extend((o.start - t0, o.end - t0))
    timeline.optimizer = [OptimizerStep(s, min(v), max(v)) for s, v in sorted(by_step.items())]
    timeline.allreduce = [
        AllReduce(r.layer, r.step, r.start - origin - t0, r.end - origin - t0)
        for r in sorted(reduce_times)
    ]
    timeline.comms = reconstruct_comms(events, rows["received"], run)
    timeline.recompute = sorted(
        (r._replace(start=r.start - t0, end=r.end - t0) for r in rows["recompute"]),
        key=lambda r: (r.replica, r.rank, r.start),
    )
    timeline.offload = sorted(
        (o._replace(start=o.start - t0, end=o.end - t0) for o in rows["offload"]),
        key=lambda o: (o.replica, o.rank, o.start, o.kind),
    )
    timeline.action_cpu = sorted(
        rows["action_cpu"], key=lambda c: (c.replica, c.rank, c.step, c.stage, c.kind, c.microbatch)
    )
    return timeline


def reconstruct_comms(
    events: list[ComputeEvent], received: list[Received], run: DryRun
) -> list[CommEvent]:
    """A transfer runs from the producer's end; it is counted until the consumer starts only
    when the consumer sat idle waiting for it (otherwise it was hidden: zero length)."""
    position_of = {run.action(i): i for i in range(len(run))}
    # per action: its rank, start, end, and when its rank's previous action ended
    seen: dict[tuple, tuple[int, float, float, float]] = {}
    last_end: dict[tuple[int, int], float] = {}
    for e in events:
        key = (e.replica, e.step, e.stage, e.kind, e.microbatch)
        seen[key] = (e.rank, e.start, e.end, last_end.get((e.replica, e.rank), 0.0))
        last_end[(e.replica, e.rank)] = e.end
    comms = {}
    for r in received:
        key = (r.replica, r.step, r.stage, r.kind, r.microbatch)
        index = position_of.get((r.stage, r.kind, r.microbatch))
        source = run.received(index) if key in seen and index is not None else None
        if source is None:
            continue
        producer_stage, producer_kind, producer_mb = run.action(source[0])
        sent_by = seen.get((r.replica, r.step, producer_stage, producer_kind, producer_mb))
        if sent_by is None:
            continue
        rank, start, _, previous_end = seen[key]
        src_rank, _, sent, _ = sent_by
        waited = previous_end <= sent
        comms[key] = CommEvent(
            src_rank,
            rank,
            r.stage,
            source[1].value,
            r.microbatch,
            r.step,
            sent,
            start if waited else sent,
            r.bytes,
            r.replica,
        )
    return list(comms.values())
