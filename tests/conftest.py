"""Shared fixtures: one Ray instance for the whole test session (Ray takes seconds to start)."""

from __future__ import annotations

import ast
import os
from pathlib import Path

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


TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def _tests_on_ray(path: Path) -> frozenset[str]:
    """The test functions of one file that use the shared Ray: those taking ``ray_session``,
    directly or through a fixture of the same file that takes it."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    uses = {f.name: {a.arg for a in f.args.args} for f in functions}
    on_ray = {"ray_session"}
    grew = True
    while grew:  # fixtures that take a fixture on Ray are on Ray too
        found = {
            name for name, args in uses.items() if args & on_ray and not name.startswith("test_")
        }
        grew = not found <= on_ray
        on_ray |= found
    return frozenset(
        name for name, args in uses.items() if name.startswith("test_") and args & on_ray
    )


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """How pytest-xdist (``-n 2`` in ``addopts``) shares the tests out: every test that uses
    the shared Ray goes to one worker, so there is one Ray instance per test session however
    many workers there are; every other file goes whole to a worker, so its module fixtures (an
    executed notebook, a browser, a simulated 70B run) are built once."""
    from xdist.scheduler import LoadScopeScheduling

    # per test file, its tests on the shared Ray (read here, in the controller only: parsing
    # every test file takes half a second, which the workers need not spend)
    ray_tests = {
        path.relative_to(ROOT).as_posix(): _tests_on_ray(path) for path in TESTS.rglob("test_*.py")
    }

    class RayFilesTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path, _, rest = nodeid.partition("::")
            test = rest.split("[", 1)[0].split("::")[-1]
            return "shared Ray" if test in ray_tests.get(path, ()) else path

    return RayFilesTogether(config, log)
