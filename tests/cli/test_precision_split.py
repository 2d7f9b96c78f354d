"""``--precision`` (simulate, train, advise) and ``--split`` (simulate, train): the flags reach
``plan_run``, change what they say and nothing else, and bad values are one sentence."""

from __future__ import annotations

import csv
import json
import shlex

import pytest

from simulator.cli import main
from simulator.cli.parser import build_parser
from simulator.cli.training import prepare_training
from simulator.model.precision import PRECISIONS
from tests.cli.helpers import flags_of, quiet_main

MODEL = "transformer:layers=8,hidden=64,heads=4,seq=32,vocab=96,dtype=bfloat16"
RUN = ("--schedule", "1f1b", "--ranks", "2", "--microbatches", "4", "--hardware", "h100")


@pytest.mark.parametrize("command", ["simulate", "compare", "train", "advise"])
def test_the_commands_that_count_memory_take_precision(command):
    assert "--precision" in flags_of(command)


def simulated(*flags) -> list[dict]:
    code, out = quiet_main(["simulate", *RUN, "--model", MODEL, "--json", *flags])
    assert code == 0
    return [r["memory"] for r in json.loads(out)["per_rank"]]


def test_simulate_counts_whole_rank_memory_by_the_recipe():
    runs = {name: simulated("--precision", name) for name in ("bf16", "bf16-grads", "fp8")}
    params = [m["parameters"] // 2 for m in runs["bf16"]]
    for name, memory in runs.items():
        recipe = PRECISIONS[name]
        assert [m["gradients"] for m in memory] == [p * recipe.gradients for p in params]
        assert [m["optimizer_state"] for m in memory] == [
            p * recipe.optimizer_state for p in params
        ]
        assert [m["activations"] for m in memory] == [m["activations"] for m in runs["bf16"]]


def test_the_flag_and_the_model_key_say_the_same():
    code, by_flag = quiet_main(["simulate", *RUN, "--model", MODEL, "--json", "--precision", "fp8"])
    code2, by_key = quiet_main(["simulate", *RUN, "--model", f"{MODEL},precision=fp8", "--json"])
    assert code == code2 == 0
    assert json.loads(by_flag)["per_rank"] == json.loads(by_key)["per_rank"]


def train_args(*flags):
    return build_parser().parse_args(
        ["train", "--schedule", "1f1b", "--ranks", "2", "--microbatches", "2", *flags]
    )


def test_train_plans_with_the_recipe():
    setup = prepare_training(train_args("--model", MODEL.replace("bfloat16", "float32")))
    assert setup.plan.spec.recipe is PRECISIONS["fp32"]
    setup = prepare_training(
        train_args("--model", MODEL.replace("bfloat16", "float32"), "--precision", "fp8")
    )
    assert setup.plan.spec.recipe is PRECISIONS["fp8"]


def test_advise_keeps_the_recipe_in_every_printed_line():
    search = ("--model", MODEL, "--hardware", "a100-40gb", "--gpus", "8", "--global-batch", "8")
    code, out = quiet_main(
        ["advise", *search, "--memory-limit", "3MiB", "--top", "2", "--json", "--precision", "fp8"]
    )
    assert code == 0
    rows = json.loads(out)["rows"]
    assert rows
    for row in rows:
        words = shlex.split(row["command"])
        assert words[words.index("--model") + 1].endswith(",precision=fp8")
    code, out = quiet_main([*shlex.split(rows[0]["command"])[1:], "--json"])
    assert code == 0
    per_rank = json.loads(out)["per_rank"]
    assert max(r["memory"]["total"] for r in per_rank) == rows[0]["peak_memory"]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["simulate", *RUN, "--model", MODEL, "--precision", "fp4"], "unknown precision recipe"),
        (["simulate", *RUN, "--precision", "bf16"], "an MLP keeps"),
        (
            ["advise", "--model", MODEL, "--hardware", "a100-40gb", "--gpus", "8"]
            + ["--global-batch", "8", "--precision", "int8"],
            "unknown precision recipe",
        ),
        (
            ["train", "--schedule", "1f1b", "--ranks", "2", "--microbatches", "2"]
            + ["--precision", "bf16"],
            "an MLP keeps",
        ),
    ],
)
def test_bad_values_are_one_sentence(capsys, argv, says):
    code = main(argv)
    captured = capsys.readouterr()
    lines = [line for line in captured.err.strip().splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1 and "Traceback" not in captured.err
    assert says in lines[0]


@pytest.mark.parametrize("command", ["simulate", "compare", "train"])
def test_the_commands_that_plan_a_run_take_split(command):
    assert "--split" in flags_of(command)


def test_simulate_cuts_the_stages_as_split_says(tmp_path):
    code, _ = quiet_main(["simulate", *RUN, "--model", MODEL, "--split", "1,7", "--out", tmp_path])
    assert code == 0
    layers = json.loads((tmp_path / "timeline.json").read_text())["meta"]["layers"]
    stage_of_block: dict[int, set[int]] = {}
    for layer in layers:
        stage_of_block.setdefault(layer["block"], set()).add(layer["stage"])
    assert stage_of_block[0] == stage_of_block[1] == {0}  # the embedding and one block
    assert all(stage_of_block[b] == {1} for b in range(2, 10))  # seven blocks and the head


def test_train_plans_with_the_split():
    setup = prepare_training(
        train_args("--model", MODEL.replace("bfloat16", "float32"), "--split", "even")
    )
    assert setup.plan.split.to_text() == "even"
    assert len(setup.plan.partition.stage_layers) == 2


@pytest.mark.parametrize(
    ("split", "says"),
    [
        ("sideways", "cannot read split 'sideways'"),
        ("3,3", "gives 6 transformer blocks over 2 stages, but the model has 8"),
        ("8,0,0", "gives 8 transformer blocks over 3 stages"),
    ],
)
def test_a_split_that_does_not_fit_is_one_sentence(capsys, split, says):
    code = main(["simulate", *RUN, "--model", MODEL, "--split", split])
    captured = capsys.readouterr()
    lines = [line for line in captured.err.strip().splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1 and "Traceback" not in captured.err
    assert says in lines[0]


def test_compare_gives_every_schedule_the_recipe_and_the_split(tmp_path):
    """compare's row for a schedule is simulate's under the same --precision and --split."""
    flags = ["--model", MODEL, "--hardware", "h100", "--precision", "fp8", "--split", "1,7"]
    code, _ = quiet_main(
        ["compare", "--ranks", "2", "--microbatches", "4", "--schedules", "1f1b", *flags]
        + ["--out", tmp_path]
    )
    assert code == 0
    with open(tmp_path / "compare.csv", newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    code, out = quiet_main(["simulate", *RUN[:6], *flags, "--json"])
    assert code == 0
    per_rank = json.loads(out)["per_rank"]
    assert int(row["rank_memory_max"]) == max(r["memory"]["total"] for r in per_rank)
    peaks = [int(n) for n in row["peak_bytes_per_rank"].split(";")]
    assert peaks == [r["true_peak_bytes"] for r in per_rank]
