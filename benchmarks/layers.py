"""Overhead of pebblesim's numpy layers over the bare matmuls they must do.

Runs a stack of ``--layers`` blocks of Linear(width, width) + ReLU, float32, at ``--batch`` rows,
forward then full backward through ``simulator.model.stage.Stage``, and compares the median
time with the median time of the three matmuls per Linear that any implementation needs
(``x @ W``, ``g @ W.T``, ``x.T @ g``). Everything else (bias, activation, caching, gradient
accumulation, bookkeeping) is overhead; the target is under 10 %.

BLAS is pinned to one thread so the two timings are comparable and repeatable.

    python benchmarks/layers.py [--repeats 7] [--width 4096] [--batch 256] [--layers 4]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from contextlib import nullcontext  # noqa: E402

import numpy as np  # noqa: E402

from simulator.model.mlp_layers import Linear, ReLU  # noqa: E402
from simulator.model.stage import Stage  # noqa: E402

try:  # optional: also pins threads of an already-loaded BLAS
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - threadpoolctl is not a dependency
    threadpool_limits = None


def build_stage(width: int, layers: int) -> Stage:
    """``layers`` blocks of Linear + ReLU, no loss: a middle pipeline stage."""
    built = []
    for block in range(layers):
        rng = np.random.default_rng([0, 2 * block])
        built.append(Linear(2 * block, width, width, np.float32, rng=rng))
        built.append(ReLU(2 * block + 1, width, width, np.float32))
    return Stage(0, built)


def time_layers(stage: Stage, x: np.ndarray, g: np.ndarray, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        stage.forward(0, x)
        stage.backward(0, g)
        times.append(time.perf_counter() - start)
        assert len(stage.cache) == 0
    return times


def time_matmuls(weights: list[np.ndarray], x: np.ndarray, g: np.ndarray, repeats: int):
    """The same three matmuls per Linear, on arrays of the same shapes, nothing else."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        acts = [x]
        for w in weights[:-1]:
            acts.append(acts[-1] @ w)
        _ = acts[-1] @ weights[-1]
        for w, a in zip(reversed(weights), reversed(acts), strict=True):
            _ = a.T @ g
            _ = g @ w.T
        times.append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--width", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    stage = build_stage(args.width, args.layers)
    x = rng.standard_normal((args.batch, args.width)).astype(np.float32)
    weights = [layer.params["W"] for layer in stage.layers if layer.kind == "linear"]
    g = rng.standard_normal((args.batch, args.width)).astype(np.float32)

    limits = threadpool_limits(1) if threadpool_limits is not None else nullcontext()
    with limits:
        time_layers(stage, x, g, 1)  # warm up both paths (page faults, BLAS init)
        time_matmuls(weights, x, g, 1)
        # interleave the two measurements so drift in machine load hits both alike
        ours, raw = [], []
        for _ in range(args.repeats):
            ours += time_layers(stage, x, g, 1)
            raw += time_matmuls(weights, x, g, 1)

    t_ours = statistics.median(ours)
    t_raw = statistics.median(raw)
    overhead = 100.0 * (t_ours / t_raw - 1.0)
    print(
        f"{args.layers} x [Linear({args.width},{args.width}) + ReLU], batch {args.batch}, "
        f"float32, 1 BLAS thread, median of {args.repeats}"
    )
    print(f"  layers (forward + backward): {t_ours * 1e3:9.2f} ms")
    print(f"  raw matmuls (3 per Linear):  {t_raw * 1e3:9.2f} ms")
    print(f"  ratio {t_ours / t_raw:.3f}  overhead {overhead:+.1f} %  (target < 10 %)")
    return overhead


if __name__ == "__main__":
    main()
