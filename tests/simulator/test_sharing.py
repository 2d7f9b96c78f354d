"""Shared compute (``simulate(..., cores=C)``) against closed forms derived by hand.

The model (``simulator.analytic.sharing``): while k actions run, each runs at min(1, C / k) of
its full speed; an action starts when its rank is free and its inputs are there. Transfers are
free here (unit costs), so every number below is exact arithmetic on F, I, W.

One identity is used throughout. Processor sharing conserves work: while k actions run the
cores together do min(k, C) units of work per unit of time. Integrated over the run,

    total work = integral of min(k(t), C) dt,   so   C x makespan = total work + idle,

where idle = integral of max(0, C - k(t)) dt is the core time nobody used.
"""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schedules.actions import Action, Schedule, loop_stage_to_rank
from schedules.registry import build_schedule, list_schedules
from simulator.analytic.costs import CostModel, StageCost, unit_costs
from simulator.analytic.executor import simulate
from simulator.errors import PebbleError
from simulator.model import ModelSpec, partition
from simulator.run import Layout


def timeline_of(schedule, cores=None, costs=(1.0, 1.0, 1.0), latency=0.0, **kwargs):
    """``schedule`` simulated with F, I, W = ``costs`` (each a rank's whole share) or, given
    ``stage_costs``, one (F, I, W) per stage."""
    spec = ModelSpec.uniform(schedule.num_stages, width=8)
    parts = partition(spec, schedule.num_stages)
    model = unit_costs(schedule, parts, *costs, comm_latency=latency)
    stage_costs = kwargs.pop("stage_costs", None)
    if stage_costs is not None:
        model = CostModel(
            stage_costs=tuple(StageCost(*c) for c in stage_costs), comm_latency=latency
        )
    layout = Layout(data=kwargs.pop("dp", 1))
    return simulate(schedule, model, spec, parts, 4, cores=cores, layout=layout, **kwargs)


def spans(timeline) -> dict[str, tuple[float, float]]:
    """``"r0:0F1"`` -> (start, end) for every compute event of step 0."""
    return {
        f"r{e.rank}:{e.stage}{e.kind}{e.microbatch}": (e.start, e.end)
        for e in timeline.events
        if e.step == 0
    }


def busy_profile(timeline) -> list[tuple[float, float, int]]:
    """(from, to, k): how many actions run in each interval between consecutive event edges."""
    events = [(e.start, e.end) for e in timeline.events]
    edges = sorted({t for span in events for t in span})
    return [(a, b, sum(1 for s, e in events if s <= a and e >= b)) for a, b in pairwise(edges)]


def hand(rows: list[str], m: int) -> Schedule:
    """A schedule from one string per rank, e.g. "0F0 0B0"."""
    actions = [[Action.parse(cell) for cell in row.split()] for row in rows]
    return Schedule("hand", m, loop_stage_to_rank(len(rows), 1), actions)


def registry_cases(max_p: int = 4) -> list[tuple[str, int, int, int | None]]:
    """Every family at small sizes it accepts."""
    cases = []
    for name, _ in list_schedules():
        for p in range(1, max_p + 1):
            for m in (1, 2, 4, 8):
                try:
                    build_schedule(name, p, m)
                except PebbleError:
                    continue
                cases.append((name, p, m, None))
    return cases


def test_two_equal_independent_actions_on_one_core_take_twice_as_long():
    """GPipe on 2 ranks, m = 2, F = 1, B = I + W = 2, one core.

    r0: 0F0 0F1 0B0 0B1      r1: 1F0 1F1 1B0 1B1

    [0, 1]   0F0 alone (k = 1, full speed).
    [1, 3]   0F1 (needs nothing) and 1F0 (needs 0F0, done at 1) start together: two equal,
             independent actions on one core run at 1/2 each, so each of their 1 unit takes 2.
    [3, 4]   1F1 alone (0B0 waits for 1B0).      [4, 6]   1B0 alone (2 units at full speed).
    [6, 10]  0B0 and 1B1 start together: 2 units each at speed 1/2 take 4.
    [10, 12] 0B1 alone (needs 1B1).
    The core never idles, so the makespan is the total work, 4 x 1 + 4 x 2 = 12.
    """
    schedule = hand(["0F0 0F1 0B0 0B1", "1F0 1F1 1B0 1B1"], 2)
    timeline = timeline_of(schedule, cores=1)
    got = spans(timeline)
    assert got["r0:0F1"] == got["r1:1F0"] == (1.0, 3.0)  # twice the alone time, 1
    assert got["r0:0B0"] == got["r1:1B1"] == (6.0, 10.0)  # twice the alone time, 2
    assert got["r1:1F1"] == (3.0, 4.0) and got["r0:0B1"] == (10.0, 12.0)
    assert timeline.summary().makespan == 12.0
    # with two cores each runs alone: 0F1 and 1F0 both take [1, 2]
    assert spans(timeline_of(schedule, cores=2))["r1:1F0"] == (1.0, 2.0)


