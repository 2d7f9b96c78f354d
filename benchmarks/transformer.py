"""Benchmark: the analytic simulate of GPT-3 175B at PP=8, TP=8 (sequence parallel), m=64, on
A100-80GB, with 1F1B and interleaved 1F1B (v=2). Target: < 1 s each.

Prints the wall time of model + schedule + simulate + summary, and the answer: predicted step
time, tokens/s, MFU, bubble, and each rank's memory against the device.

Run: python benchmarks/transformer.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulator.analytic.run_plan import simulate_plan  # noqa: E402
from simulator.run import CostSource, make_schedule, plan_run  # noqa: E402
from simulator.units import human_bytes  # noqa: E402

MODEL, HARDWARE = "gpt3-175b,tp=8,sp=1", "a100-80gb"
CASES = [("1f1b", None), ("interleaved-1f1b", 2)]


def run(name: str, chunks: int | None):
    schedule = make_schedule(name, 8, 64, chunks)
    plan = plan_run(schedule, MODEL, batch_size=64, costs=CostSource(hardware=HARDWARE))
    timeline = simulate_plan(plan)
    return timeline, timeline.summary()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"{MODEL} on {HARDWARE}: PP=8, TP=8, 64 microbatches of one 2048-token sequence")
    for name, chunks in CASES:
        run(name, chunks)  # warm-up
        times = []
        for _ in range(args.repeats):
            began = time.perf_counter()
            timeline, summary = run(name, chunks)
            times.append(time.perf_counter() - began)
        rates = timeline.throughput()
        print(
            f"\n{name}{f' v={chunks}' if chunks else ''}: simulated in "
            f"{statistics.median(times):.2f} s (target < 1 s), {len(timeline.events):,} actions"
        )
        print(
            f"  step {rates['step_time']:.2f} s, {rates['tokens_per_second']:,.0f} tokens/s, "
            f"MFU {100 * rates['mfu']:.1f}%, bubble {100 * summary.bubble_fraction:.1f}%"
        )
        for r in summary.per_rank:
            m = r.memory
            verdict = "fits" if m["fits"] else "OVER"
            print(
                f"  rank {r.rank}: {human_bytes(m['total']):>9} ({verdict}; activations "
                f"{human_bytes(m['activations'])}, {r.peak_inflight_microbatches} in flight)"
            )


if __name__ == "__main__":
    main()
