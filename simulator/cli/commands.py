"""One function per ``pebblesim`` subcommand; the parser lives in ``simulator.cli.parser``."""

from __future__ import annotations

import sys
from pathlib import Path

from schedules.csv_io import schedule_to_csv
from schedules.registry import list_schedules
from schedules.validate import validate
from simulator.analytic.compare import Comparison, compare_timelines, comparison_model
from simulator.analytic.hardware import hardware_rows
from simulator.analytic.run_plan import simulate_plan
from simulator.cli import advise, view
from simulator.cli.figures import figure_kinds, write_figures
from simulator.cli.layout_flags import layout_degrees
from simulator.cli.outputs import StagedOutput, write_output_file
from simulator.cli.printing import (
    emit_json,
    format_presets,
    format_summary,
    format_train_report,
)
from simulator.cli.requests import (
    compare_options,
    cost_source,
    plan_from_args,
    schedule_from_args,
)
from simulator.cli.run_files import write_measured_run, write_timeline
from simulator.cli.training import check_against_reference, prepare_training, train_on_ray
from simulator.cli.tutorial import render_tutorials
from simulator.errors import PebbleError
from simulator.model.layout import Layout
from simulator.model.recompute import RecomputePolicy
from simulator.model.transformer.flash_attention import FlashAttention
from simulator.model.transformer.presets import preset_rows
from simulator.run.offload_list import offload_policies
from simulator.run.recompute import recompute_policies
from simulator.run.schedule_source import make_schedule
from simulator.timeline import Timeline
from simulator.timeline.report import summary_dict


def cmd_schedules(args) -> int:
    rows = list_schedules()
    width = max(len(name) for name, _ in rows)
    for name, description in rows:
        print(f"{name.ljust(width)}  {description}")
    return 0


def cmd_presets(args) -> int:
    print(format_presets(preset_rows(), hardware_rows()))
    return 0


def cmd_validate(args) -> int:
    schedule = make_schedule(None, None, args.microbatches, schedule_file=args.file)
    validate(schedule)
    print(
        f"OK: {args.file} is a valid schedule: {schedule.num_ranks} ranks, "
        f"{schedule.num_stages} stages, {schedule.num_microbatches} microbatches, "
        f"{len(schedule)} actions."
    )
    return 0


def cmd_export(args) -> int:
    schedule = schedule_from_args(args)
    target = "-" if args.output is None else args.output
    written = write_output_file(target, schedule_to_csv(schedule))
    if written is not None:
        print(f"wrote {written}", file=sys.stderr)
    return 0


FLASH_SELECTIVE_NOTE = (
    "note: --recompute selective changes nothing with attention=flash: a fused attention "
    "keeps no s x s scores to drop."
)


def note_selective_under_flash(spec, policies) -> None:
    """One line on stderr when a policy of ``policies`` (``--recompute`` texts) recomputes
    selectively and every attention core of ``spec`` is fused: its plan is then ``none``'s,
    which a user asking for selective should be told rather than left to find out."""
    cores = [info.cls for info in spec.layers() if info.kind == "attention"]
    if not cores or not all(issubclass(cls, FlashAttention) for cls in cores):
        return
    for text in filter(None, policies):
        policy = RecomputePolicy.parse(text)
        if "selective" in (policy.default, *(name for _, name in policy.per_stage)):
            print(FLASH_SELECTIVE_NOTE, file=sys.stderr)
            return


def cmd_simulate(args) -> int:
    drawing = bool(args.out) and not args.no_figures
    if args.window is not None and not drawing:
        raise PebbleError("--window zooms the figures simulate --out draws; give --out DIR.")
    plan = plan_from_args(args)
    note_selective_under_flash(plan.spec, [plan.recompute and plan.recompute.policy])
    with StagedOutput(args.out) as out:
        timeline = simulate_plan(plan)
        if args.out:
            write_timeline(out, timeline)
        kinds = figure_kinds(timeline) if drawing else []
        if kinds:
            write_figures(out, timeline, kinds, args.window)
    if args.json:
        emit_json(summary_dict(timeline))
    else:
        print(format_summary(timeline))
        if args.out:
            print(f"\nwrote {args.out}/timeline.json and {args.out}/trace.json (open in Perfetto)")
        if kinds:
            print(f"drew {', '.join(kinds)} into {args.out}/ (PNG and SVG)")
    return 0


def cmd_train(args) -> int:
    setup = prepare_training(args)
    if setup.note:
        print(setup.note, file=sys.stderr)
    recompute = setup.plan.recompute
    note_selective_under_flash(setup.plan.spec, [recompute and recompute.policy])
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
    import visualize  # start-up: matplotlib loads only for the commands that draw

    timeline = Timeline.load(args.timeline)
    if not timeline.events:
        raise PebbleError(f"{args.timeline} holds no compute events to draw.")
    with StagedOutput(args.out) as out:
        write_figures(out, timeline, figure_kinds(timeline, args.kind), args.window)
        if args.against:
            other = Timeline.load(args.against)
            pair = sorted((timeline, other), key=lambda t: t.meta.source != "analytic")
            visualize.save(visualize.overlay_figure(*pair), out.path("overlay"))
    for path in out.written:
        print(path)
    return 0


def cmd_compare(args) -> int:
    import visualize  # start-up: matplotlib loads only for the commands that draw

    names = [n.strip() for n in args.schedules.split(",") if n.strip()] if args.schedules else None
    limit, placement = compare_options(args)
    degrees = layout_degrees(args)
    policies = _policies(args.recompute)
    timelines, skipped = compare_timelines(
        Comparison(
            ranks=args.ranks,
            microbatches=args.microbatches,
            names=tuple(names) if names is not None else None,
            chunks=args.chunks,
            model=args.model,
            costs=cost_source(args),
            batch_size=args.batch_size,
            layout=Layout(**degrees) if degrees else None,
            recompute=policies,
            offload=_offloads(args.offload),
            auto_limit=limit,
            auto_placement=placement,
            precision=args.precision,
            split=args.split,
        )
    )
    spec = comparison_model(args.ranks, args.chunks, args.model)
    note_selective_under_flash(spec, policies or ())
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


def _policies(text: str | None) -> tuple[str, ...] | None:
    policies = recompute_policies(text)
    return tuple(policies) if policies is not None else None


def _offloads(text: str | None) -> tuple[str, ...] | None:
    policies = offload_policies(text)
    return tuple(policies) if policies is not None else None


def cmd_advise(args) -> int:
    return advise.cmd_advise(args)


def cmd_view(args) -> int:
    return view.cmd_view(args)


def cmd_demo(args) -> int:
    from simulator.cli.demo import run_demo  # start-up: the demo imports matplotlib at once

    report = run_demo(args.out, args.address, args.recompute, args.offload)
    print(f"\nthe tour is in {args.out}/: start with {report}")
    return 0


def cmd_tutorial(args) -> int:
    def running(name: str) -> None:
        print(f"running {name} ...", file=sys.stderr)

    for path in render_tutorials(args.numbers, Path(args.out), progress=running):
        print(path)
    return 0
