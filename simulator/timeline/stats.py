"""Summary statistics of a Timeline, computed on its columns with numpy.

Why numpy: a predicted run at p=128, m=1024 has half a million events and a million cache
changes; the summary must stay a small fraction of the simulation's own cost.
"""

from __future__ import annotations

import numpy as np

from simulator.timeline.kinds import PIPELINE_RULE, DependencyRule, backward_kinds, forward_kinds


def running_peaks(keys: np.ndarray, deltas: np.ndarray, groups: int) -> np.ndarray:
    """Per group ``0..groups-1``: the highest running total of ``deltas`` taken in order within
    the group (0 if the total never rises above 0)."""
    peaks = np.zeros(groups, dtype=np.int64)
    if len(keys) == 0:
        return peaks
    order = np.argsort(keys, kind="stable")
    keys, deltas = keys[order], deltas[order].astype(np.int64)
    running = np.cumsum(deltas)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    before = np.r_[0, running[starts[1:] - 1]]
    running -= np.repeat(before, np.diff(np.r_[starts, len(keys)]))
    group_max = np.maximum.reduceat(running, starts)
    present = keys[starts]
    inside = (present >= 0) & (present < groups)
    peaks[present[inside]] = np.maximum(group_max[inside], 0)
    return peaks


def peak_activation_bytes(cache: dict[str, np.ndarray], ranks: int) -> dict[int, int]:
    """Per rank, the most cached bytes held at once (max over replicas)."""
    if len(cache["rank"]) == 0:
        return {r: 0 for r in range(ranks)}
    replicas = int(cache["replica"].max()) + 1
    keys = cache["replica"].astype(np.int64) * ranks + cache["rank"]
    per_key = running_peaks(keys, cache["bytes"], replicas * ranks).reshape(replicas, ranks)
    return {r: int(v) for r, v in enumerate(per_key.max(axis=0))}


def peak_inflight(
    events: dict[str, np.ndarray], ranks: int, rule: DependencyRule = PIPELINE_RULE
) -> dict[int, int]:
    """Per rank, most microbatches whose forward there has run and whose last backward (B, I or
    W: the rule's ``forward_kinds`` and ``backward_kinds``, over all the rank's stages) has
    not, per step; replica 0, ties in execution order."""
    peak = {r: 0 for r in range(ranks)}
    keep = events["replica"] == 0
    if not keep.any():
        return peak
    rank, start = events["rank"][keep], events["start"][keep]
    kind, step, mb = events["kind"][keep], events["step"][keep], events["microbatch"][keep]
    order = np.lexsort((start, rank))  # stable
    rank, kind, step, mb = rank[order], kind[order], step[order], mb[order]
    code = (rank.astype(np.int64) * (int(step.max()) + 1) + step) * (int(mb.max()) + 1) + mb
    delta = np.zeros(len(code), dtype=np.int64)
    forward = np.flatnonzero(np.isin(kind, forward_kinds(rule)))
    _, first = np.unique(code[forward], return_index=True)
    delta[forward[first]] += 1
    backward = np.flatnonzero(np.isin(kind, backward_kinds(rule)))
    if len(backward):
        reversed_codes = code[backward][::-1]
        keys, last_reversed = np.unique(reversed_codes, return_index=True)
        last = backward[len(backward) - 1 - last_reversed]
        opened = np.isin(keys, code[forward])  # only a microbatch that went in can go out
        delta[last[opened]] -= 1
    for r, value in enumerate(running_peaks(rank.astype(np.int64), delta, ranks)):
        peak[r] = int(value)
    return peak


def busy_per_rank(events: dict[str, np.ndarray], ranks: int) -> dict[int, float]:
    keep = events["replica"] == 0
    busy = np.bincount(
        events["rank"][keep],
        weights=(events["end"][keep] - events["start"][keep]).astype(float),
        minlength=ranks,
    )
    return {r: float(busy[r]) for r in range(ranks)}


def step_ends(events: dict[str, np.ndarray], optimizer: dict[str, np.ndarray]) -> dict[int, float]:
    """Per step, the latest end of its actions and optimizer step."""
    ends: dict[int, float] = {}
    for table in (events, optimizer):
        if len(table["step"]) == 0:
            continue
        steps = table["step"].astype(np.int64)
        latest = np.full(int(steps.max()) + 1, -np.inf)
        np.maximum.at(latest, steps, table["end"].astype(float))
        for s in np.unique(steps).tolist():
            ends[s] = max(ends.get(s, 0.0), float(latest[s]))
    return ends


def activation_levels(
    events: dict[str, np.ndarray], ranks: int, action_memory, on_host=None
) -> tuple[dict[int, int], dict[int, int]]:
    """Per rank (max over replicas): (stored activations, true peak).

    Each action changes its rank's stored activations by its (stage, kind)'s ``held`` and,
    while it runs, holds up to ``peak`` above the level it started from (``ActionMemory``).
    Taken in each rank's run order, the levels between actions are what the schedule stores
    (what published formulas count); the highest start level plus ``peak`` is the true peak,
    gradient buffers and recomputation included. ``on_host`` (activation offload:
    ``offload_levels.on_host``) gives what is off the device at each action's end and the least
    while it runs; the numbers are then the device's."""
    stored = {r: 0 for r in range(ranks)}
    true = dict(stored)
    if len(events["rank"]) == 0 or not action_memory:
        return stored, true
    table = {(entry.stage, entry.kind): (entry.held, entry.peak) for entry in action_memory}
    pairs = list(zip(events["stage"].tolist(), events["kind"].tolist(), strict=True))
    held = np.array([table.get(pair, (0, 0))[0] for pair in pairs], dtype=np.int64)
    peak = np.array([table.get(pair, (0, 0))[1] for pair in pairs], dtype=np.int64)
    keys = events["replica"].astype(np.int64) * ranks + events["rank"]
    order = np.lexsort((events["start"], keys))
    keys, held, peak = keys[order], held[order], peak[order]
    after = np.cumsum(held)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    offset = np.r_[0, after[starts[1:] - 1]]
    after -= np.repeat(offset, np.diff(np.r_[starts, len(keys)]))
    before = after - held
    during = before + peak
    if on_host is not None:
        at_end, least = on_host(keys, events["start"][order], events["end"][order])
        after, during = after - at_end, during - least
    top_stored = np.maximum.reduceat(np.maximum(after, 0), starts)
    top_true = np.maximum.reduceat(during, starts)
    for key, s, t in zip(
        keys[starts].tolist(), top_stored.tolist(), top_true.tolist(), strict=True
    ):
        rank = key % ranks
        stored[rank] = max(stored[rank], int(s))
        true[rank] = max(true[rank], int(t), int(s))
    return stored, true
