"""Activation offload (issue 25): the policy text, the closed-form no-overhead condition against
the analytic executor on a grid, and what offload does to device and host bytes."""

from __future__ import annotations

import pytest

from schedules import build_schedule
from schedules.dependencies import PIPELINE_RULE
from simulator.analytic.costs import unit_costs
from simulator.analytic.hardware import HARDWARE_PRESETS
from simulator.analytic.offload_costs import HostLink, OffloadRun, host_link
from simulator.analytic.prefetch_plan import Fetch, IssuePoint, issue_points
from simulator.analytic.prefetch_table import plan_issue_points
from simulator.analytic.run_plan import plan_simulator, simulate_plan
from simulator.errors import PebbleError
from simulator.model.offload import OffloadPolicy, plan_stages, stage_offload_bytes
from simulator.run.plan import CostSource, plan_run
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


def _trips(plain: Timeline, moved_stages: set[int]) -> tuple[list[float], float]:
    """Of the run without offload, per offloaded (stage, microbatch): the time from the
    forward's end to the backward's (``B`` or ``I``) start, a microbatch whose backward
    directly follows its forward staying; and the least time between two such forwards' ends
    or two such backwards' starts on one rank (copies no longer than that never queue)."""
    by_rank: dict[int, list] = {}
    for e in sorted(plain.events, key=lambda e: (e.rank, e.start)):
        by_rank.setdefault(e.rank, []).append(e)
    gaps, spacing = [], []
    for events in by_rank.values():
        forward_end, outs, ins = {}, [], []
        for k, e in enumerate(events):
            if e.kind == "F":
                forward_end[(e.stage, e.microbatch)] = (e.end, k)
            elif e.kind in ("B", "I") and e.stage in moved_stages:
                end, at = forward_end[(e.stage, e.microbatch)]
                if at != k - 1:
                    gaps.append(e.start - end)
                    outs.append(end)
                    ins.append(e.start)
        for times in (sorted(outs), sorted(ins)):
            spacing += [b - a for a, b in zip(times, times[1:], strict=False)]
    return gaps, min(spacing)


@pytest.mark.parametrize("name", ["gpipe", "1f1b", "zb-h1", "interleaved-1f1b", "zb-v"])
@pytest.mark.parametrize("ranks", [2, 4])
@pytest.mark.parametrize("copy", [0.1, 0.25, 0.5, 0.6, 0.75, 0.9, 1.0, 1.5, 3.0, 6.0])
def test_offload_is_hidden_exactly_when_the_gap_covers_the_round_trip(name, ranks, copy):
    """The closed form: when copies never queue on a stream (a copy no longer than the least
    time between two offloaded forwards' ends or two fetching backwards' starts on a rank),
    offload costs nothing exactly when, for every microbatch that goes out, the time between
    its forward's end and its backward's start covers the round trip (2 x copy): the prefetch
    is issued just in time (``prefetch_plan``), wherever in that gap it must start. Without
    the round trip some backward waits, whatever the queueing. (zb-v's gaps of 1 at copy 0.5
    test the boundary: a round trip that exactly fills its gap hides.)"""
    plan, costs, offload = _run(name, ranks, 8)
    plain = plan_simulator(plan, costs)(None)
    sent = stage_offload_bytes(
        plan.spec, plan.partition, plan.microbatch_rows, PIPELINE_RULE, offload
    )
    size = {sum(b for _, b in layers) for layers in sent if layers}
    assert len(size) == 1  # equal stages: one copy size
    link = HostLink(size.pop() / copy)  # one copy takes ``copy`` time units
    timeline = plan_simulator(plan, costs)(OffloadRun(offload, link))
    waited = sum(w.end - w.start for w in timeline.offload if w.kind == "wait")
    gaps, spacing = _trips(plain, {s for s, layers in enumerate(sent) if layers})
    assert gaps, "some microbatch goes out"
    covered = all(between >= 2 * copy for between in gaps)
    if copy <= spacing:  # no queueing: the closed form decides
        assert (waited == 0) == covered
    if not covered:
        assert waited > 0
    if waited == 0:
        assert timeline.summary().makespan == pytest.approx(plain.summary().makespan)


