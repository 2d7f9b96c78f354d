"""``--recompute`` on the command line: simulate, compare and train, and one sentence for bad
input (before anything runs)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from simulator.errors import PebbleError
from simulator.model import ModelSpec
from simulator.model.optim import OptimizerConfig
from simulator.model.partitioning import partition
from simulator.model.recompute import RecomputePolicy, plan_stages
from simulator.model.reference import TrainConfig
from simulator.ray_pipeline.executor import RayOptions, RayPipeline
from simulator.run import plan_training
from simulator.run.recompute import recompute_policies
from tests.cli.test_commands import one_sentence_error, run_cli

GPT = "transformer:layers=4,hidden=32,heads=4,seq=16,vocab=96"
SIZES = ("--ranks", 2, "--microbatches", 4)


def simulate_json(capsys, *extra):
    code, out, err = run_cli(capsys, "simulate", "--schedule", "gpipe", *SIZES, "--json", *extra)
    assert code == 0, err
    return json.loads(out)


def test_simulate_reports_the_policy_its_time_and_flops(capsys):
    none = simulate_json(capsys, "--model", GPT)
    full = simulate_json(capsys, "--model", GPT, "--recompute", "full")
    assert "recompute" not in none and "recompute_time" not in none["per_rank"][0]
    assert full["recompute"] == "full"
    for before, after in zip(none["per_rank"], full["per_rank"], strict=True):
        assert after["peak_activation_bytes"] < before["peak_activation_bytes"]
        assert after["recompute_time"] > 0 and after["recompute_flops"] > 0
        # every backward is longer by its recompute: the busy time grows by exactly that
        assert after["busy"] == pytest.approx(before["busy"] + after["recompute_time"])
    assert full["makespan"] > none["makespan"]


def test_a_budget_is_met_by_the_run_it_plans(capsys):
    none = simulate_json(capsys, "--model", GPT)
    top = max(r["peak_activation_bytes"] for r in none["per_rank"])
    planned = simulate_json(capsys, "--model", GPT, "--recompute", "budget:55%")
    assert max(r["peak_activation_bytes"] for r in planned["per_rank"]) <= 0.55 * top
    assert planned["recompute"] == "budget:55%"


def test_compare_places_every_schedule_and_policy_pair(capsys, tmp_path):
    code, out, err = run_cli(
        capsys, "compare", *SIZES, "--schedules", "1f1b,gpipe", "--model", GPT,
        "--recompute", "none,selective,full,sqrt", "--out", tmp_path,
    )  # fmt: skip
    assert code == 0, err
    rows = (tmp_path / "compare.csv").read_text().splitlines()[1:]
    labels = [row.split(",")[0] for row in rows]
    assert labels == [
        f"{s} [{p}]" for s in ("1f1b", "gpipe") for p in ("none", "selective", "full", "sqrt")
    ]


def test_compare_keeps_a_per_stage_policy_together():
    assert recompute_policies("none,0:full,1:none,sqrt") == ["none", "0:full,1:none", "sqrt"]
    with pytest.raises(PebbleError, match="twice"):
        recompute_policies("full,full")


@pytest.mark.parametrize(
    "argv",
    [
        ("simulate", "--schedule", "1f1b", *SIZES, "--recompute", "often"),
        ("simulate", "--schedule", "1f1b", *SIZES, "--recompute", "3:full"),
        ("simulate", "--schedule", "1f1b", *SIZES, "--recompute", "budget:10B"),
        ("compare", *SIZES, "--recompute", "none,every:0"),
        ("train", "--schedule", "1f1b", *SIZES, "--recompute", "every:x"),
        ("demo", "--recompute", "never"),
    ],
)
def test_bad_policies_are_one_sentence(capsys, argv):
    code, _, err = run_cli(capsys, *argv)
    assert code != 0
    one_sentence_error(err)


@pytest.mark.parametrize(("name", "policy"), [("zb-v", "full"), ("1f1b", "0:every:2,1:selective")])
def test_ray_recomputes_for_real(ray_session, name, policy):
    """On Ray, under a recompute policy: the same gradient bits and losses as without, caches
    empty after each step (``run(check=True)``), the measured peaks equal the prediction and
    the stages ran exactly the predicted recompute sub-spans."""
    from schedules.registry import build_schedule

    spec = ModelSpec(widths=(2, 16, 16, 16, 16, 16, 16, 3), activation="tanh", seed=3)
    schedule = build_schedule(name, 2, 4)
    config = TrainConfig(
        model=spec, batch_size=16, microbatches=4, steps=2,
        optimizer=OptimizerConfig("sgd", lr=0.3),
    )  # fmt: skip
    plan = plan_stages(RecomputePolicy.parse(policy), spec, partition(spec, schedule.num_stages))
    results = {}
    for recompute in (None, plan):
        run = plan_training(schedule, config, recompute=None if recompute is None else policy)
        with RayPipeline(run, config, RayOptions(calibrate=False)) as pipeline:
            result = pipeline.run(config.steps, check=True)
            results[recompute is None] = (result, pipeline.prediction(result))
    (plain, _), (recomputed, predicted) = results[True], results[False]
    for key, grad in plain.first_step_gradients.items():
        assert np.array_equal(recomputed.first_step_gradients[key], grad), key
    assert recomputed.losses == plain.losses
    measured = recomputed.timeline
    assert measured.peak_activation_bytes() == predicted.peak_activation_bytes()
    spans = sorted((r.step, r.stage, r.microbatch) for r in measured.recompute)
    assert spans == sorted((r.step, r.stage, r.microbatch) for r in predicted.recompute)
    assert measured.meta.recompute == policy


def test_auto_schedules_for_what_the_policy_keeps(capsys):
    """--schedule auto under a memory limit plans with the policy's footprints and longer
    backwards: selective recomputation leaves room for more microbatches in flight, so the
    schedule it finds is faster, and both stay within the limit. The math attention core: a
    fused one has no scores for selective recompute to drop."""
    limit = 4 * 2**30
    runs = {}
    for policy in ("none", "selective"):
        code, out, err = run_cli(
            capsys, "simulate", "--schedule", "auto", "--ranks", 4, "--microbatches", 8,
            "--model", "gpt3-1.3b,attention=math", "--hardware", "h100", "--memory-limit", limit,
            "--recompute", policy, "--json",
        )  # fmt: skip
        assert code == 0, err
        runs[policy] = json.loads(out)
        assert max(r["peak_activation_bytes"] for r in runs[policy]["per_rank"]) <= limit
    assert runs["selective"]["makespan"] < runs["none"]["makespan"]


def test_auto_refuses_a_budget(capsys):
    code, _, err = run_cli(
        capsys, "simulate", "--schedule", "auto", *SIZES, "--recompute", "budget:50%"
    )
    assert code != 0
    one_sentence_error(err)
