"""The command line: the JSON contract, round trips, and one clear sentence for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from simulator.cli import main
from tests.deadlines import scaled


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_sentence_error(err: str) -> None:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("pebblesim: error: ")
    assert "Traceback" not in err


def test_schedules_lists_every_family(capsys):
    from schedules.registry import list_schedules

    code, out, _ = run_cli(capsys, "schedules")
    assert code == 0
    for name, _ in list_schedules():
        assert any(line.split()[0] == name for line in out.splitlines())


@pytest.mark.parametrize(("p", "m"), [(4, 8), (3, 5)])
def test_simulate_json_is_one_object_with_the_contract_keys(capsys, p, m):
    code, out, _ = run_cli(
        capsys, "simulate", "--schedule", "1F1B", "--ranks", p, "--microbatches", m, "--json"
    )
    assert code == 0
    payload = json.loads(out)  # exactly one JSON object: extra output would not parse
    for key in (
        "schedule",
        "ranks",
        "microbatches",
        "chunks",
        "makespan",
        "bubble_fraction",
        "per_rank",
        "gradient_ready",
    ):
        assert key in payload
    assert payload["schedule"] == "1f1b" and payload["ranks"] == p
    assert payload["bubble_fraction"] == pytest.approx((p - 1) / (m + p - 1))
    assert [r["peak_inflight_microbatches"] for r in payload["per_rank"]] == [
        min(p - r, m) for r in range(p)
    ]
    for row in payload["per_rank"]:
        assert set(row) == {
            "rank",
            "busy",
            "peak_activation_bytes",
            "stored_activation_bytes",
            "true_peak_bytes",
            "peak_inflight_microbatches",
            "memory",
        }
        assert set(row["memory"]) == {
            "parameters",
            "gradients",
            "optimizer_state",
            "activations",
            "stored_activations",
            "receive_buffers",
            "total",
            "fits",
        }
        assert row["memory"]["activations"] == row["true_peak_bytes"]
        assert row["memory"]["stored_activations"] == row["stored_activation_bytes"]
        assert row["stored_activation_bytes"] <= row["peak_activation_bytes"]
        assert row["peak_activation_bytes"] <= row["true_peak_bytes"]
        assert row["memory"]["total"] == sum(
            row["memory"][k]
            for k in (
                "parameters",
                "gradients",
                "optimizer_state",
                "activations",
                "receive_buffers",
            )
        )
    assert {g["layer"] for g in payload["gradient_ready"]} == {
        2 * b
        for b in range(p)  # default model: one Linear+ReLU block per stage
    }


def test_simulate_text_summary_and_out_files(capsys, tmp_path):
    code, out, _ = run_cli(
        capsys,
        "simulate",
        "--schedule",
        "zb-h1",
        "--ranks",
        4,
        "--microbatches",
        8,
        "--out",
        tmp_path,
    )
    assert code == 0
    assert "bubble" in out and "stored activations" in out and "activation peak" in out
    timeline = json.loads((tmp_path / "timeline.json").read_text())
    assert timeline["version"] == 1 and len(timeline["events"]) == 3 * 4 * 8
    trace = json.loads((tmp_path / "trace.json").read_text())
    phases = {e["ph"] for e in trace["traceEvents"]}
    assert {"X", "C", "M"} <= phases
    assert not list(tmp_path.glob(".pebblesim-staging-*"))


def test_export_then_validate_then_simulate_a_csv(capsys, tmp_path):
    csv = tmp_path / "zbv.csv"
    code, _, _ = run_cli(
        capsys, "export", "--schedule", "zb-v", "--ranks", 3, "--microbatches", 6, "-o", csv
    )
    assert code == 0 and csv.exists()
    code, out, _ = run_cli(capsys, "validate", csv, "--microbatches", 6)
    assert code == 0 and out.startswith("OK")
    code, out, _ = run_cli(
        capsys, "simulate", "--schedule-file", csv, "--microbatches", 6, "--json"
    )
    from_file = json.loads(out)
    code, out, _ = run_cli(
        capsys, "simulate", "--schedule", "zb-v", "--ranks", 3, "--microbatches", 6, "--json"
    )
    built_in = json.loads(out)
    assert from_file["makespan"] == built_in["makespan"]
    assert from_file["per_rank"] == built_in["per_rank"]


def test_a_broken_csv_names_the_offending_action(capsys, tmp_path):
    csv = tmp_path / "broken.csv"
    csv.write_text("0F0,0F1,0B0,0B1\n1F0,1B0,1F1\n")  # 1B1 is missing
    code, _, err = run_cli(capsys, "validate", csv, "--microbatches", 2)
    assert code == 1
    assert "1B1" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["simulate", "--schedule", "nope", "--ranks", 2, "--microbatches", 2],
        ["simulate", "--schedule", "interleaved-1f1b", "--ranks", 4, "--microbatches", 6],
        ["simulate", "--schedule", "1f1b", "--ranks", 2, "--microbatches", 2, "--costs", "F=x"],
        ["simulate", "--schedule", "1f1b", "--ranks", 2, "--microbatches", 2, "--model", "2-x"],
        ["simulate", "--schedule", "1f1b", "--ranks", 8, "--microbatches", 2, "--model", "2-3"],
        ["simulate", "--schedule", "1f1b", "--ranks", 2, "--microbatches", 3, "--batch-size", 10],
        [
            "simulate",
            "--schedule",
            "1f1b",
            "--ranks",
            2,
            "--microbatches",
            2,
            "--profile",
            "/nonexistent/profile.json",
        ],
        ["simulate", "--schedule", "zb-v", "--ranks", 2, "--microbatches", 4, "--chunks", 3],
        ["validate", "/nonexistent.csv", "--microbatches", 2],
        ["plot", "/nonexistent/timeline.json"],
        ["train", "--schedule", "1f1b", "--ranks", 2, "--microbatches", 2, "--inject-fault", "x"],
        [
            "train",
            "--schedule",
            "1f1b",
            "--ranks",
            2,
            "--microbatches",
            2,
            "--dataset",
            "spiral",
            "--model",
            "3-8-3",
        ],
    ],
)
def test_bad_input_is_one_sentence_and_a_non_zero_exit(capsys, argv):
    code, out, err = run_cli(capsys, *argv)
    assert code != 0
    one_sentence_error(err)


def test_argparse_mistakes_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", "--schedule", "1f1b", "--ranks", "-3", "--microbatches", "2"])
    assert exit_info.value.code == 2


def test_a_failed_run_leaves_earlier_outputs_intact(capsys, tmp_path):
    gpipe = ("simulate", "--schedule", "gpipe", "--ranks", 2, "--microbatches", 4)
    code, _, _ = run_cli(capsys, *gpipe, "--out", tmp_path)
    assert code == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    code, _, err = run_cli(capsys, *gpipe, "--out", tmp_path, "--profile", tmp_path / "x")
    assert code == 1
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert after == before


def test_plot_and_compare_write_their_figures(capsys, tmp_path):
    run_cli(
        capsys,
        "simulate",
        "--schedule",
        "1f1b",
        "--ranks",
        2,
        "--microbatches",
        4,
        "--out",
        tmp_path,
    )
    code, out, _ = run_cli(capsys, "plot", tmp_path / "timeline.json", "--out", tmp_path / "fig")
    assert code == 0
    for kind in ("pebble", "pipeline", "memory", "grads"):
        assert (tmp_path / "fig" / f"{kind}.png").stat().st_size > 1000
    code, out, _ = run_cli(
        capsys,
        "compare",
        "--ranks",
        2,
        "--microbatches",
        4,
        "--schedules",
        "gpipe,1f1b,zb-h1",
        "--out",
        tmp_path / "cmp",
    )
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()[2:5]] == ["gpipe", "1f1b", "zb-h1"]
    assert (tmp_path / "cmp" / "compare.png").exists()
    assert (tmp_path / "cmp" / "compare.csv").read_text().count("\n") == 4


def test_train_check_json_matches_the_reference(ray_session, capsys, tmp_path):
    code, out, _ = run_cli(
        capsys,
        "train",
        "--schedule",
        "zb-h2",
        "--ranks",
        2,
        "--microbatches",
        4,
        "--steps",
        2,
        "--check",
        "--json",
        "--out",
        tmp_path,
    )
    assert code == 0
    payload = json.loads(out)
    assert payload["max_grad_rel_diff"] <= 1e-9
    assert payload["max_weight_abs_diff"] <= 1e-9
    assert len(payload["loss"]) == 2 and payload["loss"][1] < payload["loss"][0]
    for key in ("makespan", "bubble_fraction", "per_rank", "gradient_ready"):
        assert key in payload
    # the measured profile predicts the same configuration
    code, out, _ = run_cli(
        capsys,
        "simulate",
        "--schedule",
        "zb-h2",
        "--ranks",
        2,
        "--microbatches",
        4,
        "--profile",
        tmp_path / "profile.json",
        "--model",
        json.loads((tmp_path / "timeline.json").read_text())["meta"]["model"],
        "--json",
    )
    assert code == 0
    assert json.loads(out)["time_unit"] == "s"
    # train --out also wrote its own prediction; plot --against overlays the two
    code, out, err = run_cli(
        capsys,
        "plot",
        tmp_path / "timeline.json",
        "--kind",
        "pipeline",
        "--against",
        tmp_path / "predicted_timeline.json",
        "--out",
        tmp_path / "fig",
    )
    assert code == 0, err
    assert (tmp_path / "fig" / "overlay.png").stat().st_size > 1000
    # ... and, calibrated, a bigger one: twice the ranks, four times the microbatches
    code, out, err = run_cli(
        capsys,
        "simulate",
        "--schedule",
        "1f1b",
        "--ranks",
        4,
        "--microbatches",
        16,
        "--profile",
        tmp_path / "profile.json",
        "--json",
    )
    assert code == 0, err
    bigger = json.loads(out)
    assert bigger["ranks"] == 4 and bigger["makespan"] > 0


def run_cli_process(*argv, env=None) -> subprocess.CompletedProcess:
    """The CLI in a fresh process, where no Ray is running yet."""
    return subprocess.run(
        [sys.executable, "-m", "simulator.cli", *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=scaled(120),
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )


TRAIN_SMALL = ("train", "--schedule", "1f1b", "--ranks", 2, "--microbatches", 2)


def test_unreachable_address_is_one_sentence_in_a_fresh_process():
    result = run_cli_process(*TRAIN_SMALL, "--address", "127.0.0.1:9")
    assert result.returncode == 1
    one_sentence_error(result.stderr)
    assert "127.0.0.1:9" in result.stderr


def test_a_port_that_is_not_ray_fails_within_the_connect_timeout():
    """A listener that accepts connections but speaks no Ray: Ray's own client would retry for
    ever; pebblesim gives up after PEBBLESIM_CONNECT_TIMEOUT seconds with one sentence."""
    import os
    import socket
    import time

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        began = time.time()
        result = run_cli_process(
            *TRAIN_SMALL,
            "--address",
            f"127.0.0.1:{port}",
            env={**os.environ, "PEBBLESIM_CONNECT_TIMEOUT": "4"},
        )
    assert time.time() - began < scaled(60)  # the 4 s probe plus the CLI's own start-up
    assert result.returncode == 1
    one_sentence_error(result.stderr)
