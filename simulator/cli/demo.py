"""``pebblesim demo``: the tour a new user runs first.

Trains a small MLP on the CS231n spiral on Ray with three schedules (GPipe, 1F1B, ZB-H1),
predicts each run with the analytic executor from the run's own measured profile, compares the
built-in schedules analytically, and writes every figure plus a Markdown report that embeds them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tqdm import tqdm

import visualize
from schedules.registry import build_schedule
from simulator.analytic.compare import Comparison, compare_timelines
from simulator.cli.outputs import StagedOutput
from simulator.cli.run_files import write_measured_run
from simulator.errors import PebbleError
from simulator.model.layout import Layout
from simulator.model.optim import OptimizerConfig
from simulator.model.reference import TrainConfig
from simulator.model.spec import ModelSpec
from simulator.ray_pipeline.executor import RayOptions, RayPipeline
from simulator.ray_pipeline.offload_setup import check_offload_runs
from simulator.run.plan import plan_run
from simulator.run.recompute import recompute_policies
from visualize.overlay import BUSY_CORES, busy_machine_text
from visualize.report import Section
from visualize.viewer import viewer_html

DEMO_SCHEDULES = ("gpipe", "1f1b", "zb-h1")
RANKS, MICROBATCHES, STEPS = 4, 8, 4
# Wide enough that each action takes milliseconds, so measured timelines show the schedule,
# not only Ray's per-call overhead; small enough to train all three in well under a minute.
MODEL = "widths=2-" + "-".join(["1024"] * 9) + "-3,activation=relu,loss=ce,dtype=float32,seed=0"
ROWS_PER_MICROBATCH = 128

INTRO = """\
Each schedule below trained the same {widths}-wide MLP on the spiral for {steps} steps on Ray, one
actor per pipeline rank ({ranks} ranks, layout `{layout}`, {m} microbatches of {rows} rows,
float32). Every figure reads only a Timeline: the measured one from the Ray actors, or the
analytic prediction made from the run's own measured per-stage costs. Times in the measured
figures are wall-clock on this machine ({cores} cores for {ranks} ranks, so ranks share cores).

