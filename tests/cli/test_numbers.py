"""Every number flag goes through one parser that refuses NaN, infinities and absurd sizes;
--json output is strict JSON."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest

from simulator.cli import main, numbers
from simulator.cli.numbers import parse_float, parse_int, strict_json
from simulator.cli.parser import build_parser
from simulator.errors import PebbleError


def numeric_flags() -> list[tuple[str, argparse.Action]]:
    """(subcommand, action) for every flag of the CLI that converts its value."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return [
        (name, action)
        for name, command in sub.choices.items()
        for action in command._actions
        if action.type is not None
    ]


def test_every_converted_flag_uses_the_numbers_module():
    flags = numeric_flags()
    assert len(flags) > 15
    for command, action in flags:
        assert action.type.__module__ == "simulator.cli.numbers", (command, action.dest)


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "1e309", "99999999999999999999999", "x"])
def test_every_numeric_flag_refuses_non_finite_and_absurd_values(bad):
    for command, action in numeric_flags():
        with pytest.raises(argparse.ArgumentTypeError) as info:
            action.type(bad)
        message = str(info.value)
        assert "\n" not in message and "Traceback" not in message, (command, action.dest)


def test_integer_limits_name_the_constant():
    with pytest.raises(PebbleError, match=r"limit of 100000 \(MAX_RANKS"):
        parse_int("99999999999999999999999", maximum=numbers.MAX_RANKS, limit="MAX_RANKS")
    long = "9" * 100_000  # beyond Python's int-conversion limit: still one short sentence
    with pytest.raises(PebbleError) as info:
        parse_int(long, maximum=numbers.MAX_STEPS, limit="MAX_STEPS")
    assert len(str(info.value)) < 200
    assert parse_int(" 7 ", maximum=10) == 7
    assert parse_int("0", minimum=0, maximum=10) == 0
    for bad in ("0", "-3", "2.5", ""):
        with pytest.raises(PebbleError):
            parse_int(bad, maximum=10)


def test_float_parser_ranges():
    assert parse_float("0") == 0.0
    assert parse_float("1e-6", minimum=0, allow_minimum=False) == 1e-6
    for bad, kwargs in [
        ("nan", {}),
        ("-inf", {}),
        ("-1", {}),
        ("0", {"allow_minimum": False}),
        ("1e10", {"maximum": 1e9}),
    ]:
        with pytest.raises(PebbleError):
            parse_float(bad, **kwargs)


@pytest.mark.parametrize(
    "argv",
    [
        [
            "simulate",
            "--schedule",
            "1f1b",
            "--ranks",
            4,
            "--microbatches",
            8,
            "--comm-latency",
            "nan",
        ],
        ["simulate", "--schedule", "1f1b", "--ranks", "1e30", "--microbatches", 8],
        ["simulate", "--schedule", "1f1b", "--ranks", 4, "--microbatches", 10**9],
        ["simulate", "--schedule", "1f1b", "--ranks", 4, "--microbatches", 8, "--steps", 10**8],
        [
            "simulate",
            "--schedule",
            "interleaved-1f1b",
            "--ranks",
            4,
            "--microbatches",
            8,
            "--chunks",
            10**6,
        ],
        ["export", "--schedule", "1f1b", "--ranks", 99999999999999999999999, "--microbatches", 4],
        ["validate", "x.csv", "--microbatches", 10**9],
        ["compare", "--ranks", 2, "--microbatches", 4, "--chunks", 1000],
        ["train", "--schedule", "1f1b", "--ranks", 2, "--microbatches", 2, "--lr", "nan"],
        ["train", "--schedule", "1f1b", "--ranks", 2, "--microbatches", 2, "--lr", "-1"],
        ["train", "--schedule", "1f1b", "--ranks", 2, "--microbatches", 2, "--step-timeout", "nan"],
        ["train", "--schedule", "1f1b", "--ranks", 2, "--microbatches", 2, "--dp", 10**9],
        ["train", "--schedule", "1f1b", "--ranks", 2, "--microbatches", 2, "--retries", -1],
        ["train", "--schedule", "1f1b", "--ranks", 2, "--microbatches", 2, "--batch-size", 4e10],
    ],
)
def test_bad_numbers_are_usage_errors_before_anything_runs(capsys, argv):
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in argv])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("pebblesim ")


def test_comm_latency_zero_and_positive_still_work(capsys):
    argv = ["simulate", "--schedule", "1f1b", "--ranks", "4", "--microbatches", "8", "--json"]
    assert main([*argv, "--comm-latency", "0.5"]) == 0
    assert json.loads(capsys.readouterr().out)["bubble_fraction"] > 0


def test_strict_json_accepts_numpy_and_refuses_non_finite():
    text = strict_json({"a": np.float64(1.5), "b": np.int64(3), "c": [1, 2.5], "d": None})
    assert json.loads(text) == {"a": 1.5, "b": 3, "c": [1, 2.5], "d": None}
    assert json.loads(text)["b"] == 3 and isinstance(json.loads(text)["b"], int)
    for bad in (math.nan, math.inf, -math.inf, np.float64("nan")):
        with pytest.raises(PebbleError, match=r"per_rank\[1\]\.busy"):
            strict_json({"per_rank": [{"busy": 1.0}, {"busy": bad}]})
