"""One function per ``pebblesim`` subcommand; the parser lives in ``simulator.cli.parser``."""

from __future__ import annotations

import sys

from simulator.cli import auto
from simulator.cli.printing import (
    emit_json,
    format_presets,
    format_summary,
    format_train_report,
)
from simulator.cli.workflows import (
    compare_timelines,
    make_schedule,
    simulate_args,
    simulated_cores,
    summary_dict,
    write_measured_run,
    write_timeline,
)
from simulator.errors import PebbleError
from simulator.run.recompute import recompute_policies
from simulator.timeline import Timeline


def cmd_schedules(args) -> int:
    from schedules.registry import list_schedules

    rows = list_schedules()
    width = max(len(name) for name, _ in rows)
    for name, description in rows:
        print(f"{name.ljust(width)}  {description}")
    return 0


def cmd_presets(args) -> int:
    from simulator.analytic.hardware import hardware_rows
    from simulator.model.transformer.presets import preset_rows

    print(format_presets(preset_rows(), hardware_rows()))
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
    from simulator.cli.outputs import write_output_file

    auto.resolve(args)
    schedule = make_schedule(args.schedule, args.ranks, args.microbatches, args.chunks)
    target = "-" if args.output is None else args.output
    written = write_output_file(target, schedule_to_csv(schedule))
    if written is not None:
        print(f"wrote {written}", file=sys.stderr)
    return 0


def cmd_simulate(args) -> int:
    from simulator.cli.outputs import StagedOutput

    auto.resolve(args)
    schedule = make_schedule(
        args.schedule, args.ranks, args.microbatches, args.chunks, args.schedule_file, args.steps
    )
    model, batch_size = args.model, args.batch_size
    if args.profile and not model:
        # predict the profiled model unless told otherwise, at the profiled microbatch size
        from simulator.analytic.profile import Profile

        profile = Profile.load(args.profile)
        model = profile.model
        if batch_size is None:
            batch_size = profile.microbatch_rows * schedule.num_microbatches * args.dp
    cores = simulated_cores(args.cores, args.profile)
    with StagedOutput(args.out) as out:
        _, timeline = simulate_args(args, schedule, model, batch_size, cores)
        if args.out:
            write_timeline(out, timeline)
    if args.json:
        emit_json(summary_dict(timeline))
    else:
        print(format_summary(timeline))
        if args.out:
            print(f"\nwrote {args.out}/timeline.json and {args.out}/trace.json (open in Perfetto)")
    return 0


def cmd_train(args) -> int:
    from simulator.cli.outputs import StagedOutput
    from simulator.cli.training import check_against_reference, prepare_training, train_on_ray

    auto.resolve(args, train=True)
    setup = prepare_training(args)
    with StagedOutput(args.out) as out:
        result, predicted = train_on_ray(setup, args.steps, want_prediction=bool(args.out))
        payload = summary_dict(result.timeline)
        payload["loss"] = result.losses
        payload["restarts"] = result.restarts
        if args.check:
            payload.update(check_against_reference(result, setup.config))
        if args.out:
            write_measured_run(out, result, predicted)
    if args.json:
        emit_json(payload)
    else:
        print(format_train_report(result, payload, args))
    return 0


def cmd_plot(args) -> int:
    import visualize
    from simulator.cli.outputs import StagedOutput

    timeline = Timeline.load(args.timeline)
    if not timeline.events:
        raise PebbleError(f"{args.timeline} holds no compute events to draw.")
    figures = {**visualize.FIGURES, "breakdown": visualize.breakdown_figure}
    kinds = list(figures) if args.kind == "all" else [args.kind]
    if args.kind == "all" and not timeline.meta.rank_memory:
        kinds.remove("breakdown")  # a Timeline written before whole-rank memory was recorded
    with StagedOutput(args.out) as out:
        for kind in kinds:
            visualize.save(figures[kind](timeline), out.path(kind))
        if args.against:
            other = Timeline.load(args.against)
            pair = sorted((timeline, other), key=lambda t: t.meta.source != "analytic")
            visualize.save(visualize.overlay_figure(*pair), out.path("overlay"))
    for path in out.written:
        print(path)
    return 0


def cmd_compare(args) -> int:
    import visualize
    from simulator.cli.outputs import StagedOutput

    names = [n.strip() for n in args.schedules.split(",") if n.strip()] if args.schedules else None
    timelines, skipped = compare_timelines(
        args.ranks,
        args.microbatches,
        names,
        args.chunks,
        args.model,
        args.costs,
        args.hardware,
        args.batch_size,
        (args.tp, args.sp or None),
        auto.compare_options(args),
        recompute_policies(args.recompute),
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


def cmd_advise(args) -> int:
    from simulator.cli.advise import cmd_advise as advise

    return advise(args)


def cmd_demo(args) -> int:
    from simulator.cli.demo import run_demo

    report = run_demo(args.out, args.address, args.recompute)
    print(f"\nthe tour is in {args.out}/: start with {report}")
    return 0


def cmd_tutorial(args) -> int:
    from pathlib import Path

    from simulator.cli.tutorial import render_tutorials

    def running(name: str) -> None:
        print(f"running {name} ...", file=sys.stderr)

    for path in render_tutorials(args.numbers, Path(args.out), progress=running):
        print(path)
    return 0
