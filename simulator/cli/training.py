"""The ``train`` workflow: from arguments to a configured Ray pipeline, a run, and its checks.

Shared by ``pebblesim train`` and the tests; ``demo`` builds its own config but runs the same
pipeline.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace

import numpy as np
from tqdm import tqdm

from simulator.analytic.run_plan import simulate_plan
from simulator.cli.layout_flags import check_trainable, train_layout_note
from simulator.cli.requests import plan_from_args
from simulator.errors import PebbleError
from simulator.model.optim import OptimizerConfig
from simulator.model.reference import TrainConfig, train_reference
from simulator.ray_pipeline.executor import RayOptions, RayPipeline
from simulator.ray_pipeline.offload_setup import check_offload_runs
from simulator.run.limits import check_actors, machine_memory
from simulator.run.plan import CostSource, RunPlan, resolve_model
from simulator.units import human_bytes


@dataclass(frozen=True)
class TrainingSetup:
    """Everything ``train`` decided before Ray starts."""

    plan: RunPlan
    config: TrainConfig
    options: RayOptions
    fault: tuple[int, int, int] | None
    check: bool
    note: str | None = None  # what to tell the user before Ray starts (the dtype it computes in)


def max_differences(result, config) -> dict:
    """Largest relative gradient difference (step 1) and absolute weight difference (last
    step) between the Ray run and the sequential reference on the same data."""
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
    plan = plan_from_args(args, train=True)
    check_trainable(plan.layout)
    check_offload_runs(plan)
    schedule, dp = plan.schedule, plan.layout.data
    check_fits_this_machine(plan)
    check_actors(schedule.num_ranks, dp)
    fault = _parse_fault(args.inject_fault)
    if fault and (fault[1] >= schedule.num_ranks or fault[2] >= dp or fault[0] >= args.steps):
        raise PebbleError(f"--inject-fault {args.inject_fault} names no step/rank of this run.")
    if args.retries < 0:
        raise PebbleError(f"--retries must not be negative, got {args.retries}.")
    lr = args.lr if args.lr is not None else (0.5 if args.optimizer == "sgd" else 0.01)
    config = TrainConfig(
        model=plan.spec,
        dataset=args.dataset,
        batch_size=plan.global_batch,
        microbatches=schedule.num_microbatches,
        steps=args.steps,
        optimizer=OptimizerConfig(args.optimizer, lr=lr),
    )
    config.data()  # bad dataset/model combinations fail here, before Ray starts
    options = RayOptions(
        address=args.address,
        retries=args.retries,
        step_timeout=args.step_timeout,
        calibrate=bool(args.out),  # only --out writes what calibration is for: the profile
    )
    notes = "\n".join(filter(None, (_dtype_note(args, plan), train_layout_note(plan.layout))))
    return TrainingSetup(plan, config, options, fault, args.check, notes or None)


def _dtype_note(args, plan: RunPlan) -> str | None:
    """One line when the model asked for is counted in a dtype numpy has no type for."""
    asked = resolve_model(args.model, plan.schedule.num_stages) if args.model else plan.spec
    if asked.is_transformer and asked.dtype != plan.spec.dtype:
        return (
            f"note: numpy has no {asked.dtype}: training computes in {plan.spec.dtype}, and its "
            f"bytes are counted in {plan.spec.dtype} too."
        )
    return None


def check_fits_this_machine(plan: RunPlan) -> None:
    """One sentence, before Ray starts, when every rank and replica's parameters, gradients,
    optimizer state and peak activations (the analytic prediction of this very plan) would not
    fit in this machine's memory. Offload moves activations to this same machine's host
    memory, so the whole is counted as if nothing moved."""
    unit = replace(plan, costs=CostSource(), steps=1, cores=None, offload=None)
    predicted = simulate_plan(unit)
    need = sum(r.memory["total"] for r in predicted.summary().per_rank) * plan.layout.data
    have = machine_memory()
    if need > have:
        raise PebbleError(
            f"training this model needs about {human_bytes(need)} on this machine (weights, "
            f"gradients, optimizer state and activations of every rank and replica), more than "
            f"its {human_bytes(have)}; train a smaller model (fewer layers, a smaller hidden size "
            "or sequence) or a smaller --batch-size."
        )


def train_on_ray(setup: TrainingSetup, steps: int, want_prediction: bool = False):
    """Train with a progress bar on stderr; returns (result, predicted Timeline or None)."""
    bar = tqdm(total=steps, desc="training", unit="step", disable=None, file=sys.stderr)
    with bar, RayPipeline(setup.plan, setup.config, setup.options) as pipeline:

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
