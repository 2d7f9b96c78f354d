"""Benchmark: ``pebblesim advise`` at the CLI's defaults (every family and auto, recompute none,
selective and full, context degrees with t * c within a node, the top 10, a 5% headroom, the
machine's cores as workers). Cases:

* ``llama3-70b`` (the default): Llama 3 70B (sequence 4096) on 64 x H100-80GB, global batch
  512 sequences. Target: < 60 s.
* ``llama3-405b``: Llama 3 405B on 16,384 x H100-80GB, global batch 2048 sequences (issue 24's
  case). Target: <= 10 s on a quiet machine.

Prints the search's wall time (the median of ``--repeats``), its candidate counts (considered,
pruned by the memory bound, pruned by the time bound, simulated) and the top rows; with
``--jobs 1`` also the mean time of one simulation (so what an exhaustive search would spend in
the executor) and the bounding's share.

Run: python benchmarks/advise.py [--case llama3-405b] [--jobs N] [--repeats 1]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from schedules.registry import SCHEDULES  # noqa: E402
from simulator.analytic.advise import AUTO, Request, RunText, evaluator, search  # noqa: E402
from simulator.analytic.advise.headroom import (  # noqa: E402
    DEFAULT_HEADROOM,
    Headroom,
    usable_memory,
)
from simulator.analytic.advise.local_pool import LocalPool, available_cores  # noqa: E402
from simulator.analytic.cost_source import hardware_preset, parse_hardware  # noqa: E402
from simulator.model.parse import parse_model  # noqa: E402
from simulator.units import human_bytes  # noqa: E402

TOP = 10  # advise's --top default

CASES = {  # name: (model, GPUs, global batch, target seconds)
    "llama3-70b": ("llama3-70b,seq=4096", 64, 512, 60.0),
    "llama3-405b": ("llama3-405b", 16384, 2048, 10.0),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=sorted(CASES), default="llama3-70b")
    parser.add_argument("--global-batch", type=int, help="default: the case's")
    parser.add_argument("--jobs", type=int, default=available_cores(), help="default: the cores")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    model, gpus, global_batch, target = CASES[args.case]
    global_batch = args.global_batch or global_batch
    words = f"advise --model {model} --hardware h100-80gb --gpus {gpus}"
    words += f" --global-batch {global_batch}"
    request, text, hardware = _request(model, gpus, global_batch)
    times, simulations = [], []
    for _ in range(args.repeats):
        simulations.clear()
        evaluate = evaluator(text, request.memory_limit)

        def timed(c, evaluate=evaluate):
            began = time.perf_counter()
            try:
                return evaluate(c)
            finally:
                simulations.append(time.perf_counter() - began)

        began = time.perf_counter()
        with contextlib.ExitStack() as workers:
            batch = None
            if args.jobs > 1:
                batch = workers.enter_context(LocalPool(timed, args.jobs)).stream
            result = search(request, hardware, timed, top=TOP, batch=batch)
        times.append(time.perf_counter() - began)
    print(f"pebblesim {words} --jobs {args.jobs}")
    line = (
        f"search: {statistics.median(times):.1f} s (target {target:g} s); "
        f"{result.considered:,} considered, {result.pruned_memory:,} pruned by the memory "
        f"bound, {result.pruned_time:,} by the time bound, {len(result.simulated):,} simulated"
    )
    if simulations:  # one job: the simulations ran in this process
        mean = statistics.mean(simulations)
        line += f" ({mean * 1e3:.0f} ms each; bounding {times[-1] - sum(simulations):.1f} s)"
    print(line + f", {result.refused} could not be built, {result.too_large} too large")
    for i, o in enumerate(result.top, 1):
        print(
            f"  {i:2}. {o.candidate.label():<40} {o.step_time:6.2f} s  MFU {100 * o.mfu:4.1f}%  "
            f"bubble {100 * o.bubble:4.1f}%  peak {human_bytes(o.peak_memory)}"
        )


def _request(model: str, gpus: int, global_batch: int):
    """(request, run text, hardware) as ``pebblesim advise`` builds them at its defaults."""
    text = RunText(model, "h100-80gb")
    preset = hardware_preset(text.hardware)
    usable = usable_memory(preset.memory_bytes, Headroom.parse(DEFAULT_HEADROOM))
    request = Request(
        spec=parse_model(model),
        hardware=preset,
        gpus=gpus,
        global_batch=global_batch,
        memory_limit=usable,
        headroom=preset.memory_bytes - usable,
        families=(*SCHEDULES, AUTO),
    )
    return request, text, parse_hardware(text.hardware)


if __name__ == "__main__":
    main()
