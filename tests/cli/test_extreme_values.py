"""Every command, in text, ``--json`` and ``--out`` modes, with values at and past the edge of
what a real machine could have (issue 26, "Numbers that cannot lie"): each run either prints
finite numbers only (no ``nan``, ``inf`` or ``Infinity`` on stdout or in any file it writes) or
is refused in one sentence, with no traceback and no numpy warning.

Kept fast: analytic paths, small models, and ``train`` only on inputs it refuses before Ray.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from simulator.cli import main
from simulator.timeline.schema import MAX_BYTES
from tests.cli.helpers import flags_of

GOLDEN_PROFILE = Path(__file__).parent / "golden" / "profile.json"
SIM = ["--schedule", "1f1b", "--ranks", "2", "--microbatches", "4"]
CMP = ["--ranks", "2", "--microbatches", "4", "--schedules", "gpipe,1f1b"]
SMALL = "transformer:layers=4,hidden=64,heads=4,seq=16,vocab=128"
ADVISE = ["--model", SMALL, "--gpus", "2", "--global-batch", "4", "--schedules", "1f1b"]
# every transformer limit at its maximum, with the attention core that keeps s x s scores
LIMITS = "transformer:layers=4,hidden=1000000,heads=100000,seq=10000000,vocab=10000000,ffn=10000000"
NOT_FINITE = re.compile(r"\b(nan|NaN|inf|-inf|Infinity)\b")

# (extra flags, what happens: "ok" finite output, or a regex the one-sentence refusal matches)
PRICED = [
    (["--costs", "F=1e308,I=1e308,W=1e308"], r"would take 1e\+308 units, outside 0\.\.1e\+12"),
    (["--costs", "F=1e11,I=1e11,W=1e11"], r"the run would last .* beyond the 1e\+12 units"),
    (["--hardware", "flops=1e-320"], r"would take more than 1\.8e\+308 s"),
    (["--hardware", "h100,efficiency=1e-320"], r"would take more than 1\.8e\+308 s"),
    (["--hardware", "flops=1e12,bandwidth=1e-300"], r"a transfer would take 2\.\d+e\+305 s"),
    (
        ["--hardware", "h100", "--model", "llama3-405b,seq=10000000", "--batch-size", "100000000"],
        r"one transfer between stages of this model would be .* beyond pebblesim's limit",
    ),
    (["--hardware", "h100", "--model", LIMITS + ",attention=math"], r"one cache change"),
    (["--hardware", "h100", "--model", "gpt3-175b,layers=4,seq=10000000"], "ok"),
    (["--hardware", "h100,eff=0.3,mfu=0.9"], r"hardware mfu sets efficiency, as eff did"),
    (["--comm-latency", "1e9"], "ok"),
]


def run(argv) -> tuple[int, str, str, list]:
    """Exit code, stdout, stderr and the warnings raised, of ``pebblesim ARGV`` in-process."""
    out, err = io.StringIO(), io.StringIO()
    with (
        warnings.catch_warnings(record=True) as caught,
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        warnings.simplefilter("always")
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue(), caught


def _strict(text: str):
    def refuse(constant):
        raise AssertionError(f"{constant} in JSON output")

    return json.loads(text, parse_constant=refuse)


def check(argv, expect: str, out_dir: Path | None = None) -> None:
    """``argv`` ends finite (``expect`` "ok") or in one sentence matching ``expect``."""
    code, out, err, caught = run(argv)
    noise = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert not noise, f"{argv}: {noise[0].message}"
    assert "Traceback" not in err, err
    if expect == "ok":
        assert code == 0, f"{argv}: {err}"
        assert not NOT_FINITE.search(out), out
        if "--json" in argv:
            _strict(out)
        for path in sorted(out_dir.rglob("*") if out_dir else []):
            if path.suffix in (".json", ".md", ".csv", ".txt"):
                text = path.read_text()
                assert not NOT_FINITE.search(text), path
                if path.suffix == ".json":
                    _strict(text)
        return
    assert code != 0, f"{argv} exited 0: {out[:300]}"
    lines = err.strip().splitlines()
    notes = [line for line in lines if line.startswith("note: ")]
    assert len(lines) - len(notes) == 1, err
    assert lines[-1].startswith("pebblesim: error: "), err
    assert re.search(expect, lines[-1]), lines[-1]
    assert not NOT_FINITE.search(lines[-1]), lines[-1]
    if out_dir is not None:  # a refused run leaves its output folder as it was: not there
        assert not out_dir.exists() or not any(out_dir.iterdir()), list(out_dir.iterdir())


def modes(command: str) -> list[str]:
    """The output modes ``command`` has: text always, then ``--json`` and ``--out``."""
    flags = flags_of(command)
    return ["text", *[m for m in ("--json", "--out") if m in flags]]


def with_mode(argv: list, mode: str, tmp_path: Path) -> tuple[list, Path | None]:
    if mode == "text":
        return argv, None
    if mode == "--json":
        return [*argv, "--json"], None
    return [*argv, "--out", tmp_path / "out"], tmp_path / "out"


@pytest.mark.parametrize("mode", ["text", "--json", "--out"])
@pytest.mark.parametrize(("extra", "expect"), PRICED)
def test_simulate_is_finite_or_one_sentence(tmp_path, extra, expect, mode):
    argv, out_dir = with_mode(["simulate", *SIM, *extra], mode, tmp_path)
    check(argv, expect, out_dir)


@pytest.mark.parametrize(("extra", "expect"), PRICED)
def test_compare_is_finite_or_one_sentence(tmp_path, extra, expect):
    if extra[0] not in flags_of("compare"):  # compare has no --comm-latency
        pytest.skip(f"compare has no {extra[0]}")
    for mode in modes("compare"):
        argv, out_dir = with_mode(["compare", *CMP, *extra], mode, tmp_path / mode)
        check(argv, expect, out_dir)


@pytest.mark.parametrize(
    ("extra", "expect"),
    [
        (["--hardware", "h100,efficiency=1e-320"], r"none of the \d+ configurations .* first: "),
        (["--hardware", "h100,flops=1e-300"], r"would take \d\.\d+e\+307 s, outside 0\.\.1e\+12"),
        (["--hardware", "h100,eff=0.3,mfu=0.9"], r"hardware mfu sets efficiency"),
        (["--hardware", "h100", "--seq", "10000000"], r"."),
        (["--hardware", "h100"], "ok"),
    ],
)
def test_advise_is_finite_or_one_sentence(tmp_path, extra, expect):
    for mode in modes("advise"):
        argv, out_dir = with_mode(["advise", *ADVISE, *extra], mode, tmp_path / mode.strip("-"))
        check(argv, expect, out_dir)


def _profile(tmp_path: Path, **changes) -> Path:
    data = json.loads(GOLDEN_PROFILE.read_text())
    transfer = changes.pop("transfer", None)
    if transfer is not None:
        data["transfer"] = transfer
    data.update(changes)
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("changes", "cores", "expect"),
    [
        ({"transfer": {"bandwidth": 0}}, None, r"transfer\.bandwidth is 0, outside 1000\.\.1e\+21"),
        ({"transfer": {"bandwidth": 1e-300}}, None, r"transfer\.bandwidth is 1e-300, outside"),
        ({"transfer": {"latency": 1e300}}, None, r"transfer\.latency is 1e\+300, outside 0\.\.60"),
        (
            {"cores": 2, "background_load": 1e6},
            None,
            r"background_load is 1000000.0, outside 0\.\.2",
        ),
        (
            {"cores": 2, "background_load": 2.0},
            None,
            r"background_load is 2.0; the loads must stay in 0\.\.2",
        ),
        (
            {"cores": 2, "background_load": 1.5},
            "1",
            r"a background load of 1\.5 cores leaves nothing",
        ),
        (
            {"cores": 2, "background_load": 0.5, "outside_load": 1.5},
            None,
            r"outside_load is 1.5 with background_load; the loads must stay in 0\.\.2",
        ),
        ({"call_overhead": 1e9}, None, r"call_overhead is 1000000000.0, outside 0\.\.60"),
        ({"cores": 2, "background_load": 0.5, "call_cpu": 0.002}, None, "ok"),
    ],
)
def test_a_profile_value_no_machine_has_is_one_sentence(tmp_path, changes, cores, expect):
    profile = _profile(tmp_path, **changes)
    model = json.loads(profile.read_text())["model"]
    for mode in modes("simulate"):
        argv = ["simulate", *SIM, "--model", model, "--profile", profile]
        argv += ["--cores", cores] if cores else []
        argv, out_dir = with_mode(argv, mode, tmp_path / mode.strip("-"))
        check(argv, expect, out_dir)


@pytest.fixture(scope="module")
def timeline_doc(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("simulated")
    assert run(["simulate", *SIM, "--out", out])[0] == 0
    return json.loads((out / "timeline.json").read_text())


def _cached(doc: dict, rows: list[dict]) -> dict:
    doc = json.loads(json.dumps(doc))
    doc["cache"] = rows
    return doc


@pytest.mark.parametrize(
    ("edit", "expect"),
    [
        (lambda d: d, "ok"),
        (lambda d: _cached(d, [dict(d["cache"][0], bytes=-(10**15))]), r"below 0 \(it frees"),
        (
            lambda d: _cached(d, [dict(d["cache"][0], bytes=MAX_BYTES)] * 1100),
            r"above MAX_MEMORY",
        ),
        (lambda d: _cached(d, [dict(d["cache"][0], bytes=2**63)]), r"outside"),
        (lambda d: _cached(d, [dict(d["cache"][0], time=1e300)]), r"outside 0\.\.1e\+12"),
    ],
)
def test_plot_draws_finite_timelines_only(tmp_path, timeline_doc, edit, expect):
    path = tmp_path / "timeline.json"
    path.write_text(json.dumps(edit(timeline_doc)))
    for mode in modes("plot"):
        argv = ["plot", path, "--kind", "memory"]
        argv, out_dir = with_mode(argv, "--out", tmp_path / mode.strip("-"))
        check(argv, expect, out_dir)


@pytest.mark.parametrize(
    ("extra", "expect"),
    [
        (["--model", "llama3-405b,seq=10000000"], r"training this model needs about .* TiB"),
        (["--batch-size", "100000000"], r"training this model needs about .* GiB"),
        (["--model", SMALL, "--sp"], r"give it with --tp 2 or more"),
    ],
)
def test_train_refuses_before_ray_in_every_mode(tmp_path, extra, expect):
    for mode in modes("train"):
        argv, out_dir = with_mode(["train", *SIM, *extra], mode, tmp_path / mode.strip("-"))
        check(argv, expect, out_dir)


def test_ranks_holding_fewer_microbatches_hold_fewer_bytes_at_the_limits():
    """Issue 26 saw every rank of a run at the transformer limits report 9.2233e18 bytes,
    just under 2**63, whether it held 4, 3, 2 or 1 microbatches: saturated. At a sequence
    of 10 million the numbers are exact again: 1F1B's ranks hold 4, 3, 2 and 1 microbatches
    and their activation peaks fall with them, each below MAX_MEMORY."""
    code, out, err, _ = run(
        ["simulate", "--schedule", "1f1b", "--ranks", "4", "--microbatches", "8", "--hardware"]
        + ["h100", "--model", "gpt3-175b,layers=8,seq=10000000", "--json"]
    )
    assert code == 0, err
    ranks = _strict(out)["per_rank"]
    assert [r["peak_inflight_microbatches"] for r in ranks] == [4, 3, 2, 1]
    peaks = [r["peak_activation_bytes"] for r in ranks]
    assert peaks == sorted(peaks, reverse=True) and len(set(peaks)) == 4
    assert max(peaks) < 2**60 < np.iinfo(np.int64).max