ONE_F_ONE_B_ON_TWO_CORES = 51.0


def test_1f1b_on_4_ranks_and_2_cores():
    """1F1B, p = 4, m = 8, F = 1, B = I + W = 2, C = 2 cores (``--costs F=1,I=1,W=1``).

    Work: each rank runs 8 F and 8 B, 24 units; 96 in all. Alone it takes 3 (m + p - 1) = 33;
    the naive guesses are 96 / C = 48 (cores never idle) and 2 x 33 = 66 (everything at half
    speed). Rank r warms up with min(p - r, m) forwards (4, 3, 2, 1), then alternates B and F.
    Phase by phase, with k running and each at speed min(1, 2 / k):

        [0, 1]       k=1  r0 F0                          only stage 0 has its input
        [1, 2]       k=2  r0 F1, r1 F0                   full speed
        [2, 3.5]     k=3  r0 F2, r1 F1, r2 F0            1 unit at 2/3 takes 1.5
        [3.5, 5.5]   k=4  r0 F3, r1 F2, r2 F1, r3 F0     1 unit at 1/2 takes 2: all end at 5.5
        [5.5, 7.5]   k=1  r3 B0                          ranks 0-2 have warmed up and wait
                                                         for their first backward, which
                                                         starts at the last stage
        [7.5, 9.5]   k=2  r2 B0 | r3 F1 then r3 B1       full speed
        [9.5, 12.5]  k=3  r1 B0, r2 F2 then B1, r3 B1 then F2      (speed 2/3)
        [12.5, 40.5] k=4  the 1F1B steady state at speed 1/2: every rank busy
        [40.5, 45]   k=3  r0 has no forward left; the drain begins (speed 2/3)
        [45, 48]     k=2  full speed from here on: the uncontended drain
        [48, 51]     k=1  r1 B7's last unit, then r0 B7 (2 units), which needs it

    The cores idle (C - k > 0) for 1 x 1 at the start, 1 x 2 at the turn and 1 x 3 at the end:
    idle = 6. By conservation, 2 x makespan = 96 + 6, so the makespan is 51 (vs 33 alone).
    """
    schedule = build_schedule("1f1b", 4, 8)
    timeline = timeline_of(schedule, cores=2)
    assert timeline.summary().makespan == ONE_F_ONE_B_ON_TWO_CORES
    under = [(a, b, k) for a, b, k in busy_profile(timeline) if k < 2]
    assert under == [(0.0, 1.0, 1), (5.5, 7.5, 1), (48.0, 49.0, 1), (49.0, 51.0, 1)]
    got = spans(timeline)
    assert got["r2:2F0"] == (2.0, 3.5) and got["r3:3F0"] == (3.5, 5.5)
    assert got["r3:3B0"] == (5.5, 7.5) and got["r0:0B7"] == (49.0, 51.0)
    # every step starts from the optimizer barrier, so it takes the same time
    assert timeline_of(schedule, cores=2, steps=2).summary().step_times == [51.0, 51.0]


def test_1f1b_with_two_replicas_on_four_cores_is_the_same_run():
    """With dp = 2 replicas in lockstep, k running actions of one replica are 2k on the
    machine, each at min(1, 4 / 2k) = min(1, 2 / k): the one-replica run on 2 cores."""
    schedule = build_schedule("1f1b", 4, 8)
    alone = timeline_of(schedule, cores=2)
    replicated = timeline_of(schedule, cores=4, dp=2)
    assert list(replicated.events) == list(alone.events)
    # and two replicas on 2 cores are the one-replica run on 1 core: all 96 units, no idle
    assert timeline_of(schedule, cores=2, dp=2).summary().makespan == 96.0


@pytest.mark.parametrize("dp", [1, 2])
@pytest.mark.parametrize(("name", "p", "m", "v"), registry_cases())
def test_enough_cores_is_the_uncontended_timeline_exactly(name, p, m, v, dp):
    """With C >= ranks x dp no more than C actions ever run, each at full speed: the timeline
    is the one without a resource model, to the bit (two steps, a transfer latency)."""
    schedule = build_schedule(name, p, m, v)
    options = dict(costs=(1.0, 2.0, 0.5), latency=0.25, steps=2, dp=dp)
    free = timeline_of(schedule, **options)
    for cores in (p * dp, 64):
        shared = timeline_of(schedule, cores=cores, **options)
        assert list(shared.events) == list(free.events)
        assert list(shared.comms) == list(free.comms)
        assert shared.summary() == free.summary()


