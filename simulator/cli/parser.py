"""The ``pebblesim`` argument parser: every subcommand, its flags and their value checks."""

from __future__ import annotations

import argparse

from simulator.cli import numbers
from simulator.cli.advise_flags import add_advise
from simulator.cli.auto import add_auto_args
from simulator.cli.layout_flags import add_layout_args
from simulator.cli.view_flags import add_view

# Every number goes through simulator.cli.numbers: finite, in range, with a named limit.
RANKS = numbers.count(numbers.MAX_RANKS, "MAX_RANKS")
MICROBATCHES = numbers.count(numbers.MAX_MICROBATCHES, "MAX_MICROBATCHES")
CHUNKS = numbers.count(numbers.MAX_CHUNKS, "MAX_CHUNKS")
STEPS = numbers.count(numbers.MAX_STEPS, "MAX_STEPS")
BATCH_SIZE = numbers.count(numbers.MAX_BATCH_SIZE, "MAX_BATCH_SIZE")
RETRIES = numbers.count(numbers.MAX_RETRIES, "MAX_RETRIES", minimum=0)
LATENCY = numbers.real(0.0, numbers.MAX_TIME, what="a time")
LR = numbers.real(0.0, numbers.MAX_LEARNING_RATE, allow_minimum=False, what="a learning rate")
TIMEOUT = numbers.real(
    0.0, numbers.MAX_STEP_TIMEOUT, allow_minimum=False, what="a timeout in seconds"
)


def _add_schedule_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--schedule", help="schedule name (see `pebblesim schedules`) or auto")
    parser.add_argument("--schedule-file", help="a schedule in PyTorch's compute-only CSV layout")
    parser.add_argument("--ranks", type=RANKS, help="pipeline ranks p")
    parser.add_argument("--microbatches", type=MICROBATCHES, required=True, help="microbatches m")
    parser.add_argument("--chunks", type=CHUNKS, help="stages per rank v (interleaved, V)")
    add_auto_args(parser)


PRECISION_HELP = (
    "precision recipe of weights, gradients and optimizer state: bf16 (Megatron-LM: bf16 weights, "
    "fp32 gradients, fp32 main weights and Adam, 18 bytes), bf16-grads (ZeRO: 16 bytes), fp8 "
    "(DeepSeek-V3: bf16 AdamW moments, 14 bytes), fp32 or fp64 (default: the model's)"
)
SPLIT_HELP = (
    "how the model is cut into stages: balanced (by FLOPs, default), even (Megatron-LM: the "
    "transformer blocks split evenly, the embedding on the first stage, the head on the last) "
    "or N,N,... transformer (MLP: Linear) blocks per stage"
)


def add_model_args(parser: argparse.ArgumentParser, split: bool = True) -> None:
    """``--precision`` (and ``--split``): how the model is counted and cut, given to plan_run."""
    parser.add_argument("--precision", metavar="RECIPE", help=PRECISION_HELP)
    if split:
        parser.add_argument("--split", metavar="balanced|even|N,N,...", help=SPLIT_HELP)


RECOMPUTE_HELP = (
    "activation recomputation: none, full, selective, every:K, sqrt or budget:BYTES|P%% of the "
    "fullest rank's peak (whole model), or per stage as STAGE:POLICY,... e.g. 0:full,1:none"
)

