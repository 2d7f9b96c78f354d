"""Model specs: parsing, the layer list, seeded weights independent of the partition, and the
partitioner's contract (contiguous, non-empty, covering stages; a clear error when impossible)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.errors import PebbleError
from simulator.model import ModelSpec, partition

# ---------------------------------------------------------------- parse


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2-64-64-3", ModelSpec(widths=(2, 64, 64, 3))),
        ("2x16x3", ModelSpec(widths=(2, 16, 3))),
        (
            "widths=2-8-3,activation=tanh,loss=mse,dtype=float32,layernorm=1,seed=3",
            ModelSpec(
                widths=(2, 8, 3),
                activation="tanh",
                loss="mse",
                dtype="float32",
                layernorm=True,
                seed=3,
            ),
        ),
        ("4-4, activation = gelu , loss=ce", ModelSpec(widths=(4, 4), activation="gelu")),
        ("2-5-3,layernorm=true", ModelSpec(widths=(2, 5, 3), layernorm=True)),
        ("2-5-3,layernorm=0", ModelSpec(widths=(2, 5, 3), layernorm=False)),
        ("seed=7", ModelSpec(seed=7)),
        ("", ModelSpec()),
    ],
)
def test_parse_good(text, expected):
    assert ModelSpec.parse(text) == expected


def test_parse_round_trips_to_text():
    spec = ModelSpec(widths=(3, 9, 2), activation="sigmoid", loss="mse", dtype="float32",
                     layernorm=True, seed=12)  # fmt: skip
    assert ModelSpec.parse(spec.to_text()) == spec
    assert ModelSpec.parse(ModelSpec().to_text()) == ModelSpec()
    assert pickle.loads(pickle.dumps(spec)) == spec


def test_loss_aliases_normalise():
    assert ModelSpec(loss="ce").loss == "cross_entropy"
    assert ModelSpec.parse("loss=ce") == ModelSpec(loss="cross_entropy")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2-x-3", "cannot read '2-x-3'"),
        ("2--3", "cannot read"),
        ("widths=", "cannot read"),
        ("2", "at least two positive integers"),
        ("2-0-3", "at least two positive integers"),
        ("2--1", "cannot read"),
        ("2-4,activation=swish", "unknown activation 'swish'"),
        ("2-4,loss=hinge", "unknown loss 'hinge'"),
        ("2-4,dtype=float16", "unknown dtype 'float16'"),
        ("2-4,seed=abc", "cannot read 'seed=abc'"),
        ("2-4,seed=-1", "seed"),
        ("2-4,depth=3", "unknown model key 'depth'"),
        ("2-4,layernorm=maybe", "layernorm"),
    ],
)
def test_parse_bad_inputs_raise_a_clear_pebble_error(text, message):
    with pytest.raises(PebbleError, match=message) as info:
        ModelSpec.parse(text)
    text_of_error = str(info.value)
    assert text_of_error.endswith(".")  # one complete sentence, as errors.py asks
    assert "\n" not in text_of_error


def test_bad_constructor_arguments_raise_pebble_error():
    with pytest.raises(PebbleError):
        ModelSpec(widths=(3,))
    with pytest.raises(PebbleError):
        ModelSpec(activation="softmax")
    with pytest.raises(PebbleError):
        ModelSpec(seed=-2)


# ---------------------------------------------------------------- the layer list


def test_layers_lists_linear_norm_activation_then_loss():
    spec = ModelSpec(widths=(2, 5, 4, 3), activation="tanh", loss="mse", layernorm=True)
    kinds = [(i.index, i.kind, i.in_features, i.out_features, i.block) for i in spec.layers()]
    assert kinds == [
        (0, "linear", 2, 5, 0),
        (1, "layernorm", 5, 5, 0),
        (2, "tanh", 5, 5, 0),
        (3, "linear", 5, 4, 1),
        (4, "layernorm", 4, 4, 1),
        (5, "tanh", 4, 4, 1),
        (6, "linear", 4, 3, 2),
        (7, "mse", 3, 3, 2),
    ]
    built = spec.build()
    assert [layer.kind for layer in built] == [k[1] for k in kinds]
    assert [layer.layer_index for layer in built] == list(range(8))
    assert built[0].params["W"].shape == (2, 5)
    assert ModelSpec.uniform(3, width=16).widths == (16, 16, 16, 16)


# ---------------------------------------------------------------- seeded weights


def _weights(layers):
    return {(l.layer_index, k): v for l in layers for k, v in l.params.items()}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_weights_depend_on_seed_and_global_index_only(dtype):
    spec = ModelSpec(widths=(3, 8, 8, 8, 4), activation="gelu", layernorm=True, dtype=dtype, seed=5)
    full = _weights(spec.build())
    n = len(spec.layers())
    for a in range(n):
        for b in range(a + 1, n + 1):
            part = _weights(spec.build(range(a, b)))
            assert set(part) == {key for key in full if a <= key[0] < b}
            for key, value in part.items():
                assert value.dtype == np.dtype(dtype)
                np.testing.assert_array_equal(value, full[key])
    for stages in range(1, n + 1):
        for layer_range in partition(spec, stages).stage_layers:
            for key, value in _weights(spec.build(layer_range)).items():
                np.testing.assert_array_equal(value, full[key])


def test_different_seeds_and_layers_give_different_weights():
    a = _weights(ModelSpec(widths=(4, 4, 4, 4), seed=0).build())
    b = _weights(ModelSpec(widths=(4, 4, 4, 4), seed=1).build())
    assert not np.array_equal(a[(0, "W")], b[(0, "W")])
    assert not np.array_equal(a[(0, "W")], a[(2, "W")])  # same shape, different index
    # the global index, not the position in the built list, decides
    only_second = ModelSpec(widths=(4, 4, 4, 4), seed=0).build(range(2, 3))
    np.testing.assert_array_equal(only_second[0].params["W"], a[(2, "W")])


def test_linear_init_is_he_scaled():
    spec = ModelSpec(widths=(400, 300, 2), seed=0)
    w = spec.build()[0].params["W"]
    assert w.std() == pytest.approx(np.sqrt(2.0 / 400), rel=0.02)
    assert not np.any(spec.build()[0].params["b"])


# ---------------------------------------------------------------- partition


def _check_partition(spec: ModelSpec, stages: int) -> None:
    infos = spec.layers()
    parts = partition(spec, stages).stage_layers
    assert len(parts) == stages
    assert all(len(r) > 0 and r.step == 1 for r in parts)
    assert parts[0].start == 0 and parts[-1].stop == len(infos)
    for left, right in zip(parts, parts[1:], strict=False):
        assert left.stop == right.start  # contiguous, no gap, no overlap
    blocks = len(spec.widths) - 1
    if stages <= blocks:  # enough blocks: no stage splits a Linear from its norm/activation
        for r in parts:
            assert infos[r.start].kind == "linear"


SPECS = [
    ModelSpec(widths=(2, 3)),
    ModelSpec(widths=(2, 64, 64, 3)),
    ModelSpec(widths=(2, 8, 8, 8, 8, 3), layernorm=True, activation="gelu"),
    ModelSpec(widths=(512, 16, 16, 1024, 16, 3), loss="mse"),
    ModelSpec.uniform(16, width=32),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.to_text())
def test_partition_is_contiguous_non_empty_and_covering(spec):
    n = len(spec.layers())
    for stages in range(1, n + 1):
        _check_partition(spec, stages)
    with pytest.raises(PebbleError, match=f"has {n} layers but the schedule needs {n + 1} stages"):
        partition(spec, n + 1)


@settings(max_examples=60, deadline=None)
@given(
    widths=st.lists(st.integers(1, 300), min_size=2, max_size=9),
    layernorm=st.booleans(),
    data=st.data(),
)
def test_partition_contract_holds_for_any_mlp(widths, layernorm, data):
    spec = ModelSpec(widths=tuple(widths), layernorm=layernorm)
    n = len(spec.layers())
    _check_partition(spec, data.draw(st.integers(1, n)))
    with pytest.raises(PebbleError):
        partition(spec, n + data.draw(st.integers(1, 4)))


def test_partition_balances_equal_blocks():
    spec = ModelSpec.uniform(8, width=64)
    sizes = [len(r) for r in partition(spec, 4).stage_layers]
    assert sizes == [4, 4, 4, 4]  # two Linear + ReLU blocks each (the last holds the loss)
    p = partition(spec, 4)
    assert p.num_stages == 4
    assert [p.stage_of_layer(i) for i in (0, 3, 4, 15)] == [0, 0, 1, 3]
    with pytest.raises(IndexError):
        p.stage_of_layer(16)


def test_partition_rejects_zero_stages():
    with pytest.raises(PebbleError):
        partition(ModelSpec(), 0)


def _cost(info) -> float:
    f = info.flops()
    return f.F + f.I + f.W


@settings(max_examples=60, deadline=None)
@given(
    widths=st.lists(st.integers(1, 300), min_size=2, max_size=9),
    layernorm=st.booleans(),
    data=st.data(),
)
def test_partition_stage_costs_stay_near_the_even_share(widths, layernorm, data):
    """Each cut sits at the unit boundary nearest its share of the FLOPs, so no stage costs
    more than the even share plus one unit (a block, or a layer when blocks are too few)."""
    spec = ModelSpec(widths=tuple(widths), layernorm=layernorm)
    infos = spec.layers()
    stages = data.draw(st.integers(1, len(infos)))
    blocks = len(spec.widths) - 1
    if stages <= blocks:
        unit = max(sum(_cost(i) for i in infos if i.block == b) for b in range(blocks))
    else:
        unit = max(_cost(i) for i in infos)
    total = sum(_cost(i) for i in infos)
    for r in partition(spec, stages).stage_layers:
        assert sum(_cost(infos[i]) for i in r) <= total / stages + unit * (1 + 1e-9)
