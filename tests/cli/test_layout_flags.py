"""The layout's flags: one table, the same on ``simulate``, ``compare``, ``train`` and
``advise``, so an ``advise`` row runs again under ``compare`` as well as ``simulate``."""

from __future__ import annotations

import csv
import json
import shlex

import pytest

from simulator.cli import main
from simulator.cli.layout_flags import LAYOUT_FLAGS, layout_flags_text
from simulator.cli.parser import build_parser
from simulator.model.layout import Layout
from tests.cli.helpers import flags_of, quiet_main

MODEL = "transformer:layers=8,hidden=64,heads=4,seq=32,vocab=96,dtype=bfloat16"
SEARCH = ("--model", MODEL, "--hardware", "a100-40gb", "--gpus", "8", "--global-batch", "8")


@pytest.mark.parametrize("command", ["simulate", "compare", "train", "advise"])
def test_every_command_that_runs_a_layout_takes_every_layout_flag(command):
    assert {row.flag for row in LAYOUT_FLAGS} <= flags_of(command)
    assert "--distributed-optimizer" in flags_of(command)


def test_the_flags_give_the_layout_back():
    layout = Layout(pipeline=4, tensor=2, sequence_parallel=True, data=2, sharding=1)
    text = layout_flags_text(layout)
    assert text == "--tp 2 --sp --dp 2 --zero 1"
    args = build_parser().parse_args(
        ["simulate", "--schedule", "1f1b", "--ranks", "4", "--microbatches", "4", *text.split()]
    )
    degrees = {row.field: getattr(args, row.field) for row in LAYOUT_FLAGS}
    given = {field: value for field, value in degrees.items() if value is not None}
    assert Layout(pipeline=4, **given) == layout
    assert layout_flags_text(Layout()) == ""


@pytest.fixture(scope="module")
def rows():
    code, out = quiet_main(["advise", *SEARCH, "--memory-limit", "2MiB", "--top", "6", "--json"])
    assert code == 0
    return json.loads(out)["rows"]


def test_the_json_rows_carry_the_layout_text(rows):
    for row in rows:
        layout = Layout.parse(row["layout"]["text"])
        assert (layout.pipeline, layout.tensor, layout.data) == (row["pp"], row["tp"], row["dp"])
        assert layout.sharding == int(row["distributed_optimizer"])


def test_every_registry_row_runs_again_under_compare(rows, tmp_path):
    """``compare`` with a row's own flags predicts the row's step time and whole-rank memory."""
    checked = 0
    for index, row in enumerate(rows):
        if row["schedule"] == "auto":
            continue
        words = shlex.split(row["command"])[2:]  # past "pebblesim simulate"
        words[words.index("--schedule")] = "--schedules"
        out = tmp_path / str(index)
        code, _ = quiet_main(["compare", *words, "--out", out])
        assert code == 0, row["command"]
        with open(out / "compare.csv", newline="") as handle:
            (compared,) = list(csv.DictReader(handle))
        assert float(compared["makespan"]) == pytest.approx(row["step_time"], rel=1e-5)
        assert int(compared["rank_memory_max"]) == row["peak_memory"]
        checked += 1
    assert checked > 0


def test_a_fixed_degree_is_not_searched():
    code, out = quiet_main(["advise", *SEARCH, "--tp", "2", "--dp", "1", "--top", "50", "--json"])
    assert code == 0
    layouts = [Layout.parse(row["layout"]["text"]) for row in json.loads(out)["rows"]]
    assert layouts and all(x.tensor == 2 and x.data == 1 for x in layouts)


def test_contradicting_flags_are_one_sentence(capsys):
    code = main(["advise", *SEARCH, "--zero", "1", "--no-distributed-optimizer"])
    assert code != 0
    assert "contradict" in capsys.readouterr().err
