"""``pebblesim advise``: the fastest ways to train a transformer on N GPUs of one kind that fit
in their memory, ranked, each with the ``pebblesim simulate`` line that reproduces it.

The search itself is ``simulator.analytic.advise`` (no printing); this module reads the flags,
shows a progress bar on stderr (only on a terminal), prints the table and the counts, and with
``--out`` draws the Pareto figure (``visualize.advise``).
"""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import replace

from tqdm import tqdm

from schedules.registry import SCHEDULES, canonical_name
from simulator.analytic.advise import (
    AUTO,
    OFFLOAD_POLICIES,
    RECOMPUTE_POLICIES,
    Request,
    RunText,
    evaluator,
    search,
)
from simulator.analytic.advise.explain import explain, wanted
from simulator.analytic.advise.fates import ACTIVATIONS, OVER
from simulator.analytic.advise.headroom import DEFAULT_HEADROOM, Headroom, usable_memory
from simulator.analytic.advise.local_pool import LocalPool, available_cores
from simulator.analytic.advise.near_miss import near_misses
from simulator.analytic.advise.no_fit import diagnose
from simulator.analytic.auto_plan import is_auto
from simulator.analytic.cost_source import hardware_preset, parse_hardware
from simulator.cli.advise_print import formats_of, pareto_points, payload, simulate_command
from simulator.cli.advise_report import explain_lines, format_advice, no_fit_error
from simulator.cli.layout_flags import layout_degrees
from simulator.cli.numbers import strict_json
from simulator.cli.outputs import StagedOutput
from simulator.cli.printing import emit_json
from simulator.errors import PebbleError
from simulator.model.offload import OffloadPolicy
from simulator.model.parse import parse_model
from simulator.model.precision import precision_named
from simulator.model.recompute import RecomputePolicy
from simulator.run.offload_list import offload_policies
from simulator.run.plan import check_sequence_parallel
from simulator.run.recompute import recompute_policies

SP_NOTE = (
    "note: advise gives every layout with t >= 2 sequence parallelism (what Megatron-LM runs "
    "with tensor parallelism), so --sp changes nothing."
)
MAX_ROWS = 5_000_000  # Timeline rows per configuration: about 2 s to simulate; larger are skipped


def _request(args):
    """The search request and the text each printed ``simulate`` command carries."""
    model = args.model.strip()
    if args.seq is not None:
        model = f"{model},seq={args.seq}"
    if getattr(args, "precision", None) is not None:
        model = f"{model},precision={precision_named(args.precision)}"
    spec = parse_model(model)
    if not spec.is_transformer:
        raise PebbleError("advise searches transformers: give a preset or transformer:... model.")
    if hardware_preset(args.hardware) is None:
        raise PebbleError("advise needs a GPU preset for --hardware (see `pebblesim presets`).")
    hardware = args.hardware.strip()
    if args.memory_limit is not None:
        hardware = f"{hardware},memory={args.memory_limit.strip()}"
        try:
            hardware_preset(hardware)
        except PebbleError:
            raise PebbleError(
                f"cannot read --memory-limit {args.memory_limit!r}; write a whole number of bytes "
                "such as 72GiB, 1.5MiB or 7.5e10."
            ) from None
    preset = hardware_preset(hardware)
    reserve = Headroom.parse(args.headroom if args.headroom is not None else DEFAULT_HEADROOM)
    usable = usable_memory(preset.memory_bytes, reserve)
    if args.explain is not None:
        wanted(args.explain)  # one sentence for a layout it cannot read, before the search
    degrees = layout_degrees(args)
    if degrees.get("sequence_parallel"):
        if "tensor" in degrees:  # without --tp, t is searched and sp comes with every t >= 2
            check_sequence_parallel(degrees["tensor"], True)
        print(SP_NOTE, file=sys.stderr)
    names = [*SCHEDULES, AUTO] if not args.schedules else args.schedules.split(",")
    families = tuple(
        dict.fromkeys(AUTO if is_auto(n) else canonical_name(n) for n in names if n.strip())
    )
    request = Request(
        spec=spec,
        hardware=preset,
        gpus=args.gpus,
        global_batch=args.global_batch,
        memory_limit=usable,
        headroom=preset.memory_bytes - usable,
        families=families,
        recompute=_policies(args.recompute, RECOMPUTE_POLICIES),
        offload=_offloads(getattr(args, "offload", None)),
        max_chunks=args.max_chunks,
        distributed_optimizer=_distributed_optimizer(args, degrees),
        sharding=max(1, degrees.get("sharding") or 1),
        shardings=_zero_stages(args.zero_stages, degrees),
        max_rows=MAX_ROWS,
        tensor=degrees.get("tensor"),
        data=degrees.get("data"),
        context=degrees.get("context"),
        cp_comm=degrees.get("cp_comm", "ring"),
        expert=degrees.get("expert"),
    )
    return request, RunText(model, hardware), parse_hardware(hardware)


