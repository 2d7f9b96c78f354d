"""A model text and the flags that contradict each other are one sentence, never a silent
choice; a ``transformer:`` text without ``dtype=`` is counted in bfloat16, as it would train."""

from __future__ import annotations

import json

import pytest

from tests.cli.helpers import quiet_main

RUN = ["simulate", "--schedule", "1f1b", "--ranks", 2, "--microbatches", 4]


@pytest.mark.parametrize(
    "model, flags, named",
    [
        ("llama3-8b,tp=8", ["--tp", 4], "tensor 8"),
        ("llama3-8b,precision=fp32", ["--precision", "bf16"], "precision=fp32"),
    ],
)
def test_a_model_text_and_a_flag_that_disagree_are_one_sentence(capsys, model, flags, named):
    code, out = quiet_main([*RUN, "--model", model, "--hardware", "h100", *flags])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and out == ""
    assert len(err) == 1 and named in err[0] and "give one" in err[0]


def test_agreeing_texts_and_flags_run(capsys):
    code, _ = quiet_main([*RUN, "--model", "llama3-8b,tp=8", "--tp", 8, "--hardware", "h100"])
    assert code == 0


def _activation_bytes(capsys, model: str) -> int:
    code, out = quiet_main([*RUN, "--model", model, "--json"])
    capsys.readouterr()
    assert code == 0
    return json.loads(out)["per_rank"][0]["stored_activation_bytes"]


def test_a_transformer_text_counts_bfloat16_unless_told(capsys):
    text = "transformer:layers=2,hidden=64,heads=4,seq=32,vocab=96"
    plain = _activation_bytes(capsys, text)
    assert plain == _activation_bytes(capsys, text + ",dtype=bfloat16")
    # 8-byte activations, but 1-byte masks and 8-byte token ids in both
    assert 3 * plain < _activation_bytes(capsys, text + ",dtype=float64") < 4 * plain
