"""What ``pebblesim advise`` prints: the ranked table, the reproducing commands, the search's
counts, the ``--json`` payload and the Pareto figure's points."""

from __future__ import annotations

import shlex

from simulator.analytic.advise import AUTO, Candidate, RunText, chunks_flag
from simulator.analytic.advise.evaluate import limit_text
from simulator.analytic.auto_plan import TOTAL
from simulator.cli.layout_flags import layout_flags_text
from simulator.timeline.breakdown import PARTS
from simulator.units import byte_unit, human_bytes, time_scale

NO_PIPELINE = "no pipeline"

_COLUMNS = (
    ("#", ">"),
    ("schedule", "<"),
    ("layout", "<"),
    ("m", ">"),
    ("mb", ">"),
    ("recompute", "<"),
    ("step", ">"),
    ("tokens/s", ">"),
    ("MFU", ">"),
    ("TP comm", ">"),
    ("DP comm", ">"),
    ("bubble", ">"),
    ("peak/GPU", ">"),
    ("binds", "<"),
)


def schedule_name(c) -> str:
    """The family (auto with its placement; its chunks are the layout's v), or "no pipeline"
    where there is one rank: every family is the same single-stage loop there."""
    if c.pp == 1:
        return NO_PIPELINE
    if c.schedule == AUTO:
        return f"auto {'v' if c.chunks == 2 else 'loop'}"
    return c.schedule


def _twin_names(c, result) -> str:
    """`` = auto v`` when a configuration of another family ran the same schedule on the same
    layout (``SearchResult.aliases``), else ""."""
    own = c.label().split(" p", 1)[0]
    twins = result.aliases.get(c.label(), [])
    names = dict.fromkeys(t.split(" p", 1)[0] for t in twins)
    return "".join(f" = {name}" for name in names if name != own)


def offload_text(c, result) -> str:
    """The row's offload policy, with ``=selective`` when that policy sent the same
    microbatches (``SearchResult.aliases``)."""
    twins = result.aliases.get(c.label(), [])
    others = dict.fromkeys(t.split(" off=", 1)[1] for t in twins if " off=" in t)
    return c.offload + "".join(f"={name}" for name in others if name != c.offload)


class Formats:
    """One number format per quantity, for the table and every list below it: step times in
    one unit with two decimals (the fastest row's unit), bytes in the limit's unit with one
    decimal, shares with one decimal, throughput in whole tokens with separators."""

    def __init__(self, times: list[float], limit: int) -> None:
        self.time_factor, self.time_unit = time_scale(min(times) if times else 0.0)
        self.byte_factor, self.byte_unit = byte_unit(limit)

    def time(self, seconds: float) -> str:
        return f"{seconds * self.time_factor:,.2f} {self.time_unit}"

    def bytes(self, n: float) -> str:
        if self.byte_unit == "B":
            return f"{int(n):,} B"
        return f"{n / self.byte_factor:,.1f} {self.byte_unit}"

    @staticmethod
    def share(x: float) -> str:
        return f"{100 * x:.1f}%"

    @staticmethod
    def tokens(x: float) -> str:
        return f"{x:,.0f}"


def formats_of(request, result) -> Formats:
    return Formats([o.step_time for o in result.top], request.memory_limit)


# with offload searched, after "recompute" and after "peak/GPU"
_OFFLOAD_COLUMNS = (("offload", "<"),)
_HOST_COLUMNS = (("host/GPU", ">"), ("wait", ">"))


def columns(offload: bool) -> tuple[tuple[str, str], ...]:
    """The table's (name, alignment) pairs; with offload searched, the policy, each GPU's
    host bytes and the exposed prefetch wait too."""
    if not offload:
        return _COLUMNS
    names = [name for name, _ in _COLUMNS]
    at, peak = names.index("recompute") + 1, names.index("peak/GPU") + 1
    return _COLUMNS[:at] + _OFFLOAD_COLUMNS + _COLUMNS[at:peak] + _HOST_COLUMNS + _COLUMNS[peak:]


