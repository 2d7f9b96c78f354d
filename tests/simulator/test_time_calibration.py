"""The roofline's fitted numbers against the published runs they were not fitted on.

``benchmarks/calibrate_time.py`` fits ``gemm_efficiency``, ``gemm_dimension`` and
``kernel_floor`` per GPU type on ``CALIBRATION_SPLIT`` (9 of 33 rows); the presets in
``simulator.analytic.hardware`` carry the result. This test simulates every held-out row with
the presets as they are and holds the errors to the issue's targets, median 4% and worst 10%,
on every held-out row, Llama 3's CP 16 row included. Both are met since the fit was redone
after the backward's tensor-parallel collectives ran under its GEMMs as Megatron-LM runs them
(``tensor_comm``), a fused attention computed only its causal tiles at its own backward rate
(``flash_attention.causal_share``, ``roofline.FUSED_BACKWARD_RATE``) and a selective
recompute was priced as the kernels it re-runs (``roofline.selective_seconds``): median 3.3%,
worst 9.3% (MegaScale 530B on 11,200 GPUs, 9% fast: Korthikanti et al. measured the same
530B layout at 39.15 s on 2,240 GPUs, which we predict within 1%, MegaScale's baseline at
43.1 s).
"""

from __future__ import annotations

import statistics

import pytest

from simulator.analytic.hardware import HARDWARE_PRESETS
from simulator.analytic.published_runs import CALIBRATION_SPLIT, PUBLISHED_RUNS, held_out_runs
from simulator.analytic.run_plan import simulate_plan

HELD_OUT_MEDIAN = 0.04  # the target; the fit reached 3.3%
HELD_OUT_WORST = 0.10  # the target; the fit reached 9.3% (MegaScale 530B, 11,200 GPUs)


def _error(run) -> float:
    seconds = simulate_plan(run.plan()).throughput()["step_time"]
    return seconds / run.step_seconds() - 1


@pytest.fixture(scope="module")
def held_out_errors() -> dict[str, float]:
    return {run.id: _error(run) for run in held_out_runs() if not run.pending}


def test_the_fit_used_at_most_a_third_of_the_rows_and_the_presets_carry_it():
    assert 3 * len(CALIBRATION_SPLIT) <= len(PUBLISHED_RUNS)
    for name in ("a100-80gb", "h100-80gb"):
        preset = HARDWARE_PRESETS[name]
        assert 0 < preset.gemm_efficiency <= 1 and preset.gemm_dimension > 0
        assert 0 < preset.kernel_floor < 1e-3


def test_held_out_published_runs_are_predicted_within_the_fits_error(held_out_errors):
    errors = [abs(e) for e in held_out_errors.values()]
    assert len(errors) >= 20
    assert statistics.median(errors) <= HELD_OUT_MEDIAN
    assert max(errors) <= HELD_OUT_WORST


def test_every_paper_family_is_within_the_worst_case(held_out_errors):
    """No paper's rows as a whole are off: each family's median is inside the median target
    doubled (the worst case is the bound for single rows)."""
    families: dict[str, list[float]] = {}
    for run_id, error in held_out_errors.items():
        families.setdefault(run_id.split("-")[0], []).append(abs(error))
    assert len(families) >= 3
    for family, errors in families.items():
        assert statistics.median(errors) <= 2 * HELD_OUT_MEDIAN, family