@pytest.mark.parametrize("cores", [1, 2, 3])
def test_one_action_at_a_time_never_contends(cores):
    """``naive`` runs one microbatch through the whole pipe at a time: k <= 1 always, so any
    number of cores gives the uncontended timeline, and the makespan is the total work."""
    schedule = build_schedule("naive", 4, 4)
    shared = timeline_of(schedule, cores=cores)
    assert list(shared.events) == list(timeline_of(schedule).events)
    assert shared.summary().makespan == 4 * 4 * 3


@pytest.mark.parametrize(("name", "p", "m", "v"), registry_cases())
def test_one_core_does_all_the_work_and_only_idles_for_dependencies(name, p, m, v):
    """C = 1: while any action runs, the core does one unit per unit time, so

        makespan = total work + (time in which nothing runs)  >=  total work,

    with equality when something always runs (no moment where every rank waits for an input).
    1F1B at p = 4, m = 8 is such a run: 96 units in 96. More generally, for any C,
    integral of min(k, C) dt = total work (conservation)."""
    schedule = build_schedule(name, p, m, v)
    costs = (1.0, 2.0, 0.5)
    work = sum(e.end - e.start for e in timeline_of(schedule, costs=costs).events)
    for cores in range(1, p + 1):
        timeline = timeline_of(schedule, cores=cores, costs=costs)
        profile = busy_profile(timeline)
        done = sum((b - a) * min(k, cores) for a, b, k in profile)
        assert done == pytest.approx(work, rel=1e-12)
        if cores == 1:
            makespan = timeline.summary().makespan
            nothing_runs = sum(b - a for a, b, k in profile if k == 0)
            assert makespan == pytest.approx(work + nothing_runs, rel=1e-12)
            assert makespan >= work - 1e-9
    one_f_one_b = timeline_of(build_schedule("1f1b", 4, 8), cores=1)
    assert one_f_one_b.summary().makespan == 96.0


FAMILIES = [name for name, _ in list_schedules()]


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(FAMILIES),
    p=st.integers(1, 4),
    m=st.sampled_from([1, 2, 3, 4, 6, 8]),
    dp=st.sampled_from([1, 2]),
    latency=st.sampled_from([0.0, 0.25, 1.0]),
    data=st.data(),
)
def test_fewer_cores_never_finish_sooner(name, p, m, dp, latency, data):
    """Monotonicity: over small registry schedules with random per-stage costs, the makespan
    never decreases when C decreases, and C >= ranks x dp is the uncontended makespan."""
    try:
        schedule = build_schedule(name, p, m)
    except PebbleError:
        return
    cost = st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0])
    stage_costs = [data.draw(st.tuples(cost, cost, cost)) for _ in range(schedule.num_stages)]
    options = dict(stage_costs=stage_costs, latency=latency, dp=dp)
    makespans = [
        timeline_of(schedule, cores=cores, **options).summary().makespan
        for cores in range(1, p * dp + 2)
    ]
    for fewer, more in pairwise(makespans):
        assert fewer >= more - 1e-9 * max(1.0, fewer)
    assert makespans[-1] == timeline_of(schedule, **options).summary().makespan


@pytest.mark.parametrize("cores", [0, -1, 1.5, True])
def test_cores_must_be_a_positive_whole_number(cores):
    with pytest.raises(PebbleError, match="cores must be a whole number of at least 1"):
        timeline_of(build_schedule("1f1b", 2, 2), cores=cores)


# ------------------------------------------------------------------ the runtime around actions
def runtime_timeline(cores=None, **runtime):
    """GPipe on 2 ranks, m = 1, F = 1, B = 2 (I = W = 1), a transfer of 0.25, and the runtime
    costs ``call_overhead``, ``call_cpu``, ``background_load``.

    r0: 0F0 0B0      r1: 1F0 1B0
    Calls: 0F0 (rank 0's first), 1F0 (its input comes from rank 0), 0B0 (its input comes from
    rank 1); 1B0 follows 1F0 in the same call (its input is rank 1's own loss, and 1F0 sent
    nothing away).
    """
    schedule = hand(["0F0 0B0", "1F0 1B0"], 1)
    spec = ModelSpec.uniform(2, width=8)
    costs = CostModel(
        stage_costs=(StageCost(1.0, 1.0, 1.0), StageCost(1.0, 1.0, 1.0)),
        comm_latency=0.25,
        **runtime,
    )
    return simulate(schedule, costs, spec, partition(spec, 2), 4, cores=cores)


