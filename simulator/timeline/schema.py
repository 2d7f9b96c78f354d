"""The one schema check for a Timeline read from JSON: its limits and its tables, column-wise.

Why one check, at load time: every summary, figure and cost profile trusts the Timeline. A
hand-edited or damaged file used to surface later as a KeyError, a ZeroDivisionError, a NaN
axis limit or, worse, a figure drawn from nonsense. ``Timeline.load`` / ``Timeline.from_dict``
run this check first, so a bad file is refused in one sentence that names the file, the field
and the value: ``runs/timeline.json: events[12] ends (0.5) before it starts (0.75).``
The file is read, and the meta's scalars checked, by ``simulator.timeline.json_values``, which
the cost profile's load and check use too.

What a Timeline (schema version 1, see ``simulator.timeline``) must satisfy:

* ``meta``: ranks, microbatches, chunks, stages, steps and dp are integers >= 1 (ranks,
  microbatches and stages may be null: "as the rows show") within the limits below;
  ``microbatch_rows`` >= 0; ``time_unit`` is "s" or "unit"; ``stage_to_rank`` has one rank in
  0..ranks-1 per stage; ``layers`` have unique indices and a stage and rank in range.
* every row of every table: all fields present (``replica`` may be left out, it is 0), no
  unknown field; integers are integers (not booleans, not fractions); times are finite and in
  0..MAX_TIME with ``start <= end``; ranks, stages, microbatches, steps and replicas within
  meta's counts (within the limit below when a legacy meta leaves a count out); layers among
  ``meta.layers``; event kinds are the dependency rule's, comm kinds "activation"/"gradient".

The checks run column-wise with numpy, so a half-million-event file validates in a fraction of
a second. The limits bound what a file may make pebblesim allocate (per rank, stage, step, ...);
they match the CLI's (``simulator.cli.numbers``), which this layer may not import. Raise a limit
here (the time and file-size limits: in ``json_values``) if a real run needs more.
"""

from __future__ import annotations

from operator import itemgetter

import numpy as np

from simulator.errors import PebbleError
from simulator.timeline.json_values import INT64, MAX_TIME, show
from simulator.timeline.kinds import PIPELINE_RULE, Flow
from simulator.timeline.rows import (
    ActionCpu,
    AllReduce,
    CacheChange,
    CommEvent,
    ComputeEvent,
    GradReady,
    OffloadSpan,
    OptimizerStep,
    RecomputeSpan,
)

MAX_RANKS = 100_000  # pipeline ranks (per-rank arrays are allocated from meta.ranks)
MAX_MICROBATCHES = 1_000_000  # microbatches per step
MAX_CHUNKS = 64  # stages per rank
MAX_STAGES = 1_000_000  # stages in all (stage_to_rank has one entry each)
MAX_STEPS = 100_000  # optimizer steps
MAX_DP = 1024  # data-parallel replicas
MAX_LAYERS = 1_000_000  # model layers (meta.layers has one entry each)
MAX_MICROBATCH_ROWS = 100_000_000  # rows of one microbatch
MAX_BYTES = 1 << 50  # bytes of one transfer or one cache change (a PiB)
MAX_MEMORY = 1 << 60  # bytes one rank holds at once (an exabyte; meta's MAX_MEMORY too)
TIME_UNITS = ("s", "unit")
EVENT_KINDS = tuple(PIPELINE_RULE.kinds)
COMM_KINDS = tuple(flow.value for flow in Flow)

TABLES = {
    "events": ComputeEvent,
    "comms": CommEvent,
    "cache": CacheChange,
    "grad_ready": GradReady,
    "allreduce": AllReduce,
    "optimizer": OptimizerStep,
    "recompute": RecomputeSpan,
    "action_cpu": ActionCpu,
    "offload": OffloadSpan,
}
# tables a file may leave out, written only when they have rows (a run that recomputed; a
# measured run, or a prediction with shared cores)
OPTIONAL_TABLES = ("recompute", "action_cpu", "offload")
OFFLOAD_KINDS = ("offload", "prefetch", "wait")  # the ``offload`` table's kinds


