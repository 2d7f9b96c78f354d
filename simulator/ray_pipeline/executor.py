"""The Ray executor: real numpy training, one Ray actor per pipeline rank, measured.

Why it looks like this:

* The driver validates the schedule, then submits every rank's actions for a step up front, in
  the validator's dry-run order, so each action's input already exists as an object reference.
  A synchronous actor runs one submitter's tasks in submission order, so Ray itself enforces each
  rank's schedule; the driver never fetches an activation or a gradient.
* Activations and gradients travel actor to actor as object references; a stage on the same rank
  hands over in memory. Only "sink" results (``None``) come back, and they carry any failure.
* With data parallelism each stage's last weight-gradient action also returns that stage's
  gradients; one reducer task per layer sums them over replicas as soon as they exist, so a
  layer's reduction overlaps the backward of the layers before it.
* A step is all-or-nothing: no actor applies its update unless every action of every actor
  finished. With retries, a dead rank is replaced, everyone is restored from the last committed
  state, and the step runs again.
"""

from __future__ import annotations

import math
import os
import socket
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from schedules.actions import Schedule
from schedules.validate import validate
from simulator.analytic.costs import Profile
from simulator.analytic.run_meta import run_meta
from simulator.errors import PebbleError
from simulator.model import partition as make_partition
from simulator.model.reference import TrainConfig
from simulator.ray_pipeline.worker import BLAS_ENV, GradientReducer, RankWorker
from simulator.timeline import (
    AllReduce,
    CacheChange,
    CommEvent,
    ComputeEvent,
    GradReady,
    OptimizerStep,
    Timeline,
)


class RankFailure(PebbleError):
    """A rank died or raised during a step; no rank applied that step."""

    def __init__(self, message: str, step: int, ranks: list[tuple[int, int]]):
        super().__init__(message)
        self.step = step
        self.ranks = ranks


@dataclass(frozen=True)
class RayOptions:
    """How to run on Ray: where, how many replicas, how to survive faults."""

    address: str | None = None
    dp: int = 1
    retries: int = 0
    step_timeout: float = 300.0


@dataclass
class RayRunResult:
    """What a Ray run produced: the measured Timeline, losses, state for checking."""

    timeline: Timeline
    losses: list[float]
    weights: dict[tuple[int, str], np.ndarray]
    first_step_gradients: dict[tuple[int, str], np.ndarray] | None
    profile: Profile
    restarts: int = 0
    action_order: dict[tuple[int, int], list[str]] = field(default_factory=dict)


def _check_reachable(address: str) -> None:
    """Fail fast, in one sentence, on a host:port nobody answers on."""
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise PebbleError(
            f"cannot read Ray address {address!r}; use host:port, ray://host:port or auto."
        )
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            pass
    except OSError as exc:
        raise PebbleError(f"no Ray cluster answers at {address} ({exc.strerror or exc}).") from None


_PROBE = "import sys, ray; ray.init(address=sys.argv[1], logging_level='ERROR'); ray.shutdown()"


