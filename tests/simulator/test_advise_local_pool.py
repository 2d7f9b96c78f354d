"""``advise`` on this machine's cores: the bounds computed in groups, in any order, and the
simulations run ahead in worker processes give exactly the one-process search's answer, and
the workers end with the pool."""

from __future__ import annotations

import multiprocessing
from dataclasses import replace

import pytest

from simulator.analytic.advise import evaluator, search
from simulator.analytic.advise.bounding import bounded
from simulator.analytic.advise.local_pool import (
    MAX_JOBS,
    LocalPool,
    available_cores,
    quota_v1,
    quota_v2,
)
from simulator.errors import PebbleError
from tests.simulator.advise_harness import small_request


def _fates(result) -> list[tuple]:
    return [
        (f.candidate, f.verdict, f.memory_bound, f.static, f.time_bound, f.outcome, f.same_as)
        for f in result.fates
    ]


def test_bounds_in_groups_in_any_order_are_the_same():
    """Groups bounded in reverse order (as workers may finish them) merge to the same sorted
    candidates, counts and fates, in enumeration order."""
    request, _, hardware = small_request(offload=("none", "full"))
    kept, counts = bounded(request, hardware)
    backwards, counts_backwards = bounded(
        request, hardware, spread=lambda work, items: map(work, list(reversed(items)))
    )
    assert backwards == kept
    assert counts_backwards == counts
    assert counts["pruned_memory"] > 0 and kept, "the request must both drop and keep some"


def test_two_workers_give_the_one_process_answer():
    """And a search that stops reading ends the workers running ahead of it, so a second
    search (advise's offload fallback) does not queue behind the first one's leftovers."""
    request, text, hardware = small_request()
    evaluate = evaluator(text, request.memory_limit)
    alone = search(request, hardware, evaluate, top=5)
    with LocalPool(evaluate, 2) as pool:
        spread = search(request, hardware, evaluate, top=5, batch=pool.stream)
        assert multiprocessing.active_children() == []
        again = search(request, hardware, evaluate, top=5, batch=pool.stream)
    assert spread.top == alone.top
    assert again.top == alone.top
    assert [o.candidate for o in spread.simulated] == [o.candidate for o in alone.simulated]
    assert _fates(spread) == _fates(alone)
    for field in ("considered", "pruned_memory", "pruned_time", "refused", "unneeded"):
        assert getattr(spread, field) == getattr(alone, field), field


def test_a_refusal_in_a_worker_comes_back_as_its_sentence_and_the_workers_end():
    request, text, hardware = small_request()
    evaluate = evaluator(text, request.memory_limit)

    def refuse_auto(c):
        if c.schedule == "auto":
            raise PebbleError("auto is refused in this test.")
        return evaluate(c)

    alone = search(request, hardware, refuse_auto, top=5)
    with LocalPool(refuse_auto, 2) as pool:
        spread = search(request, hardware, refuse_auto, top=5, batch=pool.stream)
        bounds = pool.spread(len, [[1, 2], [3]])  # the workers start again on the next use
        assert sorted(bounds) == [1, 2] and len(multiprocessing.active_children()) == 2
    assert multiprocessing.active_children() == []
    assert spread.refused == alone.refused > 0
    assert [f.reason for f in spread.fates] == [f.reason for f in alone.fates]
    assert spread.top == alone.top


def test_a_pool_needs_two_jobs_and_the_machine_has_cores():
    request, text, _ = small_request()
    with pytest.raises(ValueError):
        LocalPool(evaluator(text, request.memory_limit), 1)
    assert 1 <= available_cores() <= MAX_JOBS


def test_a_containers_cpu_quota_caps_the_workers(tmp_path):
    """A container sees its host's cores but may use its quota: cgroup v2 ``cpu.max`` and v1
    ``cpu.cfs_quota_us`` over its period."""
    assert quota_v2("max 100000") is None
    assert quota_v2("200000 100000") == 2.0
    assert quota_v2("150000 100000\n") == 1.5
    period = tmp_path / "cpu.cfs_period_us"
    period.write_text("50000\n")
    assert quota_v1("-1", str(period)) is None
    assert quota_v1("100000", str(period)) == 2.0
    assert quota_v1("250000", str(tmp_path / "missing")) == 2.5  # the kernel's default period


def test_an_offload_search_with_workers_is_the_one_process_search():
    """With offload, the workers simulate ahead even the configurations the search then skips
    (their twin without offload fits); those runs are dropped unread."""
    request, text, hardware = small_request(memory="3MiB")
    request = replace(request, offload=("none", "full"))
    evaluate = evaluator(text, request.memory_limit)
    alone = search(request, hardware, evaluate, top=5)
    with LocalPool(evaluate, 2) as pool:
        spread = search(request, hardware, evaluate, top=5, batch=pool.stream)
    assert spread.top == alone.top
    assert spread.unneeded == alone.unneeded > 0
    assert _fates(spread) == _fates(alone)
