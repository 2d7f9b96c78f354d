"""Every ``advise`` row carries its step's breakdown: the shares of all GPUs' step time that
``simulate`` reports for the same run, adding up to 1; the table prints them beside the bubble."""

from __future__ import annotations

import contextlib
import io
import json
import shlex

import pytest

from simulator.cli import main
from simulator.timeline.breakdown import PARTS

MODEL = "transformer:layers=8,hidden=64,heads=4,seq=32,vocab=96,dtype=bfloat16"
ARGS = ("--model", MODEL, "--hardware", "a100-40gb", "--gpus", "8", "--global-batch", "8")


def run(*argv) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([str(a) for a in argv])
    return code, out.getvalue()


@pytest.fixture(scope="module")
def advice():
    code, out = run("advise", *ARGS, "--memory-limit", "2MiB", "--top", "3", "--json")
    assert code == 0
    return json.loads(out)


@pytest.mark.parametrize("index", range(3))
def test_each_rows_shares_are_its_simulated_breakdown(advice, index):
    row = advice["rows"][index]
    shares = row["step_shares"]
    assert list(shares) == list(PARTS)
    assert sum(shares.values()) == pytest.approx(1.0, rel=1e-12)
    code, out = run(*shlex.split(row["command"])[1:], "--json")
    assert code == 0
    ranks = json.loads(out)["breakdown"]
    whole = sum(r["step_time"] for r in ranks)
    for part in PARTS:
        assert shares[part] == pytest.approx(sum(r.get(part, 0.0) for r in ranks) / whole, rel=1e-9)


def test_the_table_prints_the_exposed_communication_and_the_bubble():
    code, out = run("advise", *ARGS, "--memory-limit", "2MiB", "--top", "2")
    assert code == 0
    header = next(line for line in out.splitlines() if line.lstrip().startswith("#"))
    assert "TP comm  DP comm  bubble" in header
    assert "TP comm, DP comm, bubble: exposed tensor-parallel communication (with" in out


def test_explain_gives_a_ranked_layouts_breakdown(advice):
    layout = advice["rows"][0]["layout"]  # the first row's own layout ranks #1
    text = layout["text"] if isinstance(layout, dict) else layout
    code, out = run("advise", *ARGS, "--memory-limit", "2MiB", "--top", "3", "--explain", text)
    assert code == 0
    ranked = [line for line in out.splitlines() if "ranks #1 (in the table)" in line]
    assert len(ranked) == 1
    assert "of the step: bubble " in ranked[0] and ", exposed TP comm " in ranked[0]
