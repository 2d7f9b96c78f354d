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
