"""Benchmark: activation recomputation. Two figures:

(a) the ``budget:`` solver on a 126-block chain (Llama 3 405B) under 16-rank schedules: the
    time to solve (median of ``--repeats``), at budgets of 90%, 60% and 30% of the fullest
    rank's peak; target < 1 s each. Also one rank holding 32 blocks: the solver's time grows with
    the blocks on one stage (0.7 s at 32, 5 s at 48, 25 s at 64; a pipeline stage holds fewer).
(b) on the Ray pipeline: the measured extra time of ``full`` over ``none``, per step and per
    backward, against the analytic prediction of that extra from the same measured profile
    (calibrated in a ``none`` run: each kind's cost alone, recomputation off), target within
    10%; and each policy's peak activations. Runs alternate none/full (``--pairs``) because a
    step's span on a shared 2-core VM swings by 10% or more from run to run.

Run: python benchmarks/recompute.py [--repeats 3] [--skip-ray] [--steps 6] [--pairs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from schedules.registry import build_schedule  # noqa: E402
from simulator.analytic.costs import unit_costs  # noqa: E402
from simulator.analytic.executor import simulate  # noqa: E402
from simulator.analytic.profile import profile_costs  # noqa: E402
from simulator.model import ModelSpec  # noqa: E402
from simulator.model.optim import OptimizerConfig  # noqa: E402
from simulator.model.parse import parse_model  # noqa: E402
from simulator.model.partitioning import partition  # noqa: E402
from simulator.model.recompute import RecomputePolicy, plan_stages  # noqa: E402
from simulator.model.reference import TrainConfig  # noqa: E402
from simulator.run import plan_run  # noqa: E402
from simulator.run.recompute_budget import solve_budget  # noqa: E402
from simulator.units import human_bytes  # noqa: E402


def solver(repeats: int) -> None:
    spec = parse_model("llama3-405b")
    print("(a) budget: solver, llama3-405b (126 blocks), 1 sequence per microbatch")
    cases = [("1f1b", 16, 64, None), ("interleaved-1f1b", 16, 64, 2), ("zb-v", 16, 64, None)]
    cases += [("gpipe", 16, 64, None)]
    # the solver's cost grows with the blocks on one stage (its front, O(n^2) states, times
    # n segment ends): one rank holding 32 blocks of the same model is the stress case
    cases += [("1f1b", 1, 8, None, parse_model("llama3-405b,layers=32"))]
    for name, p, m, v, *model in cases:
        spec = model[0] if model else spec
        schedule = build_schedule(name, p, m, v)
        parts = partition(spec, schedule.num_stages)
        base = simulate(schedule, unit_costs(schedule, parts), spec, parts, 1)
        top = max(base.peak_activation_bytes().values())
        for share in (0.9, 0.6, 0.3):
            times = []
            for _ in range(repeats):
                began = time.perf_counter()
                plan = solve_budget(schedule, spec, parts, 1, share)
                times.append(time.perf_counter() - began)
            got = simulate(schedule, unit_costs(schedule, parts), spec, parts, 1, recompute=plan)
            peak = max(got.peak_activation_bytes().values())
            segments = sum(len(s.segments) for s in plan.stages)
            print(
                f"  {name:>16} p={p:<2} m={m:<3} budget {share:.0%} of {human_bytes(top):>10}: "
                f"{1e3 * statistics.median(times):7.1f} ms  peak {peak / top:.3f} of it, "
                f"{segments} segments  [target < 1000 ms]"
            )


def step_times(timeline) -> list[float]:
    """Per step after the first, its span from first action to last (commit excluded)."""
    spans = []
    for step in range(1, timeline.meta.steps):
        events = [e for e in timeline.events if e.step == step and e.replica == 0]
        spans.append(max(e.end for e in events) - min(e.start for e in events))
    return spans


def backward_times(timeline) -> list[float]:
    """Every backward's duration after the first step (its recompute included)."""
    return [e.end - e.start for e in timeline.events if e.kind == "B" and e.step > 0]