def _cells(index: int, o, limit: int, result, fmt: Formats, offload: bool) -> list[str]:
    c = o.candidate
    cells = [
        str(index),
        schedule_name(c) + _twin_names(c, result),
        c.layout.to_text(),
        str(c.microbatches),
        str(c.microbatch_size),
        c.recompute,
        fmt.time(o.step_time),
        fmt.tokens(o.tokens_per_second),
        fmt.share(o.mfu),
        fmt.share(step_share(o, "tensor_comm")),
        fmt.share(step_share(o, "data_comm")),
        "-" if c.pp == 1 else fmt.share(step_share(o, "pipeline_wait")),
        fmt.bytes(o.peak_memory),
        binds_text(o, limit),
    ]
    if offload:
        host = fmt.bytes(o.host_peak) if c.offload != "none" else "-"
        wait = fmt.time(o.offload_wait) if c.offload != "none" else "-"
        cells = cells[:6] + [offload_text(c, result)] + cells[6:13] + [host, wait] + cells[13:]
    return cells


def step_share(o, part: str) -> float:
    """``part``'s share of the row's ranks x step time (``simulator.timeline.breakdown``): the
    table's bubble is the pipeline wait alone, the exposed communication beside it."""
    return o.step_shares[PARTS.index(part)] if o.step_shares else 0.0


def binds_text(o, limit: int) -> str:
    """What binds; with one rank there is no pipeline bubble, the idle time is communication
    (an exposed all-reduce)."""
    binds = o.binds(limit)
    return "communication" if binds == "bubble" and o.candidate.pp == 1 else binds


