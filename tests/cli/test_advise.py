"""pebblesim advise: a ranked table of configurations that fit, each reproducible with the
``pebblesim simulate`` line it prints; bad input is one sentence."""

from __future__ import annotations

import io
import json
import shlex
import sys

import pytest

from simulator.cli import main

MODEL = "transformer:layers=8,hidden=64,heads=4,seq=32,vocab=96,dtype=bfloat16"
SMALL = ("--model", MODEL, "--hardware", "a100-40gb", "--gpus", "8", "--global-batch", "8")


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def advice():
    """One search as JSON, shared by the tests that read it."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["advise", *SMALL, "--memory-limit", "2MiB", "--top", "5", "--json"])
    assert code == 0
    return json.loads(out.getvalue())


def test_every_row_fits_and_rows_are_ranked_by_step_time(advice):
    rows = advice["rows"]
    assert len(rows) == 5
    assert advice["memory_limit"] + advice["headroom"] == 2 * 2**20
    assert advice["headroom"] == int(0.05 * 2 * 2**20)  # the default: 5% of the device
    assert all(row["peak_memory"] <= advice["memory_limit"] for row in rows)
    times = [row["step_time"] for row in rows]
    assert times == sorted(times)
    assert advice["considered"] == (
        advice["pruned_memory"]
        + advice["pruned_time"]
        + advice["simulated"]
        + advice["refused"]
        + advice["too_large"]
    )
    assert advice["pruned_memory"] > 0 and advice["pruned_time"] > 0
    assert {row["binds"] for row in rows} <= {"memory", "bubble", "compute"}


@pytest.mark.parametrize("index", range(5))
def test_every_printed_command_reproduces_its_row(capsys, advice, index):
    row = advice["rows"][index]
    words = shlex.split(row["command"])
    assert words[:2] == ["pebblesim", "simulate"]
    code, out, _ = run(capsys, *words[1:], "--json")
    assert code == 0
    run_ = json.loads(out)
    assert run_["step_time"] == row["step_time"]
    assert run_["bubble_fraction"] == row["bubble_fraction"]
    assert max(r["memory"]["total"] for r in run_["per_rank"]) == row["peak_memory"]
    assert all(r["memory"]["fits"] for r in run_["per_rank"])


def test_the_rows_reproduced_cover_auto_and_the_registry(advice):
    assert {row["schedule"] == "auto" for row in advice["rows"]} == {True, False}


def test_the_text_table_lists_rows_commands_and_counts(capsys):
    code, out, err = run(capsys, "advise", *SMALL, "--top", "3")
    assert code == 0
    assert err == ""  # no progress bar off a terminal
    lines = out.splitlines()
    assert lines[2].split()[:3] == ["#", "schedule", "layout"]
    commands = [line for line in lines if "pebblesim simulate" in line]
    assert len(commands) == 3
    assert any(line.startswith("searched ") and "simulated" in line for line in lines)


def test_the_text_prints_the_json_rows_commands(capsys, advice):
    code, out, _ = run(capsys, "advise", *SMALL, "--memory-limit", "2MiB", "--top", "5")
    assert code == 0
    printed = [
        line.split(maxsplit=1)[1] for line in out.splitlines() if "pebblesim simulate" in line
    ]
    assert printed == [row["command"] for row in advice["rows"]]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_progress_bar_shows_on_a_terminal(capsys, monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    code = main(["advise", *SMALL, "--top", "3"])
    assert code == 0
    drawn = terminal.getvalue()
    assert "advise: bounds" in drawn and "advise: simulate" in drawn
    assert "config" in drawn and "simulated" in drawn


def test_out_writes_the_pareto_figure(capsys, tmp_path):
    code, out, _ = run(capsys, "advise", *SMALL, "--top", "3", "--out", tmp_path)
    assert code == 0
    for name in ("pareto.png", "pareto.svg", "advise.json"):
        assert (tmp_path / name).stat().st_size > 0
    assert json.loads((tmp_path / "advise.json").read_text())["rows"]


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"--model": "gpt5"}, "unknown model preset"),
        ({"--model": "2-8-8-3"}, "transformers"),
        ({"--hardware": "flops=1e12"}, "GPU preset"),
        ({"--hardware": "q100"}, "unknown hardware preset"),
        ({"--gpus": "12"}, "whole number of 8-GPU"),
        ({"--memory-limit": "lots"}, "--memory-limit"),
        ({"--memory-limit": "1KiB"}, "no configuration"),
        ({"--schedules": "zb-x"}, "unknown schedule"),
        ({"--model": MODEL + ",seq=64", "--seq": "16"}, "seq twice"),
        ({"--recompute": "some"}, "cannot read 'some'"),
        ({"--recompute": "full,full"}, "names a policy twice"),
        ({"--recompute": "budget:60%"}, "whole-model recompute policies"),
        ({"--recompute": "none,0:full"}, "whole-model recompute policies"),
        ({"--headroom": "lots"}, "cannot read --headroom"),
        ({"--headroom": "2GiB", "--memory-limit": "2GiB"}, "leaves nothing"),
        ({"--explain": "p4 q2"}, "cannot read 'q2'"),
        ({"--memory-limit": "1KiB"}, "static memory alone"),
    ],
)
def test_bad_input_is_one_sentence(capsys, changes, says):
    argv = dict(zip(SMALL[::2], SMALL[1::2], strict=True))
    argv.update(changes)
    code, out, err = run(capsys, "advise", *(x for kv in argv.items() for x in kv))
    assert code in (1, 2)
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert says in lines[0]
    assert out == ""


@pytest.mark.parametrize(("flag", "value"), [("--gpus", "0"), ("--global-batch", "nan")])
def test_a_malformed_number_is_argparses_exit_2(capsys, flag, value):
    argv = dict(zip(SMALL[::2], SMALL[1::2], strict=True))
    argv[flag] = value
    with pytest.raises(SystemExit) as exit_info:
        main(["advise", *(x for kv in argv.items() for x in kv)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "expected a positive integer" in err.strip().splitlines()[-1]


def test_the_figure_zooms_on_the_numbered_points_and_merges_coinciding_numbers():
    from visualize.advise import ParetoPoint, pareto_figure

    gib = 2**30
    points = [
        ParetoPoint("a", 40.0, 70 * gib, True, rank=1),
        ParetoPoint("b", 40.4, 60 * gib, True, rank=2),
        ParetoPoint("c", 40.4, 60 * gib, True, rank=3),  # same place as b
        ParetoPoint("d", 200.0, 65 * gib, True),
        ParetoPoint("e", 41.0, 90 * gib, False),
    ]
    fig = pareto_figure(points, 80 * gib, "title")
    ax = fig.axes[0]
    low, high = ax.get_ylim()
    assert low < 40.0 and 40.4 < high < 41.0  # the rest off the top, not squashing the top rows
    numbers = sorted(t.get_text() for t in ax.texts)
    assert numbers == ["1", "2,3"]
    legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert any("off the top (2; up to 200 s)" in text for text in legend)
    assert ax.get_ylabel() == "step time (s)"


def test_the_figure_marks_each_recompute_policy():
    from visualize.advise import ParetoPoint, pareto_figure

    points = [
        ParetoPoint("a rc=selective", 1.0, 700, True, rank=1, recompute="selective"),
        ParetoPoint("b", 1.1, 900, True, rank=2),
        ParetoPoint("c", 1.2, 950, True),
        ParetoPoint("d rc=full", 1.3, 500, True, recompute="full"),
        ParetoPoint("e rc=full", 1.2, 1100, False, recompute="full"),
    ]
    fig = pareto_figure(points, 1000)
    legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert legend[:4] == [
        "fits, recompute none (2)",
        "fits, recompute selective (1)",
        "fits, recompute full (1)",
        "over the limit (1)",
    ]
    shapes = [c.get_paths()[0].vertices.round(3).tobytes() for c in fig.axes[0].collections[:3]]
    assert len(set(shapes)) == 3  # a circle, a square and a diamond
    assert "rc=selective" in fig.axes[1].texts[0].get_text()  # the side list names the policy
    plain = pareto_figure([ParetoPoint("b", 1.1, 900, True, rank=1)], 1000)
    assert plain.axes[1].get_legend().get_texts()[0].get_text() == "fits (1)"


def test_the_figure_reads_short_steps_in_their_unit():
    from visualize.advise import ParetoPoint, pareto_figure

    points = [ParetoPoint("a", 2e-5, 1000, True, rank=1), ParetoPoint("b", 3e-5, 900, True)]
    ax = pareto_figure(points, 2000).axes[0]
    assert ax.get_ylabel() == "step time (µs)"
    low, high = ax.get_ylim()
    assert low < 20 and 30 < high < 40


def test_the_recompute_axis_is_none_selective_and_full_by_default():
    """Each configuration once per policy, ``--recompute`` on its command line, and a smaller
    memory bound the more a policy drops (the math attention core: a fused one has no scores
    for selective to drop, and advise searches it as none)."""
    from dataclasses import replace

    from simulator.analytic.advise import Request, RunText, candidates, family_traits, memory_bound
    from simulator.analytic.advise import stage_table as table_of
    from simulator.analytic.cost_source import parse_hardware
    from simulator.analytic.hardware import parse_hardware_preset
    from simulator.cli.advise_print import simulate_command
    from simulator.model.parse import parse_model

    preset = parse_hardware_preset("a100-40gb")
    model = MODEL + ",attention=math"
    request = Request(parse_model(model), preset, 8, 8, preset.memory_bytes, ("1f1b",))
    assert request.recompute == ("none", "selective", "full")
    every = list(candidates(request))
    plain = list(candidates(replace(request, recompute=("none",))))
    assert [c for c in every if c.recompute == "none"] == plain
    assert len(every) == 3 * len(plain)
    full = next(c for c in every if c.recompute == "full" and c.pp > 1)
    assert simulate_command(full, RunText(model, "a100-40gb")).endswith("--recompute full")
    hardware, traits = parse_hardware("a100-40gb"), family_traits("1f1b")
    bounds = []
    for policy in ("full", "selective", "none"):
        c = replace(full, recompute=policy)
        bounds.append(
            memory_bound(c, traits, table_of(request.spec, c.layer, c.stages, hardware, policy))
        )
    assert bounds == sorted(bounds) and len(set(bounds)) == 3


def test_recompute_restricts_the_policies_searched(capsys):
    code, out, _ = run(
        capsys, "advise", *SMALL, "--memory-limit", "2MiB", "--recompute", "FULL,every:2", "--json"
    )
    assert code == 0
    data = json.loads(out)
    assert data["recompute_policies"] == ["full", "every:2"]
    assert {row["recompute"] for row in data["rows"]} <= {"full", "every:2"}
    assert all(row["command"].endswith(f"--recompute {row['recompute']}") for row in data["rows"])


def test_a_recompute_configuration_runs_as_its_printed_line(capsys):
    """advise runs a policy as ``simulate --recompute`` does: the same step and memory, and
    more compute than without it (the recompute is not dropped on the way)."""
    from dataclasses import replace

    from simulator.analytic.advise import Candidate, RunText, evaluator
    from simulator.cli.advise_print import simulate_command

    text = RunText(MODEL, "a100-40gb")
    full = Candidate("1f1b", 2, 1, 1, 4, 2, recompute="full")
    outcome = evaluator(text)(full)
    code, out, _ = run(capsys, *shlex.split(simulate_command(full, text))[1:], "--json")
    assert code == 0
    run_ = json.loads(out)
    assert run_["step_time"] == outcome.step_time
    assert max(r["memory"]["total"] for r in run_["per_rank"]) == outcome.peak_memory
    plain = evaluator(text)(replace(full, recompute="none"))
    assert outcome.busy > plain.busy and outcome.peak_memory < plain.peak_memory


def test_one_rank_is_no_pipeline_without_a_bubble(capsys):
    code, out, _ = run(capsys, "advise", *SMALL, "--tp", "1", "--dp", "8", "--top", "2")
    assert code == 0
    table = out.split("reproduce a row:")[0].splitlines()
    rows = [line for line in table if line.lstrip()[:2] in ("1 ", "2 ")]
    assert len(rows) == 2 and all(" no pipeline " in row and "1f1b" not in row for row in rows)
    assert all(row.split()[-4] == "-" for row in rows)  # bubble, then peak (2 words), binds
    assert all(row.split()[-1] in ("compute", "communication", "memory") for row in rows)


def test_no_fit_on_static_memory_never_suggests_a_smaller_batch(capsys):
    argv = dict(zip(SMALL[::2], SMALL[1::2], strict=True))
    argv["--memory-limit"] = "1KiB"
    code, out, err = run(capsys, "advise", *(x for kv in argv.items() for x in kv))
    assert code == 1 and out == ""
    assert "static memory alone" in err and "more GPUs" in err and "offload" in err
    assert "a smaller batch or a shorter sequence cannot help" in err
    assert "shrink the batch" not in err and "--global-batch" not in err


def test_explain_prints_the_layouts_fate_and_the_text_its_numbers(capsys, advice):
    first = advice["rows"][0]
    layout = " ".join(first["command"].split("--layout")[0:1]) and "p{pp} t{tp} d{dp}".format(
        **first
    )
    code, out, _ = run(
        capsys, "advise", *SMALL, "--memory-limit", "2MiB", "--top", "5", "--explain", layout
    )
    assert code == 0
    section = out.split(f"--explain {layout}:")[1].splitlines()
    assert "ranks #1 (in the table)" in section[1]
    code, out, _ = run(
        capsys, "advise", *SMALL, "--memory-limit", "2MiB", "--top", "5", "--explain", "p3"
    )
    assert "--explain p3: not among the configurations searched: p x t x d must be" in out


def test_the_text_gives_reasons_and_a_compare_line_that_runs(capsys):
    code, out, _ = run(capsys, "advise", *SMALL, "--memory-limit", "2MiB", "--top", "5")
    assert code == 0
    assert "dropped by the memory bound because" in out
    assert "dropped by the time bound: their fastest possible step is slower" in out
    assert "(2.0 MiB less a 102.4 KiB headroom)" in out
    compare = [line.strip() for line in out.splitlines() if "pebblesim compare" in line]
    assert len(compare) == 1
    assert "--memory-limit" not in compare[0] or "--memory-limit total:1.90MiB" in compare[0]
    code, _, err = run(capsys, *shlex.split(compare[0])[1:])
    assert code == 0, err


def test_sp_is_what_advise_does_anyway_and_says_so(capsys):
    """--sp is no silent choice: advise always pairs t >= 2 with sequence parallelism, says so,
    and refuses --sp with --tp 1."""
    code, out, err = run(capsys, "advise", *SMALL, "--memory-limit", "2MiB", "--sp", "--json")
    assert code == 0 and "--sp changes nothing" in err
    rows = json.loads(out)["rows"]
    assert all(row["sp"] == (row["tp"] > 1) for row in rows)
    code, _, err = run(capsys, "advise", *SMALL, "--tp", "1", "--sp")
    assert code != 0 and "give it with --tp 2 or more" in err


def test_jobs_change_the_speed_not_the_answer(capsys, advice):
    """The default (workers on this machine's cores) printed ``advice``; one job in this process
    prints the same JSON but for the search's own seconds. --jobs with --address is refused."""
    code, out, _ = run(
        capsys, "advise", *SMALL, "--memory-limit", "2MiB", "--top", "5", "--json", "--jobs", "1"
    )
    assert code == 0
    alone = json.loads(out)
    assert {**alone, "seconds": 0} == {**advice, "seconds": 0}
    code, _, err = run(capsys, "advise", *SMALL, "--jobs", "2", "--address", "127.0.0.1:1")
    assert code != 0
    assert err.strip().count("\n") == 0 and "give one of them" in err