def _distributed_optimizer(args, degrees: dict) -> bool:
    """ZeRO-1 (or the ``--zero`` stage given) with more than one replica, unless ``--zero 0`` or
    ``--no-distributed-optimizer`` (both at once with ``--zero 1``, 2 or 3 is a contradiction)."""
    sharding = degrees.get("sharding")
    if sharding and args.no_distributed_optimizer:
        raise PebbleError(
            f"--zero {sharding} and --no-distributed-optimizer contradict each other."
        )
    return sharding != 0 and not args.no_distributed_optimizer


def _zero_stages(text: str | None, degrees: dict) -> tuple[int, ...]:
    """``--zero-stages 1,2,3``: the sharding stages to search (each 1, 2 or 3, once), or ()."""
    if text is None:
        return ()
    if "sharding" in degrees:
        raise PebbleError(
            "--zero fixes the sharding stage and --zero-stages searches it; give one."
        )
    stages = []
    for word in filter(None, (w.strip() for w in text.split(","))):
        if word not in ("1", "2", "3"):
            raise PebbleError(
                "--zero-stages takes sharding stages 1, 2 or 3 (comma-separated), "
                f"not {word[:20]!r}."
            )
        stages.append(int(word))
    if not stages:
        raise PebbleError("--zero-stages needs at least one sharding stage: 1, 2 or 3.")
    return tuple(dict.fromkeys(stages))