Reading the pebble graph: one row per layer, top to bottom along the model, grouped by stage and
rank. A row is filled while the layer holds cached activations (its input, kept for its backward;
darker = more microbatches at once) and turns purple the moment the layer's weight gradient for
the step is complete. The last layer's gradient is ready long before the first's: that is when a
data-parallel all-reduce of that layer could already start.
"""


def demo_config() -> TrainConfig:
    """The model, data and optimizer every demo schedule trains."""
    return TrainConfig(
        model=ModelSpec.parse(MODEL),
        dataset="spiral",
        batch_size=ROWS_PER_MICROBATCH * MICROBATCHES,
        microbatches=MICROBATCHES,
        steps=STEPS,
        optimizer=OptimizerConfig("adam", lr=1e-4),
    )


def run_demo(
    out: str | os.PathLike,
    address: str | None = None,
    recompute: str | None = None,
    offload: str | None = None,
) -> Path:
    """Run the tour into ``out``; returns the report's path. Library code: prints nothing but
    the progress bar (on stderr). ``recompute``: a ``--recompute`` policy every schedule trains
    (and is predicted and compared) under; ``offload``: an ``--offload`` policy every schedule
    trains and is predicted under (the comparison's unit costs have no seconds to price a
    copy in, so it compares without)."""
    config = demo_config()
    if recompute is not None:  # a mistake is one sentence before Ray starts
        recompute_policies(recompute)
    if offload is not None:
        schedule = build_schedule(DEMO_SCHEDULES[0], RANKS, MICROBATCHES)
        plan = plan_run(schedule, config.model, batch_size=config.batch_size, offload=offload)
        check_offload_runs(plan)
    tasks = len(DEMO_SCHEDULES) * 2 + 2
    sections: list[Section] = []
    with (
        StagedOutput(out) as staged,
        tqdm(total=tasks, desc="demo", unit="task", file=sys.stderr, disable=None) as bar,
    ):
        for name in DEMO_SCHEDULES:
            sections += _train_and_draw(name, config, address, staged, bar, recompute, offload)
        bar.set_postfix_str("comparing schedules")
        sections.append(_comparison(staged.staging, recompute))
        bar.update(1)
        bar.set_postfix_str("writing the report")
        intro = INTRO.format(
            widths=config.model.widths[1],
            steps=STEPS,
            ranks=RANKS,
            layout=Layout(pipeline=RANKS),
            m=MICROBATCHES,
            rows=ROWS_PER_MICROBATCH,
            cores=os.cpu_count() or 1,
        )
        visualize.write_report(staged.staging, sections, title="pebblesim tour", intro=intro)
        bar.update(1)
    report = Path(out) / "report.md"
    if not report.exists():
        raise PebbleError(f"the demo did not write {report}.")
    return report


def _train_and_draw(
    name: str, config, address, staged, bar, recompute=None, offload=None
) -> list[Section]:
    """Train ``name`` on Ray, predict it, draw every figure; returns its report sections."""
    bar.set_postfix_str(f"training {name} on Ray")
    schedule = build_schedule(name, RANKS, MICROBATCHES)
    plan = plan_run(
        schedule,
        config.model,
        batch_size=config.batch_size,
        recompute=recompute,
        offload=offload,
    )
    with RayPipeline(plan, config, RayOptions(address=address)) as pipeline:
        result = pipeline.run(STEPS)
        predicted = pipeline.prediction(result)
        busy = result.profile.outside_load >= BUSY_CORES
        quiet = pipeline.prediction(result, quiet=True) if busy else None
    bar.update(1)
    bar.set_postfix_str(f"drawing {name}")
    measured = result.timeline
    folder = staged.staging / name
    write_measured_run(staged, result, predicted, prefix=f"{name}/")
    for kind, draw in visualize.FIGURES.items():
        visualize.save(draw(measured), folder / kind)
    visualize.save(visualize.breakdown_figure(measured), folder / "breakdown")
    machine = busy_machine_text(
        result.profile.outside_load,
        result.profile.cores,
        visualize.makespan_error(quiet, measured) if quiet is not None else None,
    )
    overlay = visualize.overlay_figure(predicted, measured, machine=machine)
    visualize.save(overlay, folder / "overlay")
    animated = name == "1f1b"
    if animated:
        visualize.animate_pebbles(measured, folder / "pebble.gif")
        (folder / "viewer.html").write_text(viewer_html([predicted, measured]), encoding="utf-8")
    bar.update(1)
    return _sections(name, result, predicted, animated, machine)


def _sections(name: str, result, predicted, animated: bool, machine=None) -> list[Section]:
    """The report's sections for one trained schedule."""
    measured = result.timeline
    losses = ", ".join(f"{x:.3f}" for x in result.losses)
    summary = measured.summary()
    error = visualize.makespan_error(predicted, measured)
    peaks = ", ".join(visualize.human_bytes(r.peak_activation_bytes) for r in summary.per_rank)
    sections = [
        Section(
            f"{name}: pebble graph (measured)",
            f"{name}/pebble.png",
            "Cached activations per layer over time; purple from the moment each "
            "layer's weight gradient is complete.",
            f"Loss per step: {losses}. Measured bubble {100 * summary.bubble_fraction:.1f}%; "
            f"peak activation memory per rank: {peaks}.",
        ),
        Section(
            f"{name}: pipeline chart",
            f"{name}/pipeline.png",
            "What each rank computed when; white is the bubble.",
        ),
        Section(
            f"{name}: activation memory",
            f"{name}/memory.png",
            "Cached bytes per rank; each rank's peak labelled.",
        ),
        Section(
            f"{name}: whole-rank memory",
            f"{name}/breakdown.png",
            "Parameters, gradients, Adam state, receive buffers and peak activations per rank "
            "(float32 weights: 4 + 4 + 8 bytes per parameter).",
        ),
        Section(
            f"{name}: gradient availability",
            f"{name}/grads.png",
            "When each layer's weight gradient for step 0 was complete.",
        ),
        Section(
            f"{name}: predicted vs measured",
            f"{name}/overlay.png",
            f"Analytic prediction from the measured profile: {error.text()}."
            + (f" Note: {machine}." if machine else ""),
        ),
    ]
    if animated:
        sections.append(
            Section(
                f"{name}: the pebble graph, animated",
                f"{name}/pebble.gif",
                "The same run, step by step. Zoom, hover and play it, predicted against "
                f"measured, in [{name}/viewer.html]({name}/viewer.html) (`pebblesim view`).",
            )
        )
    return sections


def _comparison(root: Path, recompute: str | None = None) -> Section:
    """Every built-in schedule simulated on the demo's sizes: table, CSV and figure."""
    policies = None if recompute is None else ("none", recompute)
    timelines, skipped = compare_timelines(
        Comparison(
            RANKS, MICROBATCHES, recompute=None if policies == ("none", "none") else policies
        )
    )
    rows_table = visualize.comparison_rows(timelines)
    (root / "compare.md").write_text(visualize.format_table(rows_table, "markdown") + "\n")
    (root / "compare.csv").write_text(visualize.format_table(rows_table, "csv") + "\n")
    visualize.save(visualize.compare_figure(timelines), root / "compare")
    not_shown = f"\n\nNot shown (sizes do not suit them): {', '.join(skipped)}." if skipped else ""
    return Section(
        "Comparing schedules (analytic, F = I = W = 1)",
        "compare.png",
        "Bubble fraction against the worst rank's peak activation memory.",
        visualize.format_table(rows_table, "markdown") + not_shown,
    )
