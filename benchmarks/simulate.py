"""Benchmark: the analytic path's cost per action (generate + validate + simulate + summary).

Every case runs in a fresh process, so its peak RSS is its own; within it, one warm-up run and
then the median of ``--repeats``. Targets (issue 8): the us/action figures of the four main
cases within 2x of each other; interleaved-1f1b p=128 m=1024 v=2 and 1f1b p=10000 m=8 each
<= 2 s; with ``--big``, 1f1b p=100000 m=8 under 30 s.

Run: python benchmarks/simulate.py [--repeats 3] [--big]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CASES = [
    ("1f1b", 8, 64, None, None),
    ("1f1b", 128, 1024, None, None),
    ("1f1b", 10000, 8, None, 2.0),
    ("interleaved-1f1b", 128, 1024, 2, 2.0),
]
BIG = ("1f1b", 100000, 8, None, 30.0)


def measure(name: str, p: int, m: int, v: int | None) -> dict[str, float]:
    """One run: seconds per phase, as a user's ``simulate`` runs them."""
    from schedules.registry import build_schedule
    from schedules.validate import validate
    from simulator.analytic.costs import unit_costs
    from simulator.analytic.executor import simulate
    from simulator.model import ModelSpec, partition

    began = time.perf_counter()
    schedule = build_schedule(name, p, m, v)
    generated = time.perf_counter()
    run = validate(schedule)
    validated = time.perf_counter()
    spec = ModelSpec.uniform(schedule.num_stages, width=1024)
    parts = partition(spec, schedule.num_stages)
    timeline = simulate(schedule, unit_costs(schedule, parts), spec, parts, 32, run=run)
    simulated = time.perf_counter()
    timeline.summary()
    summarised = time.perf_counter()
    return {
        "actions": len(schedule),
        "generate": generated - began,
        "validate": validated - generated,
        "simulate": simulated - validated,
        "summary": summarised - simulated,
        "total": summarised - began,
    }


def run_case(name: str, p: int, m: int, v: int | None, repeats: int) -> dict:
    """In this process: a warm-up, then the median of ``repeats`` runs, and the peak RSS."""
    measure(name, p, m, v)
    runs = [measure(name, p, m, v) for _ in range(repeats)]
    median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    median["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--big", action="store_true", help="also 1f1b p=100000 m=8 (once)")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case, print JSON
    args = parser.parse_args()
    if args.case:
        name, p, m, v = json.loads(args.case)
        print(json.dumps(run_case(name, p, m, v, args.repeats)))
        return
    cases = CASES + ([BIG] if args.big else [])
    rates = []
    for name, p, m, v, target in cases:
        repeats = 1 if (name, p, m, v, target) == BIG else args.repeats
        child = subprocess.run(
            [
                sys.executable,
                __file__,
                "--repeats",
                str(repeats),
                "--case",
                json.dumps([name, p, m, v]),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(child.stdout)
        per_action = 1e6 * r["total"] / r["actions"]
        if (name, p, m, v, target) != BIG:
            rates.append(per_action)
        size = f"p={p} m={m}" + (f" v={v}" if v else "")
        goal = f" (target <= {target:g} s)" if target else ""
        print(
            f"{name:<17} {size:<20} {int(r['actions']):>9,} actions  {r['total']:6.2f} s{goal}  "
            f"{per_action:5.2f} us/action  peak RSS {r['peak_rss_mb']:6.0f} MB"
        )
        phases = ", ".join(
            f"{k} {r[k]:.2f} s" for k in ("generate", "validate", "simulate", "summary")
        )
        print(f"{'':<38}{phases}")
    print(f"us/action spread over the main cases: {max(rates) / min(rates):.2f}x (target <= 2x)")


if __name__ == "__main__":
    main()
