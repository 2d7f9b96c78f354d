"""Benchmark: ``--schedule auto`` on the zero-bubble paper's 33 settings (ZB-1p and ZB-2p at
Table 9's costs, ZB-V at the costs of the authors' v_schedule.py). Target: each built in < 2 s.

Prints per setting the paper's bubble rate, ours (same definition: the longest rank's
first-to-last time against m (F + B + W)), the candidate that won and the build time (median of
``--repeats``, the whole ``auto_schedule`` call: search and Schedule).

Run: python benchmarks/auto_schedule.py [--repeats 3] [--only 1p|2p|v]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from schedules.auto import auto_schedule, bubble_rate  # noqa: E402
from schedules.auto.portfolio import search  # noqa: E402
from tests.schedules.test_auto_paper import LOOP, V, paper_problem  # noqa: E402


def cases(only: str | None):
    for model, p, m, f, b, w, comm, zb1p, zb2p in LOOP:
        if only in (None, "1p"):
            yield "ZB-1p", paper_problem(model, p, m, f, b, w, comm, "loop", p), model, zb1p
        if only in (None, "2p"):
            yield "ZB-2p", paper_problem(model, p, m, f, b, w, comm, "loop", 2 * p), model, zb2p
    for model, p, m, f, b, w, comm, zbv in V:
        if only in (None, "v"):
            yield "ZB-V", paper_problem(model, p, m, f, b, w, comm, "v", 2 * p), model, zbv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=("1p", "2p", "v"))
    args = parser.parse_args()
    print(
        f"{'schedule':8} {'model':6} {'p':>3} {'m':>4}  {'paper':>7} {'auto':>8}  "
        f"{'build':>7}  winner"
    )
    worst = 0.0
    for label, problem, model, published in cases(args.only):
        times = []
        for _ in range(args.repeats):
            began = time.perf_counter()
            schedule = auto_schedule(problem)
            times.append(time.perf_counter() - began)
        build = statistics.median(times)
        worst = max(worst, build)
        ours = bubble_rate(problem, schedule)
        verdict = (
            "<" if round(ours, 4) < published else ("=" if round(ours, 4) == published else ">")
        )
        print(
            f"{label:8} {model:6} {problem.num_ranks:>3} {problem.num_microbatches:>4}  "
            f"{published:7.4f} {ours:8.5f} {verdict} {build:6.2f}s  {search(problem).label}"
        )
    print(f"\nslowest build {worst:.2f} s (target < 2 s)")


if __name__ == "__main__":
    main()
