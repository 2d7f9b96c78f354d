"""Behaviour pinned before the layered tree: CLI outputs equal the recorded golden ones.

The grid (``tests/cli/golden/cases.py``) covers every schedule family at several sizes and every
cost source (unit, FLOPs, a measured profile, dp, several steps with and without the barrier),
the compare tables, the exported CSVs and the timeline.json files ``simulate --out`` writes.
Numbers are compared to a relative 1e-12 (a reordered float sum may differ in the last bit);
everything else exactly.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from simulator.cli import main
from tests.cli.golden.cases import HERE, simulate_cases, text_cases, timeline_cases

GOLDEN = json.loads((HERE / "outputs.json").read_text())


def assert_same(actual, expected, where: str = "") -> None:
    if isinstance(expected, dict):
        assert isinstance(actual, dict), where
        assert sorted(actual) == sorted(expected), where
        for key in expected:
            assert_same(actual[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), where
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same(a, e, f"{where}[{i}]")
    elif isinstance(expected, float) and not isinstance(actual, bool):
        assert isinstance(actual, (int, float)), where
        assert math.isclose(actual, expected, rel_tol=1e-12, abs_tol=1e-15), (
            where,
            actual,
            expected,
        )
    else:
        assert actual == expected, (where, actual, expected)


def run(capsys, argv) -> str:
    assert main(argv) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize(("name", "argv"), sorted(simulate_cases().items()))
def test_simulate_json_unchanged(capsys, name, argv):
    assert_same(json.loads(run(capsys, argv)), GOLDEN[name], name)


@pytest.mark.parametrize(("name", "argv"), sorted(text_cases().items()))
def test_text_output_unchanged(capsys, name, argv):
    assert run(capsys, argv) == GOLDEN[name]


@pytest.mark.parametrize(("name", "argv"), sorted(timeline_cases().items()))
def test_timeline_json_unchanged(capsys, tmp_path, name, argv):
    run(capsys, [*argv, "--out", str(tmp_path), "--no-figures"])
    written = json.loads((Path(tmp_path) / "timeline.json").read_text())
    assert_same(written, GOLDEN[name], name)
