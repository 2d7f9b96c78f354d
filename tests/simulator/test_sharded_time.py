"""Sharded data parallelism's and expert parallelism's time inside the roofline, and the shared
links (``simulator.analytic.sharded_comm``, ``roofline_costs``): the overlap chain against
closed forms worked by hand, ZeRO's volumes, monotonic properties, and the step breakdown still
adding up."""

from __future__ import annotations

import random

import pytest

from simulator.analytic.hardware import parse_hardware_preset
from simulator.analytic.roofline_costs import link_of, roofline_costs
from simulator.analytic.run_plan import simulate_plan
from simulator.analytic.sharded_comm import (
    Unit,
    all_to_all_seconds,
    buckets,
    exposed_seconds,
    overlap_chain,
    ring_seconds,
)
from simulator.model.layout import Layout
from simulator.run.plan import CostSource, plan_run
from simulator.run.schedule_source import make_schedule
from simulator.timeline.breakdown import step_breakdown

# ---------------------------------------------------------------- the chain, by hand


def test_a_forward_with_gathers_shorter_than_compute_exposes_only_the_first():
    # 4 blocks of 10 s, each gather 4 s: gather 0 (0-4), block 0 (4-14) while gather 1 (4-8)
    # ... block 3 ends at 4 + 40 = 44: 4 s exposed
    units = [Unit(10.0, gather=4.0)] * 4
    assert overlap_chain(units) == pytest.approx(44.0)
    assert exposed_seconds(units) == pytest.approx(4.0)


def test_a_forward_with_gathers_longer_than_compute_is_bound_by_the_link():
    # gathers of 6 s behind blocks of 2 s: block i starts when gather i ends at 6 (i + 1);
    # the last block ends at 24 + 2 = 26
    units = [Unit(2.0, gather=6.0)] * 4
    assert overlap_chain(units) == pytest.approx(26.0)


def test_contention_slows_the_overlapped_compute_by_its_factor():
    # as the first case; blocks 0-2 each overlap 4 s of the next gather: 3 x 4 x 0.25 = 3 s
    units = [Unit(10.0, gather=4.0)] * 4
    assert overlap_chain(units, contention=0.25) == pytest.approx(47.0)


def test_the_last_buckets_reduce_scatter_is_exposed_and_the_others_hide():
    # backward of 3 blocks of 5 s, a 3 s reduce-scatter after each: the stream runs 5-8,
    # 10-13, 15-18; the pass ends at 18, 3 s after the compute
    units = [Unit(5.0, reduce=3.0)] * 3
    assert overlap_chain(units) == pytest.approx(18.0)
    # reduces longer than compute queue up on the one stream: 5-12, 12-19, 19-26
    assert overlap_chain([Unit(5.0, reduce=7.0)] * 3) == pytest.approx(26.0)


def test_a_blocking_network_transfer_shares_the_link_with_the_stream():
    # one gather of 4 s in flight while block 0 (10 s, of which 2 s a blocking all-to-all on
    # the network) runs: shared, the all-to-all and the gather each lose 2 s
    units = [Unit(1.0, gather=1.0), Unit(10.0, gather=4.0, network=2.0)]
    # gather 0: 0-1; block 0: 1-2, gather 1 issued at 1: 1-5; block 1 starts at 5
    assert overlap_chain(units, shared=False) == pytest.approx(15.0)
    units = [Unit(10.0, gather=0.0, network=2.0), Unit(1.0, gather=4.0)]
    # block 0 starts at 0 while gather 1 runs 0-4: its 2 s on the network overlap 2 s of it
    assert overlap_chain(units, shared=False) == pytest.approx(11.0)
    assert overlap_chain(units, shared=True) == pytest.approx(13.0)


def test_buckets_close_at_the_bucket_size_and_at_the_end():
    assert buckets([3, 3, 3, 3, 3], 6) == [1, 3, 4]
    assert buckets([10, 1, 1], 4) == [0, 2]
    assert buckets([], 4) == []


def test_ring_and_all_to_all_closed_forms():
    # reduce-scatter of 8 GB over 4 ranks at 100 GB/s, 1 ms a step: 3 ms + 6 GB / 100 GB/s
    assert ring_seconds(8e9, 4, 100e9, 1e-3) == pytest.approx(0.003 + 0.06)
    assert ring_seconds(8e9, 1, 100e9, 1e-3) == 0.0
    # all-to-all over 8 ranks, busiest receives 7 GB at 70 GB/s, 10 us a step
    assert all_to_all_seconds(7e9, 8, 70e9, 1e-5) == pytest.approx(7e-5 + 0.1)


@pytest.mark.parametrize("seed", range(20))
def test_overlap_never_makes_a_pass_slower_than_serial_nor_faster_than_either(seed):
    rng = random.Random(seed)
    units = [
        Unit(
            compute=rng.uniform(0, 5),
            gather=rng.choice([0.0, rng.uniform(0, 5)]),
            reduce=rng.choice([0.0, rng.uniform(0, 5)]),
            network=0.0,
        )
        for _ in range(rng.randint(1, 8))
    ]
    units = [Unit(u.compute, u.gather, u.reduce, rng.uniform(0, u.compute)) for u in units]
    compute = sum(u.compute for u in units)
    comm = sum(u.gather + u.reduce for u in units)
    for contention in (0.0, 0.1, 1.0):
        for shared in (False, True):
            took = overlap_chain(units, contention, shared)
            assert took <= compute + comm + 1e-9
            assert took >= max(compute, comm) - 1e-9
    assert overlap_chain(units, 0.1) >= overlap_chain(units, 0.0) - 1e-12


# ---------------------------------------------------------------- in the roofline


