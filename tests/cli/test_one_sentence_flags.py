"""Flag combinations that used to be accepted without a word, or blamed the wrong thing
(issue 26, "Minor"): each is one sentence naming what is wrong, with a non-zero exit."""

from __future__ import annotations

import pytest

from simulator.analytic.cost_source import parse_hardware
from simulator.analytic.hardware import parse_hardware_preset
from simulator.cli import main
from simulator.cli.layout_flags import train_layout_note
from simulator.cli.parser import build_parser
from simulator.errors import PebbleError
from simulator.model.layout import Layout

RUN = ["--schedule", "1f1b", "--ranks", "2", "--microbatches", "4"]
SMALL = "transformer:layers=2,hidden=16,heads=2,seq=8,vocab=32"


def one_sentence(capsys, argv) -> str:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert code != 0, captured.out
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pebblesim: error: "), captured.err
    return lines[0]


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("h100,eff=0.3,mfu=0.9", "hardware mfu sets efficiency, as eff did"),
        ("h100,memory=80GiB,mem=40GiB", "hardware mem sets memory_bytes, as memory did"),
        ("h100,eff=0.3,eff=0.3", "hardware eff is given twice"),
    ],
)
def test_a_later_duplicate_hardware_key_is_refused_not_silently_the_winner(text, named):
    with pytest.raises(PebbleError, match=named):
        parse_hardware_preset(text)
    assert parse_hardware_preset("h100,eff=0.3").efficiency == 0.3  # once is fine


def test_a_duplicate_key_of_the_key_value_hardware_is_refused():
    with pytest.raises(PebbleError, match="hardware flops is given twice"):
        parse_hardware("flops=1e12,flops=2e12")
    assert parse_hardware("flops=1e12,latency=1e-6").flops_per_second == 1e12


def test_compare_names_the_head_count_like_simulate(capsys):
    """``--tp 3`` on a 32-head model: every schedule is skipped for the same reason, which is
    the model's, so compare says it (it said no schedule suits 2 ranks and 4 microbatches)."""
    flags = ["--ranks", "2", "--microbatches", "4", "--tp", "3", "--hardware", "h100"]
    by_compare = one_sentence(capsys, ["compare", *flags, "--model", "llama3-8b,layers=2"])
    by_simulate = one_sentence(
        capsys,
        ["simulate", *RUN, "--tp", "3", "--hardware", "h100", "--model", "llama3-8b,layers=2"],
    )
    assert "heads 32" in by_compare
    assert by_compare == by_simulate


@pytest.mark.parametrize(
    "argv",
    [
        ["simulate", *RUN, "--model", SMALL, "--sp"],
        ["simulate", *RUN, "--model", SMALL + ",sp=1"],
        ["compare", "--ranks", "2", "--microbatches", "4", "--model", SMALL, "--sp"],
    ],
)
def test_sequence_parallelism_without_a_tensor_group_is_one_sentence(capsys, argv):
    assert "give it with --tp 2 or more" in one_sentence(capsys, argv)


def test_sequence_parallelism_with_a_tensor_group_runs(capsys):
    assert main(["simulate", *RUN, "--model", SMALL, "--sp", "--tp", "2"]) == 0
    assert "t2 sp" in capsys.readouterr().out


def test_train_says_tensor_parallelism_is_only_counted():
    """``train`` with ``--tp 2`` or ``tp=2`` in the model text runs unsharded layers on Ray:
    one line says so (the CLI prints it before Ray starts, with the dtype note)."""
    note = train_layout_note(Layout(tensor=2))
    assert note.startswith("note: tensor parallelism (t2)") and "unsharded" in note
    assert "\n" not in note
    assert train_layout_note(Layout()) is None


def test_train_prepares_the_note_from_a_model_text_tp(tmp_path):
    from simulator.cli.training import prepare_training

    args = build_parser().parse_args(
        ["train", *RUN, "--model", SMALL.replace("vocab=32", "vocab=96") + ",tp=2"]
        + ["--dataset", "chars", "--steps", "1"]
    )
    assert "tensor parallelism (t2)" in prepare_training(args).note


def test_memory_limit_help_names_only_forms_it_accepts(capsys):
    """The help named ``px`` and ``2px``, which are refused; every form it names now parses."""
    from simulator.analytic.auto_plan import parse_limit

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["simulate"]
    text = next(a.help for a in sub._actions if "--memory-limit" in a.option_strings)
    assert "px" not in text
    for form in ("80GiB", "2.5e9", "8x"):
        assert form in text
        assert parse_limit(form, 1000.0) > 0
