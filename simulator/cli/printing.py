"""What the CLI prints: summary tables, the training report, strict JSON.

Why a module of its own: library code never prints; every string a user reads is built here,
so its wording and layout live in one place.
"""

from __future__ import annotations

from simulator.cli.breakdown_print import breakdown_lines
from simulator.cli.numbers import strict_json
from simulator.timeline import Timeline
from simulator.timeline.report import summary_dict
from simulator.units import human_bytes, human_time

MAX_GRADIENTS_LISTED = 12  # a 126-layer model lists the first few, then the last
OVERHEAD_DOMINATES = 5e-3  # seconds: below this per action, Ray's per-call cost dominates


def emit_json(payload: dict) -> None:
    """Exactly one strict JSON object (no NaN or Infinity) on stdout."""
    print(strict_json(payload))


def format_summary(timeline: Timeline) -> str:
    """A readable summary table of one run."""
    data = summary_dict(timeline)
    unit = data["time_unit"]
    sizes = (
        f"layout {data['layout']}"
        if data["layout"]
        else f"{data['ranks']} ranks x {data['chunks']} chunk(s), dp {data['dp']}"
    )
    lines = [
        f"schedule {data['schedule']}: {sizes}, {data['microbatches']} microbatches, "
        f"{data['steps']} step(s), {timeline.meta.source} run",
        f"makespan {human_time(data['makespan'], unit)}   "
        f"bubble {100 * data['bubble_fraction']:.1f}%",
    ]
    if data["steps"] > 1:
        times = ", ".join(human_time(t, unit) for t in data["step_times"])
        lines.append(f"time per step: {times}")
    recompute = "recompute" in data
    if recompute:
        lines.append(f"recompute {data['recompute']}: the busy time includes the recompute")
    header = (
        f"{'rank':>4}  {'busy':>12}  {'stored activations':>18}  {'activation peak':>15}  "
        f"{'peak in-flight':>14}"
    )
    header += f"  {'recompute':>12}" if recompute else ""
    lines += ["", header, "-" * len(header)]
    for r in data["per_rank"]:
        lines.append(
            f"{r['rank']:>4}  {human_time(r['busy'], unit):>12}  "
            f"{human_bytes(r['stored_activation_bytes']):>18}  "
            f"{human_bytes(r['true_peak_bytes']):>15}  {r['peak_inflight_microbatches']:>14}"
            + (f"  {human_time(r['recompute_time'], unit):>12}" if recompute else "")
        )
    lines.append(ACTIVATIONS_NOTE)
    lines += offload_lines(data)
    lines += _memory_table(data)
    lines += breakdown_lines(data)
    ready = sorted(data["gradient_ready"], key=lambda g: g["time"])
    if ready:
        shown = ready if len(ready) <= MAX_GRADIENTS_LISTED else ready[:MAX_GRADIENTS_LISTED]
        order = ", ".join(f"L{g['layer']}@{human_time(g['time'], unit)}" for g in shown)
        if len(shown) < len(ready):
            last = ready[-1]
            order += (
                f", ... ({len(ready) - len(shown)} more; the last, L{last['layer']}, at "
                f"{human_time(last['time'], unit)}; --json lists all)"
            )
        lines += ["", f"weight gradients complete (step 0, first to last): {order}"]
    return "\n".join(lines)


ACTIVATIONS_NOTE = (
    "stored: what the schedule holds between passes (what published formulas count);\n"
    "peak: stored plus the pass in progress (the backward's gradient tensors, recomputation)"
)


def _memory_table(data: dict) -> list[str]:
    """Whole-rank memory per rank, and throughput, when the run knows them."""
    rows = [r["memory"] for r in data["per_rank"] if r.get("memory")]
    if not rows:
        return []
    capacity = data.get("memory_capacity")
    header = (
        f"{'rank':>4}  {'weights+grads':>13}  {'optimizer':>10}  {'act. peak':>11}  "
        f"{'buffers':>9}  {'total':>10}" + ("  fits" if capacity else "")
    )
    lines = ["", "whole-rank memory" + (f" (device: {human_bytes(capacity)})" if capacity else "")]
    lines += [header, "-" * len(header)]
    for rank, m in enumerate(rows):
        fits = ("  yes" if m["fits"] else "  OVER") if capacity else ""
        lines.append(
            f"{rank:>4}  {human_bytes(m['parameters'] + m['gradients']):>13}  "
            f"{human_bytes(m['optimizer_state']):>10}  {human_bytes(m['activations']):>11}  "
            f"{human_bytes(m['receive_buffers']):>9}  {human_bytes(m['total']):>10}{fits}"
        )
    rates = []
    if data.get("tokens_per_second"):
        rates.append(f"{data['tokens_per_second']:,.0f} tokens/s")
    if data.get("mfu") is not None:
        rates.append(f"MFU {100 * data['mfu']:.1f}%")
    if rates:
        lines += ["", "throughput: " + ", ".join(rates)]
    return lines


def format_train_report(result, payload: dict, args) -> str:
    """The text ``train`` prints after a run: summary, an overhead note, losses, checks."""
    lines = [format_summary(result.timeline)]
    durations = sorted(e.end - e.start for e in result.timeline.events)
    typical = durations[len(durations) // 2] if durations else 0.0
    if typical < OVERHEAD_DOMINATES:
        lines.append(
            f"\nnote: the median action took {human_time(typical)}; Ray's cost per call (about "
            "1 ms) dominates such short actions, so the bubble above is mostly overhead. Use a "
            "wider --model or a larger --batch-size to see the schedule itself."
        )
    lines.append("\nloss per step: " + ", ".join(f"{x:.4f}" for x in result.losses))
    if result.restarts:
        lines.append(f"recovered from {result.restarts} rank failure(s) by restarting the step")
    if args.check:
        lines.append(
            f"check against the sequential reference: max gradient relative difference "
            f"{payload['max_grad_rel_diff']:.2e}, max weight difference "
            f"{payload['max_weight_abs_diff']:.2e}"
        )
    if args.out:
        lines.append(
            f"\nwrote {args.out}/: timeline.json, trace.json (Perfetto), profile.json (use with "
            "simulate --profile) and predicted_timeline.json (compare with plot --against)"
        )
    return "\n".join(lines)


def format_presets(models: list[tuple], hardware: list[tuple]) -> str:
    """The ``presets`` listing: models with their parameter counts, then hardware."""
    lines = ["models (--model NAME[,key=value...]):"]
    width = max(len(row[0]) for row in models)
    for name, summary, params, source in models:
        lines.append(f"  {name.ljust(width)}  {params / 1e9:8.2f}B params  {summary}")
        lines.append(f"  {'':{width}}  source: {source}")
    lines.append("")
    lines.append("hardware (--hardware NAME[,efficiency=...]):")
    width = max(len(row[0]) for row in hardware)
    for name, summary, source in hardware:
        lines.append(f"  {name.ljust(width)}  {summary}")
        lines.append(f"  {'':{width}}  source: {source}")
    return "\n".join(lines)


def offload_lines(data: dict) -> list[str]:
    """With ``--offload``: per rank, the host's peak of offloaded activations and the time
    its backwards waited for their prefetch (exposed transfer); nothing without it."""
    if "offload" not in data:
        return []
    unit = data["time_unit"]
    host = ", ".join(human_bytes(r["host_activation_bytes"]) for r in data["per_rank"])
    wait = ", ".join(human_time(r["offload_wait"], unit) for r in data["per_rank"])
    return [
        f"offload {data['offload']}: on the host per rank {host}; backwards waited for their "
        f"prefetch per rank {wait} (exposed transfer; the device figures above are after offload)"
    ]