def _plan(layout: str, model: str = "gpt3-1.3b", hardware: str = "a100-80gb", m: int = 4):
    pipeline = int(layout.split()[0][1:])
    schedule = make_schedule("1f1b", pipeline, m)
    data = int(next(t for t in layout.split() if t.startswith("d"))[1:])
    return plan_run(
        schedule,
        model,
        batch_size=m * data,
        layout=Layout.parse(layout),
        costs=CostSource(hardware=hardware),
    )


def _step(layout: str, **kw) -> float:
    return simulate_plan(_plan(layout, **kw)).throughput()["step_time"]


def test_more_sharding_means_more_communication_in_the_passes():
    plans = {z: _plan(f"p2 v1 t1 d32 z{z}") for z in (1, 2, 3)}
    preset = parse_hardware_preset("a100-80gb")
    passes = {
        z: sum(c.F + c.I + c.W for c in roofline_costs(p, preset).stage_costs)
        for z, p in plans.items()
    }
    assert passes[1] < passes[2] < passes[3]


def test_zero3_forward_gathers_are_what_the_ring_moves_when_nothing_hides_them():
    """With the compute made negligible (peak 1e30), z3's forward is its gathers back to back:
    per block (n-1) latencies and (n-1)/n of its bf16 weights over the data group's link."""
    plan = _plan("p1 v1 t1 d16 z3", hardware="a100-80gb,flops=1e30,membw=1e30")
    preset = parse_hardware_preset("a100-80gb,flops=1e30,membw=1e30")
    bandwidth, latency = link_of(preset, 16)
    spec = plan.spec
    params: dict[int, int] = {}
    for info in spec.layers():
        params[info.block] = params.get(info.block, 0) + spec.param_count(info)
    expected = sum(
        ring_seconds(p * spec.recipe.weights, 16, bandwidth, latency) for p in params.values()
    )
    floors = sum(1 for _ in spec.layers()) * preset.kernel_floor * 3  # every kernel's floor
    forward = roofline_costs(plan, preset).stage_costs[0].F
    assert expected < forward <= expected + floors


def test_zero2_and_zero3_move_the_gradient_reduction_into_the_backward():
    preset = parse_hardware_preset("a100-80gb")
    z1 = roofline_costs(_plan("p1 v1 t1 d16 z1"), preset)
    z2 = roofline_costs(_plan("p1 v1 t1 d16 z2"), preset)
    assert z1.grad_reduce_factor == 1.0 and z2.grad_reduce_factor == 0.0
    assert z2.allreduce_time(1, 16) == 0.0 < z1.allreduce_time(1, 16)
    assert z2.stage_costs[0].W > z1.stage_costs[0].W
    assert z2.stage_costs[0].F == pytest.approx(z1.stage_costs[0].F)


def test_a_distributed_optimizer_reduce_scatters_half_what_plain_data_parallelism_all_reduces():
    preset = parse_hardware_preset("a100-80gb")
    z0 = roofline_costs(_plan("p1 v1 t1 d16 z0"), preset)
    z1 = roofline_costs(_plan("p1 v1 t1 d16 z1"), preset)
    latency = z0.allreduce_latency
    assert z1.allreduce_time(1, 16) - latency == pytest.approx(
        (z0.allreduce_time(1, 16) - latency) / 2
    )


def test_overlap_never_makes_a_sharded_step_slower_than_exposing_its_communication():
    assert _step("p2 v1 t1 d16 z3", hardware="a100-80gb,contention=1") >= _step("p2 v1 t1 d16 z3")
    assert _step("p2 v1 t1 d16 z3", hardware="a100-80gb,contention=0") <= _step("p2 v1 t1 d16 z3")


def test_collectives_that_share_a_nic_share_its_bandwidth():
    one = parse_hardware_preset("h100")
    two = parse_hardware_preset("h100,gpus_per_nic=2")
    assert link_of(two, 64)[0] == pytest.approx(link_of(one, 64)[0] / 2)
    assert link_of(two, 8) == link_of(one, 8)  # NVLink inside the node is not the NIC
    assert _step("p2 v1 t1 d32 z2", hardware="a100-80gb,gpus_per_nic=2") > _step("p2 v1 t1 d32 z2")


MOE = "mixtral-8x7b,layers=4,seq=1024"


def test_expert_all_to_all_is_timed_in_the_forward_and_backward():
    preset = parse_hardware_preset("h100")
    one = roofline_costs(_plan("p1 v1 t1 e1 d8 z1", model=MOE, hardware="h100"), preset)
    eight = roofline_costs(_plan("p1 v1 t1 e8 d8 z1", model=MOE, hardware="h100"), preset)
    assert eight.tensor_comm[0] > 0 == one.tensor_comm[0]
    # the exchanges slow every pass that carries activations; the weight pass has none
    heavy = roofline_costs(
        _plan(
            "p1 v1 t1 e8 d8 z1",
            model=MOE.replace("mixtral-8x7b", "mixtral-8x7b,router_imbalance=2"),
            hardware="h100",
        ),
        preset,
    )
    assert heavy.stage_costs[0].F > eight.stage_costs[0].F


@pytest.mark.parametrize(
    "layout,model",
    [
        ("p2 v1 t1 d16 z2", "gpt3-1.3b"),
        ("p2 v1 t1 d16 z3", "gpt3-1.3b"),
        ("p2 v1 t1 e8 d8 z3", MOE),
    ],
)
def test_the_step_breakdown_still_adds_up(layout, model):
    timeline = simulate_plan(_plan(layout, model=model, hardware="h100"))
    breakdown = step_breakdown(timeline)
    sums = breakdown.parts.sum(axis=2)
    for step, total in enumerate(breakdown.step_times):
        assert sums[step] == pytest.approx(total, rel=1e-9, abs=1e-12)
