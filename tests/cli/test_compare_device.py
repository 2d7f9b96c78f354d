"""compare with a hardware preset adds whole-rank memory and fits columns, consistent with
what simulate reports for the same configuration."""

from __future__ import annotations

import csv
import io
import json

from simulator.cli import main

ARGS = ["--ranks", "4", "--microbatches", "8", "--model", "llama3-8b,layers=8"]


def test_compare_with_a_device_reports_what_simulate_reports(capsys, tmp_path):
    device = "h100,memory=40GiB"
    assert (
        main(
            [
                "compare",
                *ARGS,
                "--hardware",
                device,
                "--schedules",
                "1f1b,zb-h2",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "rank memory" in out.splitlines()[0] and "fits" in out.splitlines()[0]
    rows = {
        r["schedule"]: r
        for r in csv.DictReader(io.StringIO((tmp_path / "compare.csv").read_text()))
    }
    for name in ("1f1b", "zb-h2"):
        assert main(["simulate", "--schedule", name, *ARGS, "--hardware", device, "--json"]) == 0
        payload = json.loads(capsys.readouterr().out)
        totals = [r["memory"]["total"] for r in payload["per_rank"]]
        assert int(rows[name]["rank_memory_max"]) == max(totals)
        fits = all(r["memory"]["fits"] for r in payload["per_rank"])
        assert rows[name]["fits"] == str(fits)


def test_compare_without_a_device_keeps_its_columns(capsys):
    assert main(["compare", "--ranks", "2", "--microbatches", "4"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert "fits" not in header and "rank memory" not in header


def _json(capsys, *argv) -> dict:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_tp_sp_flags_equal_the_spec_keys_and_the_optimizer_shards_over_dp(capsys):
    base = ["simulate", "--schedule", "1f1b", "--ranks", "4", "--microbatches", "8"]
    by_flags = _json(capsys, *base, "--model", "llama3-8b,layers=8", "--tp", "4", "--sp")
    by_spec = _json(capsys, *base, "--model", "llama3-8b,layers=8,tp=4,sp=1")
    assert by_flags == by_spec
    full = _json(capsys, *base, "--model", "llama3-8b,layers=8", "--dp", "4")
    zero = _json(
        capsys, *base, "--model", "llama3-8b,layers=8", "--dp", "4", "--distributed-optimizer"
    )
    for a, b in zip(full["per_rank"], zero["per_rank"], strict=True):
        assert b["memory"]["optimizer_state"] == -(-a["memory"]["optimizer_state"] // 4)
        assert b["memory"]["parameters"] == a["memory"]["parameters"]
    assert main([*base, "--tp", "2"]) == 1  # an MLP has no tensor parallelism here
    assert "apply to transformer models" in capsys.readouterr().err
