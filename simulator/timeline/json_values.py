"""Reading a JSON file without trusting it, and checking its values one at a time.

Why apart from the Timeline's check (``simulator.timeline.schema``): these pieces know nothing
of a Timeline. A guarded read (a regular file or pipe under ``MAX_JSON_BYTES``, UTF-8, JSON, an
object) and typed readers (an integer in a range, a finite number, a string among choices, a
list under a limit, an object with exactly its fields) that turn a bad value into one sentence
naming the file, the field and the value. The Timeline's meta and tables, and the cost
profile's file check, are all written with them.
"""

from __future__ import annotations

import json
import math

from schedules.files import read_bounded
from simulator.errors import PebbleError

MAX_TIME = 1e12  # any time or duration, in the file's unit (sums of times stay finite)
MAX_JSON_BYTES = 1 << 30  # size of a Timeline or profile file (a GiB)
INT64 = 2**63  # integers a check holds in an int64 column lie in -INT64..INT64-1
_SHOW_CHARS = 40


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
            path, label, what, MAX_JSON_BYTES, "MAX_JSON_BYTES in simulator/timeline/json_values.py"
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
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= INT64:
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
