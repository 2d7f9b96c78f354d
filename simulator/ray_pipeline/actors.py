"""The rank actors of a pipeline: placing them, feeding them data, snapshots, restarts, shutdown.

Why apart from the step driver: placement groups, restarts and snapshots are about keeping a
set of processes alive and consistent; the driver (``executor``) only submits actions to them.
"""

from __future__ import annotations

import math
import os
import time

from simulator.errors import PebbleError
from simulator.ray_pipeline.cluster import ensure_ray, stop_ray
from simulator.ray_pipeline.worker import BLAS_ENV, GradientReducer, RankWorker


class RankActors:
    """``dp`` replicas x ``ranks`` RankWorker actors (plus one gradient reducer per rank with
    data parallelism), placed with one placement group."""

    def __init__(self, pipeline) -> None:
        self.pipeline = pipeline
        self.schedule = pipeline.schedule
        self.options = pipeline.options
        self.grid: list[list] = []  # [replica][rank] -> actor
        self.reducers: list = []
        self.pg = None
        self.started_ray = False
        self.origin = 0.0

    def __getitem__(self, replica: int) -> list:
        """Replica ``replica``'s actors, by rank."""
        return self.grid[replica]

    def __len__(self) -> int:
        return len(self.grid)

    def __iter__(self):
        """(actor, rank, replica) for every rank actor."""
        for replica, row in enumerate(self.grid):
            for rank, actor in enumerate(row):
                yield actor, rank, replica

    def start(self) -> None:
        import ray
        from ray.util.placement_group import placement_group

        ranks, dp = self.schedule.num_ranks, self.pipeline.dp
        # Every result submitted is consumed by another action or waited on as a sink, so a
        # failure always reaches the driver's wait and becomes one sentence; Ray's own
        # "unhandled error" log of an aborted step's leftover results would only repeat it.
        os.environ.setdefault("RAY_IGNORE_UNHANDLED_ERRORS", "1")
        self.started_ray = ensure_ray(self.options.address, ranks * dp)
        available = ray.available_resources().get("CPU", 0.0)
        if available <= 0:
            raise PebbleError("the Ray cluster has no free CPU for the pipeline ranks.")
        cpus = min(1.0, math.floor(100 * available / (ranks * dp)) / 100)
        if cpus <= 0:
            raise PebbleError(
                f"the Ray cluster has {available:g} free CPUs, too few for {ranks * dp} ranks."
            )
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        strategy = "SPREAD" if len(nodes) > 1 else "PACK"
        self.pg = placement_group([{"CPU": cpus}] * (ranks * dp), strategy=strategy)
        try:
            ray.get(self.pg.ready(), timeout=60)
        except Exception:
            raise PebbleError(
                f"the Ray cluster could not place {ranks * dp} ranks of {cpus:g} CPU each "
                "within 60 s."
            ) from None
        self.cpus = cpus
        self.origin = time.time()
        self.grid = [[self.make(rank, replica) for rank in range(ranks)] for replica in range(dp)]
        self.data = self.pipeline.config.data()
        for _, rank, replica in self:
            self.feed(rank, replica)
        self.reducers = [self._reducer(rank) for rank in range(ranks)] if dp > 1 else []
        pings = [a.ping.remote() for a, _, _ in self] + [r.ping.remote() for r in self.reducers]
        ray.get(pings, timeout=120)

    def _strategy(self, bundle: int):
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        return PlacementGroupSchedulingStrategy(
            placement_group=self.pg, placement_group_bundle_index=bundle
        )

    def _reducer(self, rank: int):
        """A warm reducer next to replica 0's actor of ``rank``."""
        import ray

        return (
            ray.remote(GradientReducer)
            .options(num_cpus=0, scheduling_strategy=self._strategy(rank))
            .remote()
        )

    def make(self, rank: int, replica: int):
        """A new actor for ``rank`` of ``replica``, holding that rank's stages."""
        import ray

        pipeline = self.pipeline
        partition = pipeline.partition
        stage_layers = {
            s: (partition.stage_layers[s][0], partition.stage_layers[s][-1])
            for s in self.schedule.stages_of_rank(rank)
        }
        config = pipeline.config
        return (
            ray.remote(RankWorker)
            .options(
                num_cpus=self.cpus,
                max_restarts=0,
                scheduling_strategy=self._strategy(replica * self.schedule.num_ranks + rank),
                runtime_env={"env_vars": BLAS_ENV},
            )
            .remote(
                rank,
                replica,
                config.model,
                stage_layers,
                self.schedule.num_stages,
                config.microbatches,
                config.optimizer,
                config.batch_size,
                self.origin,
                pipeline.run_order.rule,
                pipeline.stage_recompute(rank),
                pipeline.rank_offload(rank),
            )
        )

    def feed(self, rank: int, replica: int) -> None:
        """Give an actor its replica's rows (inputs on the first stage, targets on the last)
        and the actions whose input stays on its own rank."""
        actor = self.grid[replica][rank]
        x_all, y_all = self.data
        rows = self.pipeline.microbatch_rows * self.pipeline.config.microbatches
        lo, hi = replica * rows, (replica + 1) * rows
        stages = self.schedule.stages_of_rank(rank)
        x = x_all[lo:hi] if 0 in stages else None
        y = y_all[lo:hi] if self.schedule.num_stages - 1 in stages else None
        actor.set_data.remote(x, y, rows)
        local = [
            (w.stage, w.kind, w.mb)
            for w in self.pipeline.wired
            if w.rank == rank and w.producer is not None and not w.remote_input
        ]
        actor.expect_local.remote(local)

    def dead(self) -> list[tuple[int, int]]:
        """(rank, replica) of every actor that does not answer a ping within 10 s."""
        import ray

        pings = {a.ping.remote(): (rank, replica) for a, rank, replica in self}
        ready, not_ready = ray.wait(list(pings), num_returns=len(pings), timeout=10)
        dead = [pings[ref] for ref in not_ready]
        for ref in ready:
            try:
                ray.get(ref)
            except Exception:  # noqa: BLE001 - a failed ping means a dead actor
                dead.append(pings[ref])
        return sorted(dead)

    def snapshot(self) -> list[list]:
        """References to every actor's committed weights and optimizer state.

        The driver owns these objects, so they outlive an actor that dies later; but only once
        they exist, so the snapshot is complete before the next step starts (nothing is
        fetched to the driver).
        """
        import ray

        refs = [[a.get_state.remote() for a in row] for row in self.grid]
        flat = [ref for row in refs for ref in row]
        ray.wait(flat, num_returns=len(flat), timeout=self.options.step_timeout, fetch_local=False)
        return refs

    def restore(self, snapshot: list[list]) -> None:
        """Replace dead actors and load every actor's state from ``snapshot``."""
        import ray

        for rank, replica in self.dead():
            self.grid[replica][rank] = self.make(rank, replica)
            self.feed(rank, replica)
        ray.get(
            [
                a.load_state.remote(state)
                for row, states in zip(self.grid, snapshot, strict=True)
                for a, state in zip(row, states, strict=True)
            ],
            timeout=120,
        )

    def weights(self) -> dict:
        import ray

        out: dict = {}
        for weights in ray.get([a.weights.remote() for a in self.grid[0]]):
            out.update(weights)
        return out

    def shutdown(self) -> None:
        import ray

        if not ray.is_initialized():
            return
        for actor in [a for a, _, _ in self] + self.reducers:
            ray.kill(actor)
        self.grid, self.reducers = [], []
        if self.pg is not None:
            from ray.util.placement_group import remove_placement_group

            remove_placement_group(self.pg)
            self.pg = None
        if self.started_ray:
            stop_ray()  # leave Ray, and end the local Ray this run started
