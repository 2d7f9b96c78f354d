"""A Timeline in the Chrome trace event format, which Perfetto and chrome://tracing open.

One process per rank (and replica), ``X`` events for compute and transfers, a ``C`` counter of
cached activation bytes. Times are microseconds; a unit-cost run shows one cost unit as 1 ms.
"""

from __future__ import annotations

import json
from collections import defaultdict

from simulator.timeline.store import Timeline


class _Trace:
    """Builds the event list; ``pid`` numbers one process per (replica, rank)."""

    def __init__(self, timeline: Timeline) -> None:
        # microseconds; a cost unit shows as 1 ms
        self.scale = 1e6 if timeline.time_unit == "s" else 1e3
        self.ranks = timeline.num_ranks
        self.events: list[dict] = []

    def pid(self, rank: int, replica: int) -> int:
        return replica * self.ranks + rank

    def process(self, rank: int, replica: int, label: str) -> None:
        pid = self.pid(rank, replica)
        self.events.append({"ph": "M", "name": "process_name", "pid": pid, "args": {"name": label}})
        self.events.append(
            {"ph": "M", "name": "process_sort_index", "pid": pid, "args": {"sort_index": pid}}
        )

    def span(self, name, cat, start, end, pid, tid, args) -> None:
        self.events.append(
            {
                "name": name,
                "cat": cat,
                "ph": "X",
                "ts": start * self.scale,
                "dur": (end - start) * self.scale,
                "pid": pid,
                "tid": tid,
                "args": args,
            }
        )

    def counter(self, time: float, pid: int, value: int) -> None:
        self.events.append(
            {
                "name": "activation bytes",
                "ph": "C",
                "ts": time * self.scale,
                "pid": pid,
                "args": {"bytes": value},
            }
        )


def to_chrome_trace(timeline: Timeline) -> dict:
    """Chrome trace event format: one process per rank, ``X`` compute events and a ``C``
    counter of cached activation bytes; Perfetto and chrome://tracing open it."""
    trace = _Trace(timeline)
    dp = timeline.meta.dp
    for replica in range(dp):
        for rank in range(trace.ranks):
            label = f"rank {rank}" if dp == 1 else f"replica {replica} rank {rank}"
            trace.process(rank, replica, label)
    for e in timeline.events:
        name = f"{e.stage}{e.kind}{e.microbatch}"
        args = {"stage": e.stage, "microbatch": e.microbatch, "step": e.step}
        trace.span(name, e.kind, e.start, e.end, trace.pid(e.rank, e.replica), 0, args)
    for c in timeline.comms:
        name = f"{c.kind} mb{c.microbatch} -> stage {c.stage}"
        args = {"bytes": c.bytes, "dst_rank": c.dst_rank}
        trace.span(name, "comm", c.start, c.end, trace.pid(c.src_rank, c.replica), 1, args)
    running: dict[tuple[int, int], int] = defaultdict(int)
    for change in timeline.cache:
        key = (change.rank, change.replica)
        running[key] += change.bytes
        trace.counter(change.time, trace.pid(change.rank, change.replica), running[key])
    for a in timeline.allreduce:
        trace.span(
            f"all-reduce layer {a.layer}", "allreduce", a.start, a.end, 0, 2, {"step": a.step}
        )
    return {"traceEvents": trace.events, "displayTimeUnit": "ms"}


def save_chrome_trace(timeline: Timeline, path) -> None:
    """Write ``timeline`` as a Chrome trace JSON file."""
    with open(path, "w") as handle:
        json.dump(to_chrome_trace(timeline), handle)
