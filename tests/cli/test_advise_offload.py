"""advise searches activation offload beside recompute: when nothing fits without it, by itself;
with ``--offload none,full,selective``, always. Each offload row's printed ``simulate`` line
gives its numbers and fits the device and the host; the memory bound with offload stays below
every simulated peak; the pruned search gives the exhaustive one's rows; bad lists are one
sentence."""

from __future__ import annotations

import json
import shlex
from dataclasses import replace

import pytest

from simulator.analytic.advise import (
    Request,
    RunText,
    evaluator,
    family_traits,
    memory_bound,
    search,
)
from simulator.analytic.advise.fates import UNNEEDED
from simulator.analytic.advise.stage_tables import memory_of
from simulator.analytic.cost_source import parse_hardware
from simulator.analytic.hardware import parse_hardware_preset
from simulator.cli import main
from simulator.model.parse import parse_model
from tests.cli.test_commands import one_sentence_error

# a long sequence on a narrow model: activations dominate, so a tight limit binds on them
MODEL = "transformer:layers=8,hidden=256,heads=4,seq=2048,vocab=96,dtype=bfloat16"
TIGHT = (
    "--model",
    MODEL,
    "--hardware",
    "gh200",
    "--gpus",
    "4",
    "--global-batch",
    "16",
    "--memory-limit",
    "100MiB",
    "--headroom",
    "0",
    "--recompute",
    "none",
    "--schedules",
    "1f1b,interleaved-1f1b",
)
SMALL_MODEL = "transformer:layers=8,hidden=64,heads=4,seq=32,vocab=96,dtype=bfloat16"
SMALL = ("--model", SMALL_MODEL, "--hardware", "a100-40gb", "--gpus", "8", "--global-batch", "8")


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def fallback():
    """advise under a limit nothing fits without offload, as JSON."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["advise", *TIGHT, "--top", "3", "--json"])
    assert code == 0
    return json.loads(out.getvalue())


def test_nothing_fits_without_offload_so_advise_searches_it(capsys, fallback):
    assert fallback["offload_fallback"] is True
    assert fallback["offload_policies"] == ["none", "full", "selective"]
    assert fallback["rows"] and all(row["offload"] != "none" for row in fallback["rows"])
    code, _, err = run(capsys, "advise", *TIGHT, "--offload", "none")
    assert code == 1 and "no configuration" in err
    assert "activation offload (--offload none,full,selective)" in err
    one_sentence_error(err)


def test_the_offload_row_runs_as_its_printed_line_and_fits_device_and_host(capsys, fallback):
    row = fallback["rows"][0]
    assert row["command"].endswith(f"--offload {row['offload']}")
    assert row["host_peak_bytes"] > 0 and row["offload_wait"] >= 0
    code, out, err = run(capsys, *shlex.split(row["command"])[1:], "--json")
    assert code == 0, err
    ran = json.loads(out)
    assert ran["offload"] == row["offload"]
    assert ran["step_time"] == row["step_time"]
    assert max(r["memory"]["total"] for r in ran["per_rank"]) == row["peak_memory"]
    assert row["peak_memory"] <= fallback["memory_limit"] == 100 * 2**20
    assert all(r["memory"]["fits"] and r["memory"]["host_fits"] for r in ran["per_rank"])
    assert max(r["host_activation_bytes"] for r in ran["per_rank"]) == row["host_peak_bytes"]
    assert max(r["offload_wait"] for r in ran["per_rank"]) == row["offload_wait"]


def test_the_text_shows_the_offload_columns_and_says_why_it_searched_them(capsys, fallback):
    code, out, _ = run(capsys, "advise", *TIGHT, "--top", "3")
    assert code == 0
    assert "nothing fits without activation offload: searched offload none, full, selective" in out
    header = next(line for line in out.splitlines() if line.startswith("#"))
    assert header.split()[:8] == [
        "#",
        "schedule",
        "layout",
        "m",
        "mb",
        "recompute",
        "offload",
        "step",
    ]
    assert "host/GPU" in header and "wait" in header
    commands = [line for line in out.splitlines() if "pebblesim simulate" in line]
    assert [c.split(maxsplit=1)[1] for c in commands] == [r["command"] for r in fallback["rows"]]


def _request(limit: int, offload=("none", "full", "selective"), host: str = ""):
    hardware = f"gh200,memory={limit}{host}"
    preset = parse_hardware_preset(hardware)
    request = Request(
        spec=parse_model(MODEL),
        hardware=preset,
        gpus=4,
        global_batch=16,
        memory_limit=limit,
        families=("1f1b", "interleaved-1f1b"),
        recompute=("none",),
        offload=offload,
    )
    return request, RunText(MODEL, hardware), parse_hardware(hardware)


def test_the_pruned_search_gives_the_exhaustive_rows_and_the_bound_holds():
    request, text, hardware = _request(110 * 2**20)
    evaluate = evaluator(text, request.memory_limit)
    pruned = search(request, hardware, evaluate, top=4)
    every = search(request, hardware, evaluate, top=4, prune=False)
    assert [o.candidate for o in pruned.top] == [o.candidate for o in every.top]
    assert any(o.candidate.offload != "none" for o in pruned.top)
    checked = 0
    for o in every.simulated:
        c = o.candidate
        bound = memory_bound(c, family_traits(c.schedule), memory_of(request.spec, c))
        assert bound <= o.peak_memory, c.label()
        checked += c.offload != "none"
    assert checked > 10


def test_offload_is_not_simulated_where_the_same_configuration_fits_without_it(capsys):
    code, out, _ = run(capsys, "advise", *SMALL, "--memory-limit", "2MiB", "--top", "5", "--json")
    plain = json.loads(out)
    code, out, _ = run(
        capsys,
        "advise",
        *SMALL,
        "--memory-limit",
        "2MiB",
        "--top",
        "5",
        "--offload",
        "none,full,selective",
        "--json",
    )
    assert code == 0
    searched = json.loads(out)
    assert searched["offload_fallback"] is False and plain["offload_fallback"] is False
    # the rows without offload are the plain search's, in order; offload adds rows whose
    # configuration does not fit without it (the twin of an offload row is no row)
    kept = [r["command"] for r in searched["rows"] if r["offload"] == "none"]
    assert kept == [r["command"] for r in plain["rows"]][: len(kept)]
    offloaded = [r["command"] for r in searched["rows"] if r["offload"] != "none"]
    twins = {c.rsplit(" --offload ", 1)[0] for c in offloaded}
    assert offloaded and not twins & {r["command"] for r in plain["rows"]}
    assert searched["unneeded"] > 0 and plain["unneeded"] == 0
    assert searched["considered"] == (
        searched["pruned_memory"]
        + searched["pruned_time"]
        + searched["simulated"]
        + searched["refused"]
        + searched["too_large"]
        + searched["unneeded"]
    )


def test_the_host_memory_of_a_node_is_checked():
    """GH200 has one GPU a node: its host memory is the GPU's share. With 1 MiB of it, no
    offload configuration fits the host, so the search finds nothing."""
    request, text, hardware = _request(100 * 2**20, host=",hostmem=1MiB")
    result = search(request, hardware, evaluator(text, request.memory_limit), top=3)
    assert not result.top
    offloaded = [o for o in result.simulated if o.candidate.offload != "none"]
    assert offloaded and all(not o.host_fits and not o.fits for o in offloaded)
    assert any(o.peak_memory <= request.memory_limit for o in offloaded)  # the host binds
    roomy, text, hardware = _request(100 * 2**20)
    assert search(roomy, hardware, evaluator(text, roomy.memory_limit), top=3).top


def test_skipped_offload_configurations_name_the_row_that_fits_without_it():
    hardware = "a100-40gb,memory=2MiB"
    preset = parse_hardware_preset(hardware)
    request = Request(
        spec=parse_model(SMALL_MODEL),
        hardware=preset,
        gpus=8,
        global_batch=8,
        memory_limit=2 * 2**20,
        families=("1f1b", "zb-h1", "zb-v"),
        offload=("none", "full", "selective"),
    )
    text = RunText(SMALL_MODEL, hardware)
    result = search(request, parse_hardware(hardware), evaluator(text, 2 * 2**20), top=3)
    skipped = [f for f in result.fates if f.verdict == UNNEEDED]
    assert skipped and result.unneeded == len(skipped)
    fitted = {f.candidate.label() for f in result.fates if f.outcome is not None and f.outcome.fits}
    assert all(f.same_as in fitted and f.candidate.offload != "none" for f in skipped)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("half", "cannot read 'half'"),
        ("full,full", "names a policy twice"),
        ("budget:50%", "whole-model offload policies"),
        ("none,0:full", "whole-model offload policies"),
        ("", "--offload needs a policy"),
    ],
)
def test_bad_offload_lists_are_one_sentence(capsys, value, says):
    code, out, err = run(capsys, "advise", *SMALL, "--offload", value)
    assert code in (1, 2) and out == ""
    one_sentence_error(err)
    assert says in err


def test_offload_on_one_rank_only_says_what_to_add(capsys):
    code, _, err = run(capsys, "advise", *SMALL, "--tp", "1", "--dp", "8", "--offload", "full")
    assert code == 1
    one_sentence_error(err)
    assert "add none to the list" in err


def test_the_figure_marks_offload_beside_recompute():
    from visualize.advise import ParetoPoint, pareto_figure

    points = [
        ParetoPoint("a", 1.0, 700, True, rank=1),
        ParetoPoint("b off=full", 1.1, 600, True, rank=2, offload="full"),
        ParetoPoint("c off=selective", 1.0, 650, True, rank=3, offload="selective"),
        ParetoPoint("d rc=full off=full", 1.3, 500, True, recompute="full", offload="full"),
        ParetoPoint("e off=full", 1.2, 1100, False, offload="full"),
    ]
    fig = pareto_figure(points, 1000)
    legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert legend[:5] == [
        "fits, recompute none, no offload (1)",
        "fits, recompute none, offload full (1)",
        "fits, recompute none, offload selective (1)",
        "fits, recompute full, offload full (1)",
        "over the limit (1)",
    ]
    groups = fig.axes[0].collections[:4]
    shapes = [c.get_paths()[0].vertices.round(3).tobytes() for c in groups]
    colours = [tuple(c.get_facecolor()[0].round(3)) for c in groups]
    assert len(set(shapes[:3])) == 3  # a dot, a triangle, a star: the offload policy's marker
    assert shapes[3] == shapes[1] and colours[3] != colours[1]  # the recompute policy's colour
    assert "off=selective" in fig.axes[1].texts[0].get_text()
    only = pareto_figure([replace(points[1], rank=1)], 1000)
    assert only.axes[1].get_legend().get_texts()[0].get_text() == "fits, offload full (1)"
