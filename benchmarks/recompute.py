"""Benchmark: activation recomputation. Two figures:

(a) the ``budget:`` solver on a 126-block chain (Llama 3 405B) under 16-rank schedules: the
    time to solve (median of ``--repeats``), at budgets of 90%, 60% and 30% of the fullest
    rank's peak; target < 1 s each. Also one rank holding 32 blocks: the solver's time grows with
    the blocks on one stage (about 1 s at 32, 11 s at 48; a pipeline stage holds far fewer).
(b) on the Ray pipeline: the measured extra step time of ``full`` over ``none`` against the
    analytic prediction of that extra from the same measured profile (calibrated in the
    ``none`` run: each kind's cost alone, recomputation off), target within 10%; and the
    policy table (peak activations and step time of none, selective-free MLP policies).

Run: python benchmarks/recompute.py [--repeats 3] [--skip-ray] [--steps 6]
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
from simulator.analytic.recompute_budget import solve_budget  # noqa: E402
from simulator.model import ModelSpec  # noqa: E402
from simulator.model.optim import OptimizerConfig  # noqa: E402
from simulator.model.parse import parse_model  # noqa: E402
from simulator.model.partitioning import partition  # noqa: E402
from simulator.model.recompute import RecomputePolicy, plan_stages  # noqa: E402
from simulator.model.reference import TrainConfig  # noqa: E402
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


def on_ray(steps: int) -> None:
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
    plans = {
        p: plan_stages(RecomputePolicy.parse(p), spec, parts) for p in ("none", "sqrt", "full")
    }
    measured, timelines = {}, {}
    ray.init(num_cpus=4, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        for policy, plan in plans.items():
            options = RayOptions(recompute=plan if plan.active else None)
            with RayPipeline(schedule, config, options) as pipeline:
                result = pipeline.run(steps)
            timelines[policy] = result
            measured[policy] = statistics.median(step_times(result.timeline))
    finally:
        ray.shutdown()
    profile = timelines["none"].profile  # calibrated with recomputation off
    costs = profile_costs(profile, spec, parts, rows)

    def predicted(policy: str) -> float:
        plan = plans[policy]
        timeline = simulate(
            schedule, costs, spec, parts, rows, cores=profile.cores,
            recompute=plan if plan.active else None,
        )  # fmt: skip
        events = timeline.events
        return max(e.end for e in events) - min(e.start for e in events)

    print(f"\n(b) Ray: {spec.to_text()}, 1f1b p=2 m={m}, {rows} rows per microbatch")
    print(f"  {'policy':>6}  {'peak rank 0':>12}  {'measured step':>13}  {'predicted':>9}")
    for policy in plans:
        peak = timelines[policy].timeline.peak_activation_bytes()[0]
        print(
            f"  {policy:>6}  {human_bytes(peak):>12}  {1e3 * measured[policy]:10.1f} ms  "
            f"{1e3 * predicted(policy):6.1f} ms"
        )
    extra = measured["full"] - measured["none"]
    forecast = predicted("full") - predicted("none")
    print(
        f"  full - none: measured {1e3 * extra:.1f} ms, predicted {1e3 * forecast:.1f} ms, "
        f"error {100 * abs(extra - forecast) / forecast:.1f}%  [target <= 10%]"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--skip-ray", action="store_true")
    args = parser.parse_args()
    solver(args.repeats)
    if not args.skip_ray:
        on_ray(args.steps)


if __name__ == "__main__":
    main()
