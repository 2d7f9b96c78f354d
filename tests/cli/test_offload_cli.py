"""``simulate --offload``: the policy, host bytes and exposed waits in the text and --json
outputs, nothing new without it, and one sentence for bad input."""

from __future__ import annotations

import json

from tests.cli.test_commands import one_sentence_error, run_cli

RUN = ("simulate", "--schedule", "1f1b", "--ranks", 4, "--microbatches", 8)
MODEL = ("--model", "zb-1.5b", "--hardware", "h100-80gb")


def test_json_gives_host_bytes_and_waits(capsys):
    code, out, err = run_cli(capsys, *RUN, *MODEL, "--offload", "full", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["offload"] == "full"
    first, last = data["per_rank"][0], data["per_rank"][-1]
    assert first["host_activation_bytes"] > 0 and last["host_activation_bytes"] == 0
    assert first["memory"]["host_activations"] == first["host_activation_bytes"]
    assert all(r["offload_wait"] >= 0 for r in data["per_rank"])


def test_text_summary_names_the_policy_only_with_offload(capsys):
    code, out, _ = run_cli(capsys, *RUN, *MODEL, "--offload", "0:full")
    assert code == 0 and "offload 0:full: on the host per rank" in out
    code, out, _ = run_cli(capsys, *RUN, *MODEL)
    assert code == 0 and "offload" not in out


def test_bad_offload_is_one_sentence(capsys):
    for argv in (
        (*RUN, *MODEL, "--offload", "half"),
        (*RUN, *MODEL, "--offload", "7:full"),
        (*RUN, "--offload", "full"),  # unit costs have no seconds to copy in
    ):
        code, _, err = run_cli(capsys, *argv)
        assert code != 0
        one_sentence_error(err)
