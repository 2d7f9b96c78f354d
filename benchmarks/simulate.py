"""Benchmark: generate + validate + simulate big interleaved-1F1B schedules analytically.

Prints wall time per phase and actions simulated per second for p=32, m=256, v=2 (~100k actions)
and p=128, m=1024, v=2. Targets here: under 0.5 s and under 5 s in total.

Run: python benchmarks/simulate.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

from schedules.registry import build_schedule
from schedules.validate import validate
from simulator.analytic.costs import unit_costs
from simulator.analytic.executor import simulate
from simulator.model import ModelSpec, partition

CASES = [("interleaved-1f1b", 32, 256, 2, 0.5), ("interleaved-1f1b", 128, 1024, 2, 5.0)]


def measure(name: str, p: int, m: int, v: int) -> dict[str, float]:
    began = time.perf_counter()
    schedule = build_schedule(name, p, m, v)
    generated = time.perf_counter()
    validate(schedule)
    validated = time.perf_counter()
    spec = ModelSpec.uniform(schedule.num_stages, width=1024)
    parts = partition(spec, schedule.num_stages)
    timeline = simulate(schedule, unit_costs(schedule, parts), spec, parts, 32)
    simulated = time.perf_counter()
    timeline.summary()
    summarised = time.perf_counter()
    return {
        "actions": len(schedule),
        "generate": generated - began,
        "validate alone": validated - generated,
        "simulate (validates first)": simulated - validated,
        "summary": summarised - simulated,
        # generate + validate + simulate, as a user runs it: simulate() validates itself
        "total": (generated - began) + (simulated - validated),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for name, p, m, v, target in CASES:
        runs = [measure(name, p, m, v) for _ in range(args.repeats)]
        median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        actions = int(median.pop("actions"))
        total = median["total"]
        print(f"{name} p={p} m={m} v={v}: {actions} actions")
        for phase, seconds in median.items():
            print(f"  {phase:<28} {seconds:8.3f} s")
        print(
            f"  generate+validate+simulate: {total:.3f} s (target < {target:g} s), "
            f"{actions / total:,.0f} actions/s"
        )


if __name__ == "__main__":
    main()