def on_ray(steps: int, pairs: int) -> None:
    """``pairs`` alternating runs of none and full (a shared VM drifts: alternating spreads
    the drift over both), each ``steps`` steps; medians over every run's steps after the
    first. The prediction is from the first none run's profile (calibrated alone, recompute
    off)."""
    import ray

    from simulator.ray_pipeline.executor import RayOptions, RayPipeline

    spec = ModelSpec(widths=(2,) + (1024,) * 7 + (3,), activation="tanh", dtype="float32")
    m, rows = 8, 256
    config = TrainConfig(
        model=spec,
        batch_size=rows * m,
        microbatches=m,
        steps=steps,
        optimizer=OptimizerConfig("sgd", lr=1e-3),
    )
    schedule = build_schedule("1f1b", 2, m)
    parts = partition(spec, schedule.num_stages)
    plans = {p: plan_stages(RecomputePolicy.parse(p), spec, parts) for p in ("none", "full")}
    spans = {p: [] for p in plans}
    backwards = {p: [] for p in plans}
    peaks, profile = {}, None
    ray.init(num_cpus=4, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        for _ in range(pairs):
            for policy in plans:
                run = plan_run(schedule, spec, batch_size=config.batch_size, recompute=policy)
                with RayPipeline(run, config, RayOptions()) as pipeline:
                    result = pipeline.run(steps)
                profile = profile or result.profile  # the first none run's
                spans[policy] += step_times(result.timeline)
                backwards[policy] += backward_times(result.timeline)
                peaks[policy] = result.timeline.peak_activation_bytes()[0]
    finally:
        ray.shutdown()
    costs = profile_costs(profile, spec, parts, rows)
    predicted = {}
    for policy, plan in plans.items():
        timeline = simulate(
            schedule, costs, spec, parts, rows, cores=profile.cores,
            recompute=plan if plan.active else None,
        )  # fmt: skip
        predicted[policy] = (
            max(e.end for e in timeline.events) - min(e.start for e in timeline.events),
            statistics.fmean(backward_times_all(timeline)),
        )
    print(f"\n(b) Ray: {spec.to_text()}, 1f1b p=2 m={m}, {rows} rows per microbatch")
    print(f"    {pairs} alternating runs of each policy, {steps} steps each (medians of steps 1..)")
    header = ("policy", "peak rank 0", "step", "predicted", "backward", "predicted")
    print("  " + "  ".join(f"{h:>12}" for h in header))
    for policy in plans:
        cells = [
            policy,
            human_bytes(peaks[policy]),
            f"{1e3 * statistics.median(spans[policy]):.1f} ms",
            f"{1e3 * predicted[policy][0]:.1f} ms",
            f"{1e3 * statistics.median(backwards[policy]):.1f} ms",
            f"{1e3 * predicted[policy][1]:.1f} ms",
        ]
        print("  " + "  ".join(f"{c:>12}" for c in cells))
    for what, index, measured in (
        ("step", 0, [statistics.median(spans[p]) for p in plans]),
        ("backward", 1, [statistics.median(backwards[p]) for p in plans]),
    ):
        extra = measured[1] - measured[0]
        forecast = predicted["full"][index] - predicted["none"][index]
        print(
            f"  full - none per {what}: measured {1e3 * extra:.1f} ms, predicted "
            f"{1e3 * forecast:.1f} ms, error {100 * abs(extra - forecast) / forecast:.1f}%"
            "  [target <= 10%]"
        )


def backward_times_all(timeline) -> list[float]:
    return [e.end - e.start for e in timeline.events if e.kind == "B"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--pairs", type=int, default=3, help="alternating none/full runs")
    parser.add_argument("--skip-ray", action="store_true")
    args = parser.parse_args()
    solver(args.repeats)
    if not args.skip_ray:
        on_ray(args.steps, args.pairs)


if __name__ == "__main__":
    main()
