"""One pipeline rank as a Ray actor: its stages' layers, its optimizer, its recorder.

Why an actor per rank: a rank is a device with memory. The actor keeps the rank's layers and
their activation cache alive across calls, so a forward caches the previous layer's output here,
the matching backward frees it here, and only activations and gradients travel between ranks,
as Ray object references the driver never fetches.

The class is plain Python (``ray.remote`` is applied by the driver), so it is also usable, and
testable, without Ray.
"""

from __future__ import annotations

import time

import numpy as np

from schedules.dependencies import PIPELINE_RULE, DependencyRule
from simulator.model import ModelSpec
from simulator.model.cache import ActivationCache
from simulator.model.optim import OptimizerConfig
from simulator.model.recompute import NO_RECOMPUTE, StageRecompute
from simulator.model.reference import gradients_of, set_loss_scale, weights_of
from simulator.model.stage import Stage
from simulator.model.transformer.dropout import set_row_offset
from simulator.ray_pipeline import calibration, machine
from simulator.ray_pipeline.copy_streams import CopyStreams, RankOffload, host_copy_seconds
from simulator.ray_pipeline.recorder import Recorder

BLAS_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
}


class RankWorker:
    """The stages of one rank (one replica), driven one action at a time by the Ray driver.

    ``act`` is the single entry point; one handler per action kind lives in ``Stage.handlers``.
    Payloads arriving from other ranks are read-only views into the object store: the layers
    never write into their inputs, so nothing needs copying. Outputs bound for a stage on the
    same rank (the turn of a V schedule) stay in ``self.local`` instead of the object store.
    """

    def __init__(
        self,
        rank: int,
        replica: int,
        spec: ModelSpec,
        stage_layers: dict[int, tuple[int, int]],
        num_stages: int,
        num_microbatches: int,
        optimizer: OptimizerConfig,
        loss_rows: int,
        origin: float,
        rule: DependencyRule = PIPELINE_RULE,
        recompute: dict[int, StageRecompute] | None = None,
        offload: RankOffload | None = None,
    ):
        self.rank = rank
        self.replica = replica
        self.rule = rule
        self.num_stages = num_stages
        self.num_microbatches = num_microbatches
        self.cache = ActivationCache()
        self.recorder = Recorder(rank, replica, origin)
        self.cache.add_listener(self.recorder.on_cache)
        self.stages: dict[int, Stage] = {}
        for stage_index, (first, last) in sorted(stage_layers.items()):
            layers = spec.build(range(first, last + 1))
            set_loss_scale(layers, loss_rows)
            plan = (recompute or {}).get(stage_index, NO_RECOMPUTE)
            stage = Stage(stage_index, layers, self.cache, plan, rule=rule)
            stage.on_weight_grad = self.recorder.on_weight_grad
            stage.clock = self.recorder.now
            stage.on_recompute = self.recorder.on_recompute
            self.stages[stage_index] = stage
        self.optimizer = optimizer.build()
        self.copies: CopyStreams | None = None  # activation offload's copy streams
        self.set_offload(offload)
        self._position = 0  # the next action's position in this rank's list, per step
        self.local: dict[tuple[int, str, int], np.ndarray] = {}
        self._expects_local: set[tuple[int, str, int]] = set()
        self.x: np.ndarray | None = None
        self.y: np.ndarray | None = None
        self.rows = 0

    # ------------------------------------------------------------------ control
    def ping(self) -> int:
        return self.rank

    def set_data(self, x: np.ndarray | None, y: np.ndarray | None, replica_rows: int = 0) -> None:
        """This replica's inputs (first stage) and targets (last stage); ``replica_rows`` is
        the number of rows every replica trains, so this one's start in the whole batch is
        ``replica * replica_rows`` (seeded dropout draws its masks per batch row)."""
        self.x, self.y = x, y
        rows = len(x) if x is not None else len(y) if y is not None else replica_rows
        self.rows = rows // self.num_microbatches
        set_row_offset(self.layers(), self.replica * replica_rows)

    def expect_local(self, actions: list[tuple[int, str, int]]) -> None:
        """Which of this rank's actions take their input from a stage on this same rank."""
        self._expects_local = set(actions)

    def begin_step(self, step: int) -> None:
        self.recorder.begin_step(step, self.num_microbatches)
        self._position = 0
        for stage in self.stages.values():
            stage.losses.clear()

    def end_step(self, step: int) -> dict:
        """Confirm the step's backward is complete here: the cache must be empty."""
        if self.copies is not None:
            self.copies.drain()
        losses = sum(sum(s.losses.values()) for s in self.stages.values())
        return {
            "rank": self.rank,
            "loss": losses,
            "cache_bytes": self.cache.total_bytes,
            "cached": len(self.cache),
            "local": len(self.local),
        }

    def layers(self):
        return [layer for s in self.stages.values() for layer in s.layers]

    def gradients(self) -> dict[tuple[int, str], np.ndarray]:
        return gradients_of(self.layers())

    def weights(self) -> dict[tuple[int, str], np.ndarray]:
        return weights_of(self.layers())

    def get_state(self) -> dict:
        return {
            "params": self.weights(),
            "optimizer": {
                k: {n: a.copy() for n, a in v.items()} for k, v in self.optimizer.state.items()
            },
            "optimizer_steps": self.optimizer.steps_taken,
        }

    def load_state(self, state: dict) -> None:
        """Restore committed weights and optimizer state; forget any half-run step."""
        for layer in self.layers():
            for name, param in layer.params.items():
                param[...] = state["params"][(layer.layer_index, name)]
            layer.zero_grad()
        self.optimizer.state = {
            k: {n: a.copy() for n, a in v.items()} for k, v in state["optimizer"].items()
        }
        self.optimizer.steps_taken = state["optimizer_steps"]
        if self.copies is not None:
            self.copies.reset()
        self.cache.clear()
        self.local.clear()
        self.recorder.drain()

    def apply_step(self, step: int, layer_indices: tuple[int, ...] = (), *reduced) -> int:
        """The optimizer step. With data parallelism ``reduced`` holds, per layer in
        ``layer_indices``, the gradients summed over replicas; they replace the local ones."""
        start = self.recorder.now()
        by_layer = dict(zip(layer_indices, reduced, strict=True))
        for layer in self.layers():
            if layer.layer_index in by_layer:
                for name, grad in by_layer[layer.layer_index].items():
                    layer.grads[name][...] = grad
        self.optimizer.step(self.layers())
        for layer in self.layers():
            layer.zero_grad()
        self.recorder.on_optimizer(start, self.recorder.now())
        return self.rank

    def drain_records(self) -> dict[str, list[tuple]]:
        return self.recorder.drain()

    # ------------------------------------------------------------------ calibration
    def calibrate(self, stage_index: int, kind: str, key: int, payload=None, send=True):
        """One action alone on a scratch cache, for calibration: (output, (start, end)).
        Recomputation is off: the profile holds each kind's own cost, whatever the policy
        (the prediction adds the recompute from the forward's share)."""
        with self.stages[stage_index].recompute_off():
            return calibration.run_alone(self, stage_index, kind, key, payload, send)

    def host_copy_seconds(self, nbytes: int, repeats: int) -> tuple[float, float]:
        """Seconds of a copy to the host and of one back (``copy_streams``)."""
        return host_copy_seconds(nbytes, repeats)

    def set_offload(self, offload: RankOffload | None) -> int:
        """Send and fetch back what ``offload`` says from the next step (None: nothing)."""
        if self.copies is not None:
            self.copies.close()
        self.copies = None
        if offload is not None and offload.active:
            self.copies = CopyStreams(offload, self.cache, self.recorder)
        return self.rank

    def finish_calibration(self) -> int:
        return calibration.finish(self)

    def node_state(self, driver: tuple[str, int], pids=(), session=()) -> tuple:
        return machine.node_state(driver, pids, session)

    # ------------------------------------------------------------------ actions
    def run_segment(self, actions: list[tuple], payload=None):
        """Run consecutive actions of this rank in one Ray call. Only the first may take a
        payload from another rank and only the last may send or return gradients, so fusing
        them changes no timing, only the number of calls (each costs about a millisecond)."""
        result = None
        for position, spec in enumerate(actions):
            result = self.act(*spec, payload=payload if position == 0 else None)
        return result

    def act(
        self,
        stage_index: int,
        kind: str,
        mb: int,
        keep_local: bool,
        send: bool,
        grads_out: bool,
        payload=None,
    ):
        """Run one action. ``payload`` is what it receives from another rank (the activation
        for F, the output gradient for I and B), or None when that comes from this rank or there
        is none. Where the output goes is the dependency rule's ``receiver``: the object store
        when ``send``, ``self.local`` when ``keep_local``. With offload, a backward first waits
        for its prefetch, and a forward's pebbles go out as it ends (``copy_streams``)."""
        stage = self.stages[stage_index]
        rule = self.rule.rule(kind)
        position, self._position = self._position, self._position + 1
        if self.copies is not None and rule.sends_gradient:
            self.copies.before_backward(stage_index, mb)
        start, cpu = self.recorder.now(), time.thread_time()
        if payload is not None:
            self.recorder.on_receive(stage_index, kind, mb, payload.nbytes)
        elif (stage_index, kind, mb) in self._expects_local:
            payload = self.local.pop((stage_index, rule.receives, mb))
        rows = slice(mb * self.rows, (mb + 1) * self.rows)
        targets = None
        if rule.is_forward:  # data at the first stage, targets at the last
            payload = self.x[rows] if stage_index == 0 else payload
            targets = self.y[rows] if stage.is_last else None
        receiver = self.rule.receiver(kind, stage_index, self.num_stages)
        out = stage.run(kind, mb, payload, targets)
        if receiver is None:
            out = None
        elif keep_local:
            self.local[(receiver, rule.output, mb)] = out
        cpu = time.thread_time() - cpu
        self.recorder.on_action(stage_index, kind, mb, start, self.recorder.now(), cpu)
        if self.copies is not None:
            if rule.is_forward:
                self.copies.after_forward(stage_index, mb)
            self.copies.after_action(position)
        result = out if send else None
        if grads_out:
            grads = [
                {name: g.copy() for name, g in layer.grads.items()} for layer in stage.param_layers
            ]
            return (result, *grads)
        return result


class GradientReducer:
    """Sums one rank's layer gradients over data-parallel replicas, layer by layer.

    Why an actor: a long-lived process answers in about a millisecond, where a fresh task may
    wait a second for a worker to start, which would hide exactly what the reduction is meant to
    show: each layer's all-reduce starting as soon as that layer's gradient is complete.
    """

    def ping(self) -> bool:
        return True

    def reduce(self, *replica_grads: dict) -> tuple[dict, tuple[float, float]]:
        """The sum over replicas of one layer's gradients, and when the sum ran."""
        start = time.time()
        total = {name: np.array(g, copy=True) for name, g in replica_grads[0].items()}
        for grads in replica_grads[1:]:
            for name, g in grads.items():
                total[name] += g
        return total, (start, time.time())
