"""What ``pebblesim advise`` prints: the ranked table, the reproducing commands, the search's
counts, the ``--json`` payload and the Pareto figure's points."""

from __future__ import annotations

import shlex

from simulator.analytic.advise import AUTO, Candidate, RunText, chunks_flag
from simulator.cli.layout_flags import layout_flags_text
from simulator.units import human_bytes, human_time

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
    ("bubble", ">"),
    ("peak/GPU", ">"),
    ("binds", "<"),
)


def _schedule(c) -> str:
    """The family (auto with its placement); its chunks are the layout's v."""
    if c.schedule == AUTO:
        return f"auto {'v' if c.chunks == 2 else 'loop'}"
    return c.schedule


def _cells(index: int, o, limit: int) -> list[str]:
    c = o.candidate
    return [
        str(index),
        _schedule(c),
        c.layout.to_text(),
        str(c.microbatches),
        str(c.microbatch_size),
        c.recompute,
        human_time(o.step_time),
        f"{o.tokens_per_second:,.0f}",
        f"{100 * o.mfu:.1f}%",
        f"{100 * o.bubble:.1f}%",
        human_bytes(o.peak_memory),
        o.binds(limit),
    ]


def format_table(result, limit: int) -> list[str]:
    rows = [[name for name, _ in _COLUMNS]]
    rows += [_cells(i, o, limit) for i, o in enumerate(result.top, 1)]
    widths = [max(len(row[k]) for row in rows) for k in range(len(_COLUMNS))]
    lines = []
    for row in rows:
        cells = [
            f"{cell:{align}{width}}"
            for cell, (_, align), width in zip(row, _COLUMNS, widths, strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "-" * len(lines[0]))
    return lines


def headline(request, text) -> str:
    tokens = request.global_batch * request.spec.config.seq
    return (
        f"{text.model} on {request.gpus} x {request.hardware.name}: global batch "
        f"{request.global_batch:,} sequences ({tokens:,} tokens), at most "
        f"{human_bytes(request.memory_limit)} per GPU"
    )


def counts_line(result, elapsed: float) -> str:
    fitting = sum(o.fits for o in result.simulated)
    refused = f"; {result.refused:,} could not be built" if result.refused else ""
    large = result.too_large
    skipped = f"{large:,} skipped as too large to simulate, " if large else ""
    return (
        f"searched {result.considered:,} configurations in {elapsed:.1f} s: "
        f"{skipped}{result.pruned_memory:,} pruned by the memory bound, {result.pruned_time:,} "
        f"by the time bound, {len(result.simulated):,} simulated ({fitting:,} fit){refused}."
    )


def format_advice(request, text, result, elapsed: float) -> str:
    lines = [headline(request, text), ""]
    lines += format_table(result, request.memory_limit)
    lines += ["", "reproduce a row:"]
    width = len(str(len(result.top)))
    for i, o in enumerate(result.top, 1):
        lines.append(f"{i:>{width}}  {simulate_command(o.candidate, text)}")
    lines += [
        "",
        counts_line(result, elapsed),
        "layout: p pipeline ranks, v stages per rank, t tensor with sp sequence parallelism, "
        "c context, e expert, d data-parallel degree, z sharding stage (1: the optimizer "
        "state over the replicas); m microbatches of mb sequences; recompute: activation "
        "recomputation (searched: "
        f"{', '.join(request.recompute)}). binds: memory (peak >= 90% of the limit), bubble (the "
        "busiest GPU idles >= 10% of the step) or compute. Analytic predictions, not measurements.",
    ]
    return "\n".join(lines)


def no_fit_error(request, result) -> str:
    if result.too_large and not result.simulated:
        return (
            f"every configuration that might fit has more than {request.max_rows:,} Timeline "
            f"rows to simulate ({result.too_large:,} skipped); use a smaller --global-batch."
        )
    least = result.smallest_memory_bound or 0
    return (
        f"no configuration of {request.gpus} x {request.hardware.name} fits in "
        f"{human_bytes(request.memory_limit)} per GPU (the least any needs is at least "
        f"{human_bytes(least)}); add GPUs, shrink the batch or sequence, or raise --memory-limit."
    )


def _row(o, limit: int, text) -> dict:
    c = o.candidate
    return {
        "schedule": c.schedule,
        "layout": c.layout.to_dict(),
        "pp": c.pp,
        "tp": c.tp,
        "sp": c.sp,
        "dp": c.dp,
        "chunks": c.chunks,
        "microbatches": c.microbatches,
        "microbatch_size": c.microbatch_size,
        "recompute": c.recompute,
        "distributed_optimizer": c.distributed_optimizer,
        "step_time": o.step_time,
        "tokens_per_second": o.tokens_per_second,
        "mfu": o.mfu,
        "bubble_fraction": o.bubble,
        "peak_memory": o.peak_memory,
        "peak_rank": o.peak_rank,
        "binds": o.binds(limit),
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
        "memory_limit": request.memory_limit,
        "recompute_policies": list(request.recompute),
        "considered": result.considered,
        "pruned_memory": result.pruned_memory,
        "pruned_time": result.pruned_time,
        "simulated": len(result.simulated),
        "refused": result.refused,
        "too_large": result.too_large,
        "seconds": elapsed,
        "rows": [_row(o, request.memory_limit, text) for o in result.top],
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
        words.append(f"--memory-limit {c.activation_limit}")
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
    return " ".join(words)
