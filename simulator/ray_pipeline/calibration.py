"""Calibration: each stage's actions timed alone, before training, and what a Ray call costs.

Why: a measured run on a machine with fewer cores than rank actors times every action while
other actions compete for the same cores, so its durations are neither what an action costs on
a device of its own nor what it costs under some other mix of neighbours. The analytic executor
wants the *work* of each action (its time alone) and then decides how the ranks share the cores
(``simulator.analytic.sharing``). The work itself comes from the run: the CPU time each
action's thread ran (``Profile.from_timeline``). What the run cannot tell apart is the
runtime's share: what a call, a send and a hand-over between ranks cost. So before step 0 the
driver runs a few microbatches through the pipeline one action at a time, nothing else
computing, and measures:

* each stage's kinds (F, I, W and B: those its schedule uses; the forward's chained down the
  pipeline, the backward that sends the gradient chained up, any other kind alone after the
  kinds it needs): the shortest of ``repeats`` runs,
  after one warm-up run whose times are dropped (first calls allocate and page in memory).
  The shortest, not the median: other work on the machine only ever lengthens an action, and on
  a shared 2-core VM one of three repeats often ran 10-20% long. These alone times are what the
  CPU per call below is netted of; they are kept (``meta.alone_costs``, a check on the run's
  CPU times) and stand in for the work only where a run has no CPU times
  (``calibrated_profile``);
* the **call overhead**: the gap between two back-to-back Ray calls on one actor when the first
  returns nothing (taking the next call), and the **send overhead**: how much longer it is when
  the first returns its output (putting it into the object store), on stage 0's forward;
* the **transfer**: from a producer's end to its consumer's start on another rank when the
  consumer was waiting, minus the call overhead (the hand-over, the object store hop and the
  driver's dispatch of the consumer's call, which waits for its argument);
* the **background load**: the Ray session's CPU (``machine``) over an idle window after the
  calls (the raylet's and GCS's polling), charged to the prediction as cores busy all along;
* the **CPU a call costs off its rank**, from the session's CPU time over the calibration: what
  its processes ran beyond the actions' own work, the ranks' call and send overheads and the
  background load, per call. This is only the fallback: a run measures it again over its own
  compared steps (``runtime_meter``), which is far steadier and replaces it;
* the **cores** the rank actors share (``machine.shared_cores``).

Nothing of this touches training: the actions run on a scratch activation cache, the weight
gradients are restored afterwards and no optimizer step runs, so a calibrated run trains
exactly what an uncalibrated one does (the Ray executor's tests compare it with the sequential
reference bit for bit). It costs a few tenths of a second. What a run's profile then takes
from these measurements is ``calibrated_profile``'s.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np

from simulator.model.cache import ActivationCache
from simulator.ray_pipeline.machine import (
    NodeState,
    busy_cores,
    cpu_between,
    driver_identity,
    shared_cores,
)

REPEATS = 3  # timed runs per stage and kind, after one warm-up run


@dataclass(frozen=True)
class Calibration:
    """What calibration measured, in seconds: per stage, the shortest alone time of each kind it
    ran (None: not in the schedule); the call overhead on the rank; the transfer between ranks;
    the cores the rank actors share (``machine.shared_cores``); the send overhead on a rank
    that hands an output to another; the CPU a call costs off the rank (the driver, the object
    store); and the cores busy while the pipeline idles."""

    costs: list[dict[str, float | None]]
    call_overhead: float
    transfer: float
    cores: int
    send_overhead: float = 0.0
    call_cpu: float = 0.0
    background_load: float = 0.0
    # (rank, replica, process id) of the rank actors on the first stage's node
    rank_processes: tuple[tuple[int, int, int], ...] = ()


# ------------------------------------------------------------------ in the actor
class ScratchState:
    """One actor's calibration state: a scratch cache and the weight gradients to restore."""

    def __init__(self) -> None:
        self.cache = ActivationCache()
        self.saved: dict[int, dict[int, dict[str, np.ndarray]]] = {}  # stage -> layer -> grads


def run_alone(worker, stage_index: int, kind: str, key: int, payload=None, send: bool = True):
    """Run one action of ``worker``'s stage on a scratch cache; returns (output, (start, end)),
    times in the worker's recorder clock; the output is None unless ``send``. ``key`` picks the
    microbatch's data rows and names its scratch cache slots."""
    state = worker.__dict__.setdefault("_calibration", ScratchState())
    stage = worker.stages[stage_index]
    if stage_index not in state.saved:
        state.saved[stage_index] = {
            layer.layer_index: {n: g.copy() for n, g in layer.grads.items()}
            for layer in stage.param_layers
        }
    mb = key % worker.num_microbatches
    rows = slice(mb * worker.rows, (mb + 1) * worker.rows)
    targets = None
    if worker.rule.rule(kind).is_forward:  # the data at the first stage, targets at the last
        payload = worker.x[rows] if stage_index == 0 else payload
        targets = worker.y[rows] if stage.is_last else None
    listener, stage.on_weight_grad = stage.on_weight_grad, None
    for layer in stage.layers:
        layer.cache = state.cache
    try:
        start = worker.recorder.now()
        out = stage.run(kind, key, payload, targets)
        end = worker.recorder.now()
    finally:
        for layer in stage.layers:
            layer.cache = worker.cache
        stage.on_weight_grad = listener
        stage.losses.pop(key, None)
    return (out if send else None), (start, end)