# ------------------------------------------------------------------ the tables, column-wise
def row_bounds(meta, given) -> dict[str, tuple]:
    """(low, high, why) per integer domain of the rows, from meta's counts; a count that meta
    leaves out (a legacy file) is bounded by its limit instead."""

    def upto(field: str, limit: int, limit_name: str) -> tuple:
        value = getattr(meta, field)
        if field in given and value is not None:
            return (0, value - 1, f"meta.{field} is {value}")
        return (0, limit - 1, f"the limit {limit_name} is {limit}")

    return {
        "rank": upto("ranks", MAX_RANKS, "MAX_RANKS"),
        "stage": upto("stages", MAX_STAGES, "MAX_STAGES"),
        "microbatch": upto("microbatches", MAX_MICROBATCHES, "MAX_MICROBATCHES"),
        "step": upto("steps", MAX_STEPS, "MAX_STEPS"),
        "replica": upto("dp", MAX_DP, "MAX_DP"),
        "layer": (0, MAX_LAYERS - 1, f"the limit MAX_LAYERS is {MAX_LAYERS}"),
    }


_DOMAIN = {"src_rank": "rank", "dst_rank": "rank", "start": "time", "end": "time"}
_REAL_FIELDS = {"start", "end", "time", "cpu"}
_ACTION_TABLES = {"events", "action_cpu"}  # tables whose kind is an action's


def check_tables(data: dict, meta, given, label: str) -> dict[str, dict[str, np.ndarray]]:
    """Every table of ``data`` checked against ``meta``: one dict of numpy columns per table."""
    bounds = row_bounds(meta, given)
    layers = np.array(sorted(layer.index for layer in meta.layers), dtype=np.int64)
    out = {}
    for name, row_type in TABLES.items():
        rows = data.get(name)
        if rows is None:
            rows = []
        if not isinstance(rows, list):
            raise PebbleError(f"{label}: {name} must be a list of rows, got {show(rows)}.")
        columns = _columns(name, rows, row_type, label)
        for field, values in columns.items():
            at = _Where(label, name, field)
            domain = _DOMAIN.get(field, field)
            if field == "kind":
                kinds = EVENT_KINDS if name in _ACTION_TABLES else COMM_KINDS
                _check_text(values, at, OFFLOAD_KINDS if name == "offload" else kinds)
            elif field in _REAL_FIELDS:
                columns[field] = _check_reals(values, at)
            elif field == "bytes":
                low = -MAX_BYTES if name == "cache" else 0
                columns[field] = _check_ints(values, at, (low, MAX_BYTES, "the limit MAX_BYTES"))
            else:
                columns[field] = _check_ints(values, at, bounds[domain])
                if domain == "layer" and len(layers):
                    _check_layers(columns[field], layers, at)
        if "start" in columns:
            _check_spans(columns, label, name)
        if name == "cache":
            _check_holdings(columns, label)
        if "kind" in columns:
            columns["kind"] = np.array(columns["kind"], dtype=str)
        out[name] = columns
    return out


class _Where:
    """Names a cell in messages: ``label: events[12].rank``."""

    def __init__(self, label: str, table: str, field: str) -> None:
        self.label, self.table, self.field = label, table, field

    def error(self, index: int, problem: str) -> PebbleError:
        return PebbleError(f"{self.label}: {self.table}[{index}].{self.field} {problem}.")


def _columns(name: str, rows: list, row_type, label: str) -> dict[str, list]:
    """One list per field; every row an object with exactly the row type's fields (a field
    with a default, like ``replica``, may be left out)."""
    if set(map(type, rows)) - {dict}:
        index = next(i for i, row in enumerate(rows) if type(row) is not dict)
        raise PebbleError(f"{label}: {name}[{index}] must be an object, got {show(rows[index])}.")
    defaults = row_type._field_defaults
    columns, present = {}, 0
    for field in row_type._fields:
        try:
            columns[field] = list(map(itemgetter(field), rows))
            present += len(rows)
            continue
        except KeyError:
            if field not in defaults:
                index = next(i for i, row in enumerate(rows) if field not in row)
                raise PebbleError(f"{label}: {name}[{index}] has no {field!r} field.") from None
        columns[field] = [row.get(field, defaults[field]) for row in rows]
        present += sum(field in row for row in rows)
    if sum(map(len, rows)) != present:
        known = set(row_type._fields)
        index, row = next((i, row) for i, row in enumerate(rows) if set(row) - known)
        extra = sorted(set(row) - known)[0]
        raise PebbleError(f"{label}: {name}[{index}] has an unknown field {show(extra)}.")
    return columns


