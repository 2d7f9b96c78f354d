"""The ``train`` workflow: from arguments to a configured Ray pipeline, a run, and its checks.

Shared by ``pebblesim train`` and the tests; ``demo`` builds its own config but runs the same
pipeline.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from schedules.actions import Schedule
from simulator.cli.workflows import make_plan, make_schedule
from simulator.errors import PebbleError
from simulator.model.optim import OptimizerConfig
from simulator.model.reference import TrainConfig
from simulator.run.limits import check_actors


@dataclass(frozen=True)
class TrainingSetup:
    """Everything ``train`` decided before Ray starts."""

    schedule: Schedule
    config: TrainConfig
    options: object  # RayOptions (imported lazily: Ray is heavy)
    fault: tuple[int, int, int] | None
    check: bool


def default_train_model(num_stages: int) -> str:
    """An MLP for the spiral deep enough that every stage gets at least one Linear."""
    hidden = "-".join(["64"] * max(2, num_stages - 1))
    return f"widths=2-{hidden}-3,activation=relu,loss=cross_entropy,dtype=float64"


def max_differences(result, config) -> dict:
    """Largest relative gradient difference (step 1) and absolute weight difference (last
    step) between the Ray run and the sequential reference on the same data."""
    from simulator.model.reference import train_reference

    first = train_reference(config, steps=1)
    final = train_reference(config)
    grad_diff = 0.0
    for key, reference in first.gradients.items():
        scale = max(float(np.abs(reference).max()), 1e-300)
        grad_diff = max(
            grad_diff, float(np.abs(result.first_step_gradients[key] - reference).max()) / scale
        )
    weight_diff = max(
        float(np.abs(result.weights[key] - value).max()) for key, value in final.weights().items()
    )
    return {
        "max_grad_rel_diff": grad_diff,
        "max_weight_abs_diff": weight_diff,
        "reference_loss": final.losses,
    }


def _parse_fault(text: str | None) -> tuple[int, int, int] | None:
    if not text:
        return None
    parts = text.split(":")
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        numbers = []
    if len(numbers) not in (2, 3) or min(numbers) < 0:
        raise PebbleError(f"cannot read --inject-fault {text!r}; write STEP:RANK, e.g. 1:0.")
    step, rank, replica = (*numbers, 0) if len(numbers) == 2 else numbers
    return step, rank, replica


def prepare_training(args) -> TrainingSetup:
    """Schedule, model, data and Ray options from ``train``'s arguments; every mistake a user
    can make is caught here, before Ray starts."""
    from simulator.ray_pipeline.executor import RayOptions

    schedule = make_schedule(
        args.schedule, args.ranks, args.microbatches, args.chunks, args.schedule_file, args.steps
    )
    check_actors(schedule.num_ranks, args.dp)
    model = args.model or default_train_model(schedule.num_stages)
    plan = make_plan(schedule, model, args.batch_size, args.dp, recompute=args.recompute)
    fault = _parse_fault(args.inject_fault)
    if fault and (fault[1] >= schedule.num_ranks or fault[2] >= args.dp or fault[0] >= args.steps):
        raise PebbleError(f"--inject-fault {args.inject_fault} names no step/rank of this run.")
    if args.retries < 0:
        raise PebbleError(f"--retries must not be negative, got {args.retries}.")
    lr = args.lr if args.lr is not None else (0.5 if args.optimizer == "sgd" else 0.01)
    config = TrainConfig(
        model=plan.spec,
        dataset=args.dataset,
        batch_size=plan.batch_size * args.dp,
        microbatches=schedule.num_microbatches,
        steps=args.steps,
        optimizer=OptimizerConfig(args.optimizer, lr=lr),
    )
    config.data()  # bad dataset/model combinations fail here, before Ray starts
    options = RayOptions(
        address=args.address,
        dp=args.dp,
        retries=args.retries,
        step_timeout=args.step_timeout,
        calibrate=bool(args.out),  # only --out writes what calibration is for: the profile
        recompute=plan.recompute,
    )
    return TrainingSetup(schedule, config, options, fault, args.check)


def train_on_ray(setup: TrainingSetup, steps: int, want_prediction: bool = False):
    """Train with a progress bar on stderr; returns (result, predicted Timeline or None)."""
    from tqdm import tqdm

    from simulator.ray_pipeline.executor import RayPipeline

    bar = tqdm(total=steps, desc="training", unit="step", disable=None, file=sys.stderr)
    with bar, RayPipeline(setup.schedule, setup.config, setup.options) as pipeline:

        def progress(step: int, loss: float) -> None:
            bar.set_postfix(loss=f"{loss:.4f}")
            bar.update(1)

        result = pipeline.run(steps, on_step=progress, fault=setup.fault, check=setup.check)
        predicted = pipeline.prediction(result) if want_prediction else None
    return result, predicted


def check_against_reference(result, config: TrainConfig) -> dict:
    """The two ``--check`` figures, for the JSON payload."""
    diffs = max_differences(result, config)
    return {
        "max_grad_rel_diff": diffs["max_grad_rel_diff"],
        "max_weight_abs_diff": diffs["max_weight_abs_diff"],
    }
