"""Where each rank's step time goes: compute, recompute, exposed tensor-parallel communication,
exposed offload transfer, pipeline wait (the bubble), exposed data-parallel communication and
the optimizer.

Why its own module: a step time alone cannot say why one layout beats another; the parts can.
They are read from the Timeline only, so a predicted and a measured run split the same way.

Definition (per rank, first replica, per step):

* a step's window runs from the previous step's end (or 0) to its own end (``stats.step_ends``:
  its last action or optimizer end), so the windows add up to ``Timeline.step_times``;
* the rank's busy time is the part of the window its actions cover (overlapping spans counted
  once, an action crossing a window edge split at the edge);
* of the busy time, ``recompute`` is the rank's recompute spans, ``tensor_comm`` is each
  action's exposed tensor-parallel seconds (``meta.tensor_comm`` per stage and per F or I part,
  times the kind's work shares of F and I), and ``compute`` is the rest;
* the *tail* runs from the rank's last busy instant in the window to the window's end: the part
  of it covered by the optimizer step is ``optimizer``; the part covered by the reduction of
  this rank's own layers (``allreduce`` rows of the layers ``meta.layers`` puts on it; every row
  when the meta has no layers) is ``data_comm`` (exposed data-parallel communication);
* of the time the rank is not busy, its ``wait`` spans of activation offload (a backward held
  back for its prefetch: the ``offload`` table) are ``offload_wait``: exposed transfer;
* everything else (gaps between actions, before the first and the rest of the tail) is
  ``pipeline_wait``: the bubble.

The parts add up to the window: ``pipeline_wait`` is the window less the others, each of which
is clamped to what is left, so no part is negative and the sum is the step time to rounding.
Context-parallel and expert exchanges are counted as ``tensor_comm`` when a cost model puts them
in ``meta.tensor_comm``; otherwise they are inside ``compute``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.timeline.kinds import PIPELINE_RULE, DependencyRule
from simulator.timeline.stats import step_ends

PARTS = (
    "compute",
    "recompute",
    "tensor_comm",
    "offload_wait",
    "pipeline_wait",
    "data_comm",
    "optimizer",
)
PART_LABELS = {
    "compute": "compute",
    "recompute": "recompute",
    "tensor_comm": "exposed tensor comm",
    "offload_wait": "exposed offload transfer",
    "pipeline_wait": "pipeline wait",
    "data_comm": "exposed data-parallel comm",
    "optimizer": "optimizer",
}


@dataclass(frozen=True)
class StepBreakdown:
    """Per step and rank, the seven parts of the step time (``PARTS``), in the Timeline's unit.

    Why arrays and not rows: at p=128 and many steps the table is read whole by the summary,
    the figure and ``advise``; ``parts[step, rank, i]`` is part ``PARTS[i]``."""

    parts: np.ndarray  # shape (steps, ranks, len(PARTS))
    step_times: np.ndarray  # shape (steps,)

    @property
    def ranks(self) -> int:
        return int(self.parts.shape[1])

    def mean_per_rank(self) -> np.ndarray:
        """Per rank, each part's mean over the steps: shape (ranks, len(PARTS))."""
        if not len(self.parts):
            return np.zeros((0, len(PARTS)))
        return self.parts.mean(axis=0)

    def shares(self) -> dict[str, float]:
        """Each part's share of all ranks' step time, over every step (0 for an empty run)."""
        totals = self.parts.sum(axis=(0, 1))
        whole = float(totals.sum())
        return {
            p: (float(t) / whole if whole > 0 else 0.0) for p, t in zip(PARTS, totals, strict=True)
        }

    def rows(self) -> list[dict]:
        """One dict per rank: its mean parts over the steps and their sum (the mean step time)."""
        out = []
        for rank, values in enumerate(self.mean_per_rank().tolist()):
            row = {"rank": rank, **dict(zip(PARTS, values, strict=True))}
            row["step_time"] = float(sum(values))
            out.append(row)
        return out


