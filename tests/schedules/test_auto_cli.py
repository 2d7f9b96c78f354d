"""``--schedule auto`` on the command line: the glue from a model and a cost model to an
``AutoProblem`` is exact (memory and time equal the analytic executor's), and every command
takes it."""

from __future__ import annotations

import json

import pytest

from schedules.auto import schedule_peaks, schedule_timing
from schedules.csv_io import read_csv
from schedules.validate import validate
from simulator.analytic.executor import simulate
from simulator.cli import main
from simulator.cli.auto import empty_schedule, parse_limit, problem_for, schedule_for
from simulator.cli.workflows import make_costs, make_plan
from simulator.errors import PebbleError

MODELS = [
    None,  # simulate's default: one 1024-wide Linear+ReLU block per stage
    "widths=2-16-16-16-16-16-16-16-16-3,activation=tanh,layernorm=1",
    "transformer:layers=8,hidden=32,heads=4,seq=16,vocab=64",
]


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(("layout", "limit"), [("loop", "3x"), ("loop", "6x"), ("v", "4x")])
def test_predicted_memory_and_time_are_the_analytic_executors(model, layout, limit):
    """The footprints' deltas (F's bytes, what I leaves and how far it rises, what W frees)
    and the cost model's times and transfers make a problem whose peaks and makespan are the
    analytic executor's, to the byte and to the float."""
    plan = make_plan(empty_schedule(4, 8, layout), model)
    costs = make_costs(plan, "F=1,I=1.2,W=0.7", comm_latency=0.1)
    problem = problem_for(plan, costs, limit, layout)
    schedule = schedule_for(plan, costs, limit, layout)
    validate(schedule)
    timeline = simulate(schedule, costs, plan.spec, plan.partition, plan.microbatch_rows)
    summary = timeline.summary()
    assert schedule_timing(problem, schedule).makespan == pytest.approx(summary.makespan, rel=1e-12)
    measured = [r.peak_activation_bytes for r in summary.per_rank]
    assert schedule_peaks(problem, schedule) == pytest.approx(measured, abs=0.5)
    assert max(measured) <= problem.memory_limit[0]


def test_limits_read_bytes_units_and_microbatches():
    assert parse_limit(None, 10) is None
    assert parse_limit("2.5e9", 10) == 2.5e9
    assert parse_limit("80GiB", 10) == 80 * 2**30
    assert parse_limit("3 kB", 10) == 3000
    assert parse_limit("8x", 10) == 80
    for bad in ("", "x", "-1x", "nanGB", "3 parsecs", "1e400"):
        with pytest.raises(PebbleError) as error:
            parse_limit(bad, 10)
        assert "\n" not in str(error.value)


def test_simulate_auto_stays_within_the_limit_in_bytes(capsys):
    code, out, _ = run_cli(
        capsys, "simulate", "--schedule", "auto", "--ranks", 4, "--microbatches", 8,
        "--memory-limit", "3MiB", "--costs", "F=1,I=1,W=0.5", "--json",
    )  # fmt: skip
    assert code == 0
    payload = json.loads(out)
    assert payload["schedule"] == "auto"
    assert max(r["peak_activation_bytes"] for r in payload["per_rank"]) <= 3 * 2**20


def test_simulate_auto_v_and_no_sync(capsys):
    code, out, _ = run_cli(
        capsys, "simulate", "--schedule", "auto", "--layout", "v", "--ranks", 3,
        "--microbatches", 6, "--memory-limit", "3x", "--no-sync", "--steps", 2, "--json",
    )  # fmt: skip
    assert code == 0
    assert json.loads(out)["chunks"] == 2


def test_export_auto_round_trips_through_csv(capsys, tmp_path):
    target = tmp_path / "auto.csv"
    code, _, _ = run_cli(
        capsys, "export", "--schedule", "auto", "--ranks", 3, "--microbatches", 6,
        "--chunks", 2, "--memory-limit", "3x", "-o", target,
    )  # fmt: skip
    assert code == 0
    schedule = read_csv(target, 6)
    assert schedule.num_stages == 6
    validate(schedule)


def test_compare_puts_auto_beside_the_hand_written(capsys):
    code, out, _ = run_cli(
        capsys, "compare", "--ranks", 4, "--microbatches", 8, "--schedules", "1f1b,zb-h2,auto",
        "--memory-limit", "4x",
    )  # fmt: skip
    assert code == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:] if line.strip()}
    assert set(rows) == {"1f1b", "zb-h2", "auto"}
    assert float(rows["auto"][1]) <= float(rows["1f1b"][1])  # makespan


@pytest.mark.parametrize(
    ("argv", "text"),
    [
        (["simulate", "--schedule", "1f1b", "--memory-limit", "3x"], "apply to --schedule auto"),
        (["simulate", "--schedule", "auto", "--memory-limit", "0.5x"], "no schedule fits"),
        (["simulate", "--schedule", "auto", "--memory-limit", "3 parsecs"], "cannot read"),
        (["simulate", "--schedule", "auto", "--chunks", "3"], "not --chunks 3"),
        (["simulate", "--schedule", "auto", "--layout", "loop", "--chunks", "2"], "1 stage"),
        (["simulate", "--schedule", "auto", "--schedule-file", "x.csv"], "not both"),
        (["compare", "--schedules", "1f1b", "--memory-limit", "2x"], "add it to --schedules"),
    ],
)
def test_mistakes_are_one_sentence(capsys, argv, text):
    code, _, err = run_cli(capsys, *argv, "--ranks", 2, "--microbatches", 4)
    assert code != 0
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("pebblesim: error: "), err
    assert text in err
