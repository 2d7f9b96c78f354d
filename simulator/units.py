"""Human-readable quantities: bytes in KiB/MiB/GiB, times in the run's unit."""

from __future__ import annotations


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'; exact bytes below 1 KiB."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_time(t: float, unit: str = "s") -> str:
    """A time or duration in a Timeline's unit, readable: ``27 units``, ``1.23 s``,
    ``12.3 ms``, ``45 µs`` (three significant digits). One formatter for the CLI and figures."""
    if unit != "s":
        return f"{t:.3g} {'units' if unit == 'unit' else unit}"
    for factor, name in ((1.0, "s"), (1e3, "ms"), (1e6, "µs")):
        if t == 0 or abs(t) * factor >= 1 or name == "µs":
            return f"{t * factor:.3g} {name}"
    raise AssertionError("unreachable")
