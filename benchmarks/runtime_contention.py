"""Benchmark: does the Ray runtime's work take an idle core, or slow a computing actor?

Why: the shared-core model (``simulator/analytic/sharing.py``) has to say where the runtime's
own CPU work (the driver, the raylet, the actors' I/O threads) runs when fewer actions than
cores compute. Here one actor computes (matmuls, one BLAS thread) for 3 s while the driver
does nothing, calls a second actor back to back, or calls it with a 512 KB argument (a
pipeline's activation). Printed per case: how much longer than its CPU time the computing
actor took (its stretch), and the cores the rest of the Ray session used meanwhile. With 2
cores and the runtime using about one, "the runtime takes the idle core" predicts no stretch;
"it is spread over every core" predicts 100%.

Run: python benchmarks/runtime_contention.py
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import time  # noqa: E402

import numpy as np  # noqa: E402
import ray  # noqa: E402

from simulator.ray_pipeline.machine import session_cpu_seconds  # noqa: E402

SECONDS = 3.0


@ray.remote
class Worker:
    """Computes (``crunch``) or answers at once (``noop``)."""

    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        self.w = rng.random((2048, 2048), dtype=np.float32)
        self.x = rng.random((128, 2048), dtype=np.float32)

    def crunch(self, seconds: float) -> list[tuple[float, float]]:
        """(wall, CPU) seconds of each chunk of two matmuls, for ``seconds``."""
        chunks, stop = [], time.perf_counter() + seconds
        while time.perf_counter() < stop:
            wall, cpu = time.perf_counter(), time.thread_time()
            for _ in range(2):
                self.x @ self.w
            chunks.append((time.perf_counter() - wall, time.thread_time() - cpu))
        return chunks

    def noop(self, payload=None) -> int:
        return 1


def main() -> None:
    ray.init(num_cpus=4, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        computing, called = Worker.remote(), Worker.remote()
        ray.get([computing.noop.remote(), called.noop.remote()])
        time.sleep(2.0)  # let the workers' start-up finish
        print(f"{os.cpu_count()} cores; one actor computes for {SECONDS:g} s while the driver:")
        payload = np.zeros(128 * 1024, np.float32)  # 512 KB
        for case, argument in (("idles", None), ("calls", None), ("calls, 512 KB", payload)):
            chunks_ref = computing.crunch.remote(SECONDS)
            cpu_before, began, calls = session_cpu_seconds(os.getpid()), time.time(), 0
            while time.time() - began < SECONDS - 0.1:
                if case == "idles":
                    time.sleep(0.01)
                else:
                    ray.get(called.noop.remote(argument))
                    calls += 1
            chunks = np.array(ray.get(chunks_ref))
            wall = time.time() - began
            cpu = (session_cpu_seconds(os.getpid()) or 0.0) - (cpu_before or 0.0)
            stretch = 100 * (chunks[:, 0].sum() / chunks[:, 1].sum() - 1)
            others = (cpu - chunks[:, 1].sum()) / wall
            print(
                f"  {case:>14}: {calls:5d} calls; the computing actor took {stretch:5.1f}% "
                f"longer than its CPU time; the rest of the session used {others:.2f} cores"
            )
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
