"""``--schedule auto`` on the command line: every command takes it, and its mistakes are one
sentence."""

from __future__ import annotations

import json

import pytest

from schedules.csv_io import read_csv
from schedules.validate import validate
from simulator.cli import main


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


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
