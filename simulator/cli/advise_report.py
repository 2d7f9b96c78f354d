"""``pebblesim advise``'s text around the table: why configurations were dropped, the near
misses, ``--explain LAYOUT`` and the no-fit sentence, each with the numbers that decided it.

Why apart from ``advise_print``: that module lays out the table, the commands and the JSON; this
one turns the search's fates (``simulator.analytic.advise.fates``) into reasons a user can act
on, in the table's number formats.
"""

from __future__ import annotations

from collections import Counter

from simulator.analytic.advise.fates import (
    ACTIVATIONS,
    FITS,
    OVER,
    REFUSED,
    SAME,
    STATIC,
    TIME,
    TOO_LARGE,
    UNNEEDED,
)
from simulator.cli.advise_print import (
    Formats,
    compare_command,
    format_table,
    formats_of,
    headline,
    host_share,
    schedule_name,
    simulate_command,
    step_share,
)
from simulator.units import human_bytes

OFFLOAD = "activation offload (--offload none,full,selective)"
# static memory is weights, gradients and optimizer state: activation offload cannot move it
STATIC_OFFLOAD = "optimizer-state offload (ZeRO-Offload; pebblesim offloads activations only)"


def _least(fates, key):
    return min(fates, key=lambda f: (key(f), f.candidate.label()))


def drop_reasons(request, result, fmt: Formats) -> list[str]:
    """One line per reason configurations left the search, with its count and its numbers."""
    by = Counter(f.verdict for f in result.fates)
    fates = {v: [f for f in result.fates if f.verdict == v] for v in by}
    limit = fmt.bytes(request.memory_limit)
    lines = []
    if by[STATIC]:
        least = _least(fates[STATIC], lambda f: f.static)
        lines.append(
            f"{by[STATIC]:,} dropped by the memory bound because static memory alone (weights, "
            f"gradients, optimizer state, receive buffers) is over {limit} on their fullest GPU "
            f"(the least: {fmt.bytes(least.static)}, {least.candidate.layout}); no schedule, "
            "batch or recompute changes it"
        )
    if by[ACTIVATIONS]:
        least = _least(fates[ACTIVATIONS], lambda f: f.memory_bound)
        lines.append(
            f"{by[ACTIVATIONS]:,} dropped by the memory bound because the activations their "
            f"schedule must hold before its first backward (ZB-H1, ZB-H2: its first weight "
            f"gradient) push them over {limit} (the least: "
            f"at least {fmt.bytes(least.memory_bound)}, of which {fmt.bytes(least.static)} "
            f"static, {least.candidate.label()})"
        )
    if by[TIME]:
        lines.append(
            f"{by[TIME]:,} dropped by the time bound: their fastest possible step is slower "
            f"than the last row's {fmt.time(result.time_cutoff)}, so none could enter the table"
        )
    if by[TOO_LARGE]:
        lines.append(
            f"{by[TOO_LARGE]:,} not simulated: over {request.max_rows:,} Timeline rows each"
        )
    if by[REFUSED]:
        reason, count = Counter(f.reason for f in fates[REFUSED]).most_common(1)[0]
        lines.append(
            f"{by[REFUSED]:,} could not be built (the commonest reason, {count:,} times: "
            f"{reason.rstrip('.')})"
        )
    if by[OVER]:
        host = sum(not f.outcome.host_fits for f in fates[OVER])
        lines.append(
            f"{by[OVER]:,} simulated and over {limit} (their bound fit, their real peak did not)"
            if not host
            else f"{by[OVER]:,} simulated and over {limit} or, {host:,} of them, over the host "
            f"memory of a GPU ({fmt.bytes(host_share(request))}, its share of the node's)"
        )
    if by[UNNEEDED]:
        lines.append(
            f"{by[UNNEEDED]:,} with offload not simulated: the same configuration fits without "
            "it, and offload never makes a step shorter"
        )
    if by[SAME]:
        lines.append(
            f"{by[SAME]:,} ran the same schedule on the same layout as a row (auto that "
            "resolves to a named family) and are shown once"
        )
    return lines


def near_miss_lines(misses, fmt: Formats) -> list[str]:
    """The near misses, fastest first, each with what it is over by."""
    lines = []
    for miss in misses:
        o = miss.outcome
        c = o.candidate
        device = " (fits the device: only the headroom is missed)" if miss.fits_device else ""
        offload = "" if c.offload == "none" else f" off={c.offload}"
        lines.append(
            f"  {schedule_name(c)} {c.layout} m{c.microbatches}x{c.microbatch_size} "
            f"rc={c.recompute}{offload}: {fmt.time(o.step_time)}, {fmt.bytes(o.peak_memory)}, "
            f"over by {human_bytes(miss.over)}{device}"
        )
    return lines


