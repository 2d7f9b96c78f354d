"""``compare --offload``: each schedule under each offload policy, the table's host and wait
columns agreeing with ``simulate --offload --json``, and bad lists refused in one sentence."""

from __future__ import annotations

import csv
import io
import json

import pytest

from simulator.cli import main

ARGS = ["--ranks", "4", "--microbatches", "8", "--model", "llama3-8b,layers=8"]
ARGS += ["--hardware", "h100-80gb"]


def test_compare_offload_agrees_with_simulate(capsys, tmp_path):
    argv = ["compare", *ARGS, "--schedules", "1f1b", "--offload", "none,full"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "host peak" in out.splitlines()[0] and "prefetch wait" in out.splitlines()[0]
    rows = {
        r["schedule"]: r
        for r in csv.DictReader(io.StringIO((tmp_path / "compare.csv").read_text()))
    }
    assert set(rows) == {"1f1b [none]", "1f1b [offload full]"}
    assert int(rows["1f1b [none]"]["host_bytes_max"]) == 0
    assert (tmp_path / "compare.png").exists()
    assert main(["simulate", "--schedule", "1f1b", *ARGS, "--offload", "full", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    host = max(r["host_activation_bytes"] for r in payload["per_rank"])
    wait = max(r["offload_wait"] for r in payload["per_rank"])
    full = rows["1f1b [offload full]"]
    assert int(full["host_bytes_max"]) == host > 0
    assert float(full["offload_wait_max"]) == pytest.approx(wait, rel=1e-5)


@pytest.mark.parametrize(
    ("offload", "says"),
    [("full,full", "names a policy twice"), ("none,sometimes", "--offload")],
)
def test_a_bad_list_is_one_sentence(capsys, offload, says):
    assert main(["compare", *ARGS, "--offload", offload]) != 0
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
