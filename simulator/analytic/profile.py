"""A measured cost profile: mean seconds per stage and action kind, from any measured Timeline.

Why from a Timeline: the Ray executor writes one, and so can anything else that measures a run;
``Profile.from_timeline`` is the one place the measurement becomes costs, so ``simulate
--profile`` accepts a profile.json or a measured timeline.json alike. What a profile file may
hold is checked apart, in ``profile_schema``.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass, field

from schedules.dependencies import PIPELINE_RULE, WORK_PARTS, DependencyRule
from schedules.kind_costs import parts_from_kinds
from simulator.analytic.costs import CostModel, StageCost
from simulator.analytic.profile_schema import PROFILE_VERSION, check_profile
from simulator.errors import PebbleError
from simulator.model.parse import parse_model, recorded_model
from simulator.model.partitioning import Partition, boundary_bytes, param_bytes
from simulator.model.spec import ModelSpec
from simulator.timeline import Timeline
from simulator.timeline.json_values import read_json_object, where


@dataclass
class Profile:
    """Measured seconds per stage and action kind, and the machine they were measured on.

    File format (JSON): ``{"version": 1, "model": ModelSpec text, "microbatch_rows": int,
    "stages": [[first_layer, last_layer], ...], "costs": [{"F": s, "I": s, "W": s, "B": s}, ...],
    "transfer": {"latency": s, "bandwidth": bytes/s}, "step_overhead": s, "cores": int,
    "call_overhead": s, "send_overhead": s, "call_cpu": s, "background_load": cores,
    "outside_load": cores}``; a kind never measured is ``null``; ``step_overhead`` is the
    commit, reduction and optimizer time between steps, which a multi-step prediction adds
    after every step. A transformer's ``model`` names its attention core; one without
    ``attention=`` (a file written before flash became the default) is read as math, what it
    counted (``parse.recorded_model``).

    ``train`` writes each action's *work*, the mean CPU time its thread ran in the run, which is
    its time alone on a core of its own (``from_timeline``), and ``cores``, how many cores its
    ranks shared; the prediction then shares those cores (``sharing``) unless told otherwise.
    ``outside_load`` is the machine's, not the runtime's: the cores that processes outside the
    run kept busy over its compared steps (``runtime_meter``; 0 on a quiet machine). A
    prediction charges it with the background load, so on a busy machine it predicts the run
    the machine allowed; set it to 0 for the run on a quiet one.
    ``call_overhead`` (on a rank, per Ray call), ``send_overhead`` (on a rank, per output sent
    to another rank), ``call_cpu`` (per call, off the rank) and ``background_load`` (cores busy
    all along) are the runtime's costs (``CostModel``): timed by calibration, the CPU parts then
    measured again over the run's own steps (``ray_pipeline.runtime_meter``). Without ``cores``
    (older files, a timeline without CPU times) the costs are the run's mean durations,
    contention included, and every rank is taken to own a device.
    """

    model: str
    microbatch_rows: int
    stages: list[list[int]]
    costs: list[dict[str, float | None]]
    transfer: dict[str, float] = field(default_factory=dict)
    version: int = PROFILE_VERSION
    step_overhead: float = 0.0  # seconds between one step's last action and the next's first
    cores: int | None = None
    call_overhead: float = 0.0
    send_overhead: float = 0.0
    call_cpu: float = 0.0
    background_load: float = 0.0
    outside_load: float = 0.0  # cores processes outside the run kept busy (a busy machine)

    def save(self, path) -> None:
        with open(path, "w") as handle:
            json.dump(asdict(self), handle, indent=1)

    @classmethod
    def from_timeline(cls, timeline: Timeline, rule: DependencyRule = PIPELINE_RULE) -> Profile:
        """The costs of ``rule``'s kinds in a measured run (its first step skipped when there
        are more: warm-up), the median transfer wait and the median gap between steps (the gap
        after step 0 skipped when there are more).

        With the run's ``action_cpu`` table (every Ray run writes one) each stage and kind costs
        the **mean CPU time** its actions' thread ran: an action's work, what it takes on a
        core of its own, however long it waited for a core in between. That is the time alone
        the prediction shares out (``sharing``), measured in the run itself, so it tracks the
        machine's speed over the very steps it predicts. The mean, not the median: the one
        action in a hundred that runs long (a page fault, a collection) is work the run did,
        and on 2 ranks the median left 2.7% of the compute out and under-predicted by as much.
        The profile then takes the cores the run shared (``meta.cores``, which it needs: work
        without the cores it shared predicts nothing). Without both (a timeline from elsewhere,
        an older file, an uncalibrated run) the costs are the mean durations, contention
        included, and every rank owns a device."""
        meta = timeline.meta
        if meta.time_unit != "s" or not meta.layers or not meta.model:
            raise PebbleError(
                "a cost profile needs a measured Timeline in seconds that names its model and "
                "layers (written by `pebblesim train --out`)."
            )
        skip_first = meta.steps > 1
        # a backward's recompute sub-spans (inside the kinds that send the gradient) are not its
        # own cost: a profile is policy-neutral (a prediction adds the recompute of whatever
        # policy it is asked about)
        reruns = rule.having("sends_gradient")
        recomputed: dict[tuple, float] = defaultdict(float)
        for r in timeline.recompute:
            recomputed[(r.replica, r.rank, r.stage, r.microbatch, r.step)] += r.end - r.start
        cpu_of = timeline.action_work()
        durations: dict[tuple[int, str], list[float]] = defaultdict(list)
        work: dict[tuple[int, str], list[float]] = defaultdict(list)
        for e in timeline.events:
            if (skip_first and e.step == 0) or e.kind not in rule.kinds:
                continue
            span = e.end - e.start
            extra = recomputed.get((e.replica, e.rank, e.stage, e.microbatch, e.step), 0.0)
            own = span - (extra if e.kind in reruns else 0.0)
            durations[(e.stage, e.kind)].append(own)
            cpu = cpu_of.get((e.replica, e.rank, e.stage, e.kind, e.microbatch, e.step))
            if cpu is not None:  # the recompute's share of the CPU is its share of the span
                work[(e.stage, e.kind)].append(cpu * (own / span if span > 0 else 1.0))
        by_cpu = (
            meta.cores is not None
            and bool(work)
            and all(len(work[k]) == len(v) for k, v in durations.items())
        )
        measured = work if by_cpu else durations
        stage_layers: dict[int, list[int]] = defaultdict(list)
        for layer in meta.layers:
            stage_layers[layer.stage].append(layer.index)
        costs = [
            {
                kind: statistics.fmean(measured[(stage, kind)])
                if measured.get((stage, kind))
                else None
                for kind in rule.kinds
            }
            for stage in sorted(stage_layers)
        ]
        waits = [c.end - c.start for c in timeline.comms if c.end > c.start]
        return cls(
            model=recorded_model(meta.model),
            microbatch_rows=meta.microbatch_rows,
            stages=[[min(v), max(v)] for _, v in sorted(stage_layers.items())],
            costs=costs,
            transfer={"latency": statistics.median(waits) if waits else 0.0},
            step_overhead=_step_overhead(timeline),
            cores=meta.cores if by_cpu else None,
        )

    @classmethod
    def load(cls, path, rule: DependencyRule = PIPELINE_RULE) -> Profile:
        """Read a profile.json, or a measured timeline.json (its profile is derived), checked
        by ``check_profile``: any fault is one PebbleError naming the file, field and value."""
        label = where(path)
        data = read_json_object(path, "cost profile")
        if "events" in data and "meta" in data:
            timeline = Timeline.from_dict(data, source=label)
            try:
                profile = cls.from_timeline(timeline, rule)
            except PebbleError as exc:
                raise PebbleError(f"{label}: {exc}") from None
            check_profile(asdict(profile), f"{label} (the profile measured from it)", rule)
            return profile
        return cls(**check_profile(data, label, rule))


def _stage_flops(spec: ModelSpec, layers: range) -> dict[str, float]:
    """FLOPs per microbatch row of one stage, per work part."""
    infos = spec.layers()
    totals = dict.fromkeys(WORK_PARTS, 0.0)
    for index in layers:
        flops = infos[index].flops()
        for part in totals:
            totals[part] += getattr(flops, part)
    return totals


def _measured(costs: dict, flops: dict[str, float], rule: DependencyRule) -> tuple[dict, dict]:
    """(the work parts' seconds, the kinds measured whole) of one profiled stage
    (``kind_costs.parts_from_kinds``: a schedule without a split backward measured only B,
    which is divided between I and W by their FLOPs)."""
    parts, whole = parts_from_kinds(costs, flops, rule)
    if any(part not in parts for part in WORK_PARTS):
        named = ", ".join(WORK_PARTS[:-1]) + " or " + WORK_PARTS[-1]
        raise PebbleError(f"the profile lacks {named} times for a stage.")
    return parts, whole


def profile_costs(
    profile: Profile,
    spec: ModelSpec,
    partition: Partition,
    rows: int,
    rule: DependencyRule = PIPELINE_RULE,
) -> CostModel:
    """Seconds from a measured profile, for this model, split and microbatch size.

    On the profiled split the measured stage times are used directly (scaled linearly with
    rows): the work parts', and each kind measured whole. On any other split, or another model,
    the profile is a calibration: it gives the FLOP/s this machine sustained in each work part
    (forward, input-backward, weight-backward), and each new stage costs its FLOPs at those
    rates; every kind then costs its shares of the parts (``KindRule.work``). That is how a
    small measured run predicts a bigger one.
    """
    checked = check_profile(asdict(profile), "the cost profile", rule)
    profiled = parse_model(checked["model"])  # a transformer's attention core named
    profiled_stages = [range(a, b + 1) for a, b in profile.stages]
    measured = [
        _measured(c, _stage_flops(profiled, r), rule)
        for c, r in zip(profile.costs, profiled_stages, strict=True)
    ]
    same_split = profiled == spec and [[r[0], r[-1]] for r in partition.stage_layers] == [
        list(s) for s in profile.stages
    ]
    stage_costs = []
    if same_split:
        factor = rows / profile.microbatch_rows
        for parts, whole in measured:
            stage_costs.append(
                StageCost(
                    **{part: parts[part] * factor for part in WORK_PARTS},
                    extra=tuple((kind, time * factor) for kind, time in whole.items()),
                    rule=rule,
                )
            )
    else:
        work = dict.fromkeys(WORK_PARTS, 0.0)
        seconds = dict.fromkeys(WORK_PARTS, 0.0)
        for (parts, _whole), layers in zip(measured, profiled_stages, strict=True):
            flops = _stage_flops(profiled, layers)
            for part in WORK_PARTS:
                work[part] += flops[part] * profile.microbatch_rows
                seconds[part] += parts[part]
        rate = {k: work[k] / seconds[k] if seconds[k] > 0 else math.inf for k in work}
        for layers in partition.stage_layers:
            flops = _stage_flops(spec, layers)
            stage_costs.append(
                StageCost(**{k: flops[k] * rows / rate[k] for k in flops}, rule=rule)
            )
    transfer = profile.transfer or {}
    return CostModel(
        optimizer_time=profile.step_overhead,
        stage_costs=tuple(stage_costs),
        boundary_bytes=boundary_bytes(spec, partition, rows),
        comm_latency=float(transfer.get("latency", 0.0)),
        comm_bandwidth=float(transfer.get("bandwidth", math.inf)) or math.inf,
        allreduce_latency=float(transfer.get("latency", 0.0)),
        allreduce_bandwidth=float(transfer.get("bandwidth", math.inf)) or math.inf,
        param_bytes=param_bytes(spec),
        time_unit="s",
        call_overhead=profile.call_overhead,
        send_overhead=profile.send_overhead,
        call_cpu=profile.call_cpu,
        background_load=profile.background_load + profile.outside_load,
    )


def _step_overhead(timeline: Timeline) -> float:
    """The median gap from one step's last action to the next step's first. The gap after
    step 0 is left out when there are later ones: it is warm-up too (the first optimizer step
    allocates its state), the longest of a demo run's three every time, and it made the median
    of three their longest."""
    first: dict[int, float] = {}
    last: dict[int, float] = {}
    for e in timeline.events:
        first[e.step] = min(first.get(e.step, e.start), e.start)
        last[e.step] = max(last.get(e.step, e.end), e.end)
    warm = 1 if len(first) > 2 else 0
    gaps = [first[s] - last[s - 1] for s in sorted(first) if s - 1 in last and s - 1 >= warm]
    return max(0.0, statistics.median(gaps)) if gaps else 0.0