def finish(worker) -> int:
    """Drop the scratch cache and put every calibrated stage's weight gradients back."""
    state = worker.__dict__.pop("_calibration", None)
    if state is not None:
        for stage_index, layers in state.saved.items():
            for layer in worker.stages[stage_index].param_layers:
                for name, grad in layers[layer.layer_index].items():
                    layer.grads[name][...] = grad
    return worker.rank


# ------------------------------------------------------------------ on the driver
class _Session:
    """One calibration: the calls made, what they measured."""

    def __init__(self, pipeline, repeats: int) -> None:
        self.actors = pipeline.actors.grid[0]
        self.schedule = pipeline.schedule
        self.rule = pipeline.run_order.rule
        self.to_rank = self.schedule.stage_to_rank
        self.kinds = [set() for _ in range(self.schedule.num_stages)]
        for actions in self.schedule.actions:
            for action in actions:
                self.kinds[action.stage_index].add(str(action.kind))
        self.runs = repeats + 1  # the first of each is a warm-up
        self.durations: dict[tuple[int, str], list[float]] = {}
        self.waits: list[float] = []  # a consumer's start after its producer's end
        # between back-to-back calls on one actor, by whether the first one sent its output
        self.gaps: dict[bool, list[float]] = {False: [], True: []}
        self.calls = self.sends = 0
        # seconds the actions took over every call, warm-ups included: their spans, so the
        # runtime's work that preempted an action counts as the action's, not as the call's.
        # Netting their CPU times instead raised the CPU per call by about 1 ms and
        # over-predicted 4 ranks on 2 cores by 5.8-8.5% (2 runs) where the spans gave
        # -0.9..+2.9%: the model places that work beside the actions, where much of it ran
        # while their ranks waited on each other
        self.computed = 0.0

    def submit(self, steps: list[tuple[int, str, int, bool]], chained: bool) -> None:
        """Run ``steps`` (stage, kind, key, send the output?), submitted up front, and record
        what they measured. ``chained``: each takes the one before's output (one microbatch
        through the pipe, each call waiting for its argument); else they are independent calls,
        which only the actions of one actor may be, so that one action computes at a time."""
        import ray

        payload, timings = None, []
        for s, kind, key, send in steps:
            actor = self.actors[self.to_rank[s]]
            out, timing = actor.calibrate.options(num_returns=2).remote(s, kind, key, payload, send)
            timings.append(timing)
            payload = out if chained else None
        spans = ray.get(timings)
        self.calls += len(spans)
        self.sends += sum(step[3] for step in steps)
        previous = None
        for (s, kind, key, send), (start, end) in zip(steps, spans, strict=True):
            self.computed += end - start
            if key > 0:  # key 0 warms up
                self.durations.setdefault((s, kind), []).append(end - start)
                if previous is None:
                    pass
                elif not chained:
                    self.gaps[previous[2]].append(start - previous[1])
                elif self.to_rank[previous[0]] != self.to_rank[s]:
                    self.waits.append(start - previous[1])
            previous = (s, end, send)

    def actions(self) -> None:
        """Every stage's kinds: forward chains, kinds that need only the forward, backward
        chains (each stage's backward that sends the gradient, the split one where it runs
        one), then each stage's other kinds (``W``)."""
        stages = range(self.schedule.num_stages)
        last = self.schedule.num_stages - 1
        rule = self.rule
        forwards, senders = rule.having("is_forward"), rule.having("sends_gradient")
        for forward in forwards:
            for key in range(self.runs):
                self.submit([(s, forward, key, s < last) for s in stages], chained=True)
        alone = [k for k in rule.kinds if k not in forwards + senders]
        early = [k for k in alone if all(set(n.kinds) <= set(forwards) for n in rule.needs(k))]
        self._alone(early)
        for key in range(self.runs):
            self.submit(
                [(s, self._sender(s, senders), key, s > 0) for s in reversed(stages)],
                chained=True,
            )
        self._alone([k for k in alone if k not in early])

    def _sender(self, stage: int, senders: tuple[str, ...]) -> str:
        """The backward that sends the gradient to time on ``stage``: one it runs that leaves
        the weight gradient to a later kind (``I``), else one it runs (``B``), else the first."""
        runs = [k for k in senders if k in self.kinds[stage]]
        split = [k for k in runs if not self.rule.rule(k).completes_weight_gradient]
        return (split or runs or list(senders))[0]

    def _alone(self, kinds: list[str]) -> None:
        """Time each stage's ``kinds`` that it runs, one call at a time."""
        for s in range(self.schedule.num_stages):
            for kind in kinds:
                if kind in self.kinds[s]:
                    self.submit([(s, kind, key, False) for key in range(self.runs)], chained=False)

    def overheads(self) -> tuple[float, float]:
        """(call overhead, send overhead): the median gap between back-to-back calls on one
        actor whose first returns nothing (each stage's W calls; calls of stage 0's forward),
        and how much longer it is when the first sends its output (stage 0's forward again;
        cache keys past the chains', dropped at the end)."""
        forward = self.rule.having("is_forward")[0]
        keys = range(self.runs, 3 * self.runs)
        self.submit([(0, forward, key, False) for key in keys], chained=False)
        keys = range(3 * self.runs, 5 * self.runs)
        self.submit([(0, forward, key, True) for key in keys], chained=False)
        call = statistics.median(self.gaps[False])
        return call, max(0.0, statistics.median(self.gaps[True]) - call)