def _first(mask: np.ndarray) -> int | None:
    return int(np.argmax(mask)) if mask.any() else None


def _check_ints(values: list, at: _Where, bounds: tuple) -> np.ndarray:
    low, high, why = bounds
    if set(map(type, values)) - {int}:
        for index, value in enumerate(values):
            if type(value) is not int and not (type(value) is float and value.is_integer()):
                raise at.error(index, f"must be an integer, got {show(value)}")
        values = [int(value) for value in values]
    try:
        array = np.fromiter(values, np.int64, len(values))
    except OverflowError:
        index = next(i for i, value in enumerate(values) if not -INT64 <= value < INT64)
        raise at.error(index, f"is {show(values[index])}, outside {low}..{high} ({why})") from None
    bad = _first((array < low) | (array > high))
    if bad is not None:
        raise at.error(bad, f"is {array[bad]}, outside {low}..{high} ({why})")
    return array


def _check_reals(values: list, at: _Where) -> np.ndarray:
    if set(map(type, values)) - {int, float}:
        index = next(i for i, v in enumerate(values) if type(v) not in (int, float))
        raise at.error(index, f"must be a number, got {show(values[index])}")
    try:
        array = np.fromiter(values, np.float64, len(values))
    except OverflowError:
        index = next(i for i, v in enumerate(values) if type(v) is int and abs(v) > MAX_TIME)
        raise at.error(index, f"is {show(values[index])}, outside 0..{MAX_TIME:g}") from None
    bad = _first(~np.isfinite(array))
    if bad is not None:
        raise at.error(bad, f"is {show(values[bad])}, not a finite number")
    bad = _first((array < 0) | (array > MAX_TIME))
    if bad is not None:
        raise at.error(bad, f"is {show(values[bad])}, outside 0..{MAX_TIME:g} (times start at 0)")
    return array


def _check_text(values: list, at: _Where, choices: tuple[str, ...]) -> None:
    if set(map(type, values)) - {str} or set(values) - set(choices):
        index = next(i for i, v in enumerate(values) if type(v) is not str or v not in choices)
        raise at.error(index, f"is {show(values[index])}, not one of {', '.join(choices)}")


def _check_layers(array: np.ndarray, layers: np.ndarray, at: _Where) -> None:
    bad = _first(~np.isin(array, layers))
    if bad is not None:
        raise at.error(bad, f"is {array[bad]}, not a layer of meta.layers")


def _check_spans(columns: dict, label: str, name: str) -> None:
    start, end = columns["start"], columns["end"]
    bad = _first(end < start)
    if bad is not None:
        raise PebbleError(
            f"{label}: {name}[{bad}] ends ({show(float(end[bad]))}) before it starts "
            f"({show(float(start[bad]))})."
        )


def _check_holdings(columns: dict, label: str) -> None:
    """What each rank (of each replica) holds, its cache changes summed in time order (file
    order among equal times), never below 0 bytes nor above ``MAX_MEMORY`` (an exabyte): a rank
    cannot free bytes it does not hold (a plot drew -1e15 bytes), and a sum past int64 would
    wrap in the summaries. The sums run in float64 first, and exactly in int64 only where the
    float64 ones show that they cannot wrap."""
    deltas = columns["bytes"]
    if len(deltas) == 0:
        return
    keys = columns["replica"].astype(np.int64) * (int(columns["rank"].max()) + 1) + columns["rank"]
    order = np.lexsort((np.arange(len(keys)), columns["time"], keys))
    keys, deltas = keys[order], deltas[order]
    rough = np.cumsum(deltas.astype(np.float64))
    held = np.cumsum(deltas) if np.abs(rough).max() < 2.0**62 else rough
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    held = held - np.repeat(np.r_[0, held[starts[1:] - 1]], np.diff(np.r_[starts, len(keys)]))
    above = "leaves its rank holding {:.3g} bytes, above MAX_MEMORY (" + f"{MAX_MEMORY:.3g})"
    for bad, problem in (
        (_first(held > MAX_MEMORY), above),
        (
            _first(held < 0),
            "leaves its rank holding {:.0f} bytes, below 0 (it frees more than was cached)",
        ),
    ):
        if bad is not None:
            row = int(order[bad])
            raise PebbleError(f"{label}: cache[{row}].bytes {problem.format(float(held[bad]))}.")
