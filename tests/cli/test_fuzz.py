"""Fuzz the command line: whatever the arguments, pebblesim answers with exit 0, 1 or 2, never a
traceback, strict JSON under --json, earlier outputs byte-for-byte intact after a failure, and
within a time and memory bound.

Arguments are drawn from numbers (small, zero, negative, absurd, NaN, infinities, text), the
schedule and preset names plus near misses, and paths under a temporary folder (missing, a
folder, a file with garbage, special files). ``PEBBLESIM_FUZZ_EXAMPLES`` sets how many
examples run (``benchmarks/fuzz.py`` runs many); the suite keeps it small.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import signal
import traceback
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.cli import main

EXAMPLES = int(os.environ.get("PEBBLESIM_FUZZ_EXAMPLES", "60"))
TIME_CAP = 20  # seconds per example
MEMORY_CAP = 6 * 2**30  # bytes of peak RSS for the whole test process
# The analytic size limit while fuzzing (``simulator.run.limits``). The machine's own admits
# about 10 M actions on 24 GiB: legal, but one such example (``compare --ranks 1
# --microbatches 1000000``, 2 M actions) takes 2.4 GiB and 8 s on a quiet host, so the caps
# above would measure the host and what else ran in this process, not pebblesim. Under this
# limit the fuzz still reaches the refusal sentence with sizes it draws, in a second.
FUZZ_MAX_ACTIONS = "300000"

NUMBERS = st.one_of(
    st.integers(1, 9).map(str),
    st.integers(-3, 0).map(str),
    st.integers(10**6, 10**30).map(str),
    st.sampled_from(["nan", "inf", "-inf", "1e309", "1.5", "", "abc", "0x10", "9" * 5000]),
)
NAMES = st.sampled_from(
    ["1f1b", "gpipe", "zb-h1", "zb-v", "dualpipe-v", "interleaved-1f1b", "GPipe", "zb", "", "x"]
)
MODELS = st.sampled_from(
    [
        "2-8-8-3",
        "widths=2-8-3,activation=tanh",
        "widths=2-8-3,widths=2-4-3",
        "transformer:layers=2,hidden=16,heads=2,seq=8,vocab=10",
        "transformer:layers=2,hidden=16,heads=3,seq=8,vocab=10",
        "gpt3-1.3b,layers=4",
        "gpt5",
        "widths=",
        "nan",
    ]
)
COSTS = st.sampled_from(["F=1,I=1,W=1", "F=nan", "F=-1", "B=2", "F=1e308,I=1e308", "X=1", ""])
HARDWARE = st.sampled_from(["flops=1e12", "flops=nan", "flops=inf", "h100", "h100,eff=2", "q"])


def paths(root: Path):
    (root / "dir").mkdir(exist_ok=True)
    (root / "garbage.csv").write_bytes(b"\xff\xfe\x00garbage\n0F0,,\n")
    (root / "ok.csv").write_text("0F0,0B0\n")
    return st.sampled_from(
        [str(root / n) for n in ("dir", "garbage.csv", "ok.csv", "missing.json", "dir/")]
        + ["/dev/null", "-", "/", ""]
    )


def argv_for(data, root: Path) -> list[str]:
    command = data.draw(st.sampled_from(["simulate", "compare", "export", "validate", "plot"]))
    argv = [command]
    options = {
        "simulate": [
            "--schedule",
            "--ranks",
            "--microbatches",
            "--chunks",
            "--steps",
            "--dp",
            "--model",
            "--costs",
            "--hardware",
            "--comm-latency",
            "--batch-size",
            "--json",
            "--out",
            "--schedule-file",
            "--profile",
        ],
        "compare": [
            "--ranks",
            "--microbatches",
            "--schedules",
            "--chunks",
            "--model",
            "--costs",
            "--out",
        ],
        "export": ["--schedule", "--ranks", "--microbatches", "--chunks", "-o"],
        "validate": ["--microbatches"],
        "plot": ["--kind", "--out", "--against"],
    }[command]
    if command in ("validate", "plot"):
        argv.append(data.draw(paths(root)))
    for flag in data.draw(st.lists(st.sampled_from(options), max_size=8, unique=True)):
        argv.append(flag)
        if flag == "--json":
            continue
        if flag in ("--schedule", "--schedules"):
            argv.append(data.draw(NAMES))
        elif flag == "--model":
            argv.append(data.draw(MODELS))
        elif flag == "--costs":
            argv.append(data.draw(COSTS))
        elif flag == "--hardware":
            argv.append(data.draw(HARDWARE))
        elif flag in ("--out", "-o", "--schedule-file", "--profile", "--against"):
            argv.append(data.draw(paths(root)))
        elif flag == "--kind":
            argv.append(data.draw(st.sampled_from(["pebble", "all", "x"])))
        else:
            argv.append(data.draw(NUMBERS))
    return argv


class _TimeCap(Exception):
    pass


def _alarm(signum, frame):
    raise _TimeCap


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(TIME_CAP)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else 1
    except _TimeCap:
        pytest.fail(f"over {TIME_CAP} s: {argv}")
    except Exception:  # noqa: BLE001 - any exception escaping main is a traceback for a user
        pytest.fail(f"traceback for {argv}:\n{traceback.format_exc()}")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module", autouse=True)
def fuzz_limits():
    """``FUZZ_MAX_ACTIONS`` for this module's tests, the environment as it was after."""
    previous = os.environ.get("PEBBLESIM_MAX_ACTIONS")
    os.environ["PEBBLESIM_MAX_ACTIONS"] = FUZZ_MAX_ACTIONS
    yield
    if previous is None:
        os.environ.pop("PEBBLESIM_MAX_ACTIONS", None)
    else:
        os.environ["PEBBLESIM_MAX_ACTIONS"] = previous


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_the_cli_never_shows_a_traceback(root, data):
    (root / "dir").mkdir(exist_ok=True)
    sentinel = root / "dir" / "timeline.json"
    sentinel.write_text("earlier output\n")
    argv = argv_for(data, root)
    code, out, err = run_cli(argv)
    assert code in (0, 1, 2), (argv, code, err)
    assert "Traceback" not in err, (argv, err)
    if code != 0:
        assert err.strip(), argv
        assert sentinel.read_text() == "earlier output\n", argv  # nothing lost
    if code == 0 and "--json" in argv:
        json.loads(out, parse_constant=lambda c: pytest.fail(f"{c} in JSON for {argv}"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert peak < MEMORY_CAP, (argv, peak)
