"""A closed-form lower bound on a configuration's step time, from its stage tables alone: what
lets ``advise`` skip a configuration that cannot enter the top k without simulating it.

The bound is *valid*: never above what the analytic executor then predicts (the tests compare
them on every family). So a configuration whose time bound exceeds the k-th best time found so
far cannot enter the top k.

For every rank r with lowest stage ``lo`` and highest ``hi`` (each a lower bound, the largest
wins; the stage tables are ``stage_tables``'):

* ``head + busy + tail``: nothing runs on r before the first microbatch's forward reaches
  ``lo`` (head = the F's and transfers of the stages before it); then r works ``m`` times the
  F + I + W of its stages, one action at a time; with an unsplit backward its last action is a B
  whose gradient still has to travel down to stage 0 (tail = the B's below ``lo``). For 1F1B on
  equal stages this is ``(m + p - 1)(F + B)``, the textbook bubble.
* ``round trip + backward work``: no backward runs on r before a microbatch went all the way
  forward and back down to ``hi``; then r does all its I + W.
* ``... + all-reduce``: with ``dp > 1`` a layer's gradient is summed over the replicas only once
  complete, at the earliest inside the m-th backward of its stage (after the round trip and
  m - 1 whole backwards); r's all-reduces then run one at a time.
* naive runs one microbatch at a time: ``m`` round trips.
* on the roofline (a preset) the links are the ones its costs use (the neighbour stage and the
  data group inside a node or over the network); with the reduction after the backward
  (Megatron's default) a rank's all-reduces start when its last action ends; and every step
  ends with the optimizer step of the fullest rank, added to the largest of the above.

* auto under its activation budget ``L`` on a rank (what the rank's static memory leaves of the
  limit on its whole memory, ``total:``): a microbatch holds at least stage s's forward bytes
  ``f_s`` on s's rank from the start of its forward there to the end of its input-gradient
  backward there, at least the round trip ``R_s`` (the forwards from s to the last stage and
  the input-gradient backwards back to s, with their transfers). Auto keeps every rank's
  running total within ``L`` in its order, so at most ``k = floor(L / f_s)`` of these spans
  overlap at any time: the m spans fall into k chains of disjoint ones, and the step lasts at
  least ``ceil(m / k) R_s``. Summed over a rank's stages (the bytes it holds over time), at
  least ``m sum_s f_s R_s / L``. Loose budgets (k >= m) add nothing; tight ones, where auto
  runs a few microbatches at a time, are priced before their schedules are built.

Offload only delays a backward (its prefetch), so the time bound of a configuration with
activation offload is the same configuration's without offload.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from simulator.analytic.advise.families import FamilyTraits
from simulator.analytic.advise.memory_bounds import static_bytes
from simulator.analytic.advise.placement import stage_to_rank, stages_of_ranks
from simulator.analytic.advise.space import Candidate
from simulator.analytic.advise.stage_tables import StageTable
from simulator.analytic.costs import Hardware
from simulator.analytic.roofline_costs import device_of, link_of, ring_time

BUDGET_SLACK = 1e-9  # relative: auto's own check allows 1e-12 over its budget; never tighter


@dataclass(frozen=True)
class Links:
    """The links a configuration's step uses, as the executor's costs price them: stage to
    stage (latency, bandwidth), the data-parallel reduction's bandwidth, whether it overlaps
    the backward, and the optimizer step's seconds (0 when not known)."""

    latency: float
    bandwidth: float
    reduce_bandwidth: float
    overlap: bool = True
    optimizer: float = 0.0


def links_of(c: Candidate, table: StageTable, hardware: Hardware, owner) -> Links:
    """On the roofline (a preset), the links ``roofline_costs`` gives this layout: the
    neighbour stage ``t * c * d + 1`` ranks away, the data group spanning ``t * c * d``, inside
    a node or over the network, and the optimizer step of the fullest rank (Adam over its
    shard, then the all-gather of the updated weights). Otherwise the fastest link, with the
    reduction overlapped and no optimizer time: lower bounds on any."""
    preset = hardware.preset
    if preset is None:
        return Links(table.latency, table.bandwidth, hardware.link_bandwidth)
    inner = c.tp * c.cp
    bandwidth, latency = link_of(preset, inner * c.dp + 1)
    reduce_bandwidth, reduce_latency = link_of(preset, inner * c.dp)
    per_rank = [0] * c.pp
    for s, r in enumerate(owner):
        per_rank[r] += table.params[s]
    params = max(per_rank)
    shards = c.layout.gradient_replicas if c.layout.sharding >= 1 else 1
    recipe = table.recipe
    optimizer = device_of(preset).memory_time(2 * params / shards * recipe.total)
    if c.layout.sharding <= 2:  # z3 keeps the weights sharded (``roofline_costs``)
        optimizer += ring_time(
            params * recipe.weights, shards, reduce_bandwidth, reduce_latency, 1.0
        )
    if any(table.experts):  # routed experts' state is sharded its own way: not counted
        optimizer = 0.0
    return Links(latency, bandwidth, reduce_bandwidth, bool(preset.dp_overlap), optimizer)


