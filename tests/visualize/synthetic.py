"""Timelines for the figure tests, built in code (no stored files, no executor needed).

``gpipe_timeline`` writes out by hand what a GPipe run of ``ranks`` x ``microbatches`` does with
F = 1 and B = 2 time units, every number known in closed form:

* rank r runs stage r; F(r, i) starts at ``r + i``; B(r, i) at ``m + p - 1 + 2 (p-1-r) + 2 i``.
* every stage has a Linear (parameters) and a parameterless layer (ReLU; the loss on the last
  stage). The Linear caches its input at the F's start and frees it at the B's end; the second
  layer caches at the F's middle and frees at the B's middle. The loss caches two tensors and
  frees them separately, so one lifetime spans several records.
* each Linear's gradient is ready at the end of its stage's last B; the optimizer step follows.
* ``dp=2`` adds replica 1 (shifted by ``replica_shift``) and one all-reduce per Linear.
* ``scale`` multiplies every time: 1e-3 with ``time_unit="s"`` is a ms-scale measured run.
"""

from __future__ import annotations

from simulator.timeline import (
    AllReduce,
    CacheChange,
    CommEvent,
    ComputeEvent,
    GradReady,
    OptimizerStep,
    Timeline,
)

LINEAR_BYTES = 4096  # per microbatch
SECOND_BYTES = 1024
LOSS_EXTRA = 512


def f_start(p: int, m: int, r: int, i: int) -> float:
    return float(r + i)


def b_start(p: int, m: int, r: int, i: int) -> float:
    return float(m + p - 1 + 2 * (p - 1 - r) + 2 * i)


def gpipe_timeline(
    p: int = 3,
    m: int = 4,
    *,
    steps: int = 1,
    dp: int = 1,
    scale: float = 1.0,
    time_unit: str = "unit",
    source: str = "analytic",
    replica_shift: float = 0.25,
    allreduce_time: float = 0.5,
) -> Timeline:
    layers = []
    for s in range(p):
        second = "cross_entropy" if s == p - 1 else "relu"
        layers.append(
            {
                "index": 2 * s,
                "name": f"{2 * s}:linear",
                "kind": "linear",
                "stage": s,
                "rank": s,
                "has_params": True,
            }
        )
        layers.append(
            {
                "index": 2 * s + 1,
                "name": f"{2 * s + 1}:{second}",
                "kind": second,
                "stage": s,
                "rank": s,
                "has_params": False,
            }
        )
    meta = {
        "schedule": "gpipe",
        "ranks": p,
        "microbatches": m,
        "chunks": 1,
        "stages": p,
        "steps": steps,
        "dp": dp,
        "source": source,
        "model": "synthetic",
        "microbatch_rows": 4,
        "time_unit": time_unit,
        "stage_to_rank": list(range(p)),
        "layers": layers,
    }
    t = Timeline(meta=meta)
    last_b_end = b_start(p, m, 0, m - 1) + 2
    # a step: the last B on rank 0 (of the last replica), the all-reduce, a 1-unit optimizer
    step_len = last_b_end + (dp - 1) * replica_shift + (allreduce_time if dp > 1 else 0.0) + 1
    for step in range(steps):
        base = step * step_len
        for replica in range(dp):
            shift = base + replica * replica_shift
            for r in range(p):
                for i in range(m):
                    f0 = shift + f_start(p, m, r, i)
                    t.events.append(
                        ComputeEvent(r, r, "F", i, step, f0 * scale, (f0 + 1) * scale, replica)
                    )
                    t.cache.append(
                        CacheChange(f0 * scale, r, 2 * r, i, step, LINEAR_BYTES, replica)
                    )
                    t.cache.append(
                        CacheChange(
                            (f0 + 0.5) * scale, r, 2 * r + 1, i, step, SECOND_BYTES, replica
                        )
                    )
                    if r == p - 1:
                        t.cache.append(
                            CacheChange(
                                (f0 + 0.75) * scale, r, 2 * r + 1, i, step, LOSS_EXTRA, replica
                            )
                        )
                    if r < p - 1:
                        t.comms.append(
                            CommEvent(
                                r,
                                r + 1,
                                r + 1,
                                "activation",
                                i,
                                step,
                                (f0 + 1) * scale,
                                (f0 + 1) * scale,
                                64,
                                replica,
                            )
                        )
                for i in range(m):
                    b0 = shift + b_start(p, m, r, i)
                    t.events.append(
                        ComputeEvent(r, r, "B", i, step, b0 * scale, (b0 + 2) * scale, replica)
                    )
                    if r == p - 1:
                        t.cache.append(
                            CacheChange(
                                (b0 + 0.25) * scale, r, 2 * r + 1, i, step, -LOSS_EXTRA, replica
                            )
                        )
                    t.cache.append(
                        CacheChange(
                            (b0 + 0.5) * scale, r, 2 * r + 1, i, step, -SECOND_BYTES, replica
                        )
                    )
                    t.cache.append(
                        CacheChange((b0 + 2) * scale, r, 2 * r, i, step, -LINEAR_BYTES, replica)
                    )
                ready = shift + b_start(p, m, r, m - 1) + 2
                t.grad_ready.append(GradReady(2 * r, step, ready * scale, replica))
        if dp > 1:
            for r in range(p):
                ready = base + (dp - 1) * replica_shift + b_start(p, m, r, m - 1) + 2
                t.allreduce.append(
                    AllReduce(2 * r, step, ready * scale, (ready + allreduce_time) * scale)
                )
        end = base + (dp - 1) * replica_shift + b_start(p, m, 0, m - 1) + 2
        if dp > 1:
            end += allreduce_time
        t.optimizer.append(OptimizerStep(step, end * scale, (end + 1) * scale))
    t.cache.sort(key=lambda c: (c.replica, c.rank, c.time))
    return t


def patches_with(fig, prefix: str) -> list:
    """Every patch of the figure whose gid starts with ``prefix``."""
    return [p for ax in fig.axes for p in ax.patches if (p.get_gid() or "").startswith(prefix)]


def texts_with(fig, gid: str) -> list:
    """Every text (annotations included) of the figure with exactly this gid."""
    return [t for ax in fig.axes for t in ax.texts if t.get_gid() == gid]