def test_call_overhead_delays_each_call_on_its_rank():
    """o = 0.5 before 0F0, 1F0 and 0B0, none before 1B0 (same call as 1F0):

    0F0  ready 0,    start 0.5,  end 1.5
    1F0  ready 1.75, start 2.25, end 3.25      (0F0's end + the transfer)
    1B0              start 3.25, end 5.25      (fused: no overhead)
    0B0  ready 5.5,  start 6.0,  end 8.0
    """
    got = spans(runtime_timeline(call_overhead=0.5))
    assert got == {
        "r0:0F0": (0.5, 1.5),
        "r1:1F0": (2.25, 3.25),
        "r1:1B0": (3.25, 5.25),
        "r0:0B0": (6.0, 8.0),
    }
    # on devices of their own the CPU a call costs elsewhere changes nothing
    assert spans(runtime_timeline(cores=None, call_overhead=0.5, call_cpu=0.5)) == got


def test_call_cpu_and_background_load_share_the_cores():
    """One core. A call's side work (0.5) starts once its remote input is handed over (its
    producer's end here: nothing to put), or with the call when it has no remote input. It runs
    at the core's full speed and takes 1/C of every core meanwhile: all of the one core.

    0F0  side [0, 0.5]: the call waits; the call [0.5, 1]; work [1, 2]
    1F0  side [2, 2.5] (0F0 ends at 2); ready 2.25; call [2.5, 3]; work [3, 4]; 1B0 [4, 6]
    0B0  side [6, 6.5]; the same as 1F0 four later: work [7, 9]

    A background load of 0.5 cores leaves half the core to the actions: 0F0's call from 0.5
    at 1/2 ends at 1.5, its work at 1.5 + 2; 1F0's side [3.5, 4], its call [4, 5], its work
    [5, 7], 1B0 [7, 11].
    """
    got = spans(runtime_timeline(cores=1, call_overhead=0.5, call_cpu=0.5))
    expected = {"r0:0F0": (1, 2), "r1:1F0": (3, 4), "r1:1B0": (4, 6), "r0:0B0": (7, 9)}
    assert got.keys() == expected.keys()
    for key, span in expected.items():
        assert got[key] == pytest.approx(span)
    loaded = spans(runtime_timeline(cores=1, call_overhead=0.5, call_cpu=0.5, background_load=0.5))
    assert loaded["r0:0F0"] == pytest.approx((1.5, 3.5))
    assert loaded["r1:1F0"] == pytest.approx((5.0, 7.0))
    assert loaded["r1:1B0"] == pytest.approx((7.0, 11.0))


def test_side_work_is_spread_over_every_core_and_the_load_is_not():
    """Two cores, one action at a time, 0.5 of side work per call, no call overhead. The side
    work takes 1/2 of every core while it runs, though the other core idles (the runtime's
    threads wake where they last ran; measured, ``sharing``'s docstring): an action beside it
    runs at 1/2.

    0F0  side [0, 0.5]: 0.25 done by 0.5, the rest at full speed: [0, 1.25]
    1F0  side [1.25, 1.75]; ready 1.5: 0.125 done by 1.75, then 0.875: [1.5, 2.625];
         1B0 fused (no call, no side): [2.625, 4.625]
    0B0  side [4.625, 5.125]; ready 4.875: 0.125 by 5.125, then 1.875: [4.875, 7]

    A background load of 0.5 cores with one action at a time slows nothing: the load takes
    the idle core (an action alone in an idle Ray session ran 0.14% past its CPU time).
    """
    got = spans(runtime_timeline(cores=2, call_cpu=0.5))
    assert got["r0:0F0"] == pytest.approx((0.0, 1.25))
    assert got["r1:1F0"] == pytest.approx((1.5, 2.625))
    assert got["r1:1B0"] == pytest.approx((2.625, 4.625))
    assert got["r0:0B0"] == pytest.approx((4.875, 7.0))
    alone = {"r0:0F0": (0, 1), "r1:1F0": (1.25, 2.25), "r1:1B0": (2.25, 4.25), "r0:0B0": (4.5, 6.5)}
    loaded = spans(runtime_timeline(cores=2, background_load=0.5))
    for key, span in alone.items():
        assert loaded[key] == pytest.approx(span)


