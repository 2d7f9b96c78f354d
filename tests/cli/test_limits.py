"""Resource bounds are checked before anything is allocated, in one sentence naming the limit."""

from __future__ import annotations

import tracemalloc

import pytest

from simulator.cli import main
from simulator.run.limits import BYTES_PER_ACTION, machine_memory, max_actions


def run(capsys, *argv) -> tuple[int, str]:
    tracemalloc.start()
    code = main([str(a) for a in argv])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 200 * 2**20, "refusals must come before the work is allocated"
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ("simulate", "--schedule", "1f1b", "--ranks", 99999, "--microbatches", 999999),
        ("simulate", "--schedule", "1f1b", "--ranks", 1000, "--microbatches", 5000),
        ("export", "--schedule", "gpipe", "--ranks", 99999, "--microbatches", 999999),
        ("compare", "--ranks", 1000, "--microbatches", 1000),
        ("simulate", "--schedule", "zb-h1", "--ranks", 100, "--microbatches", 1000, "--steps", 99),
    ],
)
def test_runs_that_cannot_fit_are_refused_up_front(capsys, argv):
    code, err = run(capsys, *argv)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "the limit here is" in lines[0] and "PEBBLESIM_MAX_ACTIONS" in err


def test_the_limit_follows_the_machine_and_the_environment(monkeypatch, capsys):
    assert max_actions() == int(0.5 * machine_memory() / BYTES_PER_ACTION)
    monkeypatch.setenv("PEBBLESIM_MAX_ACTIONS", "100")
    assert max_actions() == 100
    code, err = run(capsys, "simulate", "--schedule", "1f1b", "--ranks", 4, "--microbatches", 16)
    assert code == 1 and "192 actions" in err and "limit here is 100" in err
    code, _ = run(capsys, "simulate", "--schedule", "1f1b", "--ranks", 2, "--microbatches", 8)
    assert code == 0


def test_too_many_ray_actors_are_refused_before_ray_starts(capsys):
    code, err = run(capsys, "train", "--schedule", "1f1b", "--ranks", 600, "--microbatches", 4)
    assert code == 1 and "Ray actors; the limit is 512" in err


def test_a_csv_with_an_absurd_microbatch_count_is_refused_before_validation(
    monkeypatch, tmp_path, capsys
):
    monkeypatch.setenv("PEBBLESIM_MAX_ACTIONS", "1000")
    path = tmp_path / "s.csv"
    path.write_text("0F0,0B0\n1F0,1B0\n")
    code, err = run(capsys, "validate", path, "--microbatches", 100000)
    assert code == 1 and "(stage, microbatch) pairs" in err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (("compare", "--ranks", 2, "--microbatches", 4, "--schedules", ",,"), "names no schedule"),
        (
            ("compare", "--ranks", 5, "--microbatches", 3, "--schedules", "dualpipe-v"),
            "at least as many microbatches",
        ),
        (
            ("simulate", "--schedule", "1f1b", "--schedule-file", "x.csv", "--microbatches", 4),
            "not both",
        ),
        (
            ("simulate", "--schedule-file", "x.csv", "--chunks", 2, "--microbatches", 4),
            "--chunks does not apply",
        ),
        (
            (
                "simulate",
                "--schedule",
                "1f1b",
                "--ranks",
                2,
                "--microbatches",
                4,
                "--model",
                "widths=2-4-3,widths=2-5-3",
            ),
            "gives widths twice",
        ),
    ],
)
def test_conflicts_and_empty_choices_are_one_sentence(capsys, argv, needle):
    code, err = run(capsys, *argv)
    assert code == 1 and needle in err and len(err.strip().splitlines()) == 1