def format_advice(request, text, result, elapsed: float, misses=(), fallback=False) -> str:
    """The whole text; ``fallback``: offload was searched because nothing fit without it."""
    fmt = formats_of(request, result)
    lines = [headline(request, text), ""]
    if fallback:
        lines += [
            "nothing fits without activation offload: searched offload "
            f"{', '.join(request.offload)} too (--offload none to refuse it)",
            "",
        ]
    lines += format_table(result, request.memory_limit, fmt, request.searches_offload)
    lines += ["", "reproduce a row:"]
    width = len(str(len(result.top)))
    for i, o in enumerate(result.top, 1):
        lines.append(f"{i:>{width}}  {simulate_command(o.candidate, text)}")
    compare = compare_command(result, text)
    if compare:
        lines += ["", "row 1's layout, its schedules side by side:", f"  {compare}"]
    if misses:
        lines += ["", "near misses (faster than row 1, over the memory by a little):"]
        lines += near_miss_lines(misses, fmt)
    fitting = sum(f.verdict == FITS for f in result.fates)
    lines += [
        "",
        f"searched {result.considered:,} configurations in {elapsed:.1f} s: "
        f"{len(result.simulated):,} simulated, {fitting:,} distinct ones fit.",
    ]
    lines += [f"- {line}." for line in drop_reasons(request, result, fmt)]
    lines += [
        "",
        "layout: p pipeline ranks, v stages per rank, t tensor with sp sequence parallelism, "
        "c context, e expert, d data-parallel degree, z sharding stage (1: the optimizer "
        "state over the replicas); m microbatches of mb sequences; recompute: activation "
        "recomputation (searched: "
        f"{', '.join(request.recompute)}).{_offload_legend(request, fmt)} binds: memory "
        "(peak >= 90% of the usable memory), "
        "bubble (the busiest GPU idles >= 10% of the step) or compute; bubble '-': one rank, no "
        "pipeline. TP comm, DP comm, bubble: exposed tensor-parallel communication (with "
        "context parallelism's K/V exchange and expert parallelism's all-to-all), exposed "
        "data-parallel communication and pipeline wait, each a share of all GPUs' step time "
        "(simulate shows each rank's). "
        "headroom: memory kept free for the CUDA context and allocator fragmentation "
        "(--headroom). Analytic predictions, not measurements.",
    ]
    return "\n".join(lines)


def _offload_legend(request, fmt: Formats) -> str:
    """The legend's words on offload, when it was searched."""
    if not request.searches_offload:
        return ""
    return (
        " offload: activations sent to host memory after each forward and fetched back for the "
        f"backward (searched: {', '.join(request.offload)}; selective sends only what hides); "
        "host/GPU: the most one GPU's host share held (at most "
        f"{fmt.bytes(host_share(request))}, the node's host memory over its GPUs); wait: the "
        "exposed prefetch time of the rank that waited most."
    )


def no_fit_error(request, result, diagnosis) -> str:
    """One sentence: nothing fits, which floor stops it, and what would help."""
    if result.too_large and not result.simulated and diagnosis is None:
        return (
            f"every configuration that might fit has more than {request.max_rows:,} Timeline "
            f"rows to simulate ({result.too_large:,} skipped); use a smaller --global-batch."
        )
    where = f"{request.gpus} x {request.hardware.name}"
    limit = human_bytes(request.memory_limit)
    if diagnosis is None:  # every candidate was simulated and over: the activations' floor
        least = min(o.peak_memory for o in result.simulated) if result.simulated else 0
        offload = "" if request.searches_offload else f", {OFFLOAD}"
        return (
            f"no configuration of {where} fits in {limit} per GPU (the least needs "
            f"{human_bytes(least)}); what would help: more GPUs, full recompute, a shorter "
            f"--seq{offload}."
        )
    d = diagnosis
    helps = []
    if d.static_floor:
        floor = (
            f"static memory alone (weights, gradients and optimizer state) needs at least "
            f"{human_bytes(d.least_static)} on the fullest GPU of the leanest layout "
            f"({d.least_static_label})"
        )
        if d.more_gpus is not None:
            gpus, least = d.more_gpus
            helps.append(f"more GPUs ({gpus:,} bring it to {human_bytes(least)})")
        else:
            helps.append("more GPUs (16x as many are still not enough for static memory)")
        if d.zero3_static is not None:
            helps.append(
                f"sharding the gradients and weights too (ZeRO-3, --zero 3, about "
                f"{human_bytes(d.zero3_static)} on that layout; advise does not search it yet)"
            )
        helps.append(STATIC_OFFLOAD)
        cannot = (
            "; recompute, activation offload, a smaller batch or a shorter sequence cannot "
            "help: they shrink activations only"
        )
    else:
        floor = (
            f"the least any needs is at least {human_bytes(d.least_memory)} "
            f"({d.least_memory_label})"
        )
        helps.append("more GPUs (more pipeline or tensor ranks split the activations)")
        if not d.full_recompute_searched:
            helps.append("full recompute (--recompute none,selective,full)")
        if d.zero3_static is not None:
            helps.append(
                f"sharding (ZeRO-3, --zero 3: static memory about {human_bytes(d.zero3_static)} on "
                f"{d.least_static_label}; advise does not search it yet)"
            )
        helps.append("a shorter --seq")
        if not request.searches_offload:
            helps.append(OFFLOAD)
        cannot = ""
    if d.within_headroom:
        helps.insert(
            0,
            "a smaller --headroom (it would fit the device's "
            f"{human_bytes(request.memory_limit + request.headroom)})",
        )
    return (
        f"no configuration of {where} fits in {limit} per GPU: {floor}; what would help: "
        f"{', '.join(helps)}{cannot}."
    )