def test_a_load_of_every_core_is_refused_in_one_sentence():
    """A background load of all the cores (a hand-edited profile, or ``--cores`` at or below
    the profile's load) once divided by zero, then crawled at a floor speed and predicted years
    for a step of milliseconds (issue 26: load 1e6 on 2 cores, 7.1e6 s); it leaves the run
    nothing, so it is refused, naming the load and the range."""
    from simulator.errors import PebbleError

    for runtime in ({"background_load": 2.0}, {"background_load": 5.0, "call_cpu": 0.5}):
        with pytest.raises(PebbleError, match=r"background_load must be in 0\.\.2 \(below"):
            runtime_timeline(cores=2, **runtime)
    got = spans(runtime_timeline(cores=2, background_load=1.999))
    assert got["r0:0F0"][1] <= got["r1:1F0"][0]  # just below every core: slow, but a run


def test_side_work_is_one_queue():
    """Two ranks start an action of 1 at once, each call with 0.25 of side work, on 3 cores.
    The side work is one queue (the runtime's processes) at a core's full speed: its 0.5 runs
    over [0, 0.5] and takes 1/3 of every core, so both actions run at 2/3 until 0.5 (1/3 done)
    and end at 0.5 + 2/3. (Each call's side work on its own would take 2/3 of every core over
    [0, 0.25] and end the actions at 0.25 + 11/12.)"""
    from simulator.analytic.sharing import Runtime, shared_action_times

    runtime = Runtime(overhead=[0.0, 0.0], side=[0.25, 0.25], put=[0.0, 0.0])
    starts, ends = shared_action_times(
        [0, 1], [1.0, 1.0], [[-1, -1]], [[0.0, 0.0]], [0.0, 0.0], 3, runtime=runtime
    )
    assert starts == [0.0, 0.0]
    assert ends == pytest.approx([0.5 + 2 / 3, 0.5 + 2 / 3])


@pytest.mark.parametrize(("name", "p", "m", "v"), registry_cases())
def test_calls_are_the_ray_executors_calls(name, p, m, v):
    """The actions the cost model charges a call for are exactly those that start a Ray call
    (``ray_pipeline.wiring.segments``) on every registry schedule."""
    from schedules.validate import validate
    from simulator.analytic.plan_arrays import PlanArrays
    from simulator.model.memory_plan import stage_shapes
    from simulator.ray_pipeline.wiring import segments, wire

    schedule = build_schedule(name, p, m, v)
    run = validate(schedule)
    spec = ModelSpec.uniform(schedule.num_stages, width=8)
    parts = partition(spec, schedule.num_stages)
    arrays = PlanArrays(run, unit_costs(schedule, parts), stage_shapes(spec, parts, 4, run.rule))
    firsts = {seg[0].index for seg in segments(wire(run, set(range(schedule.num_stages)), 1))}
    assert set(arrays.call_starts(run).nonzero()[0].tolist()) == firsts


def test_handing_an_output_over_holds_its_rank():
    """GPipe, 2 ranks, m = 2, F = 1, B = 2, put = 0.5 after every action whose output goes to
    the other rank (0F*, 1B*), transfers of 0.5 counted from the action's end (they include the
    hand-over), no call overhead.

    0F0 [0, 1], hands over until 1.5, so 0F1 [1.5, 2.5] (and hands over until 3)
    1F0 ready 1 + 0.5 = 1.5: [1.5, 2.5];  1F1 ready 2.5 + 0.5 = 3: [3, 4]
    1B0 [4, 6] hands over until 6.5; 1B1 [6.5, 8.5] hands over until 9
    0B0 ready 6 + 0.5: [6.5, 8.5];  0B1 ready 8.5 + 0.5: [9, 11]
    """
    schedule = hand(["0F0 0F1 0B0 0B1", "1F0 1F1 1B0 1B1"], 2)
    spec = ModelSpec.uniform(2, width=8)
    costs = CostModel(
        stage_costs=(StageCost(1.0, 1.0, 1.0), StageCost(1.0, 1.0, 1.0)),
        comm_latency=0.5,
        send_overhead=0.5,
    )
    got = spans(simulate(schedule, costs, spec, partition(spec, 2), 4))
    assert got == {
        "r0:0F0": (0.0, 1.0),
        "r0:0F1": (1.5, 2.5),
        "r1:1F0": (1.5, 2.5),
        "r1:1F1": (3.0, 4.0),
        "r1:1B0": (4.0, 6.0),
        "r1:1B1": (6.5, 8.5),
        "r0:0B0": (6.5, 8.5),
        "r0:0B1": (9.0, 11.0),
    }
