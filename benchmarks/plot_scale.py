"""How long every figure takes, and how large its files are, at real scale.

Two runs: the Llama 3 70B timeline ``advise`` puts first for 64 H100s (zb-v, p4 v2 t4 sp d4,
128 microbatches), written by

    pebblesim simulate --schedule zb-v --ranks 4 --microbatches 128 \\
        --model llama3-70b,seq=4096 --batch-size 512 --hardware h100 --tp 4 --sp --dp 4 \\
        --zero 1 --out big --no-figures

and a synthetic 64 ranks x 512 microbatches x 128 layers GPipe (``tests.visualize.synthetic``).
Prints CPU seconds per figure (PNG and SVG written, as ``plot`` does) and file sizes; the tests
check sizes and correctness, never time.

    python benchmarks/plot_scale.py [big/timeline.json] [--out DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from simulator.timeline import RankMemory, Timeline  # noqa: E402

KINDS = ("pipeline", "memory", "pebble", "grads", "breakdown")


def synthetic() -> Timeline:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's tests/
    from tests.visualize.synthetic import gpipe_timeline

    timeline = gpipe_timeline(64, 512)
    gib = 2**30
    memory = tuple(RankMemory(30 * gib, 15 * gib, 15 * gib, 0) for _ in range(64))
    timeline.meta = dataclasses.replace(timeline.meta, rank_memory=memory, memory_capacity=80 * gib)
    return timeline


def measure(name: str, timeline: Timeline, out: Path) -> None:
    import visualize

    figures = {**visualize.FIGURES, "breakdown": visualize.breakdown_figure}
    total = 0.0
    print(f"{name}: {len(timeline.events):,} actions, {len(timeline.cache):,} cache records")
    for kind in KINDS:
        began = time.process_time()
        paths = visualize.save(figures[kind](timeline), out / name / kind)
        spent = time.process_time() - began
        total += spent
        sizes = "  ".join(f"{p.suffix[1:]} {p.stat().st_size / 1e6:.2f} MB" for p in paths)
        print(f"  {kind:<10} {spent:6.2f} s   {sizes}")
    print(f"  {'all':<10} {total:6.2f} s (CPU seconds of this process)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("timeline", nargs="?", help="the 70B timeline.json (see above)")
    parser.add_argument("--out", help="keep the figures here (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(args.out or scratch)
        if args.timeline:
            began = time.process_time()
            big = Timeline.load(args.timeline)
            print(f"loaded {args.timeline} in {time.process_time() - began:.2f} s")
            measure("llama3-70b", big, out)
        measure("synthetic-64x512x128", synthetic(), out)


if __name__ == "__main__":
    main()