def test_full_offload_moves_stored_activations_to_the_host():
    plan, costs, offload = _run("1f1b", 4, 8)
    plain = plan_simulator(plan, costs)(None).summary()
    sent = stage_offload_bytes(
        plan.spec, plan.partition, plan.microbatch_rows, PIPELINE_RULE, offload
    )
    link = HostLink(max(sum(b for _, b in layers) for layers in sent) / 0.1)  # copy: F / 10
    timeline = plan_simulator(plan, costs)(OffloadRun(offload, link))
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


def test_issue_points_worked_by_hand():
    """One rank: F0 (0-1), F1 (1-2), then idle until B0 (8-10) and B1 (10-12). With copies of
    1, each prefetch starts just in time (B1's at 9, B0's at 7), named as "after F1 (point 2),
    plus the time since". With copies of 5 the offloads end at 6 and 11: B1's copy cannot end
    by 10, nor B0's by 8 once B1's must start at 11, so both go as early as their forwards
    allow (points 2 and 1, no delay)."""
    ends = [1.0, 2.0, 10.0, 12.0]

    def fetches(copy):
        return [Fetch(0, 2, copy, 8.0), Fetch(1, 3, copy, 10.0)]

    assert issue_points(ends, fetches(1.0)) == [IssuePoint(2, 5.0), IssuePoint(2, 7.0)]
    assert issue_points(ends, fetches(5.0)) == [IssuePoint(1), IssuePoint(2)]
    assert issue_points(ends, []) == []


def test_a_hidden_prefetch_ends_as_its_backward_starts():
    """Just in time: with copies that never queue (a tenth of a forward), every prefetch of
    a full offload ends exactly when its backward starts, so the first rank of 1F1B holds at
    most two microbatches on the device (the one its forward makes, the one its backward
    takes); the step is as long as without offload."""
    plan, costs, offload = _run("1f1b", 4, 8)
    plain = plan_simulator(plan, costs)(None)
    sent = stage_offload_bytes(
        plan.spec, plan.partition, plan.microbatch_rows, PIPELINE_RULE, offload
    )
    size = sum(b for _, b in sent[0])
    timeline = plan_simulator(plan, costs)(OffloadRun(offload, HostLink(size / 0.1)))
    assert timeline.summary().makespan == pytest.approx(plain.summary().makespan)
    start = {(e.stage, e.microbatch): e.start for e in timeline.events if e.kind == "B"}
    fetched = [c for c in timeline.offload if c.kind == "prefetch"]
    assert fetched and not [c for c in timeline.offload if c.kind == "wait"]
    for copy in fetched:
        assert copy.end == pytest.approx(start[(copy.stage, copy.microbatch)])
    first = timeline.summary().per_rank[0].stored_activation_bytes
    assert first <= 2 * size < plain.summary().per_rank[0].stored_activation_bytes


def test_the_executor_follows_the_published_table():
    """``plan_issue_points`` (``prefetch_table``) is the table the analytic clock follows: each
    prefetch of a timed run starts at its point (the end of the action before it, plus the
    delay), or later only where its offload or the one before it on the stream had not
    ended."""
    costs = CostSource(hardware="h100-80gb")
    plan = plan_run(build_schedule("1f1b", 4, 8), "zb-6.2b", costs=costs, offload="full")
    table = plan_issue_points(plan)
    timeline = simulate_plan(plan)
    ends = {(e.rank, e.stage, e.kind, e.microbatch): e.end for e in timeline.events}
    out_end = {(c.stage, c.microbatch): c.end for c in timeline.offload if c.kind == "offload"}
    order = plan.schedule.actions
    stream: dict[int, float] = {}
    fetched = sorted(
        (c for c in timeline.offload if c.kind == "prefetch"), key=lambda c: (c.rank, c.start)
    )
    assert len(fetched) == len(table)
    for copy in fetched:
        at, delay = table[(copy.stage, copy.microbatch)]
        stage, kind, mb = order[copy.rank][at - 1]
        issued = ends[(copy.rank, stage, kind.value, mb)]
        expected = max(issued + delay, out_end[(copy.stage, copy.microbatch)])
        expected = max(expected, stream.get(copy.rank, 0.0))
        assert copy.start == pytest.approx(expected)
        stream[copy.rank] = copy.end
