"""The pebble graph with activation offload (issue 25, deliverable 4): blue pebbles on the host
beside the device's, in-flight copies hatched, read off the Timeline's ``offload`` table and
the device's cache lifetimes."""

from __future__ import annotations

import pytest

from schedules import build_schedule
from simulator.analytic.run_plan import simulate_plan
from simulator.run.plan import CostSource, plan_run
from tests.visualize.test_figures_fit import check_fits
from visualize import save
from visualize.pebble import pebble_figure
from visualize.pebble_data import pebble_intervals
from visualize.pebble_offload import host_pebbles, row_scale
from visualize.rows import RowCount

MLP = "8192-8192-8192-8192-8192-8192-8192-10"  # six offloadable layers on rank 0


def _run(hardware: str, offload: str | None, model: str = MLP, ranks=2, microbatches=4):
    plan = plan_run(
        build_schedule("1f1b", ranks, microbatches),
        model,
        batch_size=32768 if model == MLP else None,
        costs=CostSource(hardware=hardware),
        offload=offload,
    )
    return simulate_plan(plan)


@pytest.fixture(scope="module")
def gh200():
    return _run("gh200", "full")


def _gids(fig) -> set[str]:
    return {c.get_gid() for c in fig.axes[0].collections if c.get_gid()}


def test_every_offloaded_byte_is_a_host_pebble(gh200):
    """Each copy sends the stage's cached layers: as many host pebbles per offload as layers
    whose device lifetime pauses exactly for it, and the bytes agree with the table."""
    host, flight = host_pebbles(gh200, pebble_intervals(gh200))
    offloads = [s for s in gh200.offload if s.kind == "offload"]
    assert len(host) == 6 * len(offloads)  # L0..L5 of stage 0, every microbatch but the last
    assert len(flight) == 2 * len(host)
    sent = {(s.microbatch, s.step): s for s in offloads}
    for pebble in host:
        out = sent[pebble.microbatch, pebble.step]
        assert pebble.start == out.end and pebble.layer <= 5
    layer_bytes = {}
    for change in gh200.cache:
        first = change.time <= sent[0, 0].start  # the forward's puts, not the prefetch's
        if change.bytes > 0 and change.microbatch == 0 and first:
            layer_bytes[change.layer] = layer_bytes.get(change.layer, 0) + change.bytes
    assert sum(layer_bytes[layer] for layer in range(6)) == sent[0, 0].bytes


def test_the_graph_draws_host_and_in_flight_pebbles(gh200):
    fig = pebble_figure(gh200)
    assert {"host-pebbles", "in-flight"} <= _gids(fig)
    entries = {t.get_text() for legend in fig.legends for t in legend.get_texts()}
    assert "offloaded: on the host (blue)" in entries
    assert any(text.startswith("in flight") for text in entries)
    assert "cached activations on the device" in entries
    check_fits(fig)


def test_device_and_host_bars_never_overlap():
    device = [RowCount(0, 0.0, 2.0, 2)]
    host = [RowCount(0, 1.0, 3.0, 3)]
    flight = [RowCount(0, 1.5, 2.5, 1)]
    assert row_scale(device, host, flight) == 6  # at 1.5..2: 2 + 3 + 1


def test_without_offload_nothing_blue():
    fig = pebble_figure(_run("gh200", None))
    assert not {"host-pebbles", "in-flight"} & _gids(fig)


def test_at_scale_it_fits_and_stays_small(tmp_path):
    large = _run("h100-80gb", "full", "llama3-70b", 32, 128)
    fig = pebble_figure(large)
    assert {"host-pebbles", "in-flight"} <= _gids(fig)
    check_fits(fig)
    png, svg = save(fig, tmp_path / "pebble")
    assert svg.stat().st_size < 2 * 10**6 and png.stat().st_size < 2 * 10**6
