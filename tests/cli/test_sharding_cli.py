"""``--zero 2`` and ``--zero 3`` (ZeRO-2, ZeRO-3/FSDP) end to end: ``simulate`` in text and
``--json``, ``compare``, the layout text, and one sentence for a stage that does not exist."""

from __future__ import annotations

import csv
import json
import shlex

import pytest

from simulator.cli import main
from simulator.errors import PebbleError
from simulator.model.layout import Layout
from simulator.run import make_schedule, plan_run
from simulator.run.rank_memory import static_memory
from tests.cli.helpers import quiet_main

MODEL = "llama3-8b,layers=4"
RUN = ("--schedule", "1f1b", "--ranks", "2", "--microbatches", "4", "--model", MODEL)
HARDWARE = ("--hardware", "h100")


def _simulated(*flags, batch: int = 16, model: str = MODEL) -> dict:
    run = [*RUN[:-1], model, *HARDWARE, "--batch-size", batch, *flags, "--json"]
    code, out = quiet_main(["simulate", *run])
    assert code == 0
    return json.loads(out)


@pytest.mark.parametrize("stage", [2, 3])
def test_simulate_json_counts_the_stage(stage):
    run = _simulated("--dp", "4", "--zero", str(stage))
    layout = Layout.parse(run["layout"])
    assert layout == Layout(pipeline=2, data=4, sharding=stage)
    schedule = make_schedule("1f1b", 2, 4)
    plan = plan_run(schedule, MODEL, batch_size=16, layout=layout)
    expected = static_memory(plan.spec, schedule, plan.partition, plan.microbatch_rows, layout)
    for rank, memory in zip(run["per_rank"], expected, strict=True):
        got = rank["memory"]
        assert (got["parameters"], got["gradients"], got["optimizer_state"]) == (
            memory.parameters,
            memory.gradients,
            memory.optimizer_state,
        )


def test_each_stage_holds_less_on_a_large_model():
    """Llama 3 8B (16 blocks) on 2 pipeline ranks and 8 replicas: each stage's resident shards
    shrink more than its in-flight copies add, so every rank's static memory falls stage by
    stage."""
    static = []
    for stage in range(4):
        run = _simulated("--dp", "8", "--zero", str(stage), batch=32, model="llama3-8b,layers=16")
        static.append(
            [
                sum(r["memory"][k] for k in ("parameters", "gradients", "optimizer_state"))
                for r in run["per_rank"]
            ]
        )
    for rank in range(2):
        assert static[0][rank] > static[1][rank] > static[2][rank] > static[3][rank]


def test_z3_on_a_rank_of_two_blocks_holds_them_whole_besides_its_shards():
    """Llama 3 8B cut to 4 blocks: rank 1 holds one block and the head, both gathered at once
    under z3 (the running block and the prefetched one), so z3 holds more there than z2."""
    runs = [_simulated("--dp", "8", "--zero", str(stage), batch=32) for stage in (2, 3)]
    z2, z3 = (run["per_rank"][1]["memory"] for run in runs)
    assert z3["parameters"] == z2["parameters"] // 8 + z2["parameters"]


def test_simulate_text_names_the_stage():
    code, out = quiet_main(["simulate", *RUN, *HARDWARE, "--dp", "2", "--zero", "3"])
    assert code == 0
    assert "layout p2 v1 t1 c1 e1 d2 z3" in out


def test_compare_takes_the_stage(tmp_path):
    out = tmp_path / "cmp"
    code, _ = quiet_main(
        ["compare", "--ranks", "2", "--microbatches", "4", "--schedules", "1f1b,gpipe"]
        + ["--model", MODEL, *HARDWARE, "--dp", "2", "--zero", "2", "--out", out]
    )
    assert code == 0
    with open(out / "compare.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 and all(int(row["rank_memory_max"]) > 0 for row in rows)


@pytest.mark.parametrize("stage", ["4", "-1", "two"])
def test_a_stage_that_does_not_exist_is_refused_by_the_parser(stage, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["simulate", *RUN, "--dp", "2", "--zero", stage])
    assert exit_.value.code != 0
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("pebblesim simulate: error: argument --zero:")


def test_the_layout_text_reads_z2_and_z3_and_refuses_z4():
    assert Layout.parse("p2 d8 z3").sharding == 3
    assert str(Layout(data=4, sharding=2)) == "p1 v1 t1 c1 e1 d4 z2"
    with pytest.raises(
        PebbleError, match=r"sharding degree \(z4\) is above pebblesim's limit of 3\.$"
    ):
        Layout.parse("d4 z4")


SMALL = "transformer:layers=8,hidden=64,heads=4,seq=32,vocab=96,dtype=bfloat16"
SEARCH = ("--model", SMALL, "--hardware", "a100-40gb", "--gpus", "8", "--global-batch", "8")


def test_advise_keeps_a_fixed_stage_and_its_rows_run_again_under_compare(tmp_path):
    """``advise --zero 3 --dp 4``: every row is z3, and ``compare`` with a row's own flags
    predicts the row's whole-rank memory, so the bounds, the search and ``simulate`` count one
    rule."""
    code, out = quiet_main(["advise", *SEARCH, "--zero", "3", "--dp", "4", "--top", "6", "--json"])
    assert code == 0
    rows = json.loads(out)["rows"]
    checked = 0
    for index, row in enumerate(rows):
        layout = Layout.parse(row["layout"]["text"])
        assert (layout.data, layout.sharding) == (4, 3)
        if row["schedule"] == "auto":
            continue
        words = shlex.split(row["command"])[2:]  # past "pebblesim simulate"
        assert words[words.index("--zero") + 1] == "3"
        words[words.index("--schedule")] = "--schedules"
        code, _ = quiet_main(["compare", *words, "--out", tmp_path / str(index)])
        assert code == 0, row["command"]
        with open(tmp_path / str(index) / "compare.csv", newline="") as handle:
            (compared,) = list(csv.DictReader(handle))
        assert int(compared["rank_memory_max"]) == row["peak_memory"]
        checked += 1
    assert checked > 0


def test_advise_refuses_a_stage_with_no_distributed_optimizer(capsys):
    code = main(["advise", *SEARCH, "--zero", "2", "--no-distributed-optimizer"])
    assert code != 0
    assert "--zero 2 and --no-distributed-optimizer contradict each other." in (
        capsys.readouterr().err
    )
