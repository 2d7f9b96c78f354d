"""pebblesim advise: a ranked table of configurations that fit, each reproducible with the
``pebblesim simulate`` line it prints; bad input is one sentence."""

from __future__ import annotations

import json
import shlex

import pytest

from simulator.cli import main

MODEL = "transformer:layers=8,hidden=64,heads=4,seq=32,vocab=96,dtype=bfloat16"
SMALL = ("--model", MODEL, "--hardware", "a100-40gb", "--gpus", "8", "--global-batch", "8")


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def advice():
    """One search as JSON, shared by the tests that read it."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["advise", *SMALL, "--memory-limit", "2MiB", "--top", "5", "--json"])
    assert code == 0
    return json.loads(out.getvalue())


def test_every_row_fits_and_rows_are_ranked_by_step_time(advice):
    rows = advice["rows"]
    assert len(rows) == 5
    assert all(row["peak_memory"] <= advice["memory_limit"] == 2 * 2**20 for row in rows)
    times = [row["step_time"] for row in rows]
    assert times == sorted(times)
    assert advice["considered"] == (
        advice["pruned_memory"]
        + advice["pruned_time"]
        + advice["simulated"]
        + advice["refused"]
        + advice["too_large"]
    )
    assert advice["pruned_memory"] > 0 and advice["pruned_time"] > 0
    assert {row["binds"] for row in rows} <= {"memory", "bubble", "compute"}


@pytest.mark.parametrize("which", ["auto", "registry"])
def test_a_printed_command_reproduces_its_row(capsys, advice, which):
    row = next(r for r in advice["rows"] if (r["schedule"] == "auto") == (which == "auto"))
    words = shlex.split(row["command"])
    assert words[:2] == ["pebblesim", "simulate"]
    code, out, _ = run(capsys, *words[1:], "--json")
    assert code == 0
    run_ = json.loads(out)
    assert run_["step_time"] == row["step_time"]
    assert max(r["memory"]["total"] for r in run_["per_rank"]) == row["peak_memory"]
    assert all(r["memory"]["fits"] for r in run_["per_rank"])


def test_the_text_table_lists_rows_commands_and_counts(capsys):
    code, out, err = run(capsys, "advise", *SMALL, "--top", "3")
    assert code == 0
    assert err == ""  # no progress bar off a terminal
    lines = out.splitlines()
    assert lines[2].split()[:3] == ["#", "schedule", "p"]
    commands = [line for line in lines if "pebblesim simulate" in line]
    assert len(commands) == 3
    assert any(line.startswith("searched ") and "simulated" in line for line in lines)


def test_out_writes_the_pareto_figure(capsys, tmp_path):
    code, out, _ = run(capsys, "advise", *SMALL, "--top", "3", "--out", tmp_path)
    assert code == 0
    for name in ("pareto.png", "pareto.svg", "advise.json"):
        assert (tmp_path / name).stat().st_size > 0
    assert json.loads((tmp_path / "advise.json").read_text())["rows"]


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"--model": "gpt5"}, "unknown model preset"),
        ({"--model": "2-8-8-3"}, "transformers"),
        ({"--hardware": "flops=1e12"}, "GPU preset"),
        ({"--hardware": "q100"}, "unknown hardware preset"),
        ({"--gpus": "12"}, "whole number of 8-GPU"),
        ({"--memory-limit": "lots"}, "--memory-limit"),
        ({"--memory-limit": "1KiB"}, "no configuration"),
        ({"--schedules": "zb-x"}, "unknown schedule"),
        ({"--model": MODEL + ",seq=64", "--seq": "16"}, "seq twice"),
    ],
)
def test_bad_input_is_one_sentence(capsys, changes, says):
    argv = dict(zip(SMALL[::2], SMALL[1::2], strict=True))
    argv.update(changes)
    code, out, err = run(capsys, "advise", *(x for kv in argv.items() for x in kv))
    assert code in (1, 2)
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert says in lines[0]
    assert out == ""


@pytest.mark.parametrize(("flag", "value"), [("--gpus", "0"), ("--global-batch", "nan")])
def test_a_malformed_number_is_argparses_exit_2(capsys, flag, value):
    argv = dict(zip(SMALL[::2], SMALL[1::2], strict=True))
    argv[flag] = value
    with pytest.raises(SystemExit) as exit_info:
        main(["advise", *(x for kv in argv.items() for x in kv)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "expected a positive integer" in err.strip().splitlines()[-1]
