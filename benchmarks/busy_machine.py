"""Benchmark: the demo's run beside a synthetic CPU hog, predicted with and without the load
that other processes put on the machine.

Why: on a 2-core VM kept busy by other work (load average 6-19) ``pebblesim demo`` predicted
gpipe, 1f1b and zb-h1 28-63% under the measured time (issue 26). The run now measures the CPU
that processes outside it took during the compared steps (``/proc/stat``'s busy time less the
Ray session's, ``ray_pipeline.runtime_meter``), and the prediction charges it as cores the run
did not have (``Profile.outside_load``). This prints, per hog size, the measured span of steps
1.., the prediction with that accounting, the prediction for a quiet machine (outside load 0),
and both errors; with no hog, the two predictions should agree.

Run: python benchmarks/busy_machine.py [--hogs 0,2,4] [--schedule 1f1b] [--steps 4]
The hogs are busy Python processes (``while True: pass``) started before Ray and ended after.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import multiprocessing  # noqa: E402

from schedules.registry import build_schedule  # noqa: E402
from simulator.model import ModelSpec  # noqa: E402
from simulator.model.optim import OptimizerConfig  # noqa: E402
from simulator.model.reference import TrainConfig  # noqa: E402
from simulator.ray_pipeline.executor import RayPipeline  # noqa: E402
from simulator.run import plan_run  # noqa: E402
from visualize.overlay import makespan_error  # noqa: E402

# the demo's run (simulator/cli/demo.py): a 1024-wide MLP, 4 ranks, 8 microbatches of 128 rows
MODEL = "widths=2-" + "-".join(["1024"] * 9) + "-3,activation=relu,loss=ce,dtype=float32,seed=0"
RANKS, MICROBATCHES, ROWS = 4, 8, 128


def _hog() -> None:
    while True:
        pass


def run_once(schedule_name: str, steps: int) -> dict:
    """Train the demo's run once; its measured span and both predictions (steps 1..)."""
    config = TrainConfig(
        model=ModelSpec.parse(MODEL),
        dataset="spiral",
        batch_size=ROWS * MICROBATCHES,
        microbatches=MICROBATCHES,
        steps=steps,
        optimizer=OptimizerConfig("adam", lr=1e-4),
    )
    schedule = build_schedule(schedule_name, RANKS, MICROBATCHES)
    plan = plan_run(schedule, config.model, batch_size=config.batch_size)
    with RayPipeline(plan, config) as pipeline:
        result = pipeline.run(steps)
        charged = makespan_error(pipeline.prediction(result), result.timeline)
        quiet = makespan_error(pipeline.prediction(result, quiet=True), result.timeline)
    return {
        "outside_load": result.profile.outside_load,
        "cores": result.profile.cores,
        "measured": charged.measured,
        "charged": charged,
        "quiet": quiet,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hogs", default="0,2,4", help="busy processes beside each run")
    parser.add_argument("--schedule", default="1f1b")
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    print(
        f"{'hogs':>4}  {'outside load':>12}  {'measured':>9}  {'charged':>9}  {'error':>7}  "
        f"{'quiet':>9}  {'error':>7}"
    )
    for count in [int(h) for h in args.hogs.split(",")]:
        hogs = [multiprocessing.Process(target=_hog, daemon=True) for _ in range(count)]
        for hog in hogs:
            hog.start()
        try:
            got = run_once(args.schedule, args.steps)
        finally:
            for hog in hogs:
                hog.terminate()
                hog.join()
        charged, quiet = got["charged"], got["quiet"]
        print(
            f"{count:>4}  {got['outside_load']:>6.2f} of {got['cores']}  "
            f"{got['measured']:>8.3f}s  {charged.predicted:>8.3f}s  {charged.error:>+7.1%}  "
            f"{quiet.predicted:>8.3f}s  {quiet.error:>+7.1%}"
        )


if __name__ == "__main__":
    main()
