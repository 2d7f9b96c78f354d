"""One function per ``pebblesim`` subcommand; the parser lives in ``simulator.cli.parser``."""

from __future__ import annotations

import json
import sys

import numpy as np

from simulator.cli.workflows import make_costs, make_plan, make_schedule, summary_dict
from simulator.errors import PebbleError
from simulator.timeline import Timeline
from simulator.trace import save_chrome_trace
from simulator.units import human_bytes, human_time

OVERHEAD_DOMINATES = 5e-3  # seconds: below this per action, Ray's per-call cost dominates


def emit_json(payload: dict) -> None:
    print(json.dumps(payload, indent=None, default=float))


def format_summary(timeline: Timeline) -> str:
    """A readable summary table of one run."""
    data = summary_dict(timeline)
    unit = data["time_unit"]
    lines = [
        f"schedule {data['schedule']}: {data['ranks']} ranks x {data['chunks']} chunk(s), "
        f"{data['microbatches']} microbatches, dp {data['dp']}, {data['steps']} step(s), "
        f"{timeline.meta.source} run",
        f"makespan {human_time(data['makespan'], unit)}   "
        f"bubble {100 * data['bubble_fraction']:.1f}%",
    ]
    if data["steps"] > 1:
        times = ", ".join(human_time(t, unit) for t in data["step_times"])
        lines.append(f"time per step: {times}")
    header = f"{'rank':>4}  {'busy':>12}  {'peak activations':>16}  {'peak in-flight':>14}"
    lines += ["", header, "-" * len(header)]
    for r in data["per_rank"]:
        lines.append(
            f"{r['rank']:>4}  {human_time(r['busy'], unit):>12}  "
            f"{human_bytes(r['peak_activation_bytes']):>16}  {r['peak_inflight_microbatches']:>14}"
        )
    ready = sorted(data["gradient_ready"], key=lambda g: g["time"])
    if ready:
        order = ", ".join(f"L{g['layer']}@{human_time(g['time'], unit)}" for g in ready)
        lines += ["", f"weight gradients complete (step 0, first to last): {order}"]
    return "\n".join(lines)


def _write_timeline(out, timeline: Timeline, prefix: str = "") -> None:
    timeline.save(out.path(f"{prefix}timeline.json"))
    save_chrome_trace(timeline, out.path(f"{prefix}trace.json"))


def write_measured_run(out, result, predicted: Timeline, prefix: str = "") -> None:
    """A Ray run's files: measured Timeline and trace, cost profile, and the prediction."""
    _write_timeline(out, result.timeline, prefix)
    result.profile.save(out.path(f"{prefix}profile.json"))
    predicted.save(out.path(f"{prefix}predicted_timeline.json"))


def cmd_schedules(args) -> int:
    from schedules.registry import list_schedules

    rows = list_schedules()
    width = max(len(name) for name, _ in rows)
    for name, description in rows:
        print(f"{name.ljust(width)}  {description}")
    return 0


def cmd_validate(args) -> int:
    from schedules.validate import validate

    schedule = make_schedule(None, None, args.microbatches, schedule_file=args.file)
    validate(schedule)
    print(
        f"OK: {args.file} is a valid schedule: {schedule.num_ranks} ranks, "
        f"{schedule.num_stages} stages, {schedule.num_microbatches} microbatches, "
        f"{len(schedule)} actions."
    )
    return 0


