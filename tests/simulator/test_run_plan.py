"""``plan_run`` builds a complete run from plain values: the layout reaches the model's rules,
the batch splits over replicas, and a plan that disagrees with itself is refused."""

from __future__ import annotations

from dataclasses import replace

import pytest

from schedules.registry import build_schedule
from simulator.analytic.executor import simulate
from simulator.analytic.run_plan import simulate_plan
from simulator.errors import PebbleError
from simulator.model import ModelSpec
from simulator.model.parse import parse_model
from simulator.model.reference import TrainConfig
from simulator.run import CostSource, Layout, make_schedule, plan_run, plan_training
from simulator.run.plan import check_layout, layout_of_model

GPT = "transformer:layers=4,hidden=64,heads=4,seq=32,vocab=96"


def test_the_layout_reaches_the_models_rules():
    schedule = make_schedule("1f1b", 2, 4)
    layout = Layout(tensor=2, sequence_parallel=True, data=2, sharding=1)
    plan = plan_run(schedule, GPT, batch_size=16, layout=layout)
    assert plan.layout == replace(layout, pipeline=2, chunks=1)
    assert plan.spec.layout == Layout(tensor=2, sequence_parallel=True)
    assert plan.spec == replace(parse_model(GPT), layout=plan.spec.layout)
    assert (plan.microbatch_rows, plan.batch_size, plan.global_batch) == (2, 8, 16)
    unsharded = plan_run(schedule, GPT, batch_size=16, layout=Layout(data=2))
    for sharded, whole in zip(plan.spec.layers(), unsharded.spec.layers(), strict=True):
        assert sharded.footprint(2, 2) == whole.footprint(2, 2, tp=2, sp=True)


def test_the_model_text_gives_the_layout_and_the_flags_go_on_top():
    spec = parse_model("llama3-8b,layers=2,tp=8,sp=1")
    assert layout_of_model(spec) == Layout(tensor=8, sequence_parallel=True)
    assert layout_of_model(spec, tensor=8, data=2) == Layout(
        tensor=8, sequence_parallel=True, data=2
    )
    with pytest.raises(PebbleError, match="sets tensor 8 and the flags set 4; give one"):
        layout_of_model(spec, tensor=4)
    assert layout_of_model(ModelSpec.uniform(2), data=3) == Layout(data=3)


def test_the_sharded_optimizer_is_in_the_whole_rank_memory():
    schedule = make_schedule("1f1b", 2, 4)
    replicated = simulate_plan(plan_run(schedule, GPT, layout=Layout(data=4)))
    sharded = simulate_plan(plan_run(schedule, GPT, layout=Layout(data=4, sharding=1)))
    for whole, split in zip(replicated.meta.rank_memory, sharded.meta.rank_memory, strict=True):
        assert split.optimizer_state == -(-whole.optimizer_state // 4)
        assert split.parameters == whole.parameters
    assert sharded.meta.devices == 2 * 4


def test_simulate_plan_is_the_engine_on_the_plans_pieces():
    plan = plan_run(build_schedule("zb-h1", 2, 4), costs=CostSource(units="F=1,I=2,W=0.5"))
    from simulator.analytic.cost_source import cost_model

    direct = simulate(
        plan.schedule, cost_model(plan), plan.spec, plan.partition, plan.microbatch_rows
    )
    assert list(simulate_plan(plan).events) == list(direct.events)


@pytest.mark.parametrize(
    ("build", "says"),
    [
        (lambda s: plan_run(s, layout=Layout(tensor=2)), "--tp and --sp apply to transformer"),
        (lambda s: plan_run(s, GPT, layout=Layout(tensor=3)), "does not divide the model's heads"),
        (lambda s: plan_run(s, GPT, batch_size=6, layout=Layout(data=2)), "does not split"),
        (lambda s: CostSource(units="F=1", hardware="h100"), "choose one cost source"),
        (lambda s: CostSource(comm_latency=-1.0), "must not be negative"),
        (lambda s: plan_run(s).with_schedule(build_schedule("1f1b", 4, 4)), "same stages"),
        (
            lambda s: check_layout(Layout(tensor=2), s, parse_model(GPT)),
            r"counted under p1 v1 t1 c1 e1 d1 z0 but the run's layout is p1 v1 t2",
        ),
    ],
)
def test_a_plan_that_cannot_be_is_one_sentence(build, says):
    with pytest.raises(PebbleError, match=says):
        build(build_schedule("1f1b", 2, 4))


def test_the_ray_executor_refuses_a_config_that_is_not_its_plan():
    from simulator.ray_pipeline.executor import check_plan_trains

    schedule = build_schedule("1f1b", 2, 4)
    config = TrainConfig(model=ModelSpec(widths=(2, 8, 8, 3)), batch_size=32, microbatches=4)
    plan = plan_training(schedule, config, layout=Layout(data=2))
    check_plan_trains(plan, config)
    assert plan.microbatch_rows == 4  # 32 rows over 2 replicas x 4 microbatches
    with pytest.raises(PebbleError, match="batch of 64 rows is not the plan's 32"):
        check_plan_trains(plan, replace(config, batch_size=64))
    with pytest.raises(PebbleError, match="model is not the plan's model"):
        check_plan_trains(plan, replace(config, model=ModelSpec(widths=(2, 8, 3))))
