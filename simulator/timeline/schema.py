"""The one schema check for a Timeline read from JSON, and the guarded read of a JSON file.

Why one check, at load time: every summary, figure and cost profile trusts the Timeline. A
hand-edited or damaged file used to surface later as a KeyError, a ZeroDivisionError, a NaN
axis limit or, worse, a figure drawn from nonsense. ``Timeline.load`` / ``Timeline.from_dict``
run this check first, so a bad file is refused in one sentence that names the file, the field
and the value: ``runs/timeline.json: events[12] ends (0.5) before it starts (0.75).``
``Profile.load`` reads its file the same way and reuses the scalar checks.

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
here if a real run needs more.
"""

from __future__ import annotations

import json
import math
from operator import itemgetter

import numpy as np

from schedules.files import read_bounded
from simulator.errors import PebbleError
from simulator.timeline.kinds import PIPELINE_RULE, Flow
from simulator.timeline.rows import (
    ActionCpu,
    AllReduce,
    CacheChange,
    CommEvent,
    ComputeEvent,
    GradReady,
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
MAX_TIME = 1e12  # any time or duration, in the file's unit (sums of times stay finite)
MAX_BYTES = 1 << 50  # bytes of one transfer or one cache change (a PiB)
MAX_JSON_BYTES = 1 << 30  # size of a Timeline or profile file (a GiB)
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
}
# tables a file may leave out, written only when they have rows (a run that recomputed; a
# measured run, or a prediction with shared cores)
OPTIONAL_TABLES = ("recompute", "action_cpu")
_SHOW_CHARS = 40
_INT64 = 2**63


# ------------------------------------------------------------------ reading a JSON file
def where(source) -> str:
    """The name a message gives the input: the file's path, or "Timeline" for a dict."""
    text = str(source) if source is not None else "Timeline"
    return text if text.isprintable() else repr(text)


def read_json_object(path, what: str) -> dict:
    """The JSON object in the file (or pipe) ``path``, or one PebbleError sentence saying why
    not (missing, a directory or device, over MAX_JSON_BYTES, not UTF-8, not JSON, not an
    object)."""
    label = where(path)
    try:
        raw = read_bounded(
            path, label, what, MAX_JSON_BYTES, "MAX_JSON_BYTES in simulator/timeline/schema.py"
        )
    except FileNotFoundError:
        raise PebbleError(f"no {what} file at {label}.") from None
    except OSError as exc:
        raise PebbleError(f"cannot read {what} file {label} ({exc.strerror}).") from None
    data = parse_json(raw, label, what)
    if not isinstance(data, dict):
        raise PebbleError(
            f"{label} is not a {what} file (its JSON is {json_type(data)}, not an object)."
        )
    return data


def parse_json(raw: bytes, label: str, what: str):
    """Decode UTF-8 (a byte-order mark is skipped) and parse; one sentence on any failure."""
    bom = 3 if raw.startswith(b"\xef\xbb\xbf") else 0
    try:
        text = raw[bom:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = bom + exc.start
        utf16 = raw[:2] in (b"\xff\xfe", b"\xfe\xff")
        hint = "; it looks like UTF-16, save it as UTF-8" if utf16 else ""
        raise PebbleError(
            f"{label} is not a {what} file (byte 0x{raw[offset]:02x} at offset {offset} is not "
            f"UTF-8{hint})."
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise PebbleError(
            f"{label} is not a {what} file (not JSON: {exc.msg} at line {exc.lineno}, "
            f"column {exc.colno})."
        ) from None
    except RecursionError:
        raise PebbleError(f"{label} is not a {what} file (its JSON nests too deeply).") from None
    except ValueError as exc:  # an integer past Python's digit limit
        raise PebbleError(f"{label} is not a {what} file ({str(exc).split(';')[0]}).") from None


def json_type(value) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number")


# ------------------------------------------------------------------ scalar checks
def show(value) -> str:
    """A short, one-line rendering of a bad value for a message (JSON spelling)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= _INT64:
        return f"an integer of {value.bit_length()} bits"
    try:
        text = json.dumps(value, default=repr)
    except (ValueError, TypeError, RecursionError):
        text = type(value).__name__
    return text if len(text) <= _SHOW_CHARS else text[: _SHOW_CHARS - 3] + "..."


def integer(value, name: str, label: str, low: int, high: int, limit: str = "") -> int:
    """``value`` as an int in low..high; a float is accepted only if it has no fraction."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not is_number or (isinstance(value, float) and not value.is_integer()):
        raise PebbleError(f"{label}: {name} must be an integer, got {show(value)}.")
    if not low <= value <= high:
        raise PebbleError(f"{label}: {name} is {show(value)}, outside {low}..{high}{limit}.")
    return int(value)


def count(value, name: str, label: str, high: int, limit: str, optional: bool = False):
    """A count >= 1 (None allowed when ``optional``), at most the limit called ``limit``."""
    if value is None and optional:
        return None
    return integer(value, name, label, 1, high, f" ({limit})")


def real(value, name: str, label: str, low: float = 0.0, high: float = MAX_TIME) -> float:
    """``value`` as a finite float in low..high."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PebbleError(f"{label}: {name} must be a number, got {show(value)}.")
    if isinstance(value, float) and not math.isfinite(value):
        raise PebbleError(f"{label}: {name} is {show(value)}, not a finite number.")
    if not low <= value <= high:
        raise PebbleError(f"{label}: {name} is {show(value)}, outside {low:g}..{high:g}.")
    return float(value)


def text(value, name: str, label: str, choices: tuple[str, ...] | None = None) -> str:
    if not isinstance(value, str):
        raise PebbleError(f"{label}: {name} must be a string, got {show(value)}.")
    if choices is not None and value not in choices:
        raise PebbleError(f"{label}: {name} is {show(value)}, not one of {', '.join(choices)}.")
    return value


def boolean(value, name: str, label: str) -> bool:
    if not isinstance(value, bool):
        raise PebbleError(f"{label}: {name} must be true or false, got {show(value)}.")
    return value


def plain_list(value, name: str, label: str, limit: int, limit_name: str) -> list:
    """A list (null reads as empty) of at most ``limit`` entries."""
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise PebbleError(f"{label}: {name} must be a list, got {show(value)}.")
    if len(value) > limit:
        raise PebbleError(
            f"{label}: {name} has {len(value)} entries, over the limit of {limit} ({limit_name})."
        )
    return list(value)


def fields_of(row, name: str, label: str, required: tuple[str, ...], optional=()) -> dict:
    """``row`` as an object with every ``required`` key and nothing beyond ``optional``."""
    if not isinstance(row, dict):
        raise PebbleError(f"{label}: {name} must be an object, got {show(row)}.")
    for key in required:
        if key not in row:
            raise PebbleError(f"{label}: {name} has no {key!r} field.")
    for key in row:
        if key not in required and key not in optional:
            raise PebbleError(f"{label}: {name} has an unknown field {show(key)}.")
    return row


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
                _check_text(values, at, EVENT_KINDS if name in _ACTION_TABLES else COMM_KINDS)
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
        index = next(i for i, value in enumerate(values) if not -_INT64 <= value < _INT64)
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
