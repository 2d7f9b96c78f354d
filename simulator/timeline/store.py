"""The Timeline: the contract between the engines and everything that reports.

Why one type: the analytic executor predicts a run and the Ray executor measures one, and every
summary, plot and trace reads only this, so "predicted vs measured" is two Timelines overlaid.

Schema (JSON, ``version`` 1), times in ``meta.time_unit`` ("s" for measured and FLOP-derived
runs, "unit" for unit costs), all starting from 0:

* ``meta``: schedule, ranks, microbatches, chunks, stages, steps, dp, source ("analytic"|"ray"),
  model (ModelSpec text; a transformer's names its ``attention`` core, and one without the
  key, written before flash became the default, counted math), time_unit, stage_to_rank, and
  ``layers``: one
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
* ``recompute`` (only with activation recomputation): ``{rank, stage, microbatch, step, start,
  end, replica}`` per recompute sub-span. Recomputation is not an action of its own: each span
  lies inside the backward (``I`` or ``B``) event of the same rank, stage and microbatch, whose
  duration includes it (``simulator.model.recompute``).
* ``action_cpu`` (measured runs; predictions with shared cores): ``{rank, stage, kind,
  microbatch, step, cpu, replica}``, the CPU seconds each action's thread ran: its work. An
  event's span less its ``cpu`` is the time it waited for a core (``rows.ActionCpu``).
* ``offload`` (only with activation offload): ``{rank, stage, kind ("offload", "prefetch" or
  "wait"), microbatch, step, start, end, bytes, replica}`` per host-link copy of one
  microbatch's offloaded activations, or per backward held back for its prefetch (exposed
  time). The copies' device-side changes are ``cache`` rows too (``rows.OffloadSpan``).

``load`` and ``from_dict`` check a file against this schema before anything reads it
(``simulator.timeline.schema``): a damaged or hand-edited file is one sentence naming the file,
the field and the value, never a traceback or a figure drawn from nonsense.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from simulator.errors import PebbleError
from simulator.timeline.json_values import read_json_object, show, where
from simulator.timeline.meta import TimelineMeta
from simulator.timeline.offload_levels import host_peaks, on_host
from simulator.timeline.rows import (
    RowTable,
)
from simulator.timeline.schema import OPTIONAL_TABLES, check_tables
from simulator.timeline.schema import TABLES as _TABLES
from simulator.timeline.stats import (
    activation_levels,
    busy_per_rank,
    peak_activation_bytes,
    peak_inflight,
    step_ends,
)

__all__ = ["SCHEMA_VERSION", "RankSummary", "Summary", "Timeline"]

SCHEMA_VERSION = 1


@dataclass
class RankSummary:
    """One rank's figures. Three activation numbers, because each answers its own question:
    ``stored_activation_bytes`` is what the schedule holds between passes (what published
    formulas count); ``peak_activation_bytes`` is the most the activation cache held (what a
    Ray run measures: recomputed activations included); ``true_peak_bytes`` adds the gradient
    tensors a backward holds while it runs, and is what ``memory`` counts for "fits". The
    first and last equal the cache peak in files written before they existed."""

    rank: int
    busy: float
    peak_activation_bytes: int
    peak_inflight_microbatches: int
    memory: dict | None = None  # whole-rank memory, when the run's meta knows it
    stored_activation_bytes: int = 0
    true_peak_bytes: int = 0


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
    """What happened (or is predicted to happen) in a run: see the module docstring.

    Each table (``events``, ``comms``, ...) is a ``RowTable``: a sequence of its row type that
    an executor may fill in bulk as columns; assigning a plain list wraps it.
    """

    meta: TimelineMeta = field(default_factory=TimelineMeta)
    events: RowTable = field(default_factory=list)
    comms: RowTable = field(default_factory=list)
    cache: RowTable = field(default_factory=list)
    grad_ready: RowTable = field(default_factory=list)
    allreduce: RowTable = field(default_factory=list)
    optimizer: RowTable = field(default_factory=list)
    recompute: RowTable = field(default_factory=list)
    action_cpu: RowTable = field(default_factory=list)
    offload: RowTable = field(default_factory=list)  # host-link copies (activation offload)

    def __setattr__(self, name, value) -> None:
        if name in _TABLES and not isinstance(value, RowTable):
            value = RowTable(_TABLES[name], value)
        elif name == "meta" and isinstance(value, dict):  # a plain dict (tests, JSON)
            value = TimelineMeta.from_dict(value)
        object.__setattr__(self, name, value)

    # ----------------------------------------------------------------- derived views
    @property
    def num_ranks(self) -> int:
        if self.meta.ranks is not None:
            return int(self.meta.ranks)
        ranks = self.events.columns()["rank"]
        return 1 + int(ranks.max()) if len(ranks) else 1

    @property
    def time_unit(self) -> str:
        return self.meta.time_unit

    def rank_memory(self, rank: int, replica: int = 0) -> tuple[list[float], list[int]]:
        """Times and running totals of cached bytes on one rank (a step function)."""
        cache = self.cache.columns()
        mine = (cache["rank"] == rank) & (cache["replica"] == replica)
        return cache["time"][mine].tolist(), np.cumsum(cache["bytes"][mine]).tolist()

    def peak_activation_bytes(self) -> dict[int, int]:
        """Per rank, the most bytes held at once (max over replicas)."""
        return peak_activation_bytes(self.cache.columns(), self.num_ranks)

    def peak_inflight(self) -> dict[int, int]:
        """Per rank, most microbatches whose forward there has run and last backward not.

        "Last backward" is the last B, I or W of that microbatch on that rank (over all its
        stages), found from the events themselves, per step.
        """
        return peak_inflight(self.events.columns(), self.num_ranks)

    def host_peak_bytes(self) -> dict[int, int]:
        """Per rank, the most offloaded activation bytes its host held at once."""
        return host_peaks(self.offload.columns(), self.num_ranks)

    def recompute_time(self) -> dict[int, float]:
        """Per rank (first replica), the time spent in recompute sub-spans, all steps."""
        out: dict[int, float] = {}
        for span in self.recompute:
            if span.replica == 0:
                out[span.rank] = out.get(span.rank, 0.0) + span.end - span.start
        return out

    def summary(self) -> Summary:
        events = self.events.columns()
        first = events["replica"] == 0
        if not first.any():
            return Summary(0.0, 0.0, [], [], [])
        start = float(events["start"][first].min())
        end = float(events["end"][first].max())
        if len(self.optimizer):
            end = max(end, float(self.optimizer.columns()["end"].max()))
        makespan = end - start
        ranks = self.num_ranks
        busy = busy_per_rank(events, ranks)
        bubble = 1.0 - sum(busy.values()) / (ranks * makespan) if makespan > 0 else 0.0
        peaks = self.peak_activation_bytes()
        stored, true = self.activation_levels()
        inflight = self.peak_inflight()
        per_rank = [
            RankSummary(
                r,
                busy[r],
                int(peaks.get(r, 0)),
                int(inflight.get(r, 0)),
                self._memory(r, stored, true),
                int(stored.get(r, 0)),
                int(true.get(r, 0)),
            )
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

    def activation_levels(self) -> tuple[dict[int, int], dict[int, int]]:
        """Per rank, (stored activations between passes, true peak with the backward's
        gradient buffers and recomputation), from the events and ``meta.action_memory``; both
        the cache peak when the meta does not have it (files written before)."""
        if not self.meta.action_memory:
            peaks = self.peak_activation_bytes()
            return peaks, dict(peaks)
        offload = self.offload.columns()
        host = on_host(offload, self.num_ranks) if len(offload["rank"]) else None
        return activation_levels(
            self.events.columns(), self.num_ranks, self.meta.action_memory, host
        )

    def _memory(self, rank: int, stored: dict[int, int], true: dict[int, int]) -> dict | None:
        """Parameters, gradients, optimizer state, receive buffers and activations (stored,
        and the true peak that "fits" counts) of one rank, their total, and whether it fits
        the device (None: capacity unknown)."""
        if rank >= len(self.meta.rank_memory):
            return None
        static = self.meta.rank_memory[rank]
        activations = int(true.get(rank, 0))
        total = static.total + activations
        capacity = self.meta.memory_capacity
        host = {}
        if len(self.offload):  # what went to the host, and whether the device's share holds it
            held, room = self.host_peak_bytes()[rank], self.meta.host_memory_capacity
            host = {"host_activations": held, "host_fits": None if room is None else held <= room}
        return {
            **host,
            "parameters": static.parameters,
            "gradients": static.gradients,
            "optimizer_state": static.optimizer_state,
            "activations": activations,
            "stored_activations": int(stored.get(rank, 0)),
            "receive_buffers": static.receive_buffers,
            "total": total,
            "fits": None if capacity is None else total <= capacity,
        }

    def throughput(self) -> dict:
        """Mean step time, tokens per second and model FLOPs utilisation (measured or
        predicted in seconds; None where the run's unit or meta cannot say)."""
        times = self.step_times()
        step = sum(times) / len(times) if times else 0.0
        meta = self.meta
        seconds = meta.time_unit == "s" and step > 0
        mfu = None
        if seconds and meta.peak_flops and meta.devices and meta.flops_per_step:
            mfu = meta.flops_per_step / (step * meta.devices * meta.peak_flops)
        tokens = meta.tokens_per_step / step if seconds and meta.tokens_per_step else None
        return {"step_time": step, "tokens_per_second": tokens, "mfu": mfu}

    def step_times(self) -> list[float]:
        """Duration of each step, from the previous step's end (or 0) to this step's end."""
        ends = step_ends(self.events.columns(), self.optimizer.columns())
        times, previous = [], 0.0
        for step in sorted(ends):
            times.append(ends[step] - previous)
            previous = ends[step]
        return times

    def action_work(self) -> dict[tuple, float]:
        """Each action's CPU seconds from ``action_cpu`` (empty without that table), keyed
        (replica, rank, stage, kind, microbatch, step)."""
        columns = self.action_cpu.columns()
        if not len(columns["cpu"]):
            return {}
        fields = ("replica", "rank", "stage", "kind", "microbatch", "step")
        keys = zip(*(columns[f].tolist() for f in fields), strict=True)
        return dict(zip(keys, columns["cpu"].tolist(), strict=True))

    # ----------------------------------------------------------------- serialisation
    def to_dict(self) -> dict:
        out: dict = {"version": SCHEMA_VERSION, "meta": self.meta.to_dict()}
        for name in _TABLES:
            rows = getattr(self, name)
            if name not in OPTIONAL_TABLES or len(rows):
                out[name] = rows.to_dicts()
        return out

    @classmethod
    def from_dict(cls, data: dict, source=None) -> Timeline:
        """A Timeline from its JSON form, checked against the schema first: a bad value is one
        PebbleError naming ``source`` (the file, if any), the field and the value (see
        ``simulator.timeline.schema``). The tables are built as columns, not row objects."""
        label = where(source)
        if not isinstance(data, dict):
            raise PebbleError(f"{label}: a Timeline is a JSON object, got {show(data)}.")
        version = data.get("version")
        if type(version) is not int or version != SCHEMA_VERSION:
            raise PebbleError(
                f"{label} has Timeline schema version {show(version)}; pebblesim reads version "
                f"{SCHEMA_VERSION}."
            )
        raw_meta = data.get("meta", {})
        meta = TimelineMeta.from_dict(raw_meta, source=label)
        tables = check_tables(data, meta, set(raw_meta), label)
        timeline = cls(meta=meta)
        for name, row_type in _TABLES.items():
            setattr(timeline, name, RowTable.from_columns(row_type, tables[name]))
        return timeline

    def save(self, path) -> None:
        with open(path, "w") as handle:
            json.dump(self.to_dict(), handle)

    @classmethod
    def load(cls, path) -> Timeline:
        """Read and check a timeline.json; any fault is one PebbleError sentence."""
        return cls.from_dict(read_json_object(path, "Timeline"), source=path)
