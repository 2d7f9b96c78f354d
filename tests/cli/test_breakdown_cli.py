"""The step-time breakdown on the command line: ``--json`` lists it per rank, adding up to the
step time; the text prints one row a rank, or the busiest and idlest of a big run; ``plot
--kind step`` and ``simulate --out`` draw the step figure."""

from __future__ import annotations

import json

import pytest

from simulator.cli import main
from simulator.timeline.breakdown import PARTS


def run_cli(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().out


def test_json_breakdown_adds_up_to_the_step_time(capsys):
    code, out = run_cli(
        capsys, "simulate", "--schedule", "interleaved-1f1b", "--ranks", 4, "--chunks", 2,
        "--microbatches", 8, "--model", "gpt3-1.3b", "--hardware", "a100-80gb", "--tp", 2,
        "--dp", 2, "--recompute", "full", "--steps", 2, "--json",
    )  # fmt: skip
    assert code == 0
    payload = json.loads(out)
    rows = payload["breakdown"]
    assert [r["rank"] for r in rows] == [0, 1, 2, 3]
    mean_step = sum(payload["step_times"]) / 2
    for row in rows:
        assert sum(row.get(p, 0.0) for p in PARTS) == pytest.approx(row["step_time"], rel=1e-12)
        assert row["step_time"] == pytest.approx(mean_step, rel=1e-12)
        assert row["recompute"] > 0 and row["tensor_comm"] > 0 and row["optimizer"] > 0


def test_text_lists_every_rank_of_a_small_run(capsys):
    code, out = run_cli(capsys, "simulate", "--schedule", "1f1b", "--ranks", 2, "--microbatches", 4)
    assert code == 0
    table = out.split("where each step goes")[1].splitlines()
    # 1F1B, p=2, m=4 at unit costs: each rank waits (p-1)/(m+p-1) = 20% of the step
    assert table[3].split() == [
        "0",
        "15",
        "units",
        "80.0%",
        "0.0%",
        "0.0%",
        "20.0%",
        "0.0%",
        "0.0%",
    ]
    assert table[5].split()[0] == "all"


def test_text_of_a_big_run_shows_the_busiest_and_the_idlest(capsys):
    code, out = run_cli(
        capsys, "simulate", "--schedule", "gpipe", "--ranks", 32, "--microbatches", 64
    )
    assert code == 0
    table = out.split("where each step goes")[1]
    assert "busiest" in table and "idlest" in table
    assert "32 ranks: the busiest (most compute) and the idlest shown" in table


def test_plot_and_simulate_write_the_step_figure(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["simulate", "--schedule", "1f1b", "--ranks", "2", "--microbatches", "4"]
    assert main([*argv, "--out", str(out)]) == 0
    assert (out / "step.png").exists() and (out / "step.svg").exists()
    drawn = tmp_path / "drawn"
    assert main(["plot", str(out / "timeline.json"), "--kind", "step", "--out", str(drawn)]) == 0
    assert sorted(p.name for p in drawn.glob("*.png")) == ["step.png"]
    capsys.readouterr()


def test_a_timeline_without_steps_is_one_sentence(tmp_path, capsys):
    path = tmp_path / "empty.json"
    path.write_text(json.dumps({"version": 1, "meta": {}, "events": []}))
    code = main(["plot", str(path), "--kind", "step", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err and len(err.strip().splitlines()) == 1