def explain_lines(explanation, request, fmt: Formats, top: int, shown: int = 8) -> list[str]:
    """``--explain``'s section: the layout's configurations, best first, each with its fate."""
    e = explanation
    head = f"--explain {e.layout}:"
    if e.not_searched:
        return [f"{head} not among the configurations searched: {e.not_searched}."]
    counts = Counter(f.verdict for f in e.fates)
    summary = ", ".join(f"{n:,} {_VERDICT_WORDS[v]}" for v, n in counts.items())
    lines = [f"{head} {len(e.fates):,} configurations ({summary}); the best first:"]
    limit = request.memory_limit
    for f in e.fates[:shown]:
        lines.append(f"  {f.candidate.label()}: {_why(f, e.ranks, limit, fmt, request, top)}")
    if len(e.fates) > shown:
        lines.append(f"  ... and {len(e.fates) - shown:,} more")
    return lines


_VERDICT_WORDS = {
    FITS: "fit",
    SAME: "the same run as a row",
    OVER: "simulated and over",
    STATIC: "static memory over",
    ACTIVATIONS: "over by the memory bound",
    TIME: "dropped by the time bound",
    TOO_LARGE: "too large to simulate",
    REFUSED: "could not be built",
    UNNEEDED: "fit without offload",
}


def _why(f, ranks, limit: int, fmt: Formats, request, top: int) -> str:
    o = f.outcome
    if f.verdict == FITS:
        rank = ranks[f.candidate.label()]
        where = "in the table" if rank <= top else "below the table"
        return (
            f"ranks #{rank} ({where}): {fmt.time(o.step_time)}, {fmt.bytes(o.peak_memory)} "
            f"of {fmt.bytes(limit)}, binds {o.binds(limit)}; of the step: bubble "
            f"{fmt.share(step_share(o, 'pipeline_wait'))}, exposed TP comm "
            f"{fmt.share(step_share(o, 'tensor_comm'))}, DP comm "
            f"{fmt.share(step_share(o, 'data_comm'))}"
        )
    if f.verdict == SAME:
        return f"the same run as {f.same_as}"
    if f.verdict == UNNEEDED:
        return f"not simulated: {f.same_as} fits without offload, at least as fast"
    if f.verdict == OVER:
        return (
            f"simulated, {fmt.bytes(o.peak_memory)} is over {fmt.bytes(limit)} by "
            f"{human_bytes(o.peak_memory - limit)} ({fmt.time(o.step_time)})"
        )
    if f.verdict == STATIC:
        return (
            f"static memory alone {fmt.bytes(f.static)} is over {fmt.bytes(limit)} (binds: "
            "static memory; more GPUs or sharding)"
        )
    if f.verdict == ACTIVATIONS:
        return (
            f"at least {fmt.bytes(f.memory_bound)} ({fmt.bytes(f.static)} static + "
            f"{fmt.bytes(f.memory_bound - f.static)} activations held before its first "
            f"backward) is over {fmt.bytes(limit)} by {fmt.bytes(f.memory_bound - limit)}"
        )
    if f.verdict == TIME:
        return (
            f"its step takes at least {fmt.time(f.time_bound)}, slower than the table's last "
            "row: not simulated"
        )
    if f.verdict == TOO_LARGE:
        return f"over {request.max_rows:,} Timeline rows: not simulated"
    return f"could not be built: {f.reason}"