def cmd_export(args) -> int:
    from schedules.csv_io import schedule_to_csv

    schedule = make_schedule(args.schedule, args.ranks, args.microbatches, args.chunks)
    text = schedule_to_csv(schedule)
    if args.output:
        from pathlib import Path

        from simulator.cli.outputs import StagedOutput

        target = Path(args.output)
        with StagedOutput(target.parent if str(target.parent) else ".") as out:
            out.path(target.name).write_text(text)
        print(f"wrote {target}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_simulate(args) -> int:
    from simulator.analytic.executor import simulate
    from simulator.cli.outputs import StagedOutput

    schedule = make_schedule(
        args.schedule, args.ranks, args.microbatches, args.chunks, args.schedule_file
    )
    model, batch_size = args.model, args.batch_size
    if args.profile and not model:
        # predict the profiled model unless told otherwise, at the profiled microbatch size
        from simulator.analytic.profile import Profile

        profile = Profile.load(args.profile)
        model = profile.model
        if batch_size is None:
            batch_size = profile.microbatch_rows * schedule.num_microbatches * args.dp
    plan = make_plan(schedule, model, batch_size, args.dp)
    costs = make_costs(plan, args.costs, args.comm_latency, args.hardware, args.profile)
    with StagedOutput(args.out) as out:
        timeline = simulate(
            schedule,
            costs,
            plan.spec,
            plan.partition,
            plan.microbatch_rows,
            steps=args.steps,
            sync=not args.no_sync,
            dp=args.dp,
        )
        if args.out:
            _write_timeline(out, timeline)
    if args.json:
        emit_json(summary_dict(timeline))
    else:
        print(format_summary(timeline))
        if args.out:
            print(f"\nwrote {args.out}/timeline.json and {args.out}/trace.json (open in Perfetto)")
    return 0


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


def cmd_train(args) -> int:
    from tqdm import tqdm

    from simulator.cli.outputs import StagedOutput
    from simulator.model.optim import OptimizerConfig
    from simulator.model.reference import TrainConfig
    from simulator.ray_pipeline.executor import RayOptions, RayPipeline

    schedule = make_schedule(
        args.schedule, args.ranks, args.microbatches, args.chunks, args.schedule_file
    )
    model = args.model or default_train_model(schedule.num_stages)
    plan = make_plan(schedule, model, args.batch_size, args.dp)
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
        address=args.address, dp=args.dp, retries=args.retries, step_timeout=args.step_timeout
    )
    with StagedOutput(args.out) as out:
        with (
            RayPipeline(schedule, config, options) as pipeline,
            tqdm(
                total=args.steps, desc="training", unit="step", disable=None, file=sys.stderr
            ) as bar,
        ):

            def progress(step: int, loss: float) -> None:
                bar.set_postfix(loss=f"{loss:.4f}")
                bar.update(1)

            result = pipeline.run(args.steps, on_step=progress, fault=fault, check=args.check)
        payload = summary_dict(result.timeline)
        payload["loss"] = result.losses
        payload["restarts"] = result.restarts
        if args.check:
            diffs = max_differences(result, config)
            payload["max_grad_rel_diff"] = diffs["max_grad_rel_diff"]
            payload["max_weight_abs_diff"] = diffs["max_weight_abs_diff"]
        if args.out:
            predicted = pipeline.prediction(result)
            write_measured_run(out, result, predicted)
    if args.json:
        emit_json(payload)
        return 0
    print(format_summary(result.timeline))
    durations = sorted(e.end - e.start for e in result.timeline.events)
    typical = durations[len(durations) // 2] if durations else 0.0
    if typical < OVERHEAD_DOMINATES:
        print(
            f"\nnote: the median action took {human_time(typical)}; Ray's cost per call (about "
            "1 ms) dominates such short actions, so the bubble above is mostly overhead. Use a "
            "wider --model or a larger --batch-size to see the schedule itself."
        )
    print("\nloss per step: " + ", ".join(f"{x:.4f}" for x in result.losses))
    if result.restarts:
        print(f"recovered from {result.restarts} rank failure(s) by restarting the step")
    if args.check:
        print(
            f"check against the sequential reference: max gradient relative difference "
            f"{payload['max_grad_rel_diff']:.2e}, max weight difference "
            f"{payload['max_weight_abs_diff']:.2e}"
        )
    if args.out:
        print(
            f"\nwrote {args.out}/: timeline.json, trace.json (Perfetto), profile.json (use with "
            "simulate --profile) and predicted_timeline.json (compare with plot --against)"
        )
    return 0


def cmd_plot(args) -> int:
    import visualize
    from simulator.cli.outputs import StagedOutput

    timeline = Timeline.load(args.timeline)
    if not timeline.events:
        raise PebbleError(f"{args.timeline} holds no compute events to draw.")
    kinds = list(visualize.FIGURES) if args.kind == "all" else [args.kind]
    with StagedOutput(args.out) as out:
        for kind in kinds:
            visualize.save(visualize.FIGURES[kind](timeline), out.path(kind))
        if args.against:
            other = Timeline.load(args.against)
            pair = sorted((timeline, other), key=lambda t: t.meta.source != "analytic")
            visualize.save(visualize.overlay_figure(*pair), out.path("overlay"))
    for path in out.written:
        print(path)
    return 0


def comparison_model(ranks: int, chunks: int, model: str | None):
    """One model for every schedule in a comparison: enough equal blocks that every stage
    layout (p, 2p, p*v stages) gets the same share of layers."""
    import math

    from simulator.model import ModelSpec

    return ModelSpec.parse(model) if model else ModelSpec.uniform(ranks * math.lcm(2, chunks))


def compare_timelines(
    ranks: int, microbatches: int, names, chunks: int = 2, model=None, costs=None
) -> tuple[dict, list[str]]:
    """Simulate each named schedule on the same model; returns the timelines and the names
    skipped because the sizes do not suit them (only when no names were asked for)."""
    from schedules.registry import SCHEDULES, canonical_name
    from simulator.analytic.executor import simulate

    spec = comparison_model(ranks, chunks, model)
    asked = names is not None
    timelines, skipped = {}, []
    for name in names if asked else list(SCHEDULES):
        try:
            v = None if SCHEDULES[canonical_name(name)].fixed_chunks else chunks
            schedule = make_schedule(name, ranks, microbatches, v)
            plan = make_plan(schedule, spec)
        except PebbleError:
            if asked:
                raise
            skipped.append(name)
            continue
        cost_model = make_costs(plan, costs)
        timelines[schedule.name] = simulate(
            schedule, cost_model, plan.spec, plan.partition, plan.microbatch_rows
        )
    return timelines, skipped


def cmd_compare(args) -> int:
    import visualize
    from simulator.cli.outputs import StagedOutput

    names = [n.strip() for n in args.schedules.split(",") if n.strip()] if args.schedules else None
    timelines, skipped = compare_timelines(
        args.ranks, args.microbatches, names, args.chunks, args.model, args.costs
    )
    rows = visualize.comparison_rows(timelines)
    print(visualize.format_table(rows, "text"))
    if skipped:
        print(f"\nskipped (sizes do not suit them): {', '.join(skipped)}")
    if args.out:
        with StagedOutput(args.out) as out:
            out.path("compare.csv").write_text(visualize.format_table(rows, "csv") + "\n")
            out.path("compare.md").write_text(visualize.format_table(rows, "markdown") + "\n")
            visualize.save(visualize.compare_figure(timelines), out.path("compare"))
        print(f"\nwrote {', '.join(str(p) for p in out.written)}")
    return 0


def cmd_demo(args) -> int:
    from simulator.cli.demo import run_demo

    report = run_demo(args.out, args.address)
    print(f"\nthe tour is in {args.out}/: start with {report}")
    return 0
