"""Human-readable quantities: one ladder for bytes (B, KiB, ... TiB) and one for seconds
(s, ms, µs), used by the CLI's tables and the figures' axes alike."""

from __future__ import annotations

BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")
TIME_UNITS = ((1.0, "s"), (1e3, "ms"), (1e6, "µs"))


def byte_unit(largest: float) -> tuple[float, str]:
    """(factor, name): the binary unit that shows ``largest`` bytes as a number below 1024."""
    factor = 1.0
    for name in BYTE_UNITS:
        if abs(largest) < 1024 * factor or name == BYTE_UNITS[-1]:
            return factor, name
        factor *= 1024
    raise AssertionError("unreachable")


def time_scale(seconds: float) -> tuple[float, str]:
    """(factor, name): multiply ``seconds`` by ``factor`` to read it as a number >= 1 in the
    unit ``name`` (s, ms, or µs for anything shorter); 0 reads in seconds."""
    for factor, name in TIME_UNITS:
        if seconds == 0 or abs(seconds) * factor >= 1 or name == TIME_UNITS[-1][1]:
            return factor, name
    raise AssertionError("unreachable")


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'; exact bytes below 1 KiB."""
    factor, name = byte_unit(float(n))
    return f"{int(n)} B" if name == "B" else f"{n / factor:.1f} {name}"


def human_time(t: float, unit: str = "s") -> str:
    """A time or duration in a Timeline's unit, readable: ``27 units``, ``1.23 s``,
    ``12.3 ms``, ``45 µs`` (three significant digits). One formatter for the CLI and figures."""
    if unit != "s":
        return f"{t:.3g} {'units' if unit == 'unit' else unit}"
    factor, name = time_scale(t)
    return f"{t * factor:.3g} {name}"


# bytes with an optional decimal (kB ... TB) or binary (KiB ... TiB) unit, case-insensitive
BYTE_SUFFIXES = {"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12}
BYTE_SUFFIXES |= {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_bytes(text: str) -> float:
    """``80GiB``, ``2.5e9``, ``512 MB`` -> bytes; ValueError (the caller words the message)
    for anything else, a negative or a non-finite number."""
    number = str(text).strip()
    unit = ""
    while number and number[-1].isalpha():
        number, unit = number[:-1], number[-1] + unit
    value = float(number.strip())  # ValueError for junk
    if unit.lower() not in BYTE_SUFFIXES or not 0 <= value < float("inf"):
        raise ValueError(text)
    return value * BYTE_SUFFIXES[unit.lower()]
