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
    """How pytest-xdist shares the tests out (``-n 2 --dist loadgroup``): every test on the
    shared Ray in one worker, so there is one Ray instance per test session, and every other
    test file whole in one worker, so a module's fixtures (an executed notebook, a simulated
    70B run) are built once."""
    for item in items:
        on_ray = "ray_session" in getattr(item, "fixturenames", ())
        item.add_marker(pytest.mark.xdist_group("ray" if on_ray else item.nodeid.split("::")[0]))
