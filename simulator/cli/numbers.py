"""The CLI's number flags (argparse types over ``simulator.numbers``) and strict JSON out.

Why here: the checks themselves live in ``simulator.numbers`` so the library refuses the same
values; this module only turns them into argparse types, and makes sure no NaN or Infinity is
ever printed as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable

from simulator.errors import PebbleError
from simulator.numbers import (  # noqa: F401 (the limits, re-exported for the flag types)
    MAX_BATCH_SIZE,
    MAX_CHUNKS,
    MAX_DP,
    MAX_LEARNING_RATE,
    MAX_MICROBATCHES,
    MAX_RANKS,
    MAX_RATE,
    MAX_RETRIES,
    MAX_STEP_TIMEOUT,
    MAX_STEPS,
    MAX_TIME,
    MAX_TP,
    MAX_WORKERS,
    SHOWN_CHARS,
    parse_float,
    parse_int,
)


def _argparse_type(parse: Callable[[str], object], name: str) -> Callable[[str], object]:
    """``parse`` as an argparse ``type=``: a PebbleError becomes argparse's usage error."""

    def convert(text: str):
        try:
            return parse(text)
        except PebbleError as exc:
            raise argparse.ArgumentTypeError(str(exc).rstrip(".")) from None

    convert.__name__ = name  # argparse names the type in some messages
    return convert


def count(maximum: int, limit: str, minimum: int = 1) -> Callable[[str], int]:
    """An argparse type for a bounded count, e.g. ``count(MAX_RANKS, "MAX_RANKS")``."""
    return _argparse_type(
        lambda text: parse_int(text, minimum=minimum, maximum=maximum, limit=limit), "count"
    )


def one_of(*words: str) -> Callable[[str], str]:
    """An argparse type for a flag that takes one of ``words`` (any case): one sentence
    otherwise, like every converted flag."""

    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in words:
            raise argparse.ArgumentTypeError(f"write {' or '.join(words)}, not {text[:20]!r}")
        return value

    parse.__name__ = "one of " + ", ".join(words)
    return parse


def real(
    minimum: float = 0.0,
    maximum: float = MAX_TIME,
    *,
    allow_minimum: bool = True,
    what: str = "a number",
) -> Callable[[str], float]:
    """An argparse type for a finite real in a range, e.g. ``real(0, MAX_TIME)``."""
    return _argparse_type(
        lambda text: parse_float(
            text, minimum=minimum, maximum=maximum, allow_minimum=allow_minimum, what=what
        ),
        "real",
    )


def _json_default(value):
    """numpy scalars and other number-likes as plain Python numbers."""
    if hasattr(value, "dtype") and getattr(value.dtype, "kind", "") in "iub":
        return int(value)
    return float(value)


def _first_non_finite(value, where: str = "") -> str | None:
    """Where in ``value`` the first NaN or infinity sits, e.g. ``per_rank[1].busy``."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (where or "the result")
    if isinstance(value, dict):
        items = ((f"{where}.{k}" if where else str(k), v) for k, v in value.items())
    elif isinstance(value, (list, tuple)):
        items = ((f"{where}[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    return next((found for k, v in items if (found := _first_non_finite(v, k))), None)


def strict_json(payload) -> str:
    """``payload`` as strict JSON (no NaN or Infinity); a non-finite number is a PebbleError
    that names where it is, since no JSON reader would accept it."""
    try:
        return json.dumps(payload, indent=None, default=_json_default, allow_nan=False)
    except ValueError:
        normal = json.loads(json.dumps(payload, default=_json_default))  # numpy -> Python
        where = _first_non_finite(normal) or "the result"
        raise PebbleError(
            f"the result is not a finite number at {where}, so it cannot be written as JSON; "
            "check the costs, hardware or profile that produced it."
        ) from None
