"""One published, measured training run as data: what ran, where it is published, what was
measured, and the seconds per step the measurement implies.

Why data and not a test table: the cost model is fitted on some of these runs and checked on the
rest, a benchmark prints them, and tests check that every row agrees with its paper. All three
read the same rows, so a number is typed once, next to its citation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from simulator.analytic.hardware import HARDWARE_PRESETS
from simulator.analytic.published_runs import flops
from simulator.errors import PebbleError
from simulator.model.layout import Layout
from simulator.model.parse import parse_model
from simulator.run.plan import CostSource, RunPlan, plan_run
from simulator.run.schedule_source import make_schedule


@dataclass(frozen=True)
class Source:
    """Where a run is published: the paper, its arXiv id, the table (or section or figure) and
    the row, so a reader finds the number in one look."""

    paper: str
    arxiv: str
    table: str
    row: str

    @property
    def short(self) -> str:
        return f"{self.paper.split()[0]} {self.table}"


@dataclass(frozen=True)
class Figure:
    """A number as the paper prints it, what it counts (``kind``, a key of ``FIGURE_KINDS``) and
    half a unit of its last printed digit (``rounding``: 0.5 for "163", 0.005 for "13.75"),
    which bounds how far the exact value may be from it."""

    value: float
    kind: str
    rounding: float

    def __post_init__(self) -> None:
        if self.kind not in FIGURE_KINDS:
            raise PebbleError(f"unknown published figure kind {self.kind!r}.")
        if not self.value > 0 or not self.rounding > 0:
            raise PebbleError(f"a published figure and its rounding must be positive: {self}.")

    @property
    def relative_rounding(self) -> float:
        return self.rounding / self.value

    def text(self) -> str:
        return f"{self.value:g} {FIGURE_KINDS[self.kind][0]}"


SCHEDULES = ("1f1b", "interleaved-1f1b")
RECOMPUTE = ("none", "selective", "full")


@dataclass(frozen=True)
class PublishedRun:
    """A measured run with its citation. ``model`` is a pebblesim model text, ``layout`` a
    ``Layout`` text, ``global_batch`` and ``microbatch`` are in sequences. ``measured`` is the
    headline figure; ``cross_checks`` are the other figures the paper prints for the same run
    (each implies the same step time within rounding). ``derived`` names every field the paper
    does not publish and the rule it was set by; ``pending`` says why pebblesim cannot simulate
    the run yet (None: it can)."""

    id: str
    source: Source
    gpu: str
    model: str
    stated_parameters: float
    layout: str
    gpus: int
    global_batch: int
    microbatch: int
    schedule: str
    recompute: str
    precision: str
    measured: Figure
    cross_checks: tuple[Figure, ...] = ()
    derived: tuple[str, ...] = ()
    pending: str | None = None

    def __post_init__(self) -> None:
        if self.gpu not in HARDWARE_PRESETS:
            raise PebbleError(f"{self.id}: unknown hardware preset {self.gpu!r}.")
        if self.schedule not in SCHEDULES or self.recompute not in RECOMPUTE:
            raise PebbleError(f"{self.id}: schedule or recompute policy not known.")

    @property
    def layout_value(self) -> Layout:
        return Layout.parse(self.layout)

    @property
    def microbatches(self) -> int:
        """Microbatches per step on one data-parallel replica."""
        return self.global_batch // (self.layout_value.data * self.microbatch)

    def spec(self):
        return parse_model(self.model)

    def step_seconds(self, figure: Figure | None = None) -> float:
        """The seconds per step ``figure`` (default: the headline) implies, by its kind's rule."""
        figure = figure or self.measured
        return FIGURE_KINDS[figure.kind][1](self, figure.value)

    def plan(self, hardware: str | None = None) -> RunPlan:
        """The run as pebblesim plans it, timed on ``hardware`` (default: its GPU's preset)."""
        layout = self.layout_value
        chunks = layout.chunks if self.schedule == "interleaved-1f1b" else None
        schedule = make_schedule(self.schedule, layout.pipeline, self.microbatches, chunks)
        return plan_run(
            schedule,
            self.model,
            batch_size=self.global_batch,
            layout=layout,
            recompute=None if self.recompute == "none" else self.recompute,
            costs=CostSource(hardware=hardware or self.gpu),
        )


def _peak(run: PublishedRun) -> float:
    return HARDWARE_PRESETS[run.gpu].peak_flops


def _per_second(count) -> Callable[[PublishedRun, float], float]:
    """Seconds from a FLOP/s figure: ``count(spec, batch)`` over (FLOP/s per GPU x GPUs)."""

    def seconds(run: PublishedRun, flops_per_second_per_gpu: float) -> float:
        return count(run.spec(), run.global_batch) / (flops_per_second_per_gpu * run.gpus)

    return seconds


def _scaled(count, scale) -> Callable[[PublishedRun, float], float]:
    """``_per_second(count)`` after turning the figure into FLOP/s per GPU with ``scale``."""
    seconds = _per_second(count)
    return lambda run, value: seconds(run, scale(run, value))


def _tokens(run: PublishedRun, tokens_per_second: float) -> float:
    return run.global_batch * run.spec().config.seq / tokens_per_second


_TERA = 1e12
FIGURE_KINDS = {  # kind: (unit shown, seconds per step from the value)
    "seconds_per_iteration": ("s/iteration", lambda run, value: value),
    "tokens_per_second": ("tokens/s", _tokens),
    # Narayanan 2021 Table 1: FLOP/s of equation (3), which counts the recomputed forward.
    "eq3_tflops_per_gpu": (
        "TFLOP/s/GPU (eq. 3, recompute counted)",
        _scaled(flops.narayanan_eq3, lambda run, v: v * _TERA),
    ),
    "eq3_percent_of_peak": (
        "% of peak (eq. 3)",
        _scaled(flops.narayanan_eq3, lambda run, v: v / 100 * _peak(run)),
    ),
    "eq3_aggregate_pflops": (
        "PFLOP/s aggregate (eq. 3)",
        _scaled(flops.narayanan_eq3, lambda run, v: v * 1e15 / run.gpus),
    ),
    # Korthikanti 2022 Table 5 (and MegaScale, which reproduces it): MFU of equation (7).
    "eq7_mfu_percent": (
        "% MFU (eq. 7)",
        _scaled(flops.korthikanti_eq7, lambda run, v: v / 100 * _peak(run)),
    ),
    "eq8_hfu_percent": (
        "% HFU (eq. 8, selective recompute)",
        _scaled(flops.korthikanti_eq8, lambda run, v: v / 100 * _peak(run)),
    ),
    # Llama 3 Table 4: BF16 model FLOP/s per GPU; the paper gives no formula (see flops).
    "model_tflops_per_gpu": (
        "model TFLOP/s/GPU",
        _scaled(flops.pebblesim_model_flops, lambda run, v: v * _TERA),
    ),
    "model_mfu_percent": (
        "% BF16 MFU",
        _scaled(flops.pebblesim_model_flops, lambda run, v: v / 100 * _peak(run)),
    ),
}
