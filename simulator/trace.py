"""A Timeline in the Chrome trace event format, which Perfetto and chrome://tracing open.

One process per rank (and replica), ``X`` events for compute and transfers, a ``C`` counter of
cached activation bytes. Times are microseconds; a unit-cost run shows one cost unit as 1 ms.
"""

from __future__ import annotations

import json
from collections import defaultdict

from simulator.timeline import Timeline


def to_chrome_trace(timeline: Timeline) -> dict:
    """Chrome trace event format: one process per rank, ``X`` compute events and a ``C``
    counter of cached activation bytes; Perfetto and chrome://tracing open it."""
    scale = 1e6 if timeline.time_unit == "s" else 1e3  # microseconds; a cost unit shows as 1 ms
    trace: list[dict] = []
    dp = timeline.meta.dp
    ranks = timeline.num_ranks

    def pid(rank: int, replica: int) -> int:
        return replica * ranks + rank

    for replica in range(dp):
        for rank in range(ranks):
            label = f"rank {rank}" if dp == 1 else f"replica {replica} rank {rank}"
            trace.append(
                {
                    "ph": "M",
                    "name": "process_name",
                    "pid": pid(rank, replica),
                    "args": {"name": label},
                }
            )
            trace.append(
                {
                    "ph": "M",
                    "name": "process_sort_index",
                    "pid": pid(rank, replica),
                    "args": {"sort_index": pid(rank, replica)},
                }
            )

    def span(
        name: str, cat: str, start: float, end: float, where: int, tid: int, args: dict
    ) -> dict:
        return {
            "name": name,
            "cat": cat,
            "ph": "X",
            "ts": start * scale,
            "dur": (end - start) * scale,
            "pid": where,
            "tid": tid,
            "args": args,
        }

    for e in timeline.events:
        trace.append(
            span(
                f"{e.stage}{e.kind}{e.microbatch}",
                e.kind,
                e.start,
                e.end,
                pid(e.rank, e.replica),
                0,
                {"stage": e.stage, "microbatch": e.microbatch, "step": e.step},
            )
        )
    for c in timeline.comms:
        trace.append(
            span(
                f"{c.kind} mb{c.microbatch} -> stage {c.stage}",
                "comm",
                c.start,
                c.end,
                pid(c.src_rank, c.replica),
                1,
                {"bytes": c.bytes, "dst_rank": c.dst_rank},
            )
        )
    running: dict[tuple[int, int], int] = defaultdict(int)
    for change in timeline.cache:
        key = (change.rank, change.replica)
        running[key] += change.bytes
        trace.append(
            {
                "name": "activation bytes",
                "ph": "C",
                "ts": change.time * scale,
                "pid": pid(change.rank, change.replica),
                "args": {"bytes": running[key]},
            }
        )
    for a in timeline.allreduce:
        trace.append(
            span(
                f"all-reduce layer {a.layer}",
                "allreduce",
                a.start,
                a.end,
                0,
                2,
                {"step": a.step},
            )
        )
    return {"traceEvents": trace, "displayTimeUnit": "ms"}


def save_chrome_trace(timeline: Timeline, path) -> None:
    with open(path, "w") as handle:
        json.dump(to_chrome_trace(timeline), handle)
