"""Benchmark: checking and loading a large Timeline file's rows (the schema's hot path).

Half a million compute events, as ``Timeline.from_dict`` receives them from a JSON file; prints
the best of ``--repeats`` runs. Target (issue 13): well under a second for 500,000 events.

Run: python benchmarks/timeline_load.py [--events 500000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulator.timeline import Timeline  # noqa: E402


def document(events: int) -> dict:
    """A one-step, 8-rank Timeline document with ``events`` forward events."""
    meta = {
        "schedule": "synthetic",
        "ranks": 8,
        "stages": 8,
        "stage_to_rank": list(range(8)),
        "microbatches": 10_000,
        "steps": 1,
        "dp": 1,
        "time_unit": "unit",
        "layers": [],
    }
    rows = [
        {"rank": i % 8, "stage": i % 8, "kind": "F", "microbatch": i % 10_000, "step": 0,
         "start": float(i), "end": float(i) + 0.5, "replica": 0}
        for i in range(events)
    ]  # fmt: skip
    return {"version": 1, "meta": meta, "events": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    doc = document(args.events)
    times = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        Timeline.from_dict(doc)
        times.append(time.perf_counter() - started)
    best = min(times)
    print(
        f"{args.events:,} events checked and loaded in {best:.3f} s (best of {args.repeats}; "
        f"{1e6 * best / args.events:.2f} us per event; target < 1 s)"
    )


if __name__ == "__main__":
    main()
