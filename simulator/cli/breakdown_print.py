"""The step-time breakdown as the text summary prints it.

Why its own module: the summary's tables each have a job; this one answers "where does a step
go on each rank" from ``summary_dict``'s ``breakdown`` list. Up to ``MAX_RANKS_LISTED`` ranks it
is one row a rank; a bigger run prints the fullest rank (the most compute), the emptiest (the
most pipeline wait) and every rank's total, so 128 ranks stay a few lines.
"""

from __future__ import annotations

from simulator.timeline.breakdown import PARTS
from simulator.units import human_time

MAX_RANKS_LISTED = 16
HEADINGS = {
    "compute": "compute",
    "recompute": "recompute",
    "tensor_comm": "TP comm",
    "offload_wait": "copy wait",
    "pipeline_wait": "pipe wait",
    "data_comm": "DP comm",
    "optimizer": "optimizer",
}
NOTE = (
    "mean per step (--json has the times); TP comm: exposed tensor-parallel communication\n"
    "(and context parallelism's K/V exchange, expert parallelism's all-to-all); DP comm:\n"
    "exposed data-parallel communication; pipe wait: the bubble"
)


def breakdown_lines(data: dict) -> list[str]:
    """The breakdown table of ``summary_dict``'s data (nothing when the run has no steps)."""
    rows = data.get("breakdown") or []
    if not rows:
        return []
    unit = data["time_unit"]
    parts = _shown_parts(rows)
    header = f"{'rank':>10}  {'step':>10}" + "".join(f"  {HEADINGS[p]:>9}" for p in parts)
    lines = ["", "where each step goes (share of the step time):", header, "-" * len(header)]
    if len(rows) <= MAX_RANKS_LISTED:
        shown = [(str(r["rank"]), r) for r in rows]
    else:
        fullest = max(rows, key=lambda r: r["compute"])
        emptiest = max(rows, key=lambda r: r["pipeline_wait"])
        shown = [
            (f"{fullest['rank']} busiest", fullest),
            (f"{emptiest['rank']} idlest", emptiest),
        ]
    totals = {p: sum(r.get(p, 0.0) for r in rows) for p in PARTS}
    totals["step_time"] = sum(r["step_time"] for r in rows)
    for label, row in [*shown, ("all", totals)]:
        lines.append(f"{label:>10}  {human_time(row['step_time'], unit):>10}" + _cells(row, parts))
    lines.append(NOTE + ("; all: every rank's time together" if len(rows) > 1 else ""))
    if "offload_wait" in parts:
        lines.append("copy wait: backwards held back for their offloaded activations' prefetch")
    if len(rows) > MAX_RANKS_LISTED:
        lines.append(f"{len(rows)} ranks: the busiest (most compute) and the idlest shown")
    return lines


def _shown_parts(rows: list[dict]) -> tuple[str, ...]:
    """Every part, except exposed offload transfer where no rank waited for a copy (a run
    without offload)."""
    if any(r.get("offload_wait", 0.0) > 0 for r in rows):
        return PARTS
    return tuple(p for p in PARTS if p != "offload_wait")


def _cells(row: dict, parts: tuple[str, ...]) -> str:
    """Each part as its share of the row's step time (``--json`` has the times)."""
    whole = row["step_time"]
    shares = [100 * row[part] / whole if whole > 0 else 0.0 for part in parts]
    return "".join(f"  {f'{share:.1f}%':>9}" for share in shares)
