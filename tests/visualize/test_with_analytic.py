"""The figures on Timelines from the real analytic executor (needs ``schedules.validate``).

GPipe and 1F1B come from ``schedules.registry.build_schedule`` when it exists, else are written
out by hand here (every rank: warmup forwards, then one backward / one forward, then cooldown).
"""

from __future__ import annotations

from collections import defaultdict

import pytest

pytest.importorskip("schedules.validate")

from schedules.actions import Action, Schedule, loop_stage_to_rank  # noqa: E402
from simulator.analytic.costs import unit_costs  # noqa: E402
from simulator.analytic.executor import simulate  # noqa: E402
from simulator.model import ModelSpec, partition  # noqa: E402
from tests.visualize.synthetic import patches_with, texts_with  # noqa: E402
from visualize import (  # noqa: E402
    FIGURES,
    comparison_rows,
    human_bytes,
    pebble_figure,
    pebble_intervals,
    pipeline_figure,
)

P, M = 4, 8


def hand_schedule(name: str, p: int, m: int) -> Schedule:
    rows = []
    for r in range(p):
        warmup = m if name == "gpipe" else min(p - r, m)
        row = [Action(r, "F", i) for i in range(warmup)]
        forward = warmup
        for b in range(m):
            row.append(Action(r, "B", b))
            if forward < m:
                row.append(Action(r, "F", forward))
                forward += 1
        rows.append(row)
    return Schedule(name, m, loop_stage_to_rank(p, 1), rows)


def schedule(name: str) -> Schedule:
    try:
        from schedules.registry import build_schedule
    except ImportError:
        return hand_schedule(name, P, M)
    return build_schedule(name, P, M, 1)


@pytest.fixture(scope="module")
def runs():
    spec = ModelSpec(widths=(2, 32, 32, 32, 3))
    part = partition(spec, P)
    out = {}
    for name in ("gpipe", "1f1b"):
        s = schedule(name)
        out[name] = simulate(s, unit_costs(s, part), spec, part, 8, steps=2)
    return out


def test_pebble_intervals_match_the_cache_records(runs):
    for timeline in runs.values():
        running: dict[tuple, int] = defaultdict(int)
        for c in timeline.cache:
            running[(c.layer, c.microbatch, c.step)] += c.bytes
        assert all(v == 0 for v in running.values())  # everything cached is freed
        intervals = pebble_intervals(timeline)
        assert sorted((i.layer, i.microbatch, i.step) for i in intervals) == sorted(running)
        for i in intervals:
            times = [
                c.time
                for c in timeline.cache
                if (c.layer, c.microbatch, c.step) == (i.layer, i.microbatch, i.step)
            ]
            assert (i.start, i.end) == (min(times), max(times))


def test_purple_at_every_grad_ready(runs):
    timeline = runs["1f1b"]
    fig = pebble_figure(timeline)
    purple = {p.get_gid(): p.get_x() for p in patches_with(fig, "grad:")}
    assert len(purple) == len(timeline.grad_ready)
    for g in timeline.grad_ready:
        assert purple[f"grad:{g.layer}:{g.step}"] == g.time


def test_pipeline_box_per_event(runs):
    for timeline in runs.values():
        assert len(patches_with(pipeline_figure(timeline), "box:")) == len(timeline.events)


def test_memory_labels_and_comparison(runs):
    fig = FIGURES["memory"](runs["1f1b"])
    for r in runs["1f1b"].summary().per_rank:
        (label,) = texts_with(fig, f"peak:{r.rank}")
        assert label.get_text() == f"peak {human_bytes(r.peak_activation_bytes)}"
    rows = {row["schedule"]: row for row in comparison_rows(runs)}
    assert rows["1f1b"]["peak_bytes_max"] < rows["gpipe"]["peak_bytes_max"]
    assert rows["1f1b"]["bubble_percent"] == pytest.approx(rows["gpipe"]["bubble_percent"])
    assert rows["gpipe"]["peak_inflight"] == M and rows["1f1b"]["peak_inflight"] == P
