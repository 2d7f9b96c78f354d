"""The analytic executor against the published formulas, with F = I = W = 1 and free transfers.

Sources: GPipe (Huang et al. 2019) and PipeDream-Flush / 1F1B and interleaved 1F1B (Narayanan et
al. 2021): bubble (p-1)/(m+p-1), shrunk v-fold by v virtual stages; Zero Bubble (Qi et al. 2024,
Table 2): ZB-H1 makespan m(F+I+W) + (p-1)(F+I-W) with peak in-flight <= p, ZB-H2 peak <= 2p-1.
"""

from __future__ import annotations

import itertools

import pytest

from schedules.registry import build_schedule, list_schedules
from simulator.analytic.costs import unit_costs
from simulator.analytic.executor import simulate
from simulator.model import ModelSpec, partition
from simulator.timeline import Timeline


def run(
    name,
    p,
    m,
    v=None,
    steps=1,
    sync=True,
    blocks=None,
    costs=(1.0, 1.0, 1.0),
    latency=0.0,
    loss="cross_entropy",
):
    schedule = build_schedule(name, p, m, v)
    spec = ModelSpec.uniform(blocks or schedule.num_stages, width=8, loss=loss)
    parts = partition(spec, schedule.num_stages)
    cost_model = unit_costs(schedule, parts, *costs, comm_latency=latency)
    timeline = simulate(schedule, cost_model, spec, parts, 4, steps=steps, sync=sync)
    return schedule, timeline


@pytest.mark.parametrize("name", ["gpipe", "1f1b"])
@pytest.mark.parametrize(("p", "m"), [(2, 1), (2, 4), (4, 4), (4, 8), (8, 16), (3, 7)])
def test_gpipe_and_1f1b_bubble(name, p, m):
    _, timeline = run(name, p, m)
    summary = timeline.summary()
    assert summary.bubble_fraction == pytest.approx((p - 1) / (m + p - 1))
    assert summary.makespan == pytest.approx(3 * (m + p - 1))


@pytest.mark.parametrize(("p", "m"), [(2, 4), (4, 8), (4, 3), (8, 16)])
def test_peak_inflight_gpipe_all_m_1f1b_min_p_minus_r(p, m):
    _, gpipe = run("gpipe", p, m)
    _, one_f_one_b = run("1f1b", p, m)
    assert [r.peak_inflight_microbatches for r in gpipe.summary().per_rank] == [m] * p
    assert [r.peak_inflight_microbatches for r in one_f_one_b.summary().per_rank] == [
        min(p - r, m) for r in range(p)
    ]


@pytest.mark.parametrize(("p", "m", "v"), [(2, 4, 2), (4, 8, 2), (4, 8, 4), (4, 16, 2), (8, 16, 2)])
def test_interleaving_shrinks_the_bubble_v_fold(p, m, v):
    _, base = run("1f1b", p, m)
    _, interleaved = run("interleaved-1f1b", p, m, v)
    busy = 3 * m  # every rank does m microbatches of F + I + W = 3 units
    bubble_1f1b = base.summary().makespan - busy
    bubble_interleaved = interleaved.summary().makespan - busy
    assert bubble_interleaved == pytest.approx(bubble_1f1b / v)


@pytest.mark.parametrize(("p", "m"), [(2, 4), (4, 8), (4, 12), (8, 16), (8, 24)])
def test_zb_h1_matches_qi_et_al_table_2(p, m):
    f = i = w = 1.0
    _, timeline = run("zb-h1", p, m)
    summary = timeline.summary()
    assert summary.makespan == pytest.approx(m * (f + i + w) + (p - 1) * (f + i - w))
    assert max(r.peak_inflight_microbatches for r in summary.per_rank) <= p


@pytest.mark.parametrize(("p", "m"), [(2, 4), (4, 8), (4, 12), (8, 16)])
def test_zb_h2_fills_every_rank_between_its_first_and_last_action(p, m):
    _, timeline = run("zb-h2", p, m)
    summary = timeline.summary()
    assert max(r.peak_inflight_microbatches for r in summary.per_rank) <= 2 * p - 1
    for rank in range(p):
        events = sorted((e for e in timeline.events if e.rank == rank), key=lambda e: e.start)
        for before, after in itertools.pairwise(events):
            assert after.start == pytest.approx(before.end), (rank, before, after)


