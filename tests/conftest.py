"""Shared fixtures: one Ray instance for the whole test session (Ray takes seconds to start)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


@pytest.fixture(scope="session")
def ray_session():
    """A local Ray with more logical CPUs than this machine has cores: pipelines have more
    ranks than the machine has cores, and each rank actor asks for a slice of a CPU."""
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(
            num_cpus=16,
            include_dashboard=False,
            logging_level="ERROR",
            log_to_driver=False,
        )
    yield ray
    ray.shutdown()


def pytest_collection_modifyitems(config, items):
    """With pytest-xdist (``-n 2 --dist loadgroup``, the default ``addopts``), every test on the
    shared Ray runs in one worker: one Ray instance per test session, however many workers
    share the rest. Costly fixtures are session-scoped, so a worker builds each once even when
    its tests arrive interleaved with other modules'."""
    for item in items:
        if "ray_session" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("ray"))
