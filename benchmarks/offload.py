"""Benchmark: activation offload beside activation recomputation, on one transformer and
schedule. For each policy: every rank's activation peak on the device (the true peak: stored
plus the pass in progress), the host's peak of offloaded bytes, the exposed transfer time (the
backwards' waits for their prefetch, all ranks) and the step time.

Default: ZB's 6.2B model (Qi et al. 2024, Table 3) under 1F1B on 4 ranks with 8 microbatches,
on H100 (PCIe Gen5 share) and GH200 (NVLink-C2C). Budgets that no plan meets are listed with
their one sentence. Last, one line: the budget solver's time on a large run (``--large``,
default Llama 3 70B under 1F1B on 16 ranks with 64 microbatches on GH200, budget 80%), the
plans it timed and whether it proved its plan the least (``offload_budget``).

Run: python benchmarks/offload.py [--model zb-6.2b] [--hardware h100-80gb,gh200]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from schedules.registry import build_schedule  # noqa: E402
from simulator.analytic.run_plan import simulate_plan  # noqa: E402
from simulator.errors import PebbleError  # noqa: E402
from simulator.run.plan import CostSource, plan_run  # noqa: E402
from simulator.timeline.report import offload_waits, summary_dict  # noqa: E402
from simulator.units import human_bytes  # noqa: E402

POLICIES = (
    ("none", None),
    ("full", None),
    ("selective", None),
    ("budget:90%", None),
    ("budget:80%", None),
    (None, "selective"),
    (None, "full"),
)


def row(model: str, hardware: str, schedule, offload: str | None, recompute: str | None):
    name = f"offload {offload}" if offload else f"recompute {recompute}"
    try:
        plan = plan_run(
            schedule,
            model,
            costs=CostSource(hardware=hardware),
            offload=offload,
            recompute=recompute,
        )
        timeline = simulate_plan(plan)
    except PebbleError as error:
        return f"{name:<22}  {error}"
    data = summary_dict(timeline)
    peaks = " ".join(f"{human_bytes(r['true_peak_bytes']):>9}" for r in data["per_rank"])
    host = sum(r.get("host_activation_bytes", 0) for r in data["per_rank"])
    exposed = sum(offload_waits(timeline).values())
    return (
        f"{name:<22}  {peaks}  {human_bytes(host):>10}  {1e3 * exposed:>9.1f}  "
        f"{1e3 * data['makespan']:>8.1f}"
    )


def solver_line(text: str) -> str:
    """``model,schedule,ranks,microbatches,hardware,budget``: the budget solver's time."""
    model, name, ranks, microbatches, hardware, budget = text.split(",")
    schedule = build_schedule(name, int(ranks), int(microbatches))
    plan = plan_run(schedule, model, costs=CostSource(hardware=hardware), offload=budget)
    start = time.perf_counter()
    try:
        timeline = simulate_plan(plan)
    except PebbleError as error:
        return f"budget solver, {text}: {error}"
    seconds = time.perf_counter() - start
    exposed = sum(offload_waits(timeline).values())
    peak = max(r["true_peak_bytes"] for r in summary_dict(timeline)["per_rank"])
    return (
        f"budget solver, {model} {name} p={ranks} m={microbatches} {hardware}: "
        f"{seconds:.1f} s (solve and predict), {timeline.meta.offload}, peak "
        f"{human_bytes(peak)}, exposed {1e3 * exposed:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="zb-6.2b")
    parser.add_argument("--hardware", default="h100-80gb,gh200")
    parser.add_argument("--schedule", default="1f1b")
    parser.add_argument("--ranks", type=int, default=4)
    parser.add_argument("--microbatches", type=int, default=8)
    parser.add_argument("--large", default="llama3-70b,1f1b,16,64,gh200,budget:80%")
    args = parser.parse_args()
    schedule = build_schedule(args.schedule, args.ranks, args.microbatches)
    for hardware in args.hardware.split(","):
        print(f"\n{args.model}, {args.schedule} p={args.ranks} m={args.microbatches}, {hardware}")
        ranks = " ".join(f"{'rank ' + str(r):>9}" for r in range(args.ranks))
        print(f"{'policy':<22}  {ranks}  {'host (sum)':>10}  {'exposed ms':>9}  {'step ms':>8}")
        for offload, recompute in POLICIES:
            print(row(args.model, hardware, schedule, offload, recompute))
    print()
    print(solver_line(args.large))


if __name__ == "__main__":
    main()
