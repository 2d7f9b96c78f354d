"""Activation offload (issue 25): the policy text, the closed-form no-overhead condition against
the analytic executor on a grid, and what offload does to device and host bytes."""

from __future__ import annotations

import pytest

from schedules import build_schedule
from schedules.dependencies import PIPELINE_RULE
from simulator.analytic.costs import unit_costs
from simulator.analytic.executor import simulate
from simulator.analytic.hardware import HARDWARE_PRESETS
from simulator.analytic.offload_costs import HostLink, OffloadRun, host_link
from simulator.errors import PebbleError
from simulator.model.offload import OffloadPolicy, plan_stages, stage_offload_bytes
from simulator.run.plan import plan_run
from simulator.timeline import Timeline


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "needs a policy"),
        ("half", "cannot read 'half'"),
        ("full,none", "two whole-model policies"),
        ("0:full,0:none", "names stage 0 twice"),
        ("0:selective", "applies to the whole model"),
        ("budget:0%", r"percentage in \(0, 100\]"),
        ("budget:lots", "budget takes bytes"),
    ],
)
def test_a_bad_policy_is_one_sentence(text, match):
    with pytest.raises(PebbleError, match=match):
        OffloadPolicy.parse(text)


def test_policies_read_back():
    assert OffloadPolicy.parse("0:full,1:none").to_text() == "0:full,1:none"
    assert OffloadPolicy.parse("budget:60%").budget == 0.6
    assert OffloadPolicy.parse(" NONE ").is_none
    assert OffloadPolicy.parse("selective").solved


def _run(name: str, ranks: int, microbatches: int, f: float = 1.0, b: float = 2.0):
    """An MLP of one block per stage at unit costs (F = f, B = b), with full offload."""
    plan = plan_run(build_schedule(name, ranks, microbatches))
    costs = unit_costs(plan.schedule, plan.partition, f, b / 2, b / 2)
    offload = plan_stages(OffloadPolicy.parse("full"), plan.spec, plan.partition)
    return plan, costs, offload


def _simulate(plan, costs, offload=None):
    return simulate(
        plan.schedule,
        costs,
        plan.spec,
        plan.partition,
        plan.microbatch_rows,
        layout=plan.layout,
        offload=offload,
    )


def _gaps(plain: Timeline, moved_stages: set[int]):
    """Per offloaded (stage, microbatch) of the run without offload: (time from the forward's
    end to the backward's start, time from the start of the action before the backward to the
    backward's start); a microbatch whose backward directly follows its forward stays."""
    by_rank: dict[int, list] = {}
    for e in sorted(plain.events, key=lambda e: (e.rank, e.start)):
        by_rank.setdefault(e.rank, []).append(e)
    gaps = []
    for events in by_rank.values():
        forward_end = {}
        for k, e in enumerate(events):
            if e.kind == "F":
                forward_end[(e.stage, e.microbatch)] = (e.end, k)
            elif e.kind == "B" and e.stage in moved_stages:
                end, at = forward_end[(e.stage, e.microbatch)]
                if at != k - 1:
                    gaps.append((e.start - end, e.start - events[k - 1].start))
    return gaps


@pytest.mark.parametrize("name", ["gpipe", "1f1b"])
@pytest.mark.parametrize("ranks", [2, 4])
@pytest.mark.parametrize("copy", [0.1, 0.5, 0.9, 1.0, 1.5, 3.0, 6.0])
def test_offload_is_hidden_exactly_when_the_compute_between_covers_the_round_trip(
    name, ranks, copy
):
    """The closed form: with one copy per stream at a time (a copy no longer than the shortest
    action, so copies never queue), offload costs nothing exactly when, for every microbatch
    that goes out, the compute between its forward's end and its backward's start covers the
    round trip (2 x copy) and the action before the backward covers the prefetch (1 x copy,
    as the prefetch is issued when that action starts); otherwise some backward waits."""
    plan, costs, offload = _run(name, ranks, 8)
    plain = _simulate(plan, costs)
    sent = stage_offload_bytes(
        plan.spec, plan.partition, plan.microbatch_rows, PIPELINE_RULE, offload
    )
    size = {sum(b for _, b in layers) for layers in sent if layers}
    assert len(size) == 1  # equal stages: one copy size
    link = HostLink(size.pop() / copy)  # one copy takes ``copy`` time units
    timeline = _simulate(plan, costs, OffloadRun(offload, link))
    waited = sum(w.end - w.start for w in timeline.offload if w.kind == "wait")
    gaps = _gaps(plain, {s for s, layers in enumerate(sent) if layers})
    assert gaps, "some microbatch goes out"
    covered = all(between >= 2 * copy and before >= copy for between, before in gaps)
    if copy <= 1.0:  # no queueing: the closed form decides
        assert (waited == 0) == covered
    if not covered:
        assert waited > 0
    if waited == 0:
        assert timeline.summary().makespan == pytest.approx(plain.summary().makespan)


def test_full_offload_moves_stored_activations_to_the_host():
    plan, costs, offload = _run("1f1b", 4, 8)
    plain = _simulate(plan, costs).summary()
    sent = stage_offload_bytes(
        plan.spec, plan.partition, plan.microbatch_rows, PIPELINE_RULE, offload
    )
    link = HostLink(max(sum(b for _, b in layers) for layers in sent) / 0.1)  # copy: F / 10
    timeline = _simulate(plan, costs, OffloadRun(offload, link))
    moved = timeline.summary()
    assert moved.makespan == pytest.approx(plain.makespan)
    host = timeline.host_peak_bytes()
    for before, after in zip(plain.per_rank, moved.per_rank, strict=True):
        assert after.stored_activation_bytes <= before.stored_activation_bytes
        assert after.true_peak_bytes <= before.true_peak_bytes
    last = moved.per_rank[-1]
    assert moved.per_rank[0].stored_activation_bytes < plain.per_rank[0].stored_activation_bytes
    assert host[0] > 0
    assert host[len(host) - 1] == 0  # the last stage's backward follows its forward: it stays
    assert last.stored_activation_bytes == plain.per_rank[-1].stored_activation_bytes
    again = Timeline.from_dict(timeline.to_dict())
    assert len(again.offload) == len(timeline.offload)
    assert again.host_peak_bytes() == host


def test_host_link_shares_and_refusals():
    a100 = HARDWARE_PRESETS["a100-80gb"]
    assert host_link(a100, 8).bandwidth == 25e9 / 2  # two GPUs a PCIe switch uplink
    assert host_link(a100, 1).bandwidth == 25e9  # alone on it
    assert host_link(HARDWARE_PRESETS["gh200"], 4).bandwidth == 450e9
    with pytest.raises(PebbleError, match="prices copies in seconds"):
        host_link(a100, 8, time_unit="unit")
