"""The machine a run's rank actors share: how many cores, and how much CPU the run's processes use.

Why: the prediction of a run on a laptop or a CI box has to know what the ranks compete for.
Two numbers come from here. The *cores* are what the operating system lets the actors run on
(their CPU affinity, capped by a cgroup quota), read on each actor's own node, not Ray's logical
``CPU`` resource, which a user may set to anything. The *CPU time* is the nanosecond-exact run
time Linux keeps per thread (``/proc/<pid>/task/<tid>/sched``; ``/proc/stat`` only counts
10 ms ticks), summed over the Ray session's processes only (the driver's subtree when it
started Ray on this node, else the raylet's), so another user's work on the same machine does
not count as the run's own.
"""

from __future__ import annotations

import glob
import os
import time
from typing import NamedTuple


class NodeState(NamedTuple):
    """One reading on an actor's node."""

    node: str  # Ray's node id
    cores: int  # cores the actor may run on
    wall: float  # time.time()
    cpu: float | None  # CPU seconds the Ray session's processes have run (None: unknown)
    cost: float  # CPU seconds this reading itself took
    pid: int = 0  # the reading actor's process
    ranks_cpu: float | None = None  # CPU seconds the asked-for processes' main threads have run
    session: tuple[int, ...] = ()  # the Ray session's processes on this node
    per_process: tuple[float | None, ...] = ()  # CPU seconds of each (None: gone)
    machine_cpu: float | None = None  # CPU seconds every process on the machine has run


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup v2 CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max") as handle:
            quota, period = handle.read().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, round(float(quota) / float(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process on this machine."""
    parents = {}
    for path in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(path) as handle:
                text = handle.read()
            parents[int(path.split("/")[2])] = int(text[text.rindex(")") + 2 :].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return parents


def session_root(driver: tuple[str, int], node: str) -> int:
    """The process whose subtree is this Ray session on this node: the driver when it started
    the raylet here (a local Ray, started by the driver's launcher: ``local_ray``), else the
    raylet (the actor's parent)."""
    raylet = os.getppid()
    parents = _parents()
    if driver[0] == node and driver[1] in (parents.get(raylet), parents.get(parents.get(raylet))):
        return driver[1]
    return raylet


def session_processes(root: int) -> tuple[int, ...]:
    """``root`` and every process descended from it."""
    children: dict[int, list[int]] = {}
    for pid, parent in _parents().items():
        children.setdefault(parent, []).append(pid)
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, ()))
    return tuple(found)


def process_cpu_seconds(pids: tuple[int, ...], main_only: bool = False) -> tuple[float | None, ...]:
    """Per process of ``pids``: the CPU seconds its threads have run so far (``main_only``: its
    main thread, where a Ray actor runs its calls), or None where ``/proc`` does not say (the
    process is gone, or not on this machine). Reads each thread's ``schedstat`` (its run time in
    nanoseconds), the cheapest file that has it: a Ray session's few hundred threads take a few
    milliseconds."""
    found: list[float | None] = []
    for pid in pids:
        if main_only:
            paths = [f"/proc/{pid}/task/{pid}/schedstat"]
        else:
            paths = glob.glob(f"/proc/{pid}/task/[0-9]*/schedstat")
        total, seen = 0, False
        for path in paths:
            try:
                with open(path) as handle:
                    total += int(handle.read().split()[0])
                seen = True
            except (OSError, ValueError, IndexError):
                continue
        found.append(total / 1e9 if seen else None)
    return tuple(found)


def threads_cpu_seconds(pids: tuple[int, ...], main_only: bool = False) -> float | None:
    """The sum of ``process_cpu_seconds``, or None where ``/proc`` says nothing of any."""
    return _known_sum(process_cpu_seconds(pids, main_only))


def _known_sum(values: tuple[float | None, ...]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def session_cpu_seconds(root: int) -> float | None:
    """CPU seconds every thread of ``root`` and its descendants has run so far, or None where
    ``/proc`` does not say."""
    return threads_cpu_seconds(session_processes(root))


def node_state(
    driver: tuple[str, int], pids: tuple[int, ...] = (), session: tuple[int, ...] = ()
) -> NodeState:
    """A reading on this node; ``driver`` is the driver's (node id, pid). ``pids``: processes
    whose main threads' CPU time to read too (the rank actors on this node). ``session``: the
    session's processes as an earlier reading found them (empty: find them, which walks every
    process on the machine)."""
    import ray

    began = time.thread_time()
    node = ray.get_runtime_context().get_node_id()
    session = session or session_processes(session_root(driver, node))
    per_process = process_cpu_seconds(session)
    ranks = threads_cpu_seconds(pids, main_only=True) if pids else None
    cost = time.thread_time() - began
    cpu = _known_sum(per_process)
    return NodeState(
        node,
        usable_cores(),
        time.time(),
        cpu,
        cost,
        os.getpid(),
        ranks,
        session,
        per_process,
        machine_cpu_seconds(),
    )


def outside_between(began: NodeState, ended: NodeState) -> float | None:
    """CPU seconds the processes *outside* the Ray session ran between two readings: the whole
    machine's busy time (``/proc/stat``) less the session's (``cpu_between``), at least 0
    (``/proc/stat`` counts 10 ms ticks). None where either is unknown."""
    session = cpu_between(began, ended)
    if session is None or began.machine_cpu is None or ended.machine_cpu is None:
        return None
    return max(0.0, ended.machine_cpu - began.machine_cpu - session)


def machine_cpu_seconds() -> float | None:
    """CPU seconds this machine's cores have been busy since boot (``/proc/stat``: all but idle
    and I/O wait), or None where ``/proc/stat`` does not say."""
    try:
        with open("/proc/stat") as handle:
            fields = [float(x) for x in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    if len(fields) < 8:
        return None
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def cpu_between(began: NodeState, ended: NodeState) -> float | None:
    """CPU seconds the Ray session ran between two readings on one node, over the processes
    both readings found: a process that exits in between (Ray ends idle workers) takes its CPU
    time with it, and one that starts brings its start-up along. None where unknown."""
    if began.cpu is None or ended.cpu is None:
        return None
    if not (began.per_process and ended.per_process):
        return ended.cpu - began.cpu
    before = dict(zip(began.session, began.per_process, strict=True))
    return sum(
        cpu - before[pid]
        for pid, cpu in zip(ended.session, ended.per_process, strict=True)
        if cpu is not None and before.get(pid) is not None
    )


def shared_cores(placements: list[tuple[str, int]]) -> int:
    """The one pool of cores that rank actors placed as ``placements`` (node, cores there)
    behave as if they shared.

    On one node it is that node's cores. Spread over nodes, each node's actors share only that
    node's cores; the busiest node sets the pace, and a node with ``c`` cores and ``r`` of the
    ``n`` actors crowds them as ``c x n / r`` cores would crowd all of them (exact when the
    nodes are equally loaded, the even spread Ray's SPREAD placement aims for).
    """
    per_node: dict[str, list[int]] = {}
    for node, cores in placements:
        per_node.setdefault(node, []).append(cores)
    n = len(placements)
    return max(1, min(min(c) * n // len(c) for c in per_node.values()))


def driver_identity() -> tuple[str, int]:
    """(the driver's node id, its pid), for ``node_state``."""
    import ray

    return ray.get_runtime_context().get_node_id(), os.getpid()


def busy_cores(window: float) -> float | None:
    """Cores this machine kept busy over the next ``window`` seconds (``/proc/stat``: all but
    idle and I/O wait), or None where ``/proc/stat`` does not say."""

    first = machine_cpu_seconds()
    time.sleep(window)
    second = machine_cpu_seconds()
    if first is None or second is None:
        return None
    return (second - first) / window
