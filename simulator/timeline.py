"""The Timeline: the contract between the engines and everything that reports.

Why one type: the analytic executor predicts a run and the Ray executor measures one, and every
summary, plot and trace reads only this, so "predicted vs measured" is two Timelines overlaid.

Schema (JSON, ``version`` 1), times in ``meta.time_unit`` ("s" for measured and FLOP-derived
runs, "unit" for unit costs), all starting from 0:

* ``meta``: schedule, ranks, microbatches, chunks, stages, steps, dp, source ("analytic"|"ray"),
  model (ModelSpec text), time_unit, stage_to_rank, and ``layers``: one
  ``{index, name, kind, stage, rank, has_params}`` per layer.
* ``events``: compute, one ``{rank, stage, kind, microbatch, step, start, end, replica}`` per
  action run.
* ``comms``: point-to-point transfers ``{src_rank, dst_rank, stage, kind ("activation" or
  "gradient"), microbatch, step, start, end, bytes, replica}``; ``stage`` is the receiver.
* ``cache``: every change of cached activation bytes ``{time, rank, layer, microbatch, step,
  bytes, replica}``, ``bytes`` signed (+ put, - pop), in the order they happened on each rank.
* ``grad_ready``: ``{layer, step, time, replica}``: when the layer's weight gradient for the step
  is complete (its last microbatch's weight-gradient contribution has been added).
* ``allreduce``: with data parallelism, ``{layer, step, start, end}`` per layer reduction.
* ``optimizer``: ``{step, start, end}`` per optimizer step.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import NamedTuple

from simulator.errors import PebbleError
from simulator.timeline_meta import TimelineMeta

SCHEMA_VERSION = 1


class ComputeEvent(NamedTuple):
    rank: int
    stage: int
    kind: str
    microbatch: int
    step: int
    start: float
    end: float
    replica: int = 0


class CommEvent(NamedTuple):
    src_rank: int
    dst_rank: int
    stage: int
    kind: str
    microbatch: int
    step: int
    start: float
    end: float
    bytes: int
    replica: int = 0


class CacheChange(NamedTuple):
    time: float
    rank: int
    layer: int
    microbatch: int
    step: int
    bytes: int
    replica: int = 0


class GradReady(NamedTuple):
    layer: int
    step: int
    time: float
    replica: int = 0


class AllReduce(NamedTuple):
    layer: int
    step: int
    start: float
    end: float


class OptimizerStep(NamedTuple):
    step: int
    start: float
    end: float


_TABLES = {
    "events": ComputeEvent,
    "comms": CommEvent,
    "cache": CacheChange,
    "grad_ready": GradReady,
    "allreduce": AllReduce,
    "optimizer": OptimizerStep,
}


@dataclass
class RankSummary:
    rank: int
    busy: float
    peak_activation_bytes: int
    peak_inflight_microbatches: int


@dataclass
class Summary:
    """Headline figures of a run; every field is derived from the Timeline alone."""

    makespan: float
    bubble_fraction: float
    per_rank: list[RankSummary]
    step_times: list[float]
    gradient_ready: list[dict]


@dataclass
class Timeline:
    """What happened (or is predicted to happen) in a run: see the module docstring."""

    meta: TimelineMeta = field(default_factory=TimelineMeta)
    events: list[ComputeEvent] = field(default_factory=list)
    comms: list[CommEvent] = field(default_factory=list)
    cache: list[CacheChange] = field(default_factory=list)
    grad_ready: list[GradReady] = field(default_factory=list)
    allreduce: list[AllReduce] = field(default_factory=list)
    optimizer: list[OptimizerStep] = field(default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.meta, dict):  # a meta block written as a plain dict (tests, JSON)
            self.meta = TimelineMeta.from_dict(self.meta)

    # ----------------------------------------------------------------- derived views
    @property
    def num_ranks(self) -> int:
        if self.meta.ranks is not None:
            return int(self.meta.ranks)
        return 1 + max((e.rank for e in self.events), default=0)

    @property
    def time_unit(self) -> str:
        return self.meta.time_unit

    def rank_memory(self, rank: int, replica: int = 0) -> tuple[list[float], list[int]]:
        """Times and running totals of cached bytes on one rank (a step function)."""
        times, totals, total = [], [], 0
        for change in self.cache:
            if change.rank == rank and change.replica == replica:
                total += change.bytes
                times.append(change.time)
                totals.append(total)
        return times, totals

    def peak_activation_bytes(self) -> dict[int, int]:
        """Per rank, the most bytes held at once (max over replicas)."""
        running: dict[tuple[int, int], int] = defaultdict(int)
        peak: dict[int, int] = {r: 0 for r in range(self.num_ranks)}
        for change in self.cache:
            key = (change.replica, change.rank)
            running[key] += change.bytes
            if running[key] > peak.get(change.rank, 0):
                peak[change.rank] = running[key]
        return peak

    def peak_inflight(self) -> dict[int, int]:
        """Per rank, most microbatches whose forward there has run and last backward not.

        "Last backward" is the last B or W of that microbatch on that rank (over all its stages),
        found from the events themselves, per step.
        """
        last_backward: dict[tuple, int] = {}
        ordered = sorted(
            (e for e in self.events if e.replica == 0),
            key=lambda e: (e.rank, e.start),  # stable: ties keep execution order
        )
        for position, e in enumerate(ordered):
            if e.kind in ("B", "W", "I"):
                last_backward[(e.rank, e.step, e.microbatch)] = position
        peak: dict[int, int] = {r: 0 for r in range(self.num_ranks)}
        live: dict[int, set] = defaultdict(set)
        for position, e in enumerate(ordered):
            key = (e.rank, e.step, e.microbatch)
            if e.kind == "F":
                live[e.rank].add(key)
                peak[e.rank] = max(peak[e.rank], len(live[e.rank]))
            elif last_backward.get(key) == position:
                live[e.rank].discard(key)
        return peak

    def summary(self) -> Summary:
        events = [e for e in self.events if e.replica == 0]
        if not events:
            return Summary(0.0, 0.0, [], [], [])
        start = min(e.start for e in events)
        end = max(e.end for e in events)
        if self.optimizer:
            end = max(end, max(o.end for o in self.optimizer))
        makespan = end - start
        busy: dict[int, float] = {r: 0.0 for r in range(self.num_ranks)}
        for e in events:
            busy[e.rank] += e.end - e.start
        ranks = self.num_ranks
        bubble = 1.0 - sum(busy.values()) / (ranks * makespan) if makespan > 0 else 0.0
        peaks = self.peak_activation_bytes()
        inflight = self.peak_inflight()
        per_rank = [
            RankSummary(r, busy[r], int(peaks.get(r, 0)), int(inflight.get(r, 0)))
            for r in range(ranks)
        ]
        return Summary(
            makespan=makespan,
            bubble_fraction=bubble,
            per_rank=per_rank,
            step_times=self.step_times(),
            gradient_ready=[
                {"layer": g.layer, "step": g.step, "time": g.time}
                for g in sorted(self.grad_ready, key=lambda g: (g.step, g.layer))
                if g.replica == 0
            ],
        )

    def step_times(self) -> list[float]:
        """Duration of each step, from the previous step's end (or 0) to this step's end."""
        ends: dict[int, float] = defaultdict(float)
        for e in self.events:
            ends[e.step] = max(ends[e.step], e.end)
        for o in self.optimizer:
            ends[o.step] = max(ends[o.step], o.end)
        times, previous = [], 0.0
        for step in sorted(ends):
            times.append(ends[step] - previous)
            previous = ends[step]
        return times

    # ----------------------------------------------------------------- serialisation
    def to_dict(self) -> dict:
        out: dict = {"version": SCHEMA_VERSION, "meta": self.meta.to_dict()}
        for name in _TABLES:
            out[name] = [row._asdict() for row in getattr(self, name)]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> Timeline:
        version = data.get("version")
        if version != SCHEMA_VERSION:
            raise PebbleError(
                f"this Timeline has schema version {version!r}; pebblesim reads version "
                f"{SCHEMA_VERSION}."
            )
        timeline = cls(meta=TimelineMeta.from_dict(data.get("meta", {})))
        for name, row_type in _TABLES.items():
            setattr(timeline, name, [row_type(**row) for row in data.get(name, [])])
        return timeline

    def save(self, path) -> None:
        with open(path, "w") as handle:
            json.dump(self.to_dict(), handle)

    @classmethod
    def load(cls, path) -> Timeline:
        try:
            with open(path) as handle:
                data = json.load(handle)
        except FileNotFoundError:
            raise PebbleError(f"no Timeline file at {path}.") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PebbleError(f"{path} is not a Timeline JSON file ({exc}).") from None
        if not isinstance(data, dict):
            raise PebbleError(f"{path} is not a Timeline JSON file.")
        try:
            return cls.from_dict(data)
        except TypeError as exc:
            raise PebbleError(f"{path} does not follow the Timeline schema ({exc}).") from None
