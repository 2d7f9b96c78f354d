"""Shared compute: the ranks of a run share ``C`` cores, and each action's speed is its share.

Why: on a laptop or a CI box the Ray executor starts one OS process per rank (``ranks x dp``
actors) on a machine with fewer cores than that. The operating system's scheduler time-slices
the runnable processes over the cores, so an action that takes ``t`` alone takes longer while
more processes than cores want to run. ``simulate(..., cores=C)`` predicts that run; without
``cores`` every rank owns a device (``executor._action_times``, or this simulation at full
speed when the runtime charges each call an overhead).

The model is *processor sharing* (Kleinrock 1967; the fluid limit of round-robin time slicing,
how a fair OS scheduler such as Linux's CFS or EEVDF treats equal, CPU-bound processes): while
``k`` actions run at once, each progresses at ``min(1, C / k)`` of its full speed. An action's
cost is its *work*, its time when it runs alone; it ends when that much work is done. Nothing
is queued: an action starts exactly when the max-plus executor would start it (its rank is
free and each producer's output has arrived: the producer's end plus the transfer); only how
fast it then runs depends on what else runs. So with ``C`` at least the number of running
actions the timeline is the uncontended one, to the bit.

Choices and limits (each is a deliberate approximation):

* **Data parallelism.** The ``dp`` replicas are ``dp`` more copies of every rank on the same
  cores, as in a real local Ray run. The executor walks one replica's timeline; the model takes
  the replicas to run the same schedule in lockstep, so ``k`` running actions of the walked
  replica stand for ``dp x k`` on the machine (each runs at ``min(1, C / (dp k))``). Within the
  fluid model that is exact (identical replicas stay identical); real replicas drift apart a
  little, which smooths the contention.
* **The runtime around each action** (``Runtime``, from a measured profile's runtime costs; none
  on a bare device). An action that starts a Ray call first *takes the call*: ``overhead`` seconds
  of work on its rank (unpacking the call), after which the action's event starts; an action whose
  output goes to another rank then *hands it over* (``put`` seconds on its rank, into the object
  store; the transfer to the consumer counts from the event's end and includes it) before its rank
  is free. The call also costs ``side`` seconds of work off the rank (the driver dispatching it,
  the object store, the actors' I/O threads), which holds up no rank. It starts when the
  runtime can start on the call: when the last of its inputs from other ranks is handed over
  (so it mostly runs while the consumer waits for the transfer, as the driver's dispatch
  does), or with the call when it has none. The side work is real CPU use, measured in the run
  (``ray_pipeline.runtime_meter``); on 2 cores with 4 ranks it is about a quarter of the
  machine, which is why a model of compute alone under-predicts such a run by a third.
* **The side work is spread over every core.** It is one queue (the runtime is a few
  threads, not one per call) that runs at a core's full speed while it has work, and
  meanwhile every core gives up ``1 / C`` of its time to it, whether or not another core
  idles: the running jobs progress at ``min(1 - 1 / C, (C - load - 1) / k)`` (both bounds
  hand the side queue one core in all). Its many short wake-ups run where its threads last
  ran, not on an idle core. Measured on this 2-core VM: one actor computing while the driver
  called another actor back to back (the runtime using 1.0-1.3 cores) took 13-20% longer
  than its CPU time, 28-72% with 512 KB arguments (4 runs); sharing only the idle core would
  say 0%, spreading 100% (the queue never runs dry there; ``benchmarks/runtime_contention.
  py``). The truth lies between, and spreading errs on the side of caution. Re-predicting 15
  saved runs: 2 ranks -2.4..-0.9% (sharing only the idle core: -3.6..-2.3%), the demo's 4
  ranks -0.4..+2.7% (-1.9..+1.8%).
* **The background load is not spread** (``load`` cores busy with other work all along: a
  calibrated profile's is the Ray session's idle CPU, the raylet's and GCS's polling): it
  leaves ``C - load`` cores, so without side work the jobs progress at
  ``min(1, (C - load) / k)``. Measured: an actor computing alone in an idle Ray session
  (0.047 cores of load) ran 0.14% past its CPU time.
* **Transfers, the all-reduce and the optimizer step are not slowed.** They are short next to
  compute in the runs this is for, and a transfer mostly waits on memory or the network, not
  on a core. They do not count as running actions either.
* **Inside an action.** A cache change or a gradient completion at a fraction of an action's
  work is placed at that fraction of its elapsed time, exact while its speed is constant.
* **One step at a time.** Each step is simulated from the ranks' free times. With ``sync=False``
  the next step's first actions do not contend with the previous step's last ones.
* **Perfect sharing.** No context-switch cost, no cache or memory-bandwidth interference, no
  hyper-threading effects, no other load on the machine than ``load``; cores are
  interchangeable, and an action uses at most one core (a multi-threaded BLAS call is one
  action's work, not several).

How: an event-driven (fluid) simulation. Every running job (an action's call, its work, its
hand-over) progresses at the same rate, so one *virtual clock* ``V``, which advances at the
common rate (above, with ``dp k`` jobs), measures everybody's progress: a job started at
virtual time ``v`` ends when ``V = v + work``. The side queue keeps wall-clock time: it has
work until ``side_until``, and its running dry is one more event. The running jobs sit in a
heap keyed by that virtual end, the actions whose start time is known in a heap keyed by it,
and the simulation jumps from event to event (a start or an end); an action's end frees its rank
and may make the rank's next action, or an action that waited for it, ready. ``V`` is kept as
an anchor ``(t0, V0)`` and a rate, re-anchored only when the rate changes, so with no
contention ``V`` is the wall clock exactly.

Cost: each action is one start and one end event, each a heap operation over at most ``p``
entries, plus its needs: O(actions x log ranks) time and O(actions) memory. (The default path,
the max-plus recurrence, is O(actions) and does not come here.)
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

from simulator.errors import PebbleError


def check_cores(cores: int | None) -> int | None:
    """``cores`` as given, or a one-sentence error unless it is None or a positive integer."""
    if cores is None:
        return None
    if isinstance(cores, bool) or not isinstance(cores, int) or cores < 1:
        raise PebbleError(f"cores must be a whole number of at least 1, not {cores!r}.")
    return cores


def check_load(load: float, cores: int) -> float:
    """``load`` (cores busy with other work all along) as given, or one sentence unless it is
    in ``[0, cores)``: a load of every core leaves the run nothing, and the fluid model would
    crawl at its floor rate, predicting years for a step of milliseconds."""
    if not (0.0 <= load < cores):
        raise PebbleError(
            f"a background load of {load:.3g} cores leaves nothing of the {cores} cores the run "
            f"shares; background_load must be in 0..{cores} (below the cores)."
        )
    return load


@dataclass(frozen=True)
class Runtime:
    """What running an action costs besides its work, per action in the dry run's order.

    ``overhead[i]``: seconds of the rank's own CPU before action ``i`` starts (taking a Ray actor
    call), 0 for an action fused into the call before it. ``put[i]``: seconds of the rank's CPU
    after action ``i`` hands its output to another rank. ``side[i]``: CPU seconds the call of action
    ``i`` costs *off* the rank (the driver dispatching it, the object store), which only
    competes for the cores, spread over all of them. ``load``: cores kept busy by other work on
    the machine all along. All zero: a bare device.
    """

    overhead: list[float] | None = None
    side: list[float] | None = None
    load: float = 0.0
    put: list[float] | None = None


def runtime_of(arrays, costs, run) -> Runtime | None:
    """The runtime of ``costs`` per action of ``arrays`` (``PlanArrays`` of the dry run
    ``run``), None when it costs nothing."""
    if not (costs.call_overhead or costs.send_overhead or costs.call_cpu or costs.background_load):
        return None
    sends = arrays.sends(run)
    calls = arrays.call_starts(run, sends)
    return Runtime(
        overhead=(calls * costs.call_overhead).tolist(),
        side=(calls * costs.call_cpu).tolist(),
        load=costs.background_load,
        put=(sends * costs.send_overhead).tolist(),
    )


def shared_action_times(
    rank, duration, producers, transfer, rank_free, cores, replicas=1, runtime=None
):
    """(starts, ends) of every action in the dry run's order when the ranks (times
    ``replicas``) share ``cores`` cores (None: every rank owns a device; then only the
    runtime's overhead matters); ``rank_free`` is updated in place to each rank's last end.
    Same arguments and contract as ``executor._action_times``, plus ``runtime``."""
    fluid = _Fluid(rank, duration, producers, transfer, rank_free, cores, replicas)
    runtime = runtime or Runtime()
    n = len(rank)
    fluid.overhead = runtime.overhead or [0.0] * n
    fluid.put = runtime.put or [0.0] * n
    fluid.side = (runtime.side or [0.0] * n) if cores is not None else [0.0] * n
    fluid.load = check_load(runtime.load, cores) if cores is not None else 0.0
    return fluid.run()


class _Fluid:
    """The state of one step's processor-sharing simulation."""

    def __init__(self, rank, duration, producers, transfer, rank_free, cores, replicas):
        n = len(rank)
        self.rank, self.duration, self.rank_free = rank, duration, rank_free
        self.needs = list(zip(producers, transfer, strict=True))
        self.capacity, self.replicas = (math.inf if cores is None else cores), replicas
        self.load = 0.0
        self.overhead = self.side = self.put = [0.0] * n
        self.start, self.end, self.finished = [0.0] * n, [0.0] * n, [False] * n
        self.queues: list[list[int]] = [[] for _ in rank_free]
        for i, r in enumerate(rank):
            self.queues[r].append(i)
        self.head = [0] * len(rank_free)
        self.waiting: dict[int, list[int]] = {}  # producer -> ranks whose next action needs it
        self.ready: list[tuple[float, int]] = []  # (start time, action)
        self.running: list[tuple[float, int, int]] = []  # (virtual end, job, phase)
        self.side_until = -math.inf  # the side queue has work until then (wall clock)

    def release(self, r: int) -> None:
        """Rank ``r`` is free: schedule its next action's start, or wait for a producer."""
        queue = self.queues[r]
        if self.head[r] == len(queue):
            return
        i = queue[self.head[r]]
        t = self.rank_free[r]
        for producer, moved in self.needs:
            a = producer[i]
            if a >= 0:
                if not self.finished[a]:
                    self.waiting.setdefault(a, []).append(r)
                    return
                u = self.end[a] + moved[i]
                if u > t:
                    t = u
        heapq.heappush(self.ready, (t, i))

    def rate(self, running: int, side: bool = False) -> float:
        """Speed of each running action while ``running`` of them (per replica) run, and the
        side queue has work (``side``) or not."""
        demand = running * self.replicas
        cores = max(self.capacity - self.load, 1e-9)  # a load of every core leaves a crawl
        if not side:
            return 1.0 if demand <= cores else cores / demand
        spread = max(1.0 - 1.0 / self.capacity, 0.0)
        return max(min(spread, (cores - 1.0) / demand if demand else spread), 1e-9)

    def run(self) -> tuple[list[float], list[float]]:
        for r in range(len(self.queues)):
            self.release(r)
        self._side_triggers()
        ready, running = self.ready, self.running
        start, end, duration = self.start, self.end, self.duration
        overhead, put = self.overhead, self.put
        anchor_t = anchor_v = 0.0  # V(t) = anchor_v + (t - anchor_t) * speed
        speed, now = 1.0, -math.inf
        while ready or running:
            t_end = math.inf
            if running:
                t_end = max(now, anchor_t + (running[0][0] - anchor_v) / speed)
            t_side = self.side_until if self.side_until > now else math.inf
            if ready and ready[0][0] < min(t_end, t_side):  # on a tie, the end comes first
                now, i = heapq.heappop(ready)
                v = anchor_v + (now - anchor_t) * speed
                if overhead[i] > 0:
                    heapq.heappush(running, (v + overhead[i], i, _CALL))
                else:
                    start[i] = now
                    heapq.heappush(running, (v + duration[i], i, _WORK))
                if i not in self.pending:  # no input from another rank: the call's side work
                    self._queue_side(now, i)
            elif t_side < t_end:  # the side queue runs dry
                now = t_side
                v = anchor_v + (now - anchor_t) * speed
            else:
                v, i, phase = heapq.heappop(running)
                now = t_end
                if phase == _CALL:  # the call is taken: the action itself starts
                    start[i] = now
                    heapq.heappush(running, (v + duration[i], i, _WORK))
                elif phase == _WORK:
                    end[i] = max(now, start[i])
                    self.finished[i] = True
                    if put[i] > 0:  # its output leaves; the rank hands it over first
                        heapq.heappush(running, (v + put[i], i, _PUT))
                        self._release_waiters(i)
                    else:
                        self._handed_over(now, i)
                        self._free(i)
                elif phase == _PUT:
                    self._handed_over(now, i)
                    self._free(i, now, waiters=False)
            new_speed = self.rate(len(running), self.side_until > now)
            if new_speed != speed:
                anchor_t, anchor_v, speed = now, v, new_speed
        return start, end

    def _side_triggers(self) -> None:
        """Which handed-over outputs start which calls' side work: an action with side work
        and inputs from other ranks gets it once the last of them is handed over."""
        self.pending: dict[int, int] = {}  # action -> remote inputs not yet handed over
        self.callers: dict[int, list[int]] = {}  # producer -> actions whose side work it starts
        for i, side in enumerate(self.side):
            if side <= 0:
                continue
            for producer, _ in self.needs:
                a = producer[i]
                if a >= 0 and self.rank[a] != self.rank[i]:
                    self.pending[i] = self.pending.get(i, 0) + 1
                    self.callers.setdefault(a, []).append(i)

    def _handed_over(self, now: float, a: int) -> None:
        """Action ``a``'s output is out (at ``now``): the runtime starts on the calls that
        waited for it."""
        for i in self.callers.pop(a, ()):
            self.pending[i] -= 1
            if self.pending[i] == 0:
                self._queue_side(now, i)

    def _queue_side(self, now: float, i: int) -> None:
        """Queue action ``i``'s side work at ``now``: the side queue runs at a core's full
        speed, so it has work until ``side_until``, pushed later by ``side[i]``."""
        if self.side[i] > 0:
            self.side_until = max(now, self.side_until) + self.side[i]

    def _free(self, i: int, free: float | None = None, waiters: bool = True) -> None:
        """Action ``i`` ended (its rank free at ``free``, default its end): its rank moves on,
        and so may ranks that waited for it."""
        r = self.rank[i]
        self.rank_free[r] = self.end[i] if free is None else free
        self.head[r] += 1
        self.release(r)
        if waiters:
            self._release_waiters(i)

    def _release_waiters(self, i: int) -> None:
        for waiter in self.waiting.pop(i, ()):
            self.release(waiter)


# a job's phase: taking the call, the action's work, handing the output over
_CALL, _WORK, _PUT = 0, 1, 2