def format_table(
    result, limit: int, fmt: Formats | None = None, offload: bool = False
) -> list[str]:
    """The ranked rows; ``offload``: offload was searched (its three columns)."""
    fmt = fmt or Formats([o.step_time for o in result.top], limit)
    shown = columns(offload)
    rows = [[name for name, _ in shown]]
    rows += [_cells(i, o, limit, result, fmt, offload) for i, o in enumerate(result.top, 1)]
    widths = [max(len(row[k]) for row in rows) for k in range(len(shown))]
    lines = []
    for row in rows:
        cells = [
            f"{cell:{align}{width}}"
            for cell, (_, align), width in zip(row, shown, widths, strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "-" * len(lines[0]))
    return lines


def headline(request, text) -> str:
    tokens = request.global_batch * request.spec.config.seq
    device = request.memory_limit + request.headroom
    reserve = (
        f" ({human_bytes(device)} less a {human_bytes(request.headroom)} headroom)"
        if request.headroom
        else ""
    )
    return (
        f"{text.model} on {request.gpus} x {request.hardware.name}: global batch "
        f"{request.global_batch:,} sequences ({tokens:,} tokens), at most "
        f"{human_bytes(request.memory_limit)} per GPU{reserve}"
    )


def _row(o, limit: int, text, result) -> dict:
    c = o.candidate
    return {
        "schedule": c.schedule,
        "shown_as": schedule_name(c),  # "no pipeline" where p = 1
        "same_run_as": result.aliases.get(c.label(), []),
        "layout": c.layout.to_dict(),
        "pp": c.pp,
        "tp": c.tp,
        "sp": c.sp,
        "dp": c.dp,
        "chunks": c.chunks,
        "microbatches": c.microbatches,
        "microbatch_size": c.microbatch_size,
        "recompute": c.recompute,
        "offload": c.offload,
        "host_peak_bytes": o.host_peak,  # the most offloaded bytes one GPU's host share held
        "offload_wait": o.offload_wait,  # the longest exposed prefetch wait of a rank, s
        "distributed_optimizer": c.distributed_optimizer,
        "step_time": o.step_time,
        "tokens_per_second": o.tokens_per_second,
        "mfu": o.mfu,
        "bubble_fraction": o.bubble,
        "step_shares": dict(zip(PARTS, o.step_shares, strict=True)),  # the step's parts
        "peak_memory": o.peak_memory,
        "peak_rank": o.peak_rank,
        "binds": binds_text(o, limit),
        "command": simulate_command(c, text),
    }


def payload(request, text, result, elapsed: float) -> dict:
    """The ``--json`` object (also ``advise.json``)."""
    return {
        "title": headline(request, text),
        "model": text.model,
        "hardware": text.hardware,
        "gpus": request.gpus,
        "global_batch": request.global_batch,
        "memory_limit": request.memory_limit,  # usable: the device less the headroom
        "recompute_policies": list(request.recompute),
        "offload_policies": list(request.offload),
        "host_memory_per_gpu": host_share(request),
        "considered": result.considered,
        "pruned_memory": result.pruned_memory,
        "pruned_time": result.pruned_time,
        "simulated": len(result.simulated),
        "refused": result.refused,
        "too_large": result.too_large,
        "unneeded": result.unneeded,
        "seconds": elapsed,
        "headroom": request.headroom,
        "rows": [_row(o, request.memory_limit, text, result) for o in result.top],
    }


def pareto_points(result) -> list:
    """Every simulated configuration as the figure's plain data, the top rows ranked."""
    from visualize.advise import ParetoPoint  # start-up: matplotlib loads only for --out

    rank = {id(o): i for i, o in enumerate(result.top, 1)}
    return [
        ParetoPoint(
            label=o.candidate.label(),
            step_time=o.step_time,
            peak_bytes=o.peak_memory,
            fits=o.fits,
            rank=rank.get(id(o)),
            recompute=o.candidate.recompute,
            offload=o.candidate.offload,
        )
        for o in result.simulated
    ]


def simulate_command(c: Candidate, text: RunText) -> str:
    """The one ``pebblesim simulate`` line that reproduces ``c``: its schedule, its layout's
    flags, its batch, model and hardware."""
    words = [
        "pebblesim simulate",
        f"--schedule {c.schedule}",
        f"--ranks {c.pp}",
        f"--microbatches {c.microbatches}",
    ]
    chunks = chunks_flag(c)
    if chunks is not None:
        words.append(f"--chunks {chunks}")
    if c.schedule == AUTO:
        words.append(f"--layout {'v' if c.chunks == 2 else 'loop'}")
        words.append(f"--memory-limit {TOTAL}{limit_text(c.auto_memory)}")
    words += [
        f"--model {shlex.quote(text.model)}",
        f"--batch-size {c.global_batch}",
        f"--hardware {shlex.quote(text.hardware)}",
    ]
    flags = layout_flags_text(c.layout)
    if flags:
        words.append(flags)
    if c.recompute != "none":
        words.append(f"--recompute {c.recompute}")
    if c.offload != "none":
        words.append(f"--offload {c.offload}")
    return " ".join(words)


def host_share(request) -> int:
    """One GPU's share of its node's host memory: what its offloaded bytes must fit (as
    ``simulate`` checks ``host_fits``)."""
    preset = request.hardware
    return preset.host_memory_bytes // preset.gpus_per_node


def compare_command(result, text: RunText) -> str | None:
    """One ``pebblesim compare`` line for the first row's layout and microbatching over the
    schedule families of the rows that share them (None when fewer than two do): the table's
    choice side by side, figures with ``--out``."""
    if not result.top:
        return None
    first = result.top[0].candidate
    if first.pp == 1:
        return None
    same = [
        o.candidate
        for o in result.top
        if (o.candidate.pp, o.candidate.tp, o.candidate.dp, o.candidate.microbatches)
        == (first.pp, first.tp, first.dp, first.microbatches)
        and o.candidate.microbatch_size == first.microbatch_size
        and o.candidate.recompute == first.recompute
        and o.candidate.offload == first.offload
    ]
    interleaved = {c.chunks for c in same if chunks_flag(c) is not None}
    chunks = (
        chunks_flag(first) if chunks_flag(first) is not None else min(interleaved, default=None)
    )
    auto = next((c for c in same if c.schedule == AUTO), None)
    names = [
        c.schedule
        for c in same
        if (c.schedule != AUTO or c is auto) and (chunks_flag(c) is None or c.chunks == chunks)
    ]
    names = list(dict.fromkeys(names))
    if len(names) < 2:
        return None
    words = [
        "pebblesim compare",
        f"--ranks {first.pp}",
        f"--microbatches {first.microbatches}",
        f"--schedules {','.join(names)}",
    ]
    if chunks is not None:
        words.append(f"--chunks {chunks}")
    if auto is not None:
        words.append(f"--memory-limit {TOTAL}{limit_text(auto.auto_memory)}")
        words.append(f"--layout {'v' if auto.chunks == 2 else 'loop'}")
    words += [
        f"--model {shlex.quote(text.model)}",
        f"--batch-size {first.global_batch}",
        f"--hardware {shlex.quote(text.hardware)}",
    ]
    flags = layout_flags_text(first.layout)
    if flags:
        words.append(flags)
    if first.recompute != "none":
        words.append(f"--recompute {first.recompute}")
    if first.offload != "none":
        words.append(f"--offload {first.offload}")
    return " ".join(words)
