"""Published, measured large-scale training runs, each with its citation, and the split of them
that a cost model may be fitted on.

Why here: a cost model's constants are only trustworthy if it predicts runs it was not fitted
on. ``PUBLISHED_RUNS`` are every row; ``CALIBRATION_SPLIT`` names the at most one third a model
may fit its per-GPU parameters on, spread over papers, sizes and GPUs; the rest are held out and
are what its error is reported on (``benchmarks/published_runs.py`` prints both).

Rows: Narayanan et al. 2021 Table 1 (``narayanan``), Korthikanti et al. 2022 Table 5 and
section 6.3 (``korthikanti``), Llama 3 Table 4 (``llama3``), and MegaScale's Megatron-LM
baseline, Table 2 and Figure 9 (``megascale``). Every field a paper does not publish is named in
the row's ``derived`` with the rule that set it.
"""

from simulator.analytic.published_runs import korthikanti, llama3, megascale, narayanan
from simulator.analytic.published_runs.run import (
    FIGURE_KINDS,
    Figure,
    PublishedRun,
    Source,
)

PUBLISHED_RUNS: tuple[PublishedRun, ...] = (
    *narayanan.RUNS,
    *korthikanti.RUNS,
    *llama3.RUNS,
    *megascale.RUNS,
)

CALIBRATION_SPLIT: tuple[str, ...] = (
    # Narayanan Table 1: a small data-parallel model, a mid-size pipeline, a large interleaved one
    "narayanan-t1-3.6b",
    "narayanan-t1-39.1b",
    "narayanan-t1-310.1b",
    # Korthikanti Table 5: the smallest (no pipeline) and the largest, one per recompute policy
    "korthikanti-t5-22b-selective",
    "korthikanti-t5-1t-full",
    # MegaScale's Megatron-LM baseline: both batches of the 175B strong scaling, and the 530B
    "megascale-t2-175b-512gpu",
    "megascale-t2-175b-6144gpu",
    "megascale-f9-530b-4480gpu",
    # Llama 3 Table 4: the H100 row at 8K tokens on 8,192 GPUs
    "llama3-t4-8k-8192gpu",
)
"""The rows a cost model may fit on (at most a third); every other row is held out."""


def run_named(run_id: str) -> PublishedRun:
    """The row called ``run_id``."""
    for run in PUBLISHED_RUNS:
        if run.id == run_id:
            return run
    raise KeyError(run_id)


def fitted_runs() -> tuple[PublishedRun, ...]:
    return tuple(run_named(run_id) for run_id in CALIBRATION_SPLIT)


def held_out_runs() -> tuple[PublishedRun, ...]:
    return tuple(run for run in PUBLISHED_RUNS if run.id not in CALIBRATION_SPLIT)


__all__ = [
    "CALIBRATION_SPLIT",
    "FIGURE_KINDS",
    "PUBLISHED_RUNS",
    "Figure",
    "PublishedRun",
    "Source",
    "fitted_runs",
    "held_out_runs",
    "run_named",
]
