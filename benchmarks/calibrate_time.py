"""Fit the roofline's three numbers per GPU type on the named calibration rows, and print the
error on every row.

Why a benchmark and not a test: a fit simulates the fitted rows a few hundred times (minutes);
the test (``tests/simulator/test_time_calibration.py``) only checks the fitted values that
``simulator.analytic.hardware`` carries against the held-out rows.

Fitted per GPU type, on ``CALIBRATION_SPLIT``'s rows of that GPU (``published_runs``):
``gemm_efficiency``, ``gemm_dimension`` and ``kernel_floor``. With fewer than three rows for a
GPU, only ``gemm_efficiency`` is fitted and the other two are taken from the GPU type with the
most rows (said in the output). The objective is the mean squared log error of the predicted
step time. Nelder-Mead from scipy (``pip install scipy``).

    python benchmarks/calibrate_time.py           # fit, then print every row
    python benchmarks/calibrate_time.py --check   # print every row with the presets' values
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time

from simulator.analytic.hardware import HARDWARE_PRESETS
from simulator.analytic.published_runs import CALIBRATION_SPLIT, PUBLISHED_RUNS
from simulator.analytic.run_plan import simulate_plan

FITTED = ("gemm_efficiency", "gemm_dimension", "kernel_floor")


def predicted(run, values: dict[str, float]) -> float:
    """Seconds per step of ``run`` on its GPU with ``values`` for the fitted numbers."""
    overrides = ",".join(f"{key}={value:.6g}" for key, value in values.items())
    text = run.gpu + ("," + overrides if overrides else "")
    timeline = simulate_plan(run.plan(hardware=text))
    return timeline.throughput()["step_time"]


def log_errors(runs, values: dict[str, float]) -> list[float]:
    return [math.log(predicted(run, values) / run.step_seconds()) for run in runs]


def fit(runs, start: dict[str, float], names: tuple[str, ...]) -> dict[str, float]:
    """The values of ``names`` (others as in ``start``) minimising the mean squared log error
    on ``runs``; searched in log space, so every value stays positive."""
    from scipy.optimize import minimize  # a benchmark-only dependency

    def objective(point):
        values = dict(start, **{n: math.exp(x) for n, x in zip(names, point, strict=True)})
        if values["gemm_efficiency"] > 1:
            return 1e9
        errors = log_errors(runs, values)
        return sum(e * e for e in errors) / len(errors)

    first = [math.log(start[n]) for n in names]
    result = minimize(
        objective, first, method="Nelder-Mead", options={"maxfev": 60, "xatol": 0.01, "fatol": 1e-5}
    )
    return dict(start, **{n: math.exp(x) for n, x in zip(names, result.x, strict=True)})


def current(gpu: str) -> dict[str, float]:
    preset = HARDWARE_PRESETS[gpu]
    return {name: getattr(preset, name) for name in FITTED}


def report(values_of: dict[str, dict[str, float]]) -> None:
    held, fitted = [], []
    for run in PUBLISHED_RUNS:
        if run.pending:
            continue
        seconds = predicted(run, values_of.get(run.gpu, current(run.gpu)))
        error = seconds / run.step_seconds() - 1
        split = "fitted" if run.id in CALIBRATION_SPLIT else "held out"
        (fitted if split == "fitted" else held).append(abs(error))
        print(f"{run.id:32} {run.step_seconds():9.3f} {seconds:9.3f} {error:+7.1%}  {split}")
    for label, errors in (("held out", held), ("fitted", fitted)):
        print(
            f"{label} ({len(errors)} rows): median |error| {statistics.median(errors):.1%}, "
            f"worst {max(errors):.1%}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="no fit: the presets' values")
    args = parser.parse_args()
    began = time.perf_counter()
    values_of: dict[str, dict[str, float]] = {}
    if not args.check:
        by_gpu: dict[str, list] = {}
        for run in PUBLISHED_RUNS:
            if run.id in CALIBRATION_SPLIT and not run.pending:
                by_gpu.setdefault(run.gpu, []).append(run)
        order = sorted(by_gpu, key=lambda gpu: -len(by_gpu[gpu]))
        for gpu in order:
            runs = by_gpu[gpu]
            full = len(runs) >= len(FITTED)
            start = current(gpu) if full else dict(values_of[order[0]])
            names = FITTED if full else ("gemm_efficiency",)
            values_of[gpu] = fit(runs, start, names)
            shared = "" if full else f" (others from {order[0]})"
            rows = ", ".join(run.id for run in runs)
            print(f"{gpu}: fitted {names} on {rows}{shared}")
            print("   " + ", ".join(f"{k}={v:.4g}" for k, v in values_of[gpu].items()))
    report(values_of)
    print(f"took {time.perf_counter() - began:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
