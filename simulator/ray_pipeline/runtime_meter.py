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
action returns, two CPU times on the probe's node (``machine.node_state``):

* the **rank actors' main threads**, where the actions run and, between them, the runtime's
  work on the rank (taking each call, putting each output into the object store). Less the
  actions' own CPU times, that is what the model charges as the call and send overheads;
  calibration measured those as wall-clock gaps between calls with nothing else running, a
  few dozen of them, and they swung from 0.6 to 3 ms (the send overhead) run to run. The run
  scales both by one factor so that they add up to what the main threads ran (0.65-1.08 over
  15 demo runs: the gaps were mostly longer than the CPU they hold);
* the **whole Ray session** less those main threads and less the session's idle CPU (the
  calibration's *background load* over the window's wall time, which the prediction charges
  as cores busy all along): the runtime's work off the ranks, per call the step made.

A third number is the machine's: the CPU that processes *outside* the run took in the window
(``/proc/stat``'s busy time less the session's, ``machine.outside_between``). On a machine other
work keeps busy (a 2-core VM at load 6-19 made the demo's predictions 28-63% short) that is
cores the run did not have; the profile carries it as ``outside_load`` and the prediction
charges it (``Profile``), the report saying so with the numbers.

So every CPU second the session ran in the window is charged once: as an action's work, on a
rank around a call, off the ranks per call, or as the idle load. On 15 demo runs the
predictions' errors went from -0.0..+6.4% (the run's CPU per call, calibration's overheads)
to -1.5..+2.2%. The step's end (the optimizer, the commit calls) falls outside the windows: the
prediction models it as the step overhead. Step 0 is left out
as the warm-up, as everywhere else. Each reading is one actor call that reads a few hundred
``/proc`` files (about 7 ms of CPU on this 2-core VM) between steps; the measured gap between
steps includes it, and so does the prediction's step overhead. Spread over nodes, only the
probe's node is read, and its CPU per call stands for every node's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simulator.ray_pipeline.machine import cpu_between, driver_identity, outside_between


@dataclass(frozen=True)
class RunRuntime:
    """What a run measured of the runtime: ``call_cpu``, CPU seconds per call off the ranks;
    ``overhead_scale``, the runtime's CPU on the ranks as a multiple of the calibrated call and
    send overheads (None: not measured); ``outside_load``, the cores that processes outside the
    run kept busy over the compared steps (None: not measured)."""

    call_cpu: float
    overhead_scale: float | None = None
    outside_load: float | None = None


class Window(tuple):
    """(runtime CPU off the ranks, wall, ranks' main-thread CPU) of one step, in seconds, and
    as ``outside`` the CPU seconds processes outside the run took meanwhile (None: unknown)."""

    outside: float | None = None

    def __new__(cls, values, outside: float | None = None):
        window = super().__new__(cls, values)
        window.outside = outside
        return window


@dataclass
class RuntimeMeter:
    """Windows of runtime CPU over a run's compared steps; ``result`` sums them up.

    ``probe``: a rank actor whose node is read; ``driver``: ``machine.driver_identity()``;
    ``processes``: (rank, replica, pid) of the rank actors on the probe's node; ``calls``: Ray
    calls per step (all replicas); ``node_calls``, ``node_sends``: calls and hand-overs to
    another rank per step of the ranks on the probe's node; ``load``: the session's idle CPU
    in cores (calibration's background load).
    """

    probe: object
    driver: tuple[str, int]
    processes: tuple[tuple[int, int, int], ...]
    calls: int
    node_calls: int
    node_sends: int
    load: float = 0.0
    # step -> (CPU off the ranks, wall, CPU of the ranks' main threads), seconds
    windows: dict[int, tuple[float, float, float]] = field(default_factory=dict)
    outside: dict[int, float] = field(default_factory=dict)  # step -> CPU outside the run, s
    session: tuple[int, ...] = ()  # the session's processes, as the first reading found them
    reading: bool = True  # False once stopped

    def stop(self) -> None:
        """Read no more (an actor was restarted: the processes read are no longer the ranks');
        the windows kept so far still count."""
        self.reading = False

    def read(self):
        """One reading (``machine.NodeState``) on the probe's node."""
        import ray

        pids = tuple(pid for _, _, pid in self.processes)
        reading = ray.get(self.probe.node_state.remote(self.driver, pids, self.session))
        self.session = reading.session
        return reading

    def window(self, began, ended) -> tuple[float, float, float] | None:
        """(runtime CPU off the ranks, wall, ranks' main-thread CPU) between two readings, in
        seconds, or None where the machine does not say. The readings run on the probe's main
        thread and read the ranks' main threads last, so about one reading's CPU (its own
        ``cost``) lies in both the session's and the ranks' difference: it is the session's,
        and it is taken out of the ranks'. Only the processes both readings found count
        (``machine.cpu_between``)."""
        if None in (began.cpu, ended.cpu, began.ranks_cpu, ended.ranks_cpu):
            return None
        wall = ended.wall - began.wall
        on_ranks = ended.ranks_cpu - began.ranks_cpu
        off_ranks = max(0.0, cpu_between(began, ended) - on_ranks - self.load * wall)
        outside = outside_between(began, ended)
        return Window((off_ranks, wall, max(0.0, on_ranks - ended.cost)), outside)

    def keep(self, step: int, window: tuple[float, float, float] | None) -> None:
        """Keep a finished step's window (a rerun of the step replaces it)."""
        if window is not None and step >= 1:
            self.windows[step] = window
            self.outside.pop(step, None)
            if getattr(window, "outside", None) is not None:
                self.outside[step] = window.outside

    def outside_load(self) -> float | None:
        """Cores the processes outside the run kept busy, over the kept windows' wall time."""
        wall = sum(self.windows[step][1] for step in self.outside)
        return sum(self.outside.values()) / wall if wall > 0 else None

    def result(self, timeline, calibration) -> RunRuntime | None:
        """The runtime the kept windows measured, given the run's Timeline (its actions' CPU
        times) and its ``Calibration`` (the overheads it timed); None without any window."""
        if not self.windows or self.calls < 1:
            return None
        off_ranks = sum(w[0] for w in self.windows.values())
        call_cpu = off_ranks / (self.calls * len(self.windows))
        modelled = len(self.windows) * (
            self.node_calls * calibration.call_overhead
            + self.node_sends * calibration.send_overhead
        )
        ranks = {(rank, replica) for rank, replica, _ in self.processes}
        actions = sum(
            row.cpu
            for row in timeline.action_cpu
            if row.step in self.windows and (row.rank, row.replica) in ranks
        )
        outside = self.outside_load()
        if modelled <= 0 or not timeline.action_cpu:
            return RunRuntime(call_cpu, outside_load=outside)
        on_ranks = sum(w[2] for w in self.windows.values()) - actions
        return RunRuntime(call_cpu, max(0.0, on_ranks) / modelled, outside)


def runtime_meter(pipeline) -> RuntimeMeter | None:
    """The meter of a ``RayPipeline``'s run, reading its first stage's node (as calibration
    does); None without a calibration, which supplies the processes and the idle load."""
    calibration = pipeline.calibration
    if calibration is None or not calibration.rank_processes:
        return None
    on_node = {(rank, replica) for rank, replica, _ in calibration.rank_processes}
    dp = pipeline.dp
    heads = [(segment[0].rank, segment[-1].send) for segment in pipeline.segments]
    node = [send for rank, send in heads for replica in range(dp) if (rank, replica) in on_node]
    return RuntimeMeter(
        probe=pipeline.actors.grid[0][pipeline.schedule.stage_to_rank[0]],
        driver=driver_identity(),
        processes=calibration.rank_processes,
        calls=len(pipeline.segments) * dp,
        node_calls=len(node),
        node_sends=sum(node),
        load=calibration.background_load,
    )
