"""``simulate --cores`` and a profile's cores: which machine a prediction is for."""

from __future__ import annotations

import json

import pytest

from simulator.cli import main
from tests.cli.golden.cases import PROFILE


def makespan(capsys, *argv) -> float:
    assert (
        main(["simulate", "--schedule", "1f1b", "--ranks", "2", "--microbatches", "4", *argv]) == 0
    )
    return json.loads(capsys.readouterr().out)["makespan"]


@pytest.fixture
def one_core_profile(tmp_path):
    """The golden profile, measured (say) with its two ranks on one core."""
    data = json.loads(PROFILE.read_text())
    data.update(cores=1, call_overhead=0.0005, call_cpu=0.0002, background_load=0.05)
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_a_profile_predicts_its_own_machine_unless_told_otherwise(capsys, one_core_profile):
    own = makespan(capsys, "--profile", one_core_profile, "--json")
    assert own == makespan(capsys, "--profile", one_core_profile, "--cores", "1", "--json")
    devices = makespan(capsys, "--profile", one_core_profile, "--cores", "0", "--json")
    # two ranks on one core take longer than on a device each; on two cores the call CPU
    # and the background load still take their share
    assert own > makespan(capsys, "--profile", one_core_profile, "--cores", "2", "--json")
    assert makespan(capsys, "--profile", one_core_profile, "--cores", "2", "--json") >= devices
    # on 64 cores all that is left is the side work's share of each core while it runs
    # (1 / 64): every job runs at 1 - 1 / 64 of its speed at the slowest
    many = makespan(capsys, "--profile", one_core_profile, "--cores", "64", "--json")
    assert devices < many <= devices / (1 - 1 / 64) + 1e-12


def test_the_timeline_records_the_cores(capsys, one_core_profile, tmp_path):
    out = tmp_path / "run"
    makespan(capsys, "--profile", one_core_profile, "--out", str(out), "--json")
    assert json.loads((out / "timeline.json").read_text())["meta"]["cores"] == 1
    makespan(capsys, "--profile", one_core_profile, "--cores", "0", "--out", str(out), "--json")
    assert "cores" not in json.loads((out / "timeline.json").read_text())["meta"]


def test_negative_cores_are_refused_by_name(capsys):
    with pytest.raises(SystemExit) as exit_code:
        main(
            [
                "simulate",
                "--schedule",
                "1f1b",
                "--ranks",
                "2",
                "--microbatches",
                "4",
                "--cores",
                "-1",
            ]
        )
    assert exit_code.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.endswith("argument --cores: expected an integer of at least 0, got -1")