@pytest.mark.parametrize(("p", "m"), [(2, 4), (4, 8), (4, 16)])
def test_zb_h2_steady_state_step_reaches_m_times_f_plus_i_plus_w_without_sync(p, m):
    steps = 6
    _, free = run("zb-h2", p, m, steps=steps, sync=False)
    _, synced = run("zb-h2", p, m, steps=steps, sync=True)
    assert free.summary().step_times[-1] == pytest.approx(3 * m)
    # with the optimizer barrier every step pays the fill and drain again
    assert synced.summary().step_times[-1] > 3 * m
    assert synced.summary().step_times[-1] == pytest.approx(synced.summary().step_times[0])


@pytest.mark.parametrize(("p", "m"), [(2, 4), (4, 8), (4, 16), (8, 16)])
def test_zb_v_has_no_more_activation_memory_than_1f1b_and_a_small_bubble(p, m):
    # The paper's condition: every layer's activation has the same size. Cross-entropy would
    # also cache int64 labels on the last stage, which a V puts on rank 0 (the busiest), 8 bytes
    # per row over the bound; MSE caches only a width-sized difference, like any other layer.
    blocks = 2 * p  # the same model for both: each 1F1B stage holds two V chunks' layers
    _, zbv = run("zb-v", p, m, 2, blocks=blocks, loss="mse")
    _, base = run("1f1b", p, m, blocks=blocks, loss="mse")
    peak_zbv = max(r.peak_activation_bytes for r in zbv.summary().per_rank)
    peak_1f1b = max(r.peak_activation_bytes for r in base.summary().per_rank)
    assert peak_zbv <= peak_1f1b
    assert zbv.summary().bubble_fraction < base.summary().bubble_fraction


def dependencies_respected(timeline: Timeline, num_stages: int) -> None:
    end = {}
    for e in timeline.events:
        end[
            (e.step, e.stage, "F" if e.kind == "F" else "W" if e.kind == "W" else "G", e.microbatch)
        ] = e.end
    for e in timeline.events:
        needs = []
        if e.kind == "F" and e.stage > 0:
            needs.append((e.step, e.stage - 1, "F", e.microbatch))
        if e.kind in ("B", "I"):
            needs.append((e.step, e.stage, "F", e.microbatch))
            if e.stage < num_stages - 1:
                needs.append((e.step, e.stage + 1, "G", e.microbatch))
        if e.kind == "W":
            needs.append((e.step, e.stage, "G", e.microbatch))
        for need in needs:
            assert end[need] <= e.start + 1e-12, (e, need)


GRID = [
    (name, p, m, v)
    for name, _ in list_schedules()
    for p in (1, 2, 3, 4)
    for m in (1, 2, 4, 8)
    for v in ((2, 3) if name == "interleaved-1f1b" else (None,))
]


@pytest.mark.parametrize(("name", "p", "m", "v"), GRID)
def test_every_schedule_respects_dependencies_and_frees_all_memory(name, p, m, v):
    from simulator.errors import PebbleError

    try:
        schedule, timeline = run(name, p, m, v, steps=2, costs=(1.0, 2.0, 0.5), latency=0.25)
    except PebbleError:
        pytest.skip(f"{name} does not support p={p}, m={m}, v={v}")
    dependencies_respected(timeline, schedule.num_stages)
    for rank in range(p):
        _, totals = timeline.rank_memory(rank)
        assert totals[-1] == 0
        assert min(totals) >= 0
    assert len(timeline.events) == 2 * len(schedule)


@pytest.mark.parametrize(("p", "m"), [(2, 4), (4, 8), (4, 16), (8, 16)])
def test_zb_v_is_zero_bubble_in_steady_state(p, m):
    """Qi et al.: with F = I = W, ZB-V's steady state has no bubble: once consecutive steps may
    overlap (no optimizer barrier), a step takes exactly m (F + I + W)."""
    _, free = run("zb-v", p, m, 2, steps=6, sync=False)
    assert free.summary().step_times[-1] == pytest.approx(3 * m)
    # with the barrier only the fill of the V remains: (p - 1) chunk forwards of 1/2 each
    _, synced = run("zb-v", p, m, 2)
    assert synced.summary().makespan == pytest.approx(3 * m + (p - 1) / 2)
