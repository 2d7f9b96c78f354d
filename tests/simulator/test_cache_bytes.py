"""The real layers move exactly the cache bytes their ``footprint`` promises.

The analytic executor predicts memory from ``footprint`` alone, so these tuples are the truth:
for every layer kind, both dtypes and every phase, the sequence of ``delta_bytes`` a listener
on the ActivationCache sees must equal ``footprint(...).phase(kind)`` exactly, in order.
"""

from __future__ import annotations

import numpy as np
import pytest

from simulator.model import ModelSpec, partition
from simulator.model.cache import ActivationCache, CacheEvent
from simulator.model.layer_kinds import LAYER_CLASSES
from simulator.model.layers import Layer, Loss
from simulator.model.reference import set_loss_scale
from simulator.model.stage import Stage

ROWS = 5
N_IN, N_OUT = 6, 4
DTYPES = [np.float64, np.float32]


class Recorder:
    """Listener that groups the cache's delta_bytes by the phase running at the time."""

    def __init__(self, cache: ActivationCache):
        self.cache = cache
        self.events: list[CacheEvent] = []
        cache.add_listener(self.events.append)

    def deltas(self, run) -> tuple[int, ...]:
        start = len(self.events)
        before = self.cache.total_bytes
        run()
        new = self.events[start:]
        # the running total the events carry agrees with the deltas and with the cache
        total = before
        for event in new:
            total += event.delta_bytes
            assert event.total_bytes == total
        assert total == self.cache.total_bytes
        return tuple(event.delta_bytes for event in new)


def make(kind: str, dtype) -> tuple[Layer, int]:
    cls = LAYER_CLASSES[kind]
    n_out = N_OUT if kind == "linear" else N_IN
    rng = np.random.default_rng(0)
    if cls.has_params:
        return cls(2, N_IN, n_out, dtype, rng=rng), n_out
    return cls(2, N_IN, n_out, dtype), n_out


def inputs(kind: str, n_out: int, dtype, rng):
    x = rng.standard_normal((ROWS, N_IN)).astype(dtype)
    g = rng.standard_normal((ROWS, n_out)).astype(dtype)
    targets = None
    if kind == "cross_entropy":
        targets = rng.integers(0, N_IN, ROWS)
    elif kind == "mse":
        targets = rng.standard_normal((ROWS, N_IN))
    return x, g, targets


def forward(layer, mb, x, targets):
    if isinstance(layer, Loss):
        return layer.forward(mb, x, targets)
    return layer.forward(mb, x)


def backward_input(layer, mb, g):
    return layer.backward_input(mb) if isinstance(layer, Loss) else layer.backward_input(mb, g)


def backward(layer, mb, g):
    return layer.backward(mb) if isinstance(layer, Loss) else layer.backward(mb, g)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kind", sorted(LAYER_CLASSES))
def test_each_phase_moves_exactly_the_footprint(kind, dtype):
    rng = np.random.default_rng(1)
    layer, n_out = make(kind, dtype)
    rec = Recorder(layer.cache)
    fp = type(layer).footprint(N_IN, n_out, ROWS, np.dtype(dtype).itemsize)
    x, g, targets = inputs(kind, n_out, dtype, rng)

    # split: F, I, W on microbatch 0
    assert rec.deltas(lambda: forward(layer, 0, x, targets)) == fp.phase("F")
    assert rec.deltas(lambda: backward_input(layer, 0, g)) == fp.phase("I")
    assert rec.deltas(lambda: layer.backward_weight(0)) == fp.phase("W")
    assert len(layer.cache) == 0 and layer.cache.total_bytes == 0

    # full: F, B on microbatch 1
    assert rec.deltas(lambda: forward(layer, 1, x, targets)) == fp.phase("F")
    assert rec.deltas(lambda: backward(layer, 1, g)) == fp.phase("B")
    assert len(layer.cache) == 0 and layer.cache.total_bytes == 0

    # conservation: what F caches, I+W (or B) frees
    assert sum(fp.F) + sum(fp.I) + sum(fp.W) == 0
    assert sum(fp.F) + sum(fp.B) == 0
    assert all(d > 0 for d in fp.F) and all(d < 0 for d in fp.B + fp.W)


