"""The ranges a prediction's numbers must stay in, checked where they are made.

Why: the analytic executor multiplies and adds what the user gave (``--costs F=1e308``, a
FLOP rate of 1e-320, a 10-million-token sequence) and fills numpy arrays with the results. An
int64 column wraps or refuses a Python integer past 2**63, and a float64 sum turns into
``inf`` and then ``nan``, which used to reach the text report, ``--out``'s timeline.json and
numpy's warnings. So every quantity is checked in a type that cannot wrap (Python integers, or
float64 checked finite) before it enters an array, and the run is refused in one sentence when
a number leaves the range a real machine could have:

* every time, from one action's to the whole run's, at most the Timeline's ``MAX_TIME`` (1e12
  seconds or units, what a timeline.json may hold), one action's checked before any is summed;
* one cache change or transfer at most the Timeline's ``MAX_BYTES`` (a PiB);
* what one rank holds at once at most ``MAX_MEMORY`` (an EiB): beyond any device.

The same limits are the ones ``Timeline.load`` checks, so whatever ``--out`` writes, ``plot``
and ``--profile`` read back.
"""

from __future__ import annotations

import numpy as np

from simulator.errors import PebbleError
from simulator.timeline.json_values import MAX_TIME
from simulator.timeline.meta import MAX_MEMORY, check_meta
from simulator.timeline.schema import MAX_BYTES
from simulator.units import human_bytes

_ADVICE = "check the costs, hardware or profile that priced it"


def _shown(value: float) -> str:
    """A time for a message: never the words inf or nan."""
    return f"{value:.3g}" if np.isfinite(value) else f"more than {np.finfo(float).max:.3g}"


def _unit(time_unit: str) -> str:
    return "s" if time_unit == "s" else "units"


def check_action_times(
    name: str, values: np.ndarray, time_unit: str, where=lambda index: ""
) -> None:
    """Every one of ``values`` (times of one action each, float64) finite, non-negative and
    at most ``MAX_TIME``, so a sum over a schedule's actions stays finite; ``where(i)`` names
    the i-th in the message."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return
    bad = ~np.isfinite(values) | (values < 0) | (values > MAX_TIME)
    if bad.any():
        index = int(np.argmax(bad))
        unit = _unit(time_unit)
        raise PebbleError(
            f"{name}{where(index)} would take {_shown(values[index])} {unit}, outside 0.."
            f"{MAX_TIME:g} {unit} (what a Timeline holds); {_ADVICE}."
        )


def check_plan(arrays, costs) -> None:
    """The priced plan (``PlanArrays``) and the cost model's scalars in range, before any time
    is summed."""
    names = [str(kind) for kind in arrays.kind_names]

    def action(index: int) -> str:
        kind = names[int(arrays.kind[index])]
        return f" {int(arrays.stage[index])}{kind}{int(arrays.microbatch[index])}"

    check_action_times("action", arrays.duration, costs.time_unit, action)
    for transfer in arrays.transfer:
        check_action_times("a transfer", transfer, costs.time_unit)
    scalars = {
        "the optimizer step": costs.optimizer_time,
        "a call's overhead": costs.call_overhead,
        "a send's overhead": costs.send_overhead,
        "a call's CPU": costs.call_cpu,
    }
    check_action_times(
        "the runtime",
        np.array(list(scalars.values())),
        costs.time_unit,
        lambda i: f" ({list(scalars)[i]})",
    )


def check_change_bytes(deltas: list[int], what: str = "one cache change") -> None:
    """Plain Python integers, each within +-``MAX_BYTES``, before they enter an int64 array."""
    if not deltas:
        return
    worst = max(deltas, key=abs)
    if abs(worst) > MAX_BYTES:
        raise PebbleError(
            f"{what} of this model would be {human_bytes(abs(worst))} for one microbatch, "
            f"beyond pebblesim's limit of {human_bytes(MAX_BYTES)} (MAX_BYTES: no device holds "
            "it); use a smaller sequence, hidden size or --batch-size."
        )


def check_result(timeline) -> None:
    """A finished prediction in range: every time finite and at most ``MAX_TIME``, what
    each rank holds at once at most ``MAX_MEMORY``, and its meta as ``Timeline.load`` would
    check it."""
    unit = _unit(timeline.meta.time_unit)
    for table in ("events", "comms", "optimizer", "allreduce", "cache", "grad_ready"):
        columns = getattr(timeline, table).columns()
        field = "time" if "time" in columns else "end"
        values = np.asarray(columns.get(field, ()), dtype=float)
        if values.size and not (np.isfinite(values).all() and values.max() <= MAX_TIME):
            worst = values.max() if np.isfinite(values).all() else np.inf
            raise PebbleError(
                f"the run would last {_shown(worst)} {unit}, beyond the {MAX_TIME:g} {unit} a "
                f"Timeline holds; {_ADVICE}."
            )
    _check_held(timeline)
    check_meta(timeline.meta.to_dict(), "the prediction")


def _check_held(timeline) -> None:
    """Per rank, the most bytes it holds at once (its activations at their peak, summed in
    float64 so a sum past int64 is seen, plus its parameters, gradients, optimizer state and
    buffers) at most ``MAX_MEMORY``."""
    cache = timeline.cache.columns()
    ranks = timeline.meta.ranks or 0
    peaks = np.zeros(max(ranks, 1))
    if len(cache.get("rank", ())):
        rank = np.asarray(cache["rank"], dtype=np.int64)
        order = np.argsort(rank, kind="stable")
        rank, deltas = rank[order], np.asarray(cache["bytes"], dtype=float)[order]
        running = np.cumsum(deltas)
        if not np.abs(running).max() < 2.0**62:
            raise PebbleError(
                f"the activations of this run would sum past {human_bytes(2**62)}, beyond what "
                "pebblesim counts; use a smaller model, sequence or --batch-size."
            )
        starts = np.flatnonzero(np.r_[True, rank[1:] != rank[:-1]])
        before = np.r_[0.0, running[starts[1:] - 1]]
        running -= np.repeat(before, np.diff(np.r_[starts, len(rank)]))
        present = rank[starts]
        peaks = np.zeros(max(ranks, int(present.max()) + 1))
        peaks[present] = np.maximum(np.maximum.reduceat(running, starts), 0.0)
    for r, memory in enumerate(timeline.meta.rank_memory):
        if r < len(peaks):
            peaks[r] += float(memory.total)
    if peaks.size and peaks.max() > MAX_MEMORY:
        r = int(np.argmax(peaks))
        raise PebbleError(
            f"rank {r} would hold {human_bytes(peaks[r])} at once, beyond pebblesim's limit "
            f"of {human_bytes(MAX_MEMORY)} per rank (MAX_MEMORY: no device holds it); use a "
            "smaller model, sequence or --batch-size, or more ranks."
        )
