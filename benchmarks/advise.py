"""Benchmark: ``pebblesim advise`` over advise's default axes (every family, auto, recompute
none, selective and full, context degrees with t * c within a node). Cases:

* ``llama3-70b`` (the default): Llama 3 70B (sequence 4096) on 64 x H100-80GB, global batch
  512 sequences. Target: < 60 s.
* ``llama3-405b``: Llama 3 405B on 16,384 x H100-80GB, global batch 2048 sequences (issue 24's
  case). Target: <= 10 s on a quiet machine.

Prints the search's wall time, its candidate counts (considered, pruned by the memory bound,
pruned by the time bound, simulated), the mean time of one simulation (so what an exhaustive
search spends in the executor) and the top rows.

Run: python benchmarks/advise.py [--case llama3-405b] [--global-batch N] [--repeats 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from schedules.registry import SCHEDULES  # noqa: E402
from simulator.analytic.advise import AUTO, Request, RunText, evaluator, search  # noqa: E402
from simulator.analytic.cost_source import hardware_preset, parse_hardware  # noqa: E402
from simulator.model.parse import parse_model  # noqa: E402
from simulator.units import human_bytes  # noqa: E402

CASES = {  # name: (model, GPUs, global batch, target seconds)
    "llama3-70b": ("llama3-70b,seq=4096", 64, 512, 60.0),
    "llama3-405b": ("llama3-405b", 16384, 2048, 10.0),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=sorted(CASES), default="llama3-70b")
    parser.add_argument("--global-batch", type=int, help="default: the case's")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    model, gpus, global_batch, target = CASES[args.case]
    global_batch = args.global_batch or global_batch
    text = RunText(model, "h100-80gb")
    preset = hardware_preset(text.hardware)
    request = Request(
        spec=parse_model(text.model),
        hardware=preset,
        gpus=gpus,
        global_batch=global_batch,
        memory_limit=preset.memory_bytes,
        families=(*SCHEDULES, AUTO),
    )
    hardware = parse_hardware(text.hardware)
    times, bounding = [], []
    for _ in range(args.repeats):
        simulations: list[float] = []
        evaluate = evaluator(text)

        def timed(c, evaluate=evaluate, simulations=simulations):
            began = time.perf_counter()
            try:
                return evaluate(c)
            finally:
                simulations.append(time.perf_counter() - began)

        began = time.perf_counter()
        result = search(request, hardware, timed, top=5)
        times.append(time.perf_counter() - began)
        bounding.append(times[-1] - sum(simulations))
    mean = statistics.mean(simulations) if simulations else 0.0
    print(
        f"advise --model {text.model} --hardware {text.hardware} --gpus {gpus} "
        f"--global-batch {global_batch}"
    )
    print(
        f"search: {statistics.median(times):.1f} s (target {target:g} s; bounding "
        f"{statistics.median(bounding):.1f} s, simulating the rest); {result.considered:,} "
        f"considered, {result.pruned_memory:,} pruned by the memory bound, "
        f"{result.pruned_time:,} by the time bound, {len(result.simulated):,} simulated "
        f"({mean * 1e3:.0f} ms each), {result.refused} could not be built, "
        f"{result.too_large} too large to simulate"
    )
    for i, o in enumerate(result.top, 1):
        print(
            f"  {i}. {o.candidate.label():<40} {o.step_time:6.2f} s  MFU {100 * o.mfu:4.1f}%  "
            f"bubble {100 * o.bubble:4.1f}%  peak {human_bytes(o.peak_memory)}"
        )


if __name__ == "__main__":
    main()