def _policies(text: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    """``--recompute none,full``: each policy checked (one sentence if not), in its plain
    spelling (``FULL`` is ``full``), once."""
    if text is None:
        return default
    policies = (RecomputePolicy.parse(p).to_text() for p in recompute_policies(text))
    return tuple(dict.fromkeys(policies))


def _offloads(text: str | None) -> tuple[str, ...]:
    """``--offload none,full,selective``: each policy checked (one sentence if not), in its
    plain spelling, once; ``none`` when not given (``cmd_advise`` turns to offload when
    nothing fits without it)."""
    if text is None:
        return ("none",)
    policies = (OffloadPolicy.parse(p).to_text() for p in offload_policies(text))
    return tuple(dict.fromkeys(policies))


class _Bar:
    """A tqdm bar on stderr, drawn only on a terminal: one for bounding every candidate, one for
    simulating those that survive."""

    def __init__(self) -> None:
        self.bar = None
        self.phase = ""

    def __call__(self, phase: str, done: int, total: int, result) -> None:
        if phase != self.phase:
            self.close()
            self.phase = phase
            self.bar = tqdm(
                total=total, desc=f"advise: {phase}", unit="config", file=sys.stderr, disable=None
            )
        if result is not None:
            self.bar.set_postfix_str(f"simulated {len(result.simulated)}", refresh=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _needs_offload(request, result, given: str | None) -> bool:
    """Search again with offload: nothing fit, ``--offload`` was not given, and some
    configuration's static memory fits (offload moves activations, not weights or optimizer
    state)."""
    if result.top or given is not None or request.searches_offload:
        return False
    return any(f.verdict in (ACTIVATIONS, OVER) for f in result.fates)


def cmd_advise(args) -> int:
    request, text, hardware = _request(args)
    if args.jobs is not None and args.address:
        raise PebbleError(
            "--jobs runs the simulations on this machine and --address on a Ray cluster; give "
            "one of them."
        )
    started = time.perf_counter()
    bar = _Bar()
    started_ray = False
    fallback = False
    evaluate = evaluator(text, request.memory_limit)
    jobs = 1 if args.address else args.jobs or available_cores()
    with contextlib.ExitStack() as workers:
        try:
            batch = None
            if args.address:
                started_ray, batch = _join_ray(args.address, text, request.memory_limit)
            elif jobs > 1:
                batch = workers.enter_context(LocalPool(evaluate, jobs)).stream
            result = search(request, hardware, evaluate, top=args.top, progress=bar, batch=batch)
            if _needs_offload(request, result, getattr(args, "offload", None)):
                fallback = True
                request = replace(request, offload=OFFLOAD_POLICIES)
                bar.close()
                result = search(
                    request, hardware, evaluate, top=args.top, progress=bar, batch=batch
                )
            misses = []
            if result.top:  # the near misses' few simulations where the search's ran
                run_all = None if batch is None else batch.run
                misses = near_misses(
                    result, request.memory_limit, request.headroom, evaluate, run_all
                )
        finally:
            bar.close()
            if started_ray:
                _leave_ray()
    explanation = explain(args.explain, request, result) if args.explain is not None else None
    if not result.top:
        if explanation is not None:
            fmt = formats_of(request, result)
            print("\n".join(explain_lines(explanation, request, fmt, args.top)))
        diagnosis = None
        if any(f.verdict in ("static", "activations") for f in result.fates):
            diagnosis = diagnose(request, result, hardware)
        raise PebbleError(no_fit_error(request, result, diagnosis))
    elapsed = time.perf_counter() - started
    data = payload(request, text, result, elapsed)
    data["offload_fallback"] = fallback  # offload searched because nothing fit without it
    data["near_misses"] = [_miss_row(m, text) for m in misses]
    if explanation is not None:
        data["explain"] = _explain_row(explanation)
    if args.out:
        _write_outputs(args.out, request, result, data)
    if args.json:
        emit_json(data)
    else:
        print(format_advice(request, text, result, elapsed, misses, fallback))
        if explanation is not None:
            fmt = formats_of(request, result)
            print("\n" + "\n".join(explain_lines(explanation, request, fmt, args.top)))
        if args.out:
            print(f"\nwrote {args.out}/pareto.png, pareto.svg and advise.json")
    return 0


def _join_ray(address: str, text, limit: int):
    """Join the cluster at ``address`` (True when this process joined it) and the ``Batch``
    that runs the search's simulations there as Ray tasks."""
    from simulator.ray_pipeline.advise_tasks import ray_batch  # start-up: only with --address
    from simulator.ray_pipeline.cluster import ensure_ray  # start-up: only with --address

    started = ensure_ray(address, 1)
    return started, ray_batch(text, limit)


def _leave_ray() -> None:
    from simulator.ray_pipeline.cluster import stop_ray  # start-up: Ray loads only with --address

    stop_ray()


def _miss_row(miss, text) -> dict:
    o = miss.outcome
    return {
        "label": o.candidate.label(),
        "step_time": o.step_time,
        "peak_memory": o.peak_memory,
        "offload": o.candidate.offload,
        "over_by": miss.over,
        "fits_device": miss.fits_device,
        "command": simulate_command(o.candidate, text),
    }


def _explain_row(explanation) -> dict:
    return {
        "layout": explanation.layout,
        "not_searched": explanation.not_searched,
        "configurations": [
            {
                "label": f.candidate.label(),
                "verdict": f.verdict,
                "rank": explanation.ranks.get(f.candidate.label()),
                "memory_bound": f.memory_bound,
                "static": f.static,
                "time_bound": f.time_bound,
                "step_time": None if f.outcome is None else f.outcome.step_time,
                "peak_memory": None if f.outcome is None else f.outcome.peak_memory,
                "reason": f.reason,
                "same_as": f.same_as,
            }
            for f in explanation.fates
        ],
    }


def _write_outputs(folder: str, request, result, data: dict) -> None:
    import visualize.advise  # start-up: matplotlib loads only when a figure is drawn

    with StagedOutput(folder) as out:
        note = (
            f"{len(result.simulated)} of {result.considered:,} configurations simulated;\n"
            "the rest were pruned by their bounds"
        )
        figure = visualize.advise.pareto_figure(
            pareto_points(result), request.memory_limit, data["title"], note
        )
        visualize.save(figure, out.path("pareto"))
        out.path("advise.json").write_text(strict_json(data) + "\n")
