"""Activation offload through a planned run (issue 25): ``plan_run(offload=)``, the host link
taken from the preset, and the solved policies ``selective`` and ``budget:``."""

from __future__ import annotations

import pytest

from schedules import build_schedule
from simulator.analytic.hardware import HARDWARE_PRESETS
from simulator.analytic.run_plan import simulate_plan
from simulator.errors import PebbleError
from simulator.run.plan import CostSource, plan_run
from simulator.timeline.report import offload_waits, summary_dict


def _predict(hardware: str, offload: str | None):
    plan = plan_run(
        build_schedule("1f1b", 4, 8),
        "zb-6.2b",
        costs=CostSource(hardware=hardware),
        offload=offload,
    )
    return simulate_plan(plan)


def _peaks(timeline):
    return [r["true_peak_bytes"] for r in summary_dict(timeline)["per_rank"]]


def _host(timeline):
    return [r.get("host_activation_bytes", 0) for r in summary_dict(timeline)["per_rank"]]


def test_no_offload_leaves_the_run_as_it_was():
    plan = plan_run(build_schedule("1f1b", 2, 4), offload="none")
    assert plan.offload is None
    assert "offload" not in summary_dict(simulate_plan(plan))


def test_selective_hides_every_copy_it_sends():
    """On an H100's PCIe Gen5 share some round trips hide (rank 0's early microbatches) and
    some cannot: selective sends only the former, so nothing waits and the step is as long as
    without offload, while full offload's waits lengthen it."""
    none, full = _predict("h100-80gb", None), _predict("h100-80gb", "full")
    selective = _predict("h100-80gb", "selective")
    assert sum(offload_waits(full).values()) > 0
    assert full.summary().makespan > none.summary().makespan
    assert sum(offload_waits(selective).values()) == 0
    assert selective.summary().makespan == pytest.approx(none.summary().makespan, rel=1e-12)
    assert 0 < sum(_host(selective)) < sum(_host(full))
    assert selective.meta.offload == "selective"


def test_on_nvlink_c2c_selective_is_full():
    """GH200's 450 GB/s hides every copy: selective sends what full sends, for free, and the
    first rank's activation peak falls."""
    none, full = _predict("gh200", None), _predict("gh200", "full")
    selective = _predict("gh200", "selective")
    assert _host(selective) == _host(full)
    assert sum(offload_waits(full).values()) == 0
    assert _peaks(selective)[0] < _peaks(none)[0]
    assert selective.summary().makespan == pytest.approx(none.summary().makespan, rel=1e-12)


def test_a_budget_is_met_or_refused_in_one_sentence():
    none = _peaks(_predict("gh200", None))
    budget = (max(none) + _peaks(_predict("gh200", "full"))[0]) // 2
    within = _predict("gh200", f"budget:{budget}")
    assert max(_peaks(within)) <= budget
    assert sum(offload_waits(within).values()) == 0
    with pytest.raises(PebbleError, match="no offload plan keeps rank 0 within"):
        _predict("gh200", "budget:50%")


def test_host_memory_is_checked_against_the_device_share():
    timeline = _predict("gh200", "full")
    preset = HARDWARE_PRESETS["gh200"]
    share = preset.host_memory_bytes // preset.gpus_per_node
    assert timeline.meta.host_memory_capacity == share
    memory = summary_dict(timeline)["per_rank"][0]["memory"]
    assert memory["host_activations"] > 0 and memory["host_fits"] is True