def _probe_cluster(address: str) -> None:
    """Join the cluster once in a child process, within a time limit.

    Why a child: Ray's client retries a port that accepts connections but is not a Ray cluster
    for ever, printing as it goes. A child can be stopped and its noise kept out of sight.
    """
    timeout = float(os.environ.get("PEBBLESIM_CONNECT_TIMEOUT", "30"))
    try:
        probe = subprocess.run(
            [sys.executable, "-c", _PROBE, address],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise PebbleError(f"no Ray cluster answered at {address} within {timeout:g} s.") from None
    if probe.returncode != 0:
        if "InvalidAuthToken" in probe.stderr or "Unauthenticated" in probe.stderr:
            raise PebbleError(
                f"the Ray cluster at {address} requires token authentication: set "
                "RAY_AUTH_MODE=token (Ray reads the token from RAY_AUTH_TOKEN or its default "
                "file; `ray get-auth-token` prints it) or use --address auto on the head node."
            )
        lines = [line for line in probe.stderr.strip().splitlines() if line.strip()]
        reason = lines[-1].split(": ", 1)[-1] if lines else f"exit code {probe.returncode}"
        raise PebbleError(f"cannot join the Ray cluster at {address}: {reason}")


def ensure_ray(address: str | None, num_actors: int) -> bool:
    """Connect to ``address`` or start a local Ray sized for ``num_actors``; True if started."""
    import ray

    if ray.is_initialized():
        return False
    if address:
        if address != "auto":
            _check_reachable(address)
        _probe_cluster(address)
        try:
            ray.init(
                address=address,
                logging_level="ERROR",
                runtime_env={"py_modules": _package_dirs(), "env_vars": BLAS_ENV},
            )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PebbleError(f"cannot join the Ray cluster at {address}: {first}") from None
        return True
    os.environ.update(BLAS_ENV)  # the local Ray's workers inherit this: one BLAS thread each
    ray.init(
        num_cpus=max(num_actors, os.cpu_count() or 1),
        include_dashboard=False,
        logging_level="ERROR",
        log_to_driver=False,
    )
    return True


def _package_dirs() -> list[str]:
    import schedules
    import simulator

    return [os.path.dirname(simulator.__file__), os.path.dirname(schedules.__file__)]


@dataclass(frozen=True)
class _WiredAction:
    """How one action is wired: where its input comes from, where its output goes."""

    rank: int
    stage: int
    kind: str
    mb: int
    producer: tuple[int, str, int] | None  # (stage, F|G, mb) whose output this action takes
    remote_input: bool
    keep_local: bool
    send: bool
    grads_out: bool


def _wire(schedule: Schedule, order: list[tuple[int, int]], param_stages: set[int], dp: int):
    """Per action, in submission order: input source, output destination, gradient returns."""
    to_rank = schedule.stage_to_rank
    last = schedule.num_stages - 1
    last_weight_action: dict[int, int] = {}
    for actions in schedule.actions:
        for position, (stage, kind, _mb) in enumerate(actions):
            if kind in ("W", "B"):
                last_weight_action[stage] = position
    wired = []
    for rank, position in order:
        stage, kind, mb = schedule.actions[rank][position]
        producer = None
        if kind == "F" and stage > 0:
            producer = (stage - 1, "F", mb)
        elif kind in ("I", "B") and stage < last:
            producer = (stage + 1, "G", mb)
        if kind == "F":
            receiver = stage + 1 if stage < last else None
        elif kind in ("I", "B"):
            receiver = stage - 1 if stage > 0 else None
        else:
            receiver = None
        remote_input = producer is not None and to_rank[producer[0]] != rank
        keep_local = receiver is not None and to_rank[receiver] == rank
        send = receiver is not None and to_rank[receiver] != rank
        grads_out = dp > 1 and stage in param_stages and last_weight_action.get(stage) == position
        wired.append(
            _WiredAction(rank, stage, kind, mb, producer, remote_input, keep_local, send, grads_out)
        )
    return wired


def _segments(wired: list[_WiredAction]) -> list[list[_WiredAction]]:
    """Group each rank's actions into runs submitted as one Ray call each.

    A run starts at an action whose input comes from another rank and ends after an action
    whose output leaves the rank (or that returns gradients for the all-reduce), so every
    payload still arrives at the start of a call and leaves at its end. Runs are listed in the
    order of their first action in the dry run, which keeps submission topological.
    """
    runs: list[list[_WiredAction]] = []
    open_run: dict[int, list[_WiredAction] | None] = {}
    for action in wired:
        run = open_run.get(action.rank)
        if run is None or action.remote_input:
            run = []
            runs.append(run)
        run.append(action)
        open_run[action.rank] = None if action.send or action.grads_out else run
    return runs


class RayPipeline:
    """A pipeline (times ``dp`` replicas) of RankWorker actors that trains ``config``.

    Use as a context manager or call ``shutdown``; ``run`` trains and returns the measurement.
    """

    def __init__(self, schedule: Schedule, config: TrainConfig, options: RayOptions | None = None):
        self.order = validate(schedule)
        self.schedule = schedule
        self.config = config
        self.options = options or RayOptions()
        dp = self.options.dp
        if dp < 1:
            raise PebbleError(f"--dp must be a positive integer, got {dp}.")
        if config.microbatches != schedule.num_microbatches:
            raise PebbleError("the schedule and the training config disagree on microbatches.")
        rows = config.batch_size
        if rows % (dp * config.microbatches):
            raise PebbleError(
                f"a batch of {rows} rows does not split into {dp} replicas x "
                f"{config.microbatches} microbatches of equal size."
            )
        self.microbatch_rows = rows // (dp * config.microbatches)
        self.partition = make_partition(config.model, schedule.num_stages)
        infos = config.model.layers()
        self.param_layers = {
            s: [i for i in r if infos[i].has_params]
            for s, r in enumerate(self.partition.stage_layers)
        }
        param_stages = {s for s, layers in self.param_layers.items() if layers}
        self.layer_stage = {i: s for s, layers in self.param_layers.items() for i in layers}
        self.reducers: list = []
        self.wired = _wire(schedule, self.order, param_stages, dp)
        self.segments = _segments(self.wired)
        self.started_ray = False
        self.actors: list[list] = []
        self.pg = None
        self.origin = 0.0
        self._records: list[dict] = []
        self._reduce_times: list[tuple[int, int, tuple[float, float]]] = []

    # ------------------------------------------------------------------ set-up
    def __enter__(self) -> RayPipeline:
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()

    def start(self) -> None:
        import ray
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        ranks, dp = self.schedule.num_ranks, self.options.dp
        # Every result submitted here is consumed by another action or waited on as a sink, so
        # a failure always reaches _wait and becomes one RankFailure sentence; Ray's own
        # "unhandled error" log of the aborted step's leftover results would only repeat it.
        os.environ.setdefault("RAY_IGNORE_UNHANDLED_ERRORS", "1")
        self.started_ray = ensure_ray(self.options.address, ranks * dp)
        available = ray.available_resources().get("CPU", 0.0)
        if available <= 0:
            raise PebbleError("the Ray cluster has no free CPU for the pipeline ranks.")
        cpus = min(1.0, math.floor(100 * available / (ranks * dp)) / 100)
        if cpus <= 0:
            raise PebbleError(
                f"the Ray cluster has {available:g} free CPUs, too few for {ranks * dp} ranks."
            )
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        strategy = "SPREAD" if len(nodes) > 1 else "PACK"
        self.pg = placement_group([{"CPU": cpus}] * (ranks * dp), strategy=strategy)
        try:
            ray.get(self.pg.ready(), timeout=60)
        except Exception:
            raise PebbleError(
                f"the Ray cluster could not place {ranks * dp} ranks of {cpus:g} CPU each "
                "within 60 s."
            ) from None
        self._remote = ray.remote(RankWorker)
        self.origin = time.time()
        self.actors = [
            [
                self._make_actor(rank, replica, PlacementGroupSchedulingStrategy, cpus)
                for rank in range(ranks)
            ]
            for replica in range(dp)
        ]
        self._x, self._y = self.config.data()
        for replica in range(dp):
            for rank in range(ranks):
                self._init_actor(rank, replica)
        # one warm reducer per rank, next to replica 0's actor of that rank
        self.reducers = (
            [
                ray.remote(GradientReducer)
                .options(
                    num_cpus=0,
                    scheduling_strategy=PlacementGroupSchedulingStrategy(
                        placement_group=self.pg, placement_group_bundle_index=rank
                    ),
                )
                .remote()
                for rank in range(ranks)
            ]
            if dp > 1
            else []
        )
        ray.get(
            [a.ping.remote() for row in self.actors for a in row]
            + [r.ping.remote() for r in self.reducers],
            timeout=120,
        )

    def _make_actor(self, rank, replica, strategy_cls, cpus):
        stage_layers = {
            s: (self.partition.stage_layers[s][0], self.partition.stage_layers[s][-1])
            for s in self.schedule.stages_of_rank(rank)
        }
        bundle = replica * self.schedule.num_ranks + rank
        return self._remote.options(
            num_cpus=cpus,
            max_restarts=0,
            scheduling_strategy=strategy_cls(
                placement_group=self.pg, placement_group_bundle_index=bundle
            ),
            runtime_env={"env_vars": BLAS_ENV},
        ).remote(
            rank,
            replica,
            self.config.model,
            stage_layers,
            self.schedule.num_stages,
            self.config.microbatches,
            self.config.optimizer,
            self.config.batch_size,
            self.origin,
        )

    def _init_actor(self, rank: int, replica: int) -> None:
        actor = self.actors[replica][rank]
        rows = self.microbatch_rows * self.config.microbatches
        lo, hi = replica * rows, (replica + 1) * rows
        stages = self.schedule.stages_of_rank(rank)
        x = self._x[lo:hi] if 0 in stages else None
        y = self._y[lo:hi] if self.schedule.num_stages - 1 in stages else None
        actor.set_data.remote(x, y)
        actor.expect_local.remote(
            [
                (w.stage, w.kind, w.mb)
                for w in self.wired
                if w.rank == rank and w.producer is not None and not w.remote_input
            ]
        )

    def shutdown(self) -> None:
        import ray

        if not ray.is_initialized():
            return
        for actor in [a for row in self.actors for a in row] + self.reducers:
            ray.kill(actor)
        self.actors, self.reducers = [], []
        if self.pg is not None:
            from ray.util.placement_group import remove_placement_group

            remove_placement_group(self.pg)
            self.pg = None
        if self.started_ray:
            ray.shutdown()

    # ------------------------------------------------------------------ one step
    def _submit_step(self, step: int):
        """Submit every action of the step; returns sink refs and per-layer reduced refs."""
        dp = self.options.dp
        for row in self.actors:
            for actor in row:
                actor.begin_step.remote(step)
        outputs: dict[tuple[int, tuple[int, str, int]], object] = {}
        sinks: list[tuple[object, int, int]] = []
        grad_refs: dict[int, list] = defaultdict(list)
        for segment in self.segments:
            head, tail = segment[0], segment[-1]
            specs = [(w.stage, w.kind, w.mb, w.keep_local, w.send, w.grads_out) for w in segment]
            for replica in range(dp):
                actor = self.actors[replica][head.rank]
                payload = outputs.pop((replica, head.producer)) if head.remote_input else None
                n_grads = len(self.param_layers[tail.stage]) if tail.grads_out else 0
                result = actor.run_segment.options(num_returns=1 + n_grads).remote(specs, payload)
                if n_grads:
                    result, *grads = result
                    for layer, ref in zip(self.param_layers[tail.stage], grads, strict=True):
                        grad_refs[layer].append(ref)
                if tail.send:
                    direction = "F" if tail.kind == "F" else "G"
                    outputs[(replica, (tail.stage, direction, tail.mb))] = result
                else:
                    sinks.append((result, head.rank, replica))
        reduced: dict[int, object] = {}
        timing_refs = []
        for layer, refs in grad_refs.items():
            reducer = self.reducers[self.schedule.stage_to_rank[self.layer_stage[layer]]]
            total, timing = reducer.reduce.options(num_returns=2).remote(*refs)
            reduced[layer] = total
            timing_refs.append((layer, timing))
        return sinks, reduced, timing_refs

    def _wait(
        self,
        step: int,
        refs: list[tuple[object, int, int]],
        deadline: float,
        applying: bool = False,
    ) -> list:
        """Wait for every ref and return the values in order; the first failure (or the
        deadline) becomes a RankFailure naming the rank."""
        import ray

        pending = {ref: (index, rank, replica) for index, (ref, rank, replica) in enumerate(refs)}
        values: list = [None] * len(refs)
        while pending:
            left = deadline - time.time()
            if left <= 0:
                stuck = sorted({(rank, replica) for _, rank, replica in pending.values()})
                raise RankFailure(
                    f"step {step} did not finish within {self.options.step_timeout:g} s; "
                    f"still waiting on rank {stuck[0][0]} (replica {stuck[0][1]}).",
                    step,
                    stuck,
                )
            ready, _ = ray.wait(
                list(pending), num_returns=len(pending), timeout=min(left, 1.0), fetch_local=False
            )
            for ref in ready:
                index, rank, replica = pending.pop(ref)
                try:
                    values[index] = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - any failure aborts the step
                    raise self._failure(step, (rank, replica), exc, applying) from None
        return values

    def _on_every_actor(
        self, step: int, method: str, deadline: float, *args, applying: bool = False
    ) -> list:
        """Call ``method`` on every rank actor and wait for all, failures named by rank."""
        refs = [
            (getattr(actor, method).remote(*args), rank, replica)
            for replica, row in enumerate(self.actors)
            for rank, actor in enumerate(row)
        ]
        return self._wait(step, refs, deadline, applying)

    def _failure(
        self, step: int, where: tuple[int, int], exc: Exception, applying: bool = False
    ) -> RankFailure:
        """Name the dead ranks if any died, else the rank whose action raised."""
        outcome = (
            "other ranks may already have applied the step"
            if applying
            else "no rank applied the step"
        )
        dead = self.dead_ranks()
        if dead:
            names = ", ".join(
                f"rank {r}" + (f" (replica {d})" if self.options.dp > 1 else "") for r, d in dead
            )
            return RankFailure(f"{names} died during step {step}; {outcome}.", step, dead)
        cause = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        rank, _replica = where
        return RankFailure(f"step {step} failed on rank {rank}: {cause}; {outcome}.", step, [where])

    def dead_ranks(self) -> list[tuple[int, int]]:
        import ray

        pings = {
            a.ping.remote(): (rank, replica)
            for replica, row in enumerate(self.actors)
            for rank, a in enumerate(row)
        }
        ready, not_ready = ray.wait(list(pings), num_returns=len(pings), timeout=10)
        dead = [pings[ref] for ref in not_ready]
        for ref in ready:
            try:
                ray.get(ref)
            except Exception:  # noqa: BLE001 - a failed ping means a dead actor
                dead.append(pings[ref])
        return sorted(dead)

    def run_step(
        self, step: int, fault: tuple[int, int] | None = None, collect_gradients: bool = False
    ):
        """One all-or-nothing step. Returns (loss, gradients or None)."""
        import ray

        deadline = time.time() + self.options.step_timeout
        sinks, reduced, timing_refs = self._submit_step(step)
        if fault is not None:
            rank, replica = fault
            ray.kill(self.actors[replica][rank], no_restart=True)
        timings = self._wait(step, sinks + [(t, -1, -1) for _, t in timing_refs], deadline)[
            len(sinks) :
        ]
        ends = self._on_every_actor(step, "end_step", deadline, step)
        leftovers = [e for e in ends if e["cached"] or e["local"]]
        if leftovers:
            raise RankFailure(
                f"rank {leftovers[0]['rank']} still holds {leftovers[0]['cache_bytes']} cached "
                f"bytes after step {step}: the schedule left a backward undone.",
                step,
                [(leftovers[0]["rank"], 0)],
            )
        gradients = None
        if collect_gradients:
            gradients = self._sum_over_replicas(self._on_every_actor(step, "gradients", deadline))
        layers = tuple(sorted(reduced))
        refs = [reduced[layer] for layer in layers]
        self._on_every_actor(step, "apply_step", deadline, step, layers, *refs, applying=True)
        records = self._on_every_actor(step, "drain_records", deadline)
        # a step's measurements are kept only once all of it succeeded: a rerun never doubles
        self._records.extend(records)
        for (layer, _), timing in zip(timing_refs, timings, strict=True):
            self._reduce_times.append((layer, step, timing))
        return sum(e["loss"] for e in ends), gradients

    @staticmethod
    def _sum_over_replicas(per_actor: list[dict]) -> dict[tuple[int, str], np.ndarray]:
        """Gradients of the step just run, summed over replicas (for checking only)."""
        total: dict[tuple[int, str], np.ndarray] = {}
        for grads in per_actor:
            for key, g in grads.items():
                total[key] = total[key] + g if key in total else g
        return total

    def weights(self) -> dict[tuple[int, str], np.ndarray]:
        import ray

        out: dict[tuple[int, str], np.ndarray] = {}
        for weights in ray.get([a.weights.remote() for a in self.actors[0]]):
            out.update(weights)
        return out

    def _snapshot(self) -> list[list]:
        """References to every actor's committed weights and optimizer state.

        The driver owns these objects, so they outlive an actor that dies later; but only once
        they exist, so the snapshot is complete before the next step starts (nothing is
        fetched to the driver).
        """
        import ray

        refs = [[a.get_state.remote() for a in row] for row in self.actors]
        flat = [ref for row in refs for ref in row]
        ray.wait(flat, num_returns=len(flat), timeout=self.options.step_timeout, fetch_local=False)
        return refs

    def _restore(self, snapshot: list[list]) -> None:
        import ray
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        cpus = None
        for rank, replica in self.dead_ranks():
            if cpus is None:
                cpus = self.pg.bundle_specs[0].get("CPU", 1.0)
            self.actors[replica][rank] = self._make_actor(
                rank, replica, PlacementGroupSchedulingStrategy, cpus
            )
            self._init_actor(rank, replica)
        ray.get(
            [
                a.load_state.remote(state)
                for row, states in zip(self.actors, snapshot, strict=True)
                for a, state in zip(row, states, strict=True)
            ],
            timeout=120,
        )

    # ------------------------------------------------------------------ the run
    def run(
        self,
        steps: int,
        on_step: Callable[[int, float], None] | None = None,
        fault: tuple[int, int, int] | None = None,
        check: bool = False,
    ) -> RayRunResult:
        """Train ``steps`` steps. ``fault=(step, rank, replica)`` kills that actor during that
        step (for testing recovery). ``check`` keeps the first step's gradients."""
        if not self.actors:
            self.start()
        losses: list[float] = []
        first_grads = None
        restarts = 0
        retries_left = self.options.retries
        snapshot = self._snapshot() if retries_left else None
        step = 0
        while step < steps:
            inject = (fault[1], fault[2]) if fault and fault[0] == step and not restarts else None
            try:
                loss, grads = self.run_step(step, inject, collect_gradients=check and step == 0)
            except RankFailure:
                if retries_left <= 0:
                    raise
                retries_left -= 1
                restarts += 1
                self._restore(snapshot)
                continue
            if grads is not None:
                first_grads = grads
            losses.append(loss)
            if snapshot is not None:
                snapshot = self._snapshot()
            if on_step:
                on_step(step, loss)
            step += 1
        timeline = self.timeline(steps)
        return RayRunResult(
            timeline=timeline,
            losses=losses,
            weights=self.weights(),
            first_step_gradients=first_grads,
            profile=self.profile(timeline),
            restarts=restarts,
            action_order=self.action_order(timeline),
        )

    def prediction(self, result: RayRunResult) -> Timeline:
        """The analytic executor's Timeline of this very run, from the run's own profile."""
        from simulator.analytic.costs import profile_costs
        from simulator.analytic.executor import simulate

        spec = self.config.model
        steps = result.timeline.meta.steps
        costs = profile_costs(result.profile, spec, self.partition, self.microbatch_rows)
        return simulate(
            self.schedule,
            costs,
            spec,
            self.partition,
            self.microbatch_rows,
            steps=steps,
            dp=self.options.dp,
        )

    def timeline(self, steps: int) -> Timeline:
        """Merge every actor's records into one Timeline, times from the first action."""
        rows = defaultdict(list)
        for record in self._records:
            for name, values in record.items():
                rows[name].extend(values)
        events = [ComputeEvent(*r) for r in rows["events"]]
        t0 = min((e.start for e in events), default=0.0)
        events = [e._replace(start=e.start - t0, end=e.end - t0) for e in events]
        events.sort(key=lambda e: (e.replica, e.rank, e.start))
        timeline = Timeline(
            meta=run_meta(
                self.schedule,
                self.config.model,
                self.partition,
                source="ray",
                steps=steps,
                dp=self.options.dp,
                time_unit="s",
                microbatch_rows=self.microbatch_rows,
            ),
            events=events,
        )
        cache = [CacheChange(*r) for r in rows["cache"]]
        cache.sort(key=lambda c: (c.replica, c.rank, c.time))
        timeline.cache = [c._replace(time=c.time - t0) for c in cache]
        timeline.grad_ready = sorted(
            (
                GradReady(layer, step, t - t0, replica)
                for layer, step, t, replica in rows["grad_ready"]
            ),
            key=lambda g: (g.replica, g.step, g.layer),
        )
        by_step: dict[int, list[float]] = defaultdict(list)
        for step, start, end in rows["optimizer"]:
            by_step[step].extend((start - t0, end - t0))
        timeline.optimizer = [OptimizerStep(s, min(v), max(v)) for s, v in sorted(by_step.items())]
        timeline.allreduce = [
            AllReduce(layer, step, start - self.origin - t0, end - self.origin - t0)
            for layer, step, (start, end) in sorted(self._reduce_times)
        ]
        timeline.comms = self._comms(events, rows["received"])
        return timeline

    def _comms(self, events: list[ComputeEvent], received: list[tuple]) -> list[CommEvent]:
        """A transfer runs from the producer's end; it is counted until the consumer starts
        only when the consumer sat idle waiting for it (otherwise it was hidden: zero length)."""
        produced: dict[tuple, tuple[int, float]] = {}
        # per action: its rank, its start, and when its rank's previous action ended
        started: dict[tuple, tuple[int, float, float]] = {}
        last_end: dict[tuple[int, int], float] = {}
        for e in events:
            if e.kind != "W":
                direction = "F" if e.kind == "F" else "G"
                produced[(e.replica, e.step, e.stage, direction, e.microbatch)] = (e.rank, e.end)
            key = (e.replica, e.step, e.stage, e.kind, e.microbatch)
            started[key] = (e.rank, e.start, last_end.get((e.replica, e.rank), 0.0))
            last_end[(e.replica, e.rank)] = e.end
        comms = {}
        for replica, stage, kind, mb, step, nbytes in received:
            key = (replica, step, stage, kind, mb)
            if key not in started:
                continue
            rank, start, previous_end = started[key]
            src_stage = stage - 1 if kind == "F" else stage + 1
            source = produced.get((replica, step, src_stage, "F" if kind == "F" else "G", mb))
            if source is None:
                continue
            src_rank, sent = source
            waited = previous_end <= sent
            comms[key] = CommEvent(
                src_rank,
                rank,
                stage,
                "activation" if kind == "F" else "gradient",
                mb,
                step,
                sent,
                start if waited else sent,
                nbytes,
                replica,
            )
        return list(comms.values())

    def profile(self, timeline: Timeline) -> Profile:
        """Mean seconds per stage and kind (first step skipped when there are more)."""
        durations: dict[tuple[int, str], list[float]] = defaultdict(list)
        skip_first = timeline.meta.steps > 1
        for e in timeline.events:
            if skip_first and e.step == 0:
                continue
            durations[(e.stage, e.kind)].append(e.end - e.start)
        costs = []
        for stage in range(self.schedule.num_stages):
            costs.append(
                {
                    kind: (
                        statistics.fmean(durations[(stage, kind)])
                        if durations.get((stage, kind))
                        else None
                    )
                    for kind in ("F", "I", "W", "B")
                }
            )
        waits = [c.end - c.start for c in timeline.comms if c.end > c.start]
        first: dict[int, float] = {}
        last: dict[int, float] = {}
        for e in timeline.events:
            first[e.step] = min(first.get(e.step, e.start), e.start)
            last[e.step] = max(last.get(e.step, e.end), e.end)
        gaps = [first[s] - last[s - 1] for s in sorted(first) if s - 1 in last]
        return Profile(
            model=self.config.model.to_text(),
            microbatch_rows=self.microbatch_rows,
            stages=[[r[0], r[-1]] for r in self.partition.stage_layers],
            costs=costs,
            transfer={"latency": statistics.median(waits) if waits else 0.0},
            step_overhead=statistics.median(gaps) if gaps else 0.0,
        )

    @staticmethod
    def action_order(timeline: Timeline) -> dict[tuple[int, int], list[str]]:
        """Per (replica, rank), the actions in the order the actor ran them (first step)."""
        order: dict[tuple[int, int], list[str]] = defaultdict(list)
        for e in timeline.events:
            if e.step == 0:
                order[(e.replica, e.rank)].append(f"{e.stage}{e.kind}{e.microbatch}")
        return dict(order)
