"""Benchmark: how much the Ray executor costs, how much pipelining gains, how good the model is.

Prints, for a compute-heavy MLP (every action >= 20 ms here on 2 ranks):
  (a) per-action overhead: measured step time minus the analytic prediction from the measured
      profile, divided by the actions each rank runs (and by all actions);
  (b) the speedup of the schedule over the sequential reference (ideal p m / (m + p - 1) with a
      core per rank);
  (c) the analytic executor's prediction error: the run's own prediction (``RayPipeline.
      prediction``) against the measurement over steps 1.. (step 0 is the warm-up), step
      overheads included, the number the overlay figure and ``pebblesim demo`` report. The
      prediction shares the cores the calibration found (``simulator.analytic.sharing``), so
      ``--ranks 4`` on a 2-core machine checks the shared-core model (target <= 5%; 2 ranks:
      <= 3%). The median step against one predicted step is printed beside it.

Run: python benchmarks/ray_pipeline.py [--ranks 2] [--microbatches 8] [--width 2048] [--rows 128]
     [--out DIR]  (DIR: the measured timeline.json and profile.json, to predict again offline)
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

from schedules.registry import build_schedule  # noqa: E402
from simulator.model import ModelSpec  # noqa: E402
from simulator.model.optim import OptimizerConfig  # noqa: E402
from simulator.model.reference import TrainConfig, set_loss_scale, train_step  # noqa: E402
from simulator.model.stage import Stage  # noqa: E402
from simulator.ray_pipeline.executor import RayPipeline  # noqa: E402
from simulator.run import plan_run  # noqa: E402
from visualize.overlay import makespan_error  # noqa: E402


def step_span(timeline, step: int) -> float:
    events = [e for e in timeline.events if e.step == step and e.replica == 0]
    return max(e.end for e in events) - min(e.start for e in events)


def sequential_step_time(config: TrainConfig, repeats: int) -> float:
    x, y = config.data()
    layers = config.model.build()
    set_loss_scale(layers, len(x))
    stage = Stage(0, layers)
    slices = config.microbatch_slices()
    train_step(stage, x, y, slices)  # warm-up
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        train_step(stage, x, y, slices)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--microbatches", type=int, default=8)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--rows", type=int, default=128, help="rows per microbatch")
    parser.add_argument("--steps", type=int, default=8)  # fewer swings with this VM's noise
    parser.add_argument("--schedule", default="1f1b")
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--out", help="folder for the measured timeline.json and profile.json")
    args = parser.parse_args()

    import ray

    ranks, m = args.ranks, args.microbatches
    spec = ModelSpec(
        widths=(2,) + (args.width,) * 5 + (3,), activation="relu", dtype="float32", seed=0
    )
    config = TrainConfig(
        model=spec,
        batch_size=args.rows * m,
        microbatches=m,
        steps=args.steps,
        optimizer=OptimizerConfig("sgd", lr=1e-3, momentum=0.0),
    )
    schedule = build_schedule(args.schedule, ranks, m)
    ray.init(num_cpus=4, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        plan = plan_run(schedule, spec, batch_size=config.batch_size)
        with RayPipeline(plan, config) as pipeline:
            result = pipeline.run(args.steps)
            prediction = pipeline.prediction(result)
            rows = pipeline.microbatch_rows
    finally:
        ray.shutdown()
    timeline = result.timeline
    measured_steps = [step_span(timeline, s) for s in range(1, args.steps)]
    measured = statistics.median(measured_steps)
    # the same span as measured: first action to last, without the commit after the step
    cores = result.profile.cores
    predicted = step_span(prediction, 1)
    error = makespan_error(prediction, timeline)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        timeline.save(os.path.join(args.out, "timeline.json"))
        result.profile.save(os.path.join(args.out, "profile.json"))
    actions_per_rank = max(len(a) for a in schedule.actions)
    durations = sorted(e.end - e.start for e in timeline.events if e.step > 0)
    sequential = sequential_step_time(config, repeats=3)

    print(
        f"model {spec.to_text()}, {rows} rows per microbatch, schedule {schedule.name}, "
        f"p={ranks}, m={m}, {cores or 'a core per rank'} shared cores"
    )
    print(
        f"shortest action: {1e3 * durations[0]:.1f} ms, "
        f"median {1e3 * statistics.median(durations):.1f} ms"
    )
    print(f"measured step time (median of steps 1..{args.steps - 1}): {1e3 * measured:.1f} ms")
    print(f"predicted from the measured profile:            {1e3 * predicted:.1f} ms")
    print(
        f"(a) overhead per action: {1e3 * (measured - predicted) / actions_per_rank:.2f} ms "
        f"per action on a rank ({actions_per_rank} each), "
        f"{1e3 * (measured - predicted) / len(schedule):.2f} ms over all {len(schedule)} actions"
        "  [target < 1 ms]"
    )
    ideal = ranks * m / (m + ranks - 1)
    print(
        f"(b) speedup over the sequential reference ({1e3 * sequential:.1f} ms/step): "
        f"{sequential / measured:.2f}x  [ideal {ideal:.2f}x, target >= 1.5x]"
    )
    target = 3 if cores is None or cores >= ranks else 5
    print(
        f"(c) prediction error, {error.text()}  [target <= {target}%]; the median step "
        f"against one predicted step: {100 * (predicted - measured) / measured:+.1f}%"
    )


if __name__ == "__main__":
    main()
