"""What activation offload takes off the device and puts on the host, from the ``offload`` table.

Why here: the activation numbers of a rank (``stats.activation_levels``) follow its actions;
with offload, part of what the schedule stores is on the host at any moment, and that part is
a step function of time: it rises when an offload ends (the device frees the bytes) and falls
when a prefetch starts (the device takes them again). Subtracting it at each action's end gives
the stored activations on the device; subtracting its least value while an action runs bounds
the device's true peak during that action from above, exactly when nothing else changes.
"""

from __future__ import annotations

import numpy as np


def _steps(offload: dict[str, np.ndarray], ranks: int, up: str, down: str):
    """Per key ``replica * ranks + rank``: (times, running totals) of a step function that
    rises by a copy's bytes at the ``up`` end of each offload and falls at the ``down`` end of
    each prefetch (``"start"`` or ``"end"``)."""
    out_ = offload["kind"] == "offload"
    back = offload["kind"] == "prefetch"
    keys = offload["replica"].astype(np.int64) * ranks + offload["rank"]
    key = np.r_[keys[out_], keys[back]]
    time = np.r_[offload[up][out_], offload[down][back]]
    delta = np.r_[offload["bytes"][out_], -offload["bytes"][back]].astype(np.int64)
    order = np.lexsort((time, key))
    key, time, delta = key[order], time[order], delta[order]
    steps = {}
    for k in np.unique(key).tolist():
        mine = key == k
        times, totals = time[mine], np.cumsum(delta[mine])
        last = np.r_[times[1:] != times[:-1], True]  # the level once a time's changes are done
        steps[k] = (times[last], totals[last])
    return steps


def on_host(offload: dict[str, np.ndarray], ranks: int):
    """A function ``(keys, starts, ends) -> (at_end, least)`` for actions sorted by key and
    start: the bytes off the device when each action ends, and the least while it runs."""
    steps = _steps(offload, ranks, "end", "start")

    def levels(keys: np.ndarray, starts: np.ndarray, ends: np.ndarray):
        at_end = np.zeros(len(keys), dtype=np.int64)
        least = np.zeros(len(keys), dtype=np.int64)
        for k, (times, totals) in steps.items():
            mine = np.flatnonzero(keys == k)
            if not len(mine):
                continue
            padded = np.r_[0, totals]
            s, e = starts[mine], ends[mine]
            at_start = padded[np.searchsorted(times, s, side="right")]
            at_end[mine] = padded[np.searchsorted(times, e, side="right")]
            lo = np.searchsorted(times, s, side="right")
            hi = np.searchsorted(times, e, side="left")
            inside = np.r_[totals, np.iinfo(np.int64).max]
            bounds = np.empty(2 * len(mine), dtype=np.int64)
            bounds[0::2], bounds[1::2] = lo, np.maximum(hi, lo)
            lowest = np.minimum.reduceat(inside, bounds)[0::2]
            lowest = np.where(hi > lo, lowest, at_start)
            least[mine] = np.minimum(at_start, lowest)
        return at_end, least

    return levels


def host_peaks(offload: dict[str, np.ndarray], ranks: int) -> dict[int, int]:
    """Per rank (max over replicas), the most offloaded bytes its host holds at once: from
    each offload's start to its prefetch's end."""
    peaks = {r: 0 for r in range(ranks)}
    for k, (_, totals) in _steps(offload, ranks, "start", "end").items():
        rank = k % ranks
        peaks[rank] = max(peaks[rank], int(totals.max()) if len(totals) else 0)
    return peaks
