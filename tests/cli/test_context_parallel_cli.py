"""``--cp`` and ``--cp-comm`` on the command line: ``simulate`` and ``compare`` count s / c tokens a
rank, the layout text says ``c2`` (ring) or ``c2ag`` (all-gather), and every mistake is one
sentence: ``train`` (whose numpy layers run whole sequences) and ``advise`` (which does not
search c yet) refuse it."""

from __future__ import annotations

import json

import pytest

from simulator.cli.layout_flags import LAYOUT_FLAGS, layout_flags_text
from simulator.cli.parser import build_parser
from simulator.model.layout import Layout
from tests.cli.test_commands import one_sentence_error, run_cli

MODEL = "transformer:layers=2,hidden=64,heads=4,seq=32,vocab=96,dtype=bfloat16,dropout=0"
SIZES = ("--schedule", "1f1b", "--ranks", 2, "--microbatches", 4, "--model", MODEL)


def simulate(capsys, *flags) -> dict:
    code, out, err = run_cli(capsys, "simulate", *SIZES, *flags, "--json")
    assert code == 0, err
    return json.loads(out)


def test_the_layout_text_names_the_context_degree_and_its_exchange(capsys):
    assert simulate(capsys, "--cp", 2)["layout"] == "p2 v1 t1 c2 e1 d1 z0"
    assert simulate(capsys, "--cp", 2, "--cp-comm", "allgather")["layout"] == (
        "p2 v1 t1 c2ag e1 d1 z0"
    )
    code, out, _ = run_cli(capsys, "simulate", *SIZES, "--cp", 4)
    assert code == 0 and "layout p2 v1 t1 c4 e1 d1 z0" in out


def test_a_rank_stores_half_the_activations_at_c2(capsys):
    """Without dropout every stored tensor is per token, so c2 stores exactly half of c1; the
    receive buffers (one activation, one gradient of s / c tokens) halve too, and the weights
    do not change."""
    whole, split = simulate(capsys), simulate(capsys, "--cp", 2)
    for one, two in zip(whole["per_rank"], split["per_rank"], strict=True):
        assert one["stored_activation_bytes"] == 2 * two["stored_activation_bytes"]
        assert one["memory"]["receive_buffers"] == 2 * two["memory"]["receive_buffers"]
        assert one["memory"]["parameters"] == two["memory"]["parameters"]
    with_zero = simulate(capsys, "--cp", 2, "--dp", 2, "--zero", 1)
    unsharded = simulate(capsys, "--cp", 2, "--dp", 2)
    for sharded, full in zip(with_zero["per_rank"], unsharded["per_rank"], strict=True):
        state = full["memory"]["optimizer_state"]  # split over d x c = 4 ranks
        assert sharded["memory"]["optimizer_state"] == -(-state // 4)


def test_compare_takes_the_context_degree(capsys, tmp_path):
    code, out, err = run_cli(
        capsys, "compare", "--ranks", 2, "--microbatches", 4, "--model", MODEL, "--cp", 2,
        "--schedules", "1f1b,gpipe", "--out", tmp_path,
    )  # fmt: skip
    assert code == 0, err
    assert "1f1b" in out and (tmp_path / "compare.csv").exists()


def test_the_flags_give_a_context_parallel_layout_back():
    layout = Layout(pipeline=2, tensor=2, context=4, cp_comm="allgather", data=2)
    text = layout_flags_text(layout)
    assert text == "--tp 2 --cp 4 --cp-comm allgather --dp 2"
    args = build_parser().parse_args(
        ["simulate", "--schedule", "1f1b", "--ranks", "2", "--microbatches", "4", *text.split()]
    )
    degrees = {row.field: getattr(args, row.field) for row in LAYOUT_FLAGS}
    assert Layout(pipeline=2, **{k: v for k, v in degrees.items() if v is not None}) == layout
    assert layout_flags_text(Layout(context=2)) == "--cp 2"  # the ring needs no flag


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (("simulate", *SIZES, "--cp-comm", "allgather"), "needs context parallelism of 2 or more"),
        (("simulate", *SIZES, "--cp", 3), "seq 32 is not a multiple of 6"),
        (
            ("simulate", "--schedule", "1f1b", "--ranks", 2, "--microbatches", 4, "--cp", 2),
            "--cp splits a transformer's sequences",
        ),
        (("train", *SIZES, "--cp", 2), "context parallelism (c2) cannot be measured"),
        (
            (
                "advise",
                "--model",
                MODEL,
                "--hardware",
                "h100",
                "--gpus",
                4,
                "--global-batch",
                8,
                "--cp",
                3,
            ),
            "--cp 3 uses 3 GPUs per pipeline stage, which does not divide the 4 GPUs",
        ),
    ],
)
def test_mistakes_are_one_sentence(capsys, argv, says):
    code, _, err = run_cli(capsys, *argv)
    assert code != 0
    assert says in err
    one_sentence_error(err)


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (("--cp", 0), "argument --cp: expected a positive integer, got 0"),
        (("--cp", 2, "--cp-comm", "p2p"), "argument --cp-comm: write ring or allgather, not 'p2p'"),
    ],
)
def test_argparse_refuses_what_is_not_a_degree(capsys, flags, says):
    with pytest.raises(SystemExit) as exit_:
        run_cli(capsys, "simulate", *SIZES, *flags)
    assert exit_.value.code == 2
    assert says in capsys.readouterr().err
