"""The memory figure with activation offload (issue 25, deliverable 4): the device's bytes in
red and the host's in blue per rank, each against its limit (the device's room for
activations; the host memory per device, drawn when on the scale and named in the title when
not)."""

from __future__ import annotations

import dataclasses

import pytest
from matplotlib.colors import to_rgb

from schedules import build_schedule
from simulator.analytic.run_plan import simulate_plan
from simulator.run.plan import CostSource, plan_run
from tests.visualize.test_figures_fit import check_fits
from visualize.host_memory import HOST_COLOR, host_series
from visualize.memory import DEVICE_COLOR, memory_figure


def _run(ranks: int, microbatches: int, model: str, offload: str | None):
    plan = plan_run(
        build_schedule("1f1b", ranks, microbatches),
        model,
        costs=CostSource(hardware="h100-80gb"),
        offload=offload,
    )
    return simulate_plan(plan)


@pytest.fixture(scope="module")
def small():
    return _run(4, 8, "zb-6.2b", "full")


def _gids(fig, prefix: str) -> set[str]:
    return {
        artist.get_gid()
        for ax in fig.axes
        for artist in [*ax.lines, *ax.collections]
        if (artist.get_gid() or "").startswith(prefix)
    }


def _legend(fig) -> set[str]:
    return {t.get_text() for legend in fig.legends for t in legend.get_texts()}


def test_the_host_curve_peaks_where_the_timeline_says(small):
    series = host_series(small)
    peaks = small.host_peak_bytes()
    assert {rank: int(totals.max()) for rank, (_, totals) in series.items()} == {
        rank: held for rank, held in peaks.items() if held
    }
    assert all(totals[-1] == 0 for _, totals in series.values())  # every pebble came back


def test_device_red_and_host_blue_per_rank(small):
    fig = memory_figure(small)
    offloading = {rank for rank, held in small.host_peak_bytes().items() if held}
    assert _gids(fig, "host:") == {f"host:{rank}" for rank in offloading}
    host_lines = [line for ax in fig.axes for line in ax.lines if line.get_gid() == "host:0"]
    assert host_lines[0].get_color() == HOST_COLOR
    device = [c for c in fig.axes[0].collections if c.get_label() != "_nolegend_"]
    assert tuple(device[0].get_facecolor()[0][:3]) == pytest.approx(to_rgb(DEVICE_COLOR))
    assert {"on the device (replica 0)", "on the host"} <= _legend(fig)
    title = fig._suptitle.get_text()
    assert "host memory per device" in title and "off the scale" in title  # 256 GiB per H100
    assert not _gids(fig, "host-room:")
    check_fits(fig)


def test_a_host_limit_on_the_scale_is_drawn(small):
    held = max(small.host_peak_bytes().values())
    tight = dataclasses.replace(small.meta, host_memory_capacity=2 * held)
    timeline, original = small, small.meta
    timeline.meta = tight
    try:
        fig = memory_figure(timeline)
        assert _gids(fig, "host-room:") == {f"host-room:{r}" for r in range(small.num_ranks)}
        assert any(text.startswith("host memory per device") for text in _legend(fig))
        assert "off the scale" not in fig._suptitle.get_text()
        check_fits(fig)
    finally:
        timeline.meta = original


def test_without_offload_nothing_of_the_host():
    fig = memory_figure(_run(2, 4, "zb-6.2b", None))
    assert not _gids(fig, "host")
    assert "host" not in fig._suptitle.get_text()
    assert "on the host" not in _legend(fig)


def test_at_scale_the_heat_map_names_the_host():
    fig = memory_figure(_run(32, 128, "llama3-70b", "full"))
    title = fig._suptitle.get_text()
    assert "on the host: at most" in title and "(blue)" not in title
    check_fits(fig)