@pytest.mark.parametrize("kind", sorted(LAYER_CLASSES))
def test_footprint_matches_the_docstring_rules(kind):
    """Byte counts written out from the rules in layers.py's docstring, independently."""
    cls = LAYER_CLASSES[kind]
    n_out = N_OUT if kind == "linear" else N_IN
    for itemsize in (8, 4):
        fp = cls.footprint(N_IN, n_out, ROWS, itemsize)
        x = ROWS * N_IN * itemsize  # the input (or, for sigmoid/tanh, the same-sized output)
        g = ROWS * n_out * itemsize  # the output gradient, kept from I until W
        if kind in ("linear", "layernorm"):
            expected = ((x,), (g,), (-x, -g), (-x,))
        elif kind == "cross_entropy":
            labels = ROWS * 8  # int64 targets
            expected = ((x, labels), (-x, -labels), (), (-x, -labels))
        else:
            expected = ((x,), (-x,), (), (-x,))
        got = (fp.F, fp.I, fp.W, fp.B)
        assert got == expected, (kind, itemsize)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_stage_actions_move_the_concatenated_footprints(dtype, loss):
    """A stage's action moves each layer's footprint in turn: forward order for F, reverse
    order for I, W and B."""
    _run_stage_actions(dtype, loss, plans=None)


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_analytic_memory_plans_net_to_what_the_stages_move(loss):
    """The analytic executor's per-action plan nets to the same per-layer totals."""
    analytic = pytest.importorskip("simulator.model.memory_plan")
    _run_stage_actions("float32", loss, plans=analytic.memory_plans)


def _run_stage_actions(dtype, loss, plans):
    spec = ModelSpec(
        widths=(3, 6, 5, 4), activation="sigmoid", loss=loss, layernorm=True, dtype=dtype
    )
    rows = 4
    infos = spec.layers()
    parts = partition(spec, 2)
    plan = plans(spec, parts, rows) if plans is not None else None
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, 3)).astype(dtype)
    y = rng.integers(0, 4, rows) if loss == "cross_entropy" else rng.standard_normal((rows, 4))
    layers = spec.build()
    set_loss_scale(layers, rows)
    cache = ActivationCache()  # one rank holding both stages, as with interleaved chunks
    stages = [Stage(i, [layers[j] for j in r], cache) for i, r in enumerate(parts.stage_layers)]
    rec = Recorder(cache)
    per_layer: list[int] = []
    cache.add_listener(lambda event: per_layer.append(event.layer_index))

    def expected(stage_index: int, kind: str) -> tuple[int, ...]:
        chosen = [infos[i] for i in parts.stage_layers[stage_index]]
        if kind != "F":
            chosen = chosen[::-1]
        return tuple(d for i in chosen for d in i.footprint(rows, spec.itemsize).phase(kind))

    def check(stage_index, kind, run):
        start = len(per_layer)
        got = rec.deltas(run)
        assert got == expected(stage_index, kind), (stage_index, kind)
        net: dict[int, int] = {}
        for layer_index, delta in zip(per_layer[start:], got, strict=True):
            net[layer_index] = net.get(layer_index, 0) + delta
        if plan is None:
            return
        planned = {i: d for i, d, _ in plan[(stage_index, kind)].changes}
        assert {i: d for i, d in net.items() if d} == planned, (stage_index, kind)

    for mb, split in ((0, True), (1, False)):
        out = x
        for s, stage in enumerate(stages):
            holder = {}

            def run_forward(stage=stage, out=out, holder=holder, mb=mb):
                holder["out"] = stage.forward(mb, out, y if stage.is_last else None)

            check(s, "F", run_forward)
            out = holder["out"]
        grad = None
        for s in (1, 0):
            holder = {}
            if split:

                def run_input(s=s, grad=grad, holder=holder, mb=mb):
                    holder["grad"] = stages[s].backward_input(mb, grad)

                check(s, "I", run_input)
                check(s, "W", lambda s=s, mb=mb: stages[s].backward_weight(mb))
            else:

                def run_full(s=s, grad=grad, holder=holder, mb=mb):
                    holder["grad"] = stages[s].backward(mb, grad)

                check(s, "B", run_full)
            grad = holder["grad"]
        assert len(cache) == 0 and cache.total_bytes == 0


def test_listeners_can_be_removed():
    cache = ActivationCache()
    seen: list[CacheEvent] = []
    cache.add_listener(seen.append)
    cache.put(0, 0, "input", np.zeros((2, 3), dtype=np.float32))
    cache.remove_listener(seen.append)
    cache.pop(0, 0, "input")
    assert [e.delta_bytes for e in seen] == [24]
    assert cache.total_bytes == 0
