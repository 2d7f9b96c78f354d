"""The Ray executor: real numpy training, one Ray actor per pipeline rank, measured.

Why it looks like this:

* The driver validates the schedule, then submits every rank's actions for a step up front, in
  the dry run's order, so each action's input already exists as an object reference. A
  synchronous actor runs one submitter's tasks in submission order, so Ray itself enforces each
  rank's schedule; the driver never fetches an activation or a gradient.
* Activations and gradients travel actor to actor as object references; a stage on the same rank
  hands over in memory. Only "sink" results (``None``) come back, and they carry any failure.
  Which action feeds which comes from the dry run (``wiring``), never from here.
* With data parallelism each stage's last weight-gradient action also returns that stage's
  gradients; one reducer task per layer sums them over replicas as soon as they exist, so a
  layer's reduction overlaps the backward of the layers before it.
* A step is all-or-nothing: no actor applies its update unless every action of every actor
  finished. With retries, a dead rank is replaced, everyone is restored from the last committed
  state, and the step runs again.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from schedules.validate import validate
from simulator.analytic.profile import Profile, profile_costs
from simulator.analytic.run_plan import simulate_plan
from simulator.errors import PebbleError
from simulator.model.recompute import StageRecompute
from simulator.model.reference import TrainConfig
from simulator.ray_pipeline.actors import RankActors
from simulator.ray_pipeline.calibrated_profile import calibrated_profile
from simulator.ray_pipeline.calibration import Calibration, calibrate
from simulator.ray_pipeline.copy_streams import RankOffload
from simulator.ray_pipeline.measured import RayRunResult, action_order, measured_timeline
from simulator.ray_pipeline.offload_on_ray import needs_solving, solve_on_ray
from simulator.ray_pipeline.offload_setup import (
    check_offload_runs,
    issue_table,
    measured_host_link,
    rank_offload,
)
from simulator.ray_pipeline.records import ReduceTiming
from simulator.ray_pipeline.runtime_meter import RuntimeMeter, runtime_meter
from simulator.ray_pipeline.wiring import segments, wire
from simulator.run.plan import RunPlan
from simulator.timeline import Timeline


def check_plan_trains(plan: RunPlan, config: TrainConfig) -> None:
    """One sentence when ``config`` (what the sequential reference trains) is not ``plan``'s
    model, microbatches and batch: the run would then be checked against another model."""
    if config.microbatches != plan.schedule.num_microbatches:
        raise PebbleError("the schedule and the training config disagree on microbatches.")
    if config.batch_size != plan.global_batch:
        raise PebbleError(
            f"the training config's batch of {config.batch_size} rows is not the plan's "
            f"{plan.global_batch} ({plan.microbatch_rows} rows x {plan.schedule.num_microbatches}"
            f" microbatches x {plan.layout.data} replicas)."
        )
    if config.model != plan.spec:
        raise PebbleError("the training config's model is not the plan's model.")


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
    retries: int = 0
    step_timeout: float = 300.0
    calibrate: bool = True  # time each stage's actions alone before step 0 (``calibration``)


class RayPipeline:
    """A pipeline (times ``dp`` replicas) of RankWorker actors that trains ``config``.

    Use as a context manager or call ``shutdown``; ``run`` trains and returns the measurement.
    """

    def __init__(self, plan: RunPlan, config: TrainConfig, options: RayOptions | None = None):
        check_plan_trains(plan, config)
        check_offload_runs(plan)
        self.plan = plan
        self.run_order = validate(plan.schedule)
        self.schedule = plan.schedule
        self.config = config
        self.options = options or RayOptions()
        if needs_solving(plan):  # solved at calibration's costs, so calibrate
            self.options = replace(self.options, calibrate=True)
        self.dp = plan.layout.data
        self.microbatch_rows = plan.microbatch_rows
        self.partition = plan.partition
        infos = plan.spec.layers()
        self.param_layers = {
            s: [i for i in r if infos[i].has_params]
            for s, r in enumerate(self.partition.stage_layers)
        }
        param_stages = {s for s, layers in self.param_layers.items() if layers}
        self.layer_stage = {i: s for s, layers in self.param_layers.items() for i in layers}
        self.wired = wire(self.run_order, param_stages, self.dp)
        self.segments = segments(self.wired)
        self._issue = None  # with offload: where each prefetch is issued (``issue_table``)
        self.actors = RankActors(self)
        self.calibration: Calibration | None = None
        self._meter: RuntimeMeter | None = None  # the runtime's CPU per call, from the run
        self.records: list[dict] = []
        self.reduce_times: list[ReduceTiming] = []

    def stage_recompute(self, rank: int) -> dict[int, StageRecompute]:
        """The recompute plan of each of ``rank``'s stages (empty: none)."""
        recompute = self.plan.recompute
        if recompute is None or not recompute.active:
            return {}
        return {s: recompute.stages[s] for s in self.schedule.stages_of_rank(rank)}

    def rank_offload(self, rank: int) -> RankOffload | None:
        """What ``rank`` sends to the host and when it fetches it back (None: nothing)."""
        if self._issue is None:
            self._issue = issue_table(self.plan, self.run_order)
        return rank_offload(self.plan, self.run_order, rank, self._issue)

    def _solve_offload(self) -> None:
        """``selective`` or ``budget:``: solved at calibration's costs over the host link a
        rank measured (``offload_on_ray``), then every rank told what to send."""
        import ray

        self.plan, costs, link = solve_on_ray(self)
        self._issue = issue_table(self.plan, self.run_order, costs, link)
        ray.get([a.set_offload.remote(self.rank_offload(rank)) for a, rank, _ in self.actors])

    @property
    def order(self) -> list[tuple[int, int]]:
        return self.run_order.order

    def __enter__(self) -> RayPipeline:
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()

    def start(self) -> None:
        self.actors.start()

    def shutdown(self) -> None:
        self.actors.shutdown()

    # ------------------------------------------------------------------ one step
    def _submit_step(self, step: int):
        """Submit every action of the step; returns sink refs and per-layer reduced refs."""
        dp, grid = self.dp, self.actors.grid
        for actor, _, _ in self.actors:
            actor.begin_step.remote(step)
        outputs: dict[tuple[int, int], object] = {}  # (replica, producer index) -> ref
        sinks: list[tuple[object, int, int]] = []
        grad_refs: dict[int, list] = defaultdict(list)
        for segment in self.segments:
            head, tail = segment[0], segment[-1]
            specs = [w.spec for w in segment]
            n_grads = len(self.param_layers[tail.stage]) if tail.grads_out else 0
            for replica in range(dp):
                payload = outputs.pop((replica, head.producer)) if head.remote_input else None
                result = (
                    grid[replica][head.rank]
                    .run_segment.options(num_returns=1 + n_grads)
                    .remote(specs, payload)
                )
                if n_grads:
                    result, *grads = result
                    for layer, ref in zip(self.param_layers[tail.stage], grads, strict=True):
                        grad_refs[layer].append(ref)
                if tail.send:
                    outputs[(replica, tail.index)] = result
                else:
                    sinks.append((result, head.rank, replica))
        reduced: dict[int, object] = {}
        timing_refs = []
        for layer, refs in grad_refs.items():
            reducer = self.actors.reducers[self.schedule.stage_to_rank[self.layer_stage[layer]]]
            total, timing = reducer.reduce.options(num_returns=2).remote(*refs)
            reduced[layer] = total
            timing_refs.append((layer, timing))
        return sinks, reduced, timing_refs

    def _wait(
        self, step: int, refs: list[tuple[object, int, int]], deadline: float, applying=False
    ):
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

    def _on_every_actor(self, step: int, method: str, deadline: float, *args, applying=False):
        """Call ``method`` on every rank actor and wait for all, failures named by rank."""
        refs = [
            (getattr(a, method).remote(*args), rank, replica) for a, rank, replica in self.actors
        ]
        return self._wait(step, refs, deadline, applying)

    def _failure(self, step: int, where, exc: Exception, applying: bool = False) -> RankFailure:
        """Name the dead ranks if any died, else the rank whose action raised."""
        outcome = (
            "other ranks may already have applied the step"
            if applying
            else "no rank applied the step"
        )
        dead = self.actors.dead()
        if dead:
            names = ", ".join(
                f"rank {r}" + (f" (replica {d})" if self.dp > 1 else "") for r, d in dead
            )
            return RankFailure(f"{names} died during step {step}; {outcome}.", step, dead)
        cause = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        rank, _replica = where
        return RankFailure(f"step {step} failed on rank {rank}: {cause}; {outcome}.", step, [where])

    def dead_ranks(self) -> list[tuple[int, int]]:
        return self.actors.dead()

    def run_step(self, step: int, fault=None, collect_gradients: bool = False):
        """One all-or-nothing step. Returns (loss, gradients or None)."""
        import ray

        deadline = time.time() + self.options.step_timeout
        meter = self._meter if step >= 1 and self._meter and self._meter.reading else None
        began = meter.read() if meter else None
        sinks, reduced, timing_refs = self._submit_step(step)
        if fault is not None:
            rank, replica = fault
            ray.kill(self.actors.grid[replica][rank], no_restart=True)
        waited = self._wait(step, sinks + [(t, -1, -1) for _, t in timing_refs], deadline)
        window = meter.window(began, meter.read()) if meter else None
        timings = waited[len(sinks) :]
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
            gradients = _sum_over_replicas(self._on_every_actor(step, "gradients", deadline))
        layers = tuple(sorted(reduced))
        refs = [reduced[layer] for layer in layers]
        self._on_every_actor(step, "apply_step", deadline, step, layers, *refs, applying=True)
        records = self._on_every_actor(step, "drain_records", deadline)
        # a step's measurements are kept only once all of it succeeded: a rerun never doubles
        self.records.extend(records)
        for (layer, _), (start, end) in zip(timing_refs, timings, strict=True):
            self.reduce_times.append(ReduceTiming(layer, step, start, end))
        if meter:
            meter.keep(step, window)
        return sum(e["loss"] for e in ends), gradients

    def weights(self) -> dict[tuple[int, str], np.ndarray]:
        return self.actors.weights()

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
        if not self.actors.grid:
            self.start()
        if self.calibration is None and self.options.calibrate:
            self.calibration = calibrate(self)
            self._meter = runtime_meter(self)
        if needs_solving(self.plan):
            self._solve_offload()
        losses: list[float] = []
        first_grads = None
        restarts = 0
        retries_left = self.options.retries
        snapshot = self.actors.snapshot() if retries_left else None
        step = 0
        while step < steps:
            inject = (fault[1], fault[2]) if fault and fault[0] == step and not restarts else None
            try:
                loss, grads = self.run_step(step, inject, collect_gradients=check and step == 0)
            except RankFailure:
                if retries_left <= 0:
                    raise
                retries_left, restarts = retries_left - 1, restarts + 1
                self.actors.restore(snapshot)
                if self._meter:  # a restarted actor is a new process: keep what was read
                    self._meter.stop()
                continue
            if not math.isfinite(loss):
                raise PebbleError(
                    f"training diverged at step {step}: the loss is {loss}; lower --lr or "
                    "check the data."
                )
            if grads is not None:
                first_grads = grads
            losses.append(loss)
            if snapshot is not None:
                snapshot = self.actors.snapshot()
            if on_step:
                on_step(step, loss)
            step += 1
        timeline = measured_timeline(self, steps)
        return RayRunResult(
            timeline=timeline,
            losses=losses,
            weights=self.weights(),
            first_step_gradients=first_grads,
            profile=calibrated_profile(
                Profile.from_timeline(timeline),
                self.calibration,
                self._meter.result(timeline, self.calibration) if self._meter else None,
            ),
            restarts=restarts,
            action_order=action_order(timeline),
        )

    def prediction(self, result: RayRunResult, quiet: bool = False) -> Timeline:
        """The analytic executor's Timeline of this very run, from the run's own profile;
        ``quiet``: on a quiet machine, without the load other processes put on it. With offload
        the prediction leaves out core sharing and the runtime's cost per call: the copy clock
        (``offload_clock``) models neither, so it predicts each rank on a device of its own."""
        offload = self.plan.offload is not None
        cores = None if offload else result.profile.cores
        plan = replace(self.plan, steps=result.timeline.meta.steps, cores=cores)
        profile = replace(result.profile, outside_load=0.0) if quiet else result.profile
        costs = profile_costs(profile, plan.spec, plan.partition, plan.microbatch_rows)
        if offload:
            costs = replace(
                costs, call_overhead=0.0, send_overhead=0.0, call_cpu=0.0, background_load=0.0
            )
        link = measured_host_link(result.timeline)
        return simulate_plan(plan, costs, run=self.run_order, link=link)


def _sum_over_replicas(per_actor: list[dict]) -> dict[tuple[int, str], np.ndarray]:
    """Gradients of the step just run, summed over replicas (for checking only)."""
    total: dict[tuple[int, str], np.ndarray] = {}
    for grads in per_actor:
        for key, g in grads.items():
            total[key] = total[key] + g if key in total else g
    return total