OFFLOAD_HELP = (
    "activation offload to host memory: none, full, selective (what hides), budget:BYTES|P%% "
    "(least exposed transfer within the activation budget), or per stage as STAGE:none|full"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pebblesim",
        description="Pipeline-parallel training, made visible and measurable.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    adders = (_add_demo, _add_listings, _add_simulate, _add_train, _add_plot, _add_compare)
    for add in (*adders, add_advise, _add_tutorial, add_view):
        add(sub)
    return parser


def _add_demo(sub) -> None:
    demo = sub.add_parser("demo", help="the tour: train on Ray, simulate, draw every figure")
    demo.add_argument("--out", default="pebblesim-out", help="output folder (default %(default)s)")
    demo.add_argument("--address", help="Ray cluster address (default: start a local Ray)")
    demo.add_argument(
        "--recompute",
        help="activation recomputation for the trained schedules (see simulate --recompute)",
    )
    demo.add_argument(
        "--offload",
        help="activation offload for the trained schedules (see train --offload)",
    )


def _add_listings(sub) -> None:
    """The commands that list, check or export schedules and presets."""
    sub.add_parser("schedules", help="list the built-in schedules")
    sub.add_parser("presets", help="list the model and hardware presets")
    validate = sub.add_parser("validate", help="check a schedule CSV file")
    validate.add_argument("file", help="schedule CSV (one row per rank)")
    validate.add_argument("--microbatches", type=MICROBATCHES, required=True)
    export = sub.add_parser("export", help="write a built-in schedule as CSV")
    export.add_argument("--schedule", required=True)
    export.add_argument("--ranks", type=RANKS, required=True)
    export.add_argument("--microbatches", type=MICROBATCHES, required=True)
    export.add_argument("--chunks", type=CHUNKS)
    export.add_argument("--output", "-o", help="file to write (default: stdout)")
    add_auto_args(export)


def _add_simulate(sub) -> None:
    simulate = sub.add_parser("simulate", help="predict a run with the analytic executor")
    _add_schedule_args(simulate)
    simulate.add_argument("--costs", help="unit costs, e.g. F=1,I=1,W=1 (default all 1)")
    simulate.add_argument(
        "--comm-latency",
        type=LATENCY,
        default=0.0,
        help="time per point-to-point transfer (unit costs)",
    )
    simulate.add_argument(
        "--hardware",
        help="FLOP-derived costs: a preset (h100, a100-80gb,efficiency=0.45; see `pebblesim "
        "presets`) or flops=1e12,bandwidth=25e9,latency=5e-6",
    )
    simulate.add_argument("--profile", help="measured cost profile written by `train --out`")
    simulate.add_argument(
        "--model",
        help="model: a preset (gpt3-175b), transformer:layers=4,hidden=64,... or an MLP "
        "widths=2-64-64-3,activation=relu",
    )
    simulate.add_argument(
        "--batch-size", type=BATCH_SIZE, help="rows per step (default 32 per microbatch)"
    )
    simulate.add_argument("--steps", type=STEPS, default=1)
    simulate.add_argument(
        "--no-sync",
        action="store_true",
        help="let a rank start its next step without the optimizer barrier",
    )
    simulate.add_argument(
        "--cores",
        type=numbers.count(numbers.MAX_RANKS, "MAX_RANKS", minimum=0),
        help="ranks (x dp replicas) share this many cores (processor sharing); 0: every rank "
        "owns a device; default: the --profile's cores, else every rank owns a device",
    )
    add_layout_args(simulate)
    add_model_args(simulate)
    simulate.add_argument("--recompute", help=RECOMPUTE_HELP)
    simulate.add_argument("--offload", help=OFFLOAD_HELP)
    simulate.add_argument("--json", action="store_true", help="print one JSON object")
    simulate.add_argument(
        "--out", help="write timeline.json, trace.json and every figure (PNG and SVG) here"
    )
    simulate.add_argument(
        "--no-figures", action="store_true", help="with --out, write the files but no figures"
    )
    simulate.add_argument("--window", help=WINDOW_HELP)


def _add_train(sub) -> None:
    train = sub.add_parser("train", help="train for real on Ray, one actor per rank")
    _add_schedule_args(train)
    add_layout_args(train)
    add_model_args(train)
    train.add_argument("--steps", type=STEPS, default=3)
    train.add_argument("--model", help="model spec (default: an MLP deep enough for the stages)")
    train.add_argument(
        "--dataset",
        default="spiral",
        choices=["spiral", "regression", "chars"],
        help="spiral or regression for an MLP; a transformer always reads the character corpus",
    )
    train.add_argument(
        "--batch-size", type=BATCH_SIZE, help="rows per step (default 32 per microbatch)"
    )
    train.add_argument("--optimizer", default="sgd", choices=["sgd", "adam"])
    train.add_argument("--lr", type=LR, help="learning rate (default 0.5 sgd, 0.01 adam)")
    train.add_argument("--address", help="Ray cluster: auto, host:port or ray://host:port")
    train.add_argument(
        "--retries", type=RETRIES, default=0, help="restarts allowed after a rank dies"
    )
    train.add_argument(
        "--step-timeout",
        type=TIMEOUT,
        default=300.0,
        help="seconds before a step counts as hung (default %(default)s)",
    )
    train.add_argument("--check", action="store_true", help="compare with the sequential reference")
    train.add_argument(
        "--inject-fault",
        metavar="STEP:RANK",
        help="kill RANK during STEP (to see recovery; with --retries)",
    )
    train.add_argument("--recompute", help=RECOMPUTE_HELP)
    train.add_argument(
        "--offload",
        help="activation offload: each rank copies its cached arrays to the node's Ray object "
        "store after the forward and back before the backward: none, full, STAGE:none|full,..., "
        "or selective / budget:BYTES|P%% (solved on this machine after calibration)",
    )
    train.add_argument("--json", action="store_true", help="print one JSON object")
    train.add_argument("--out", help="write timeline.json, trace.json and profile.json here")


WINDOW_HELP = (
    "draw this stretch of time in the time-axis figures: warmup, steady, cooldown (of the "
    "first step) or T0:T1 (12.5:13, 12.5s:13s, 200ms:350ms)"
)


def _add_plot(sub) -> None:
    plot = sub.add_parser("plot", help="draw figures from a Timeline JSON")
    plot.add_argument("timeline")
    plot.add_argument(
        "--kind",
        default="all",
        choices=["pebble", "pipeline", "memory", "breakdown", "step", "grads", "all"],
    )
    plot.add_argument("--out", default=".", help="output folder (default: here)")
    plot.add_argument("--window", help=WINDOW_HELP)
    plot.add_argument(
        "--against",
        metavar="OTHER.json",
        help="also draw overlay.png: this run against another Timeline of the same "
        "configuration (e.g. train --out's predicted_timeline.json)",
    )


def _add_compare(sub) -> None:
    compare = sub.add_parser("compare", help="compare schedules on the same model and sizes")
    compare.add_argument("--ranks", type=RANKS, required=True)
    compare.add_argument("--microbatches", type=MICROBATCHES, required=True)
    compare.add_argument("--schedules", help="comma-separated names (default: all that fit)")
    compare.add_argument("--chunks", type=CHUNKS, default=2, help="chunks for interleaved")
    compare.add_argument("--model", help="model: a preset, transformer:... or an MLP spec")
    compare.add_argument("--costs", help="unit costs, e.g. F=1,I=1,W=1")
    compare.add_argument(
        "--hardware", help="FLOP-derived costs: a preset (adds whole-rank memory and fits)"
    )
    compare.add_argument("--batch-size", type=BATCH_SIZE, help="rows (sequences) per step")
    add_layout_args(compare)
    add_model_args(compare)
    compare.add_argument(
        "--recompute",
        help="recompute policies to compare, comma-separated (e.g. none,selective,full,sqrt); "
        "a per-stage policy's STAGE:POLICY terms stay together (none,0:full,1:none)",
    )
    compare.add_argument(
        "--offload",
        help="offload policies to compare, comma-separated (e.g. none,full,selective), each "
        "under every --recompute policy; STAGE:POLICY terms stay together as there",
    )
    compare.add_argument("--out", help="write the table (CSV, Markdown) and figure here")
    add_auto_args(compare)


def _add_tutorial(sub) -> None:
    tutorial = sub.add_parser(
        "tutorial", help="run the course notebooks: student and solutions pages in HTML"
    )
    tutorial.add_argument(
        "numbers", nargs="*", type=numbers.count(99, ""), metavar="N", help="parts (default: all)"
    )
    tutorial.add_argument(
        "--out", default="pebblesim-out/tutorial", help="output folder (default %(default)s)"
    )