def _transfers(links: Links, table, owner: tuple[int, ...], rows: int) -> list[float]:
    """Seconds to move stage s's output to stage s + 1 (0 on the same rank, and after the last)."""
    out = []
    for s in range(len(owner)):
        crosses = s + 1 < len(owner) and owner[s] != owner[s + 1]
        size = table.sends[s] * rows
        out.append(links.latency + (size / links.bandwidth if size else 0.0) if crosses else 0.0)
    return out


def time_bound(c: Candidate, traits: FamilyTraits, table: StageTable, hardware: Hardware) -> float:
    """A lower bound on ``c``'s step time in seconds (see the module docstring)."""
    owner = stage_to_rank(traits, c.pp, c.chunks)
    rows, m, n = c.microbatch_size, c.microbatches, len(owner)
    F = [f * rows for f in table.F]
    I = [i * rows for i in table.I]
    W = [w * rows for w in table.W]
    links = links_of(c, table, hardware, owner)
    x = _transfers(links, table, owner, rows)
    reach = [0.0] * (n + 1)  # reach[s]: F's and transfers of the stages before s
    below = [0.0] * (n + 1)  # below[s]: B's and transfers of the stages before s
    for s in range(n):
        reach[s + 1] = reach[s] + F[s] + x[s]
        below[s + 1] = below[s] + I[s] + W[s] + x[s]
    back = [0.0] * (n + 1)  # back[s]: gradient from the last stage down to stage s's input
    for s in range(n - 1, 0, -1):
        back[s - 1] = back[s] + I[s] + x[s - 1]
    replicas = c.layout.gradient_replicas
    gradient = table.recipe.gradients if hardware.preset is not None else table.itemsize
    factor = 2.0 if c.layout.sharding == 0 else 1.0  # z1 reduce-scatters (STEP_REDUCE_FACTOR)
    ring = factor * (replicas - 1) / replicas * gradient / links.reduce_bandwidth
    # the all-reduce term only where the executor's reduction is the plain ring over every
    # parameter: no routed experts (reduced over fewer ranks) and no z2/z3 (reduce-scatters)
    reduces = replicas > 1 and c.layout.sharding <= 1 and not any(x for x in table.experts)
    best = m * (reach[n] + below[n]) if traits.name == "naive" else 0.0
    for mine in stages_of_ranks(traits, c.pp, c.chunks):
        lo, hi = mine[0], mine[-1]
        backward = m * sum(I[s] + W[s] for s in mine)
        busy = m * sum(F[s] for s in mine) + backward
        tail = 0.0 if traits.split else below[lo]
        trip = reach[n] + back[hi]
        best = max(best, reach[lo] + busy + tail, trip + backward)
        if reduces:
            reduce = ring * sum(table.params[s] for s in mine)
            if links.overlap:
                # a gradient can be complete inside the m-th backward, after m - 1 whole ones
                first = trip + (m - 1) * min(I[s] + W[s] for s in mine)
            else:  # the rank's reductions start when its last action ends
                first = max(reach[lo] + busy, trip + backward)
            best = max(best, first + reduce)
    if c.auto_memory is not None and traits.layout == "chunks":
        forward = [table.cached[s] * rows for s in range(n)]
        trips = [reach[n] - reach[s] + back[s] + I[s] for s in range(n)]
        budgets = [c.auto_memory - held for held in static_bytes(c, traits, table)]
        ranks = stages_of_ranks(traits, c.pp, c.chunks)
        best = max(best, _budget_bound(c, forward, trips, ranks, budgets))
    return best + links.optimizer


def _budget_bound(
    c: Candidate, forward: list[int], trips: list[float], ranks, budgets: list[int]
) -> float:
    """Auto's step under its activation budgets, at least (see the module docstring):
    ``forward[s]`` the bytes a forward of stage s holds until its input-gradient backward,
    ``trips[s]`` the shortest time from one's start to the other's end, ``budgets[r]`` what
    rank r's static memory leaves of the limit on its whole memory."""
    best = 0.0
    for mine, left in zip(ranks, budgets, strict=True):
        budget = left * (1 + BUDGET_SLACK)
        for s in mine:
            at_once = math.floor(budget / forward[s]) if forward[s] > 0 else c.microbatches
            if at_once >= 1:  # else auto refuses the budget: no bound
                best = max(best, math.ceil(c.microbatches / at_once) * trips[s])
        if budget > 0:
            held = sum(forward[s] * trips[s] for s in mine)
            best = max(best, c.microbatches * held / budget)
    return best
