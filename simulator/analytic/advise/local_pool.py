"""``advise``'s simulations on this machine's other cores: worker processes that run ahead of
the search.

Why forked processes: bounding and simulating are pure Python (the GIL rules out threads), and a
forked worker starts with the parent's modules and caches, so it pays no import. The workers
bound the search's groups of configurations (``bounding``), then simulate. Why ahead of the
search: the search reads results in its own order and stops by its own rule (``search.search``),
so the workers simulate the next configurations in that order while the search reads the
earlier ones; what they ran past the stop is dropped unread, and the answer is the one-at-a-time
search's exactly (``tests/simulator/test_advise_local_pool.py``).

The workers leave with the run: they ignore SIGINT (a Ctrl-C reaches the whole foreground group,
and the parent ends them on its way out), take SIGTERM and SIGHUP by default, and on Linux are
sent SIGKILL by the kernel if the parent dies without ending them (``PR_SET_PDEATHSIG``). The
three signals are held from the fork until the worker has set them (``_worker_start``), so none
is lost in between.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import math
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterator

from simulator.analytic.advise.search import Outcome, Stream, run_one
from simulator.analytic.advise.space import Candidate
from simulator.errors import PebbleError

PR_SET_PDEATHSIG = 1  # linux/prctl.h
MAX_JOBS = 8  # workers at most: past a few, the search's stopping rule wastes what runs ahead
WORKER_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
Evaluate = Callable[[Candidate], Outcome]
_evaluate: Evaluate | None = None  # a worker's: set before the fork, inherited by the worker


def available_cores() -> int:
    """The cores this process may run on: its CPU affinity (where the platform has one), cut
    to a container's CPU quota (a cgroup's ``cpu.max``, or v1's ``cfs_quota_us``: a container
    sees every core of its host but may use only its share), and to ``MAX_JOBS``."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    for path, read in CPU_QUOTAS:
        with contextlib.suppress(OSError, ValueError):
            with open(path) as handle:
                quota = read(handle.read())
            if quota is not None:
                cores = min(cores, max(1, math.floor(quota)))
            break
    return max(1, min(cores, MAX_JOBS))


def quota_v2(text: str) -> float | None:
    """Cores a cgroup v2 ``cpu.max`` allows (``"200000 100000"``: 2), None for ``max``."""
    quota, period = text.split()[:2]
    return None if quota == "max" else int(quota) / int(period)


def quota_v1(text: str, period_path: str = "/sys/fs/cgroup/cpu/cpu.cfs_period_us") -> float | None:
    """Cores a cgroup v1 ``cpu.cfs_quota_us`` allows over its period (the kernel's default
    100 ms when the period cannot be read); None for -1 (no quota)."""
    quota = int(text.strip())
    if quota < 0:
        return None
    period = 100_000
    with contextlib.suppress(OSError, ValueError), open(period_path) as handle:
        period = int(handle.read().strip()) or period
    return quota / period


class LocalPool:
    """``jobs`` worker processes for one command (a context manager): ``stream`` is the
    ``Stream`` the search reads, which bounds its groups of configurations and simulates them in
    the workers. The first use forks them; leaving the ``with`` ends them."""

    def __init__(self, evaluate: Evaluate, jobs: int) -> None:
        if jobs < 2:
            raise ValueError("a local pool needs at least 2 jobs")
        self.evaluate, self.jobs = evaluate, jobs
        self._pool = None

    def __enter__(self) -> LocalPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def stream(self) -> Stream:
        return Stream(results=self.results, spread=self.spread)

    def results(self, candidates: list[Candidate]) -> Iterator[Outcome | PebbleError]:
        """Each candidate's Outcome or PebbleError, in order, simulated ``jobs`` at a time.
        When the search stops reading (it closes this), the workers, still running ahead
        through the rest, are ended: the next use forks new ones."""
        try:
            yield from self._workers().imap(_run_one, candidates, chunksize=1)
        finally:
            self.close()

    def spread(self, work: Callable, items: list) -> Iterator:
        """``work(item)`` for each item in the workers, as each ends (any order)."""
        yield from self._workers().imap_unordered(work, items, chunksize=1)

    def _workers(self):
        """The worker processes, forked on first use (so they inherit every cache so far)."""
        global _evaluate
        if self._pool is None:
            _evaluate = self.evaluate
            context = multiprocessing.get_context("fork")
            held = _hold_signals()  # the workers start with them held (``_worker_start``)
            try:
                self._pool = context.Pool(
                    self.jobs, initializer=_worker_start, initargs=(os.getpid(),)
                )
            finally:
                _release_signals(held)
        return self._pool

    def close(self) -> None:
        """End the workers (mid-simulation or idle) and wait for them."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.terminate()
            pool.join()


def _hold_signals():
    """Block SIGINT, SIGTERM and SIGHUP in this thread while the workers are forked (the mask
    before, or None where threads have no signal mask)."""
    if not hasattr(signal, "pthread_sigmask"):
        return None
    return signal.pthread_sigmask(signal.SIG_BLOCK, WORKER_SIGNALS)


def _release_signals(held) -> None:
    """This thread's mask as before ``_hold_signals``: what arrived meanwhile is delivered."""
    if held is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def _worker_start(parent: int) -> None:
    """In each worker before its first task: the signals as the module docstring says. They
    were held since the fork, so a SIGTERM from ``Pool.terminate`` that came before this line
    ends the worker now; unheld, it could land in the window after the fork where Python drops
    a signal meant for the parent's handler, and the worker then waited forever on the pool's
    queue, which ``terminate`` locks, with the driver waiting for it (seen once in CI)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, WORKER_SIGNALS)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError, TypeError):
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)


def _run_one(candidate: Candidate) -> Outcome | PebbleError:
    ran = run_one(_evaluate, candidate)
    # a refusal's sentence alone pickles back whole
    return PebbleError(str(ran)) if isinstance(ran, PebbleError) else ran


CPU_QUOTAS = (  # the first file that exists decides
    ("/sys/fs/cgroup/cpu.max", quota_v2),
    ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", quota_v1),
)
