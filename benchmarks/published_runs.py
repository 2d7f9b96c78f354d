"""Benchmark: pebblesim's predicted step time against every published measured run
(``simulator.analytic.published_runs``), fitted and held-out rows marked.

For each row: the published figure, the seconds per step it implies (by the paper's own FLOP
count), pebblesim's predicted step time on the row's GPU preset (planned as ``simulate`` plans
it: ``PublishedRun.plan`` -> ``simulate_plan``) and the error (predicted / published - 1). Then
the median and worst |error| over the held-out rows (and, for reference, the fitted ones), and
how long it took. A row marked pending is listed with its reason and left out of the
statistics; a row that fails to plan or simulate is an error (exit status 1).

Issue 23's targets on the held-out rows: median |error| <= 4%, worst <= 10%.

Run: python benchmarks/published_runs.py [--only ID_PREFIX] [--hardware PRESET_OVERRIDE]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulator.analytic.published_runs import (  # noqa: E402
    CALIBRATION_SPLIT,
    PUBLISHED_RUNS,
    PublishedRun,
)
from simulator.analytic.run_plan import simulate_plan  # noqa: E402
from simulator.errors import PebbleError  # noqa: E402

_HEADER = (
    f"{'id':32} {'source':22} {'GPU':9} {'layout':26} {'published':>34} "
    f"{'implied s':>10} {'predicted s':>11} {'error':>8} {'sim s':>6}  split"
)


def predict(run: PublishedRun, hardware: str | None) -> tuple[float, float]:
    """(predicted seconds per step, wall seconds the prediction took)."""
    began = time.perf_counter()
    timeline = simulate_plan(run.plan(hardware))
    return timeline.throughput()["step_time"], time.perf_counter() - began


def _line(run: PublishedRun, tail: str) -> str:
    source = run.source.short if len(run.source.short) <= 22 else run.source.short[:22]
    return f"{run.id:32} {source:22} {run.gpu:9} {run.layout:26} {run.measured.text():>34} {tail}"


def _stats(label: str, errors: list[float]) -> str:
    if not errors:
        return f"{label}: no rows"
    absolute = [abs(e) for e in errors]
    return (
        f"{label} ({len(errors)} rows): median |error| {statistics.median(absolute):.1%}, "
        f"worst {max(absolute):.1%}, mean error {statistics.mean(errors):+.1%}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="only rows whose id starts with this")
    parser.add_argument("--hardware", default=None, help="a preset text for every row")
    args = parser.parse_args()
    began = time.perf_counter()
    errors: dict[str, list[float]] = {"fitted": [], "held out": []}
    failed = 0
    print(_HEADER)
    for run in PUBLISHED_RUNS:
        if not run.id.startswith(args.only):
            continue
        split = "fitted" if run.id in CALIBRATION_SPLIT else "held out"
        implied = run.step_seconds()
        if run.pending:
            print(_line(run, f"{implied:10.3f} {'pending':>11} {'':>8} {'':>6}  {run.pending}"))
            continue
        try:
            predicted, took = predict(run, args.hardware)
        except PebbleError as error:
            failed += 1
            print(_line(run, f"{implied:10.3f} {'FAILED':>11}  {error}"))
            continue
        error = predicted / implied - 1
        errors[split].append(error)
        print(_line(run, f"{implied:10.3f} {predicted:11.3f} {error:+8.1%} {took:6.2f}  {split}"))
    print()
    print(_stats("held out", errors["held out"]))
    print(_stats("fitted", errors["fitted"]))
    print(f"took {time.perf_counter() - began:.1f} s")
    if failed:
        print(f"{failed} row(s) failed to plan or simulate.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