def breakdown_rows(timeline) -> list[dict]:
    """Per rank, its mean step time over the steps split into ``PARTS`` (what ``--json``'s
    ``breakdown`` lists): ``{rank, compute, ..., optimizer, step_time}``; ``offload_wait``
    only for a run with activation offload."""
    rows = step_breakdown(timeline).rows()
    if not len(timeline.offload):
        for row in rows:
            del row["offload_wait"]
    return rows


def step_breakdown(timeline, rule: DependencyRule = PIPELINE_RULE) -> StepBreakdown:
    """The ``StepBreakdown`` of ``timeline`` (see the module docstring for the definition)."""
    events = timeline.events.columns()
    optimizer = timeline.optimizer.columns()
    ends = step_ends(events, optimizer)
    ranks = timeline.num_ranks
    if not ends:
        return StepBreakdown(np.zeros((0, ranks, len(PARTS))), np.zeros(0))
    edges = np.array([0.0] + [ends[s] for s in sorted(ends)])
    starts_w, ends_w = edges[:-1], edges[1:]
    parts = np.zeros((len(starts_w), ranks, len(PARTS)))
    first = np.flatnonzero(events["replica"] == 0)
    tensor = _tensor_seconds(timeline.meta, events, rule)[first]
    by_rank = np.argsort(events["rank"][first], kind="stable")
    rank_of = events["rank"][first][by_rank]
    start = events["start"][first][by_rank].astype(float)
    end = events["end"][first][by_rank].astype(float)
    tensor = tensor[by_rank]
    bounds = np.searchsorted(rank_of, np.arange(ranks + 1))
    opt = _merged(optimizer["start"].astype(float), optimizer["end"].astype(float))
    recompute = timeline.recompute.columns()
    reductions = timeline.allreduce.columns()
    owner = _layer_owner(timeline.meta)
    copies = timeline.offload.columns()
    waiting = (copies["kind"] == "wait") & (copies["replica"] == 0)
    for rank in range(ranks):
        mine = slice(bounds[rank], bounds[rank + 1])
        busy = _merged(start[mine], end[mine])
        comm = _weighted(start[mine], end[mine], tensor[mine])
        spans = (recompute["replica"] == 0) & (recompute["rank"] == rank)
        redo = _merged(recompute["start"][spans].astype(float), recompute["end"][spans])
        own = _own_reductions(reductions, owner, rank)
        reduce_ = _merged(reductions["start"][own].astype(float), reductions["end"][own])
        window = ends_w - starts_w
        busy_time = _within(busy, starts_w, ends_w)
        redo_time = np.minimum(_within(redo, starts_w, ends_w), busy_time)
        comm_time = np.clip(_within(comm, starts_w, ends_w), 0.0, busy_time - redo_time)
        tail_start = np.maximum(_last_busy_end(busy, ends_w), starts_w)
        opt_time = np.minimum(_within(opt, tail_start, ends_w), window - busy_time)
        dp_time = np.clip(_within(reduce_, tail_start, ends_w), 0.0, window - busy_time - opt_time)
        held = waiting & (copies["rank"] == rank)
        held_back = _merged(copies["start"][held].astype(float), copies["end"][held])
        copy_time = np.clip(
            _within(held_back, starts_w, ends_w), 0.0, window - busy_time - opt_time - dp_time
        )
        wait = np.maximum(window - busy_time - opt_time - dp_time - copy_time, 0.0)
        compute = busy_time - redo_time - comm_time
        parts[:, rank] = np.stack(
            [compute, redo_time, comm_time, copy_time, wait, dp_time, opt_time], 1
        )
    return StepBreakdown(parts, ends_w - starts_w)


