"""The CPU the Ray runtime spends per call, measured in the training run itself.

Why: on a machine with fewer cores than rank actors, the runtime's own work (the driver
dispatching each call, the raylet and object store moving each output, the actors' I/O threads)
competes with the actions for the cores, so the prediction charges each call ``call_cpu``
seconds of CPU off its rank (``analytic.sharing``). Calibration used to measure it over a few
dozen calls in a fraction of a second before step 0, and that number swung from 1.9 to 6.0 ms
run to run on a 2-core VM (the first calls after Ray starts cost more); at about 4.5% of
makespan per millisecond on the demo, that swing alone broke a 5% target. Measured here over
every call of the compared steps (hundreds), it stayed within 2.4-4.2 ms over 21 demo runs
(each schedule's own spread about 1 ms), and their errors' spread fell from 3.1% to 2.0%.

What one window counts: from just before a step's calls are submitted to the moment its last
action returns, the Ray session's CPU time on the probe's node (``machine.node_state``) minus
the main threads of the rank actors there (where the actions and their on-rank call overheads
run, which the model charges on the rank) minus the session's idle CPU (the calibration's
*background load*, over the window's wall time, which the prediction charges as cores busy
all along). What is left is the runtime's work off the
ranks, divided by the calls the step made. The step's end (the optimizer, the commit calls)
falls outside the windows: the prediction models it as the step overhead. Step 0 is left out
as the warm-up, as everywhere else. Each reading is one actor call that reads a few hundred
``/proc`` files (about 7 ms of CPU on this 2-core VM) between steps; the measured gap between
steps includes it, and so does the prediction's step overhead. Spread over nodes, only the
probe's node is read, and its CPU per call stands for every node's.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RuntimeMeter:
    """Windows of runtime CPU over a run's compared steps; ``call_cpu`` is the result.

    ``probe``: a rank actor whose node is read; ``driver``: ``machine.driver_identity()``;
    ``pids``: the rank actors' processes on the probe's node; ``calls``: Ray calls per step
    (all replicas); ``load``: the session's idle CPU in cores (calibration's background load).
    """

    probe: object
    driver: tuple[str, int]
    pids: tuple[int, ...]
    calls: int
    load: float = 0.0
    windows: dict[int, tuple[float, float]] = field(default_factory=dict)  # step -> (cpu, wall)
    session: tuple[int, ...] = ()  # the session's processes, as the first reading found them

    def read(self):
        """One reading (``machine.NodeState``) on the probe's node."""
        import ray

        reading = ray.get(self.probe.node_state.remote(self.driver, self.pids, self.session))
        self.session = reading.session
        return reading

    def window(self, began, ended) -> tuple[float, float] | None:
        """(runtime CPU seconds off the ranks, wall seconds) between two readings, or None
        where the machine does not say."""
        if None in (began.cpu, ended.cpu, began.ranks_cpu, ended.ranks_cpu):
            return None
        wall = ended.wall - began.wall
        on_ranks = ended.ranks_cpu - began.ranks_cpu
        return max(0.0, ended.cpu - began.cpu - on_ranks - self.load * wall), wall

    def keep(self, step: int, window: tuple[float, float] | None) -> None:
        """Keep a finished step's window (a rerun of the step replaces it)."""
        if window is not None and step >= 1:
            self.windows[step] = window

    def call_cpu(self) -> float | None:
        """CPU seconds per call off the ranks over the kept windows; None without any."""
        if not self.windows or self.calls < 1:
            return None
        cpu = sum(c for c, _ in self.windows.values())
        return cpu / (self.calls * len(self.windows))


def runtime_meter(pipeline) -> RuntimeMeter | None:
    """The meter of a ``RayPipeline``'s run, reading its first stage's node (as calibration
    does); None without a calibration, which supplies the processes and the idle load."""
    from simulator.ray_pipeline.machine import driver_identity

    calibration = pipeline.calibration
    if calibration is None or not calibration.rank_pids:
        return None
    return RuntimeMeter(
        probe=pipeline.actors.grid[0][pipeline.schedule.stage_to_rank[0]],
        driver=driver_identity(),
        pids=calibration.rank_pids,
        calls=len(pipeline.segments) * pipeline.options.dp,
        load=calibration.background_load,
    )