def calibrate(pipeline, repeats: int = REPEATS) -> Calibration:
    """Time every stage's actions alone on replica 0's actors (see the module docstring)."""
    import ray

    settle()
    session = _Session(pipeline, repeats)
    probe = session.actors[session.to_rank[0]]
    driver = driver_identity()
    before = ray.get(probe.node_state.remote(driver))
    session.actions()
    call, send = session.overheads()
    after = ray.get(probe.node_state.remote(driver))
    time.sleep(IDLE_WINDOW)
    idle = ray.get(probe.node_state.remote(driver))
    placements = ray.get([a.node_state.remote(driver) for a, _, _ in pipeline.actors])
    ray.get([a.finish_calibration.remote() for a in session.actors])
    costs = [
        {
            kind: min(session.durations[(s, kind)]) if (s, kind) in session.durations else None
            for kind in session.rule.kinds
        }
        for s in range(pipeline.schedule.num_stages)
    ]
    waits = session.waits
    load, call_cpu = _cpu_shares(before, after, idle, session, call, send)
    return Calibration(
        costs=costs,
        call_overhead=call,
        send_overhead=send,
        transfer=max(0.0, statistics.median(waits) - call) if waits else 0.0,
        cores=shared_cores([(p.node, p.cores) for p in placements]),
        call_cpu=call_cpu,
        background_load=load,
        rank_processes=tuple(
            (rank, replica, p.pid)
            for (_, rank, replica), p in zip(pipeline.actors, placements, strict=True)
            if p.node == before.node
        ),
    )


# Before timing anything, wait (at most SETTLE_TIMEOUT seconds) until the machine's busy cores
# over a SETTLE_WINDOW fall below SETTLE_BUSY: right after Ray starts, its freshly started
# worker processes import for a second or two, and a calibration in that time read alone times
# up to 40% long (the first demo schedule's forwards: 10.5 ms against 7.5 ms in later runs).
SETTLE_BUSY = 0.3  # cores
SETTLE_WINDOW = 0.1  # seconds (10 clock ticks per core: enough to tell 0.3 cores)
SETTLE_TIMEOUT = 4.0  # seconds


def settle(busy=None) -> float:
    """Wait until this machine is nearly idle (see SETTLE_BUSY); returns the seconds waited.
    ``busy(window)`` measures busy cores (default ``machine.busy_cores``; None when the
    machine cannot say, which ends the wait)."""
    measure = busy or busy_cores
    began = time.monotonic()
    while time.monotonic() - began < SETTLE_TIMEOUT:
        cores = measure(SETTLE_WINDOW)
        if cores is None or cores < SETTLE_BUSY:
            break
    return time.monotonic() - began


# seconds of an idle pipeline whose CPU use is the background load: long enough that the tail
# of the calibration calls' own work (counted as load here, and so missing from the CPU per
# call) is a small part of it; at 0.1 s the load read 0.07-0.17 cores run to run on one
# machine, at 1 s 0.055-0.07
IDLE_WINDOW = 0.5


def _cpu_shares(
    before: NodeState,
    after: NodeState,
    idle: NodeState,
    session: _Session,
    call: float,
    send: float,
) -> tuple[float, float]:
    """(cores busy while the pipeline idles, CPU seconds per call off the rank) from three
    readings of the Ray session's CPU time: around the calibration calls, and after an idle
    window. What the calls ran beyond the actions' work and the ranks' own call and send
    overheads is the calls' CPU off the rank. Zeros where the CPU time is unknown."""
    if before.cpu is None or after.cpu is None or idle.cpu is None:
        return 0.0, 0.0
    idle_wall = idle.wall - after.wall
    idled = cpu_between(after, idle) - idle.cost
    load = max(0.0, idled / idle_wall) if idle_wall > 0 else 0.0
    busy = cpu_between(before, after) - after.cost - load * (after.wall - before.wall)
    on_ranks = session.computed + session.calls * call + session.sends * send
    return load, max(0.0, (busy - on_ranks) / max(session.calls, 1))