# ---------------------------------------------------------------- the pieces
def _tensor_seconds(meta, events: dict, rule: DependencyRule) -> np.ndarray:
    """Per event, its exposed tensor-parallel seconds: its stage's F/I-part seconds times the
    kind's work shares of F and I (0 where the meta does not know them)."""
    per_stage = np.asarray(meta.tensor_comm, dtype=float)
    out = np.zeros(len(events["rank"]))
    if not len(per_stage) or not len(out):
        return out
    kinds = events["kind"]
    share = np.zeros(len(out))
    for kind in np.unique(kinds).tolist():
        known = rule.kinds.get(kind)
        if known is not None:
            share[kinds == kind] = known.work.F + known.work.I
    stages = events["stage"].astype(np.int64)
    inside = (stages >= 0) & (stages < len(per_stage))
    out[inside] = share[inside] * per_stage[stages[inside]]
    return out


def _layer_owner(meta) -> np.ndarray | None:
    """Per layer index, the rank that holds it (None when the meta lists no layers)."""
    if not meta.layers:
        return None
    owner = np.full(max(layer.index for layer in meta.layers) + 1, -1, dtype=np.int64)
    for layer in meta.layers:
        owner[layer.index] = layer.rank
    return owner


def _own_reductions(reductions: dict, owner: np.ndarray | None, rank: int) -> np.ndarray:
    layers = reductions["layer"].astype(np.int64)
    if owner is None:
        return np.ones(len(layers), dtype=bool)
    known = (layers >= 0) & (layers < len(owner))
    mine = np.zeros(len(layers), dtype=bool)
    mine[known] = owner[layers[known]] == rank
    return mine


def _merged(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The union of the spans as sorted disjoint spans, each weighted by its length."""
    starts, ends = np.asarray(starts, dtype=float), np.asarray(ends, dtype=float)
    if not len(starts):
        return starts, ends, starts
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], np.maximum(ends[order], starts[order])
    reach = np.maximum.accumulate(ends)
    new = np.r_[True, starts[1:] > reach[:-1]]
    group = np.cumsum(new) - 1
    merged_start = starts[new]
    merged_end = np.zeros(len(merged_start))
    np.maximum.at(merged_end, group, ends)
    return merged_start, merged_end, merged_end - merged_start


def _weighted(starts, ends, weights) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spans carrying ``weights`` spread evenly over them, made disjoint in start order (a span
    that starts before the previous one ends starts at that end, as a rank runs one action at
    a time): ``_within`` then reads how much of the weight lies in a window."""
    starts, ends = np.asarray(starts, dtype=float), np.asarray(ends, dtype=float)
    if not len(starts):
        return starts, ends, starts
    order = np.argsort(starts, kind="stable")
    starts, ends, weights = starts[order], ends[order], np.asarray(weights, float)[order]
    reach = np.r_[-np.inf, np.maximum.accumulate(ends)[:-1]]
    starts = np.maximum(starts, reach)
    ends = np.maximum(ends, starts)
    return starts, ends, weights


def _before(spans, t: np.ndarray) -> np.ndarray:
    """Of disjoint sorted spans carrying weights spread evenly, the weight before each ``t``."""
    starts, ends, weights = spans
    if not len(starts):
        return np.zeros(len(t))
    cumulative = np.r_[0.0, np.cumsum(weights)]
    done = np.searchsorted(ends, t, side="right")  # spans wholly before t
    out = cumulative[done]
    partial = done < len(starts)
    i = done[partial]
    length = ends[i] - starts[i]
    inside = np.clip(t[partial] - starts[i], 0.0, None)
    fraction = np.divide(inside, length, out=np.zeros(len(i)), where=length > 0)
    out[partial] += weights[i] * np.minimum(fraction, 1.0)
    return out


def _within(spans, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """The spans' weight between each ``low`` and ``high`` (never negative)."""
    return np.maximum(_before(spans, high) - _before(spans, low), 0.0)


def _last_busy_end(busy, high: np.ndarray) -> np.ndarray:
    """Per window end ``high``: the last instant before it that the rank was busy (-inf if
    never): the end of the last span starting before it, cut at ``high``."""
    starts, ends, _ = busy
    if not len(starts):
        return np.full(len(high), -np.inf)
    last = np.searchsorted(starts, high, side="left") - 1
    out = np.full(len(high), -np.inf)
    some = last >= 0
    out[some] = np.minimum(ends[last[some]], high[some])
    return out
