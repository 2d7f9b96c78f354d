"""The ``Layout`` value: its text form parses back, every mistake is one sentence, and the
degrees not modelled yet are refused rather than ignored."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.errors import PebbleError
from simulator.model.layout import CP_COMMS, LAYER_DEGREES, Layout

LAYOUTS = st.builds(
    Layout,
    pipeline=st.integers(1, 4096),
    chunks=st.integers(1, 64),
    tensor=st.integers(1, 1024),
    sequence_parallel=st.booleans(),
    context=st.integers(2, 1024),
    cp_comm=st.sampled_from(CP_COMMS),
    data=st.integers(1, 1024),
    sharding=st.integers(0, 3),
) | st.builds(Layout, pipeline=st.integers(1, 4096), data=st.integers(1, 1024))


@settings(deadline=None)  # a loaded machine must not fail it: no example is timed
@given(LAYOUTS)
def test_the_text_form_parses_back(layout):
    text = layout.to_text()
    assert Layout.parse(text) == layout
    assert str(layout) == text
    assert Layout.parse(text.replace(" ", ",")) == layout  # commas read as spaces
    assert Layout.parse(" ".join(reversed(text.split()))) == layout  # in any order


def test_the_text_form_names_every_degree_in_order():
    layout = Layout(pipeline=8, chunks=2, tensor=8, sequence_parallel=True, data=16, sharding=1)
    assert layout.to_text() == "p8 v2 t8 sp c1 e1 d16 z1"
    assert Layout().to_text() == "p1 v1 t1 c1 e1 d1 z0"
    assert Layout.parse("t4 d2") == Layout(tensor=4, data=2)
    assert layout.to_dict()["text"] == "p8 v2 t8 sp c1 e1 d16 z1"
    assert layout.to_dict()["data"] == 16


def test_devices_and_the_sharded_optimizer():
    layout = Layout(pipeline=4, tensor=8, data=2, sharding=1)
    assert layout.devices == 4 * 8 * 2
    assert layout.distributed_optimizer and layout.optimizer_shards == 2
    assert Layout(data=2).optimizer_shards == 1
    layout.check_devices(64)
    with pytest.raises(PebbleError, match=r"occupies 64 devices \(p x t x c x d\), not the 32"):
        layout.check_devices(32)
    layout.check_node(8)
    with pytest.raises(PebbleError, match="t8 would cross a node of 4 GPUs"):
        layout.check_node(4)


def test_a_spec_is_counted_under_the_layer_degrees_only():
    layout = Layout(pipeline=8, chunks=2, tensor=4, sequence_parallel=True, data=16, sharding=1)
    layers = layout.for_layers()
    assert layers == Layout(tensor=4, sequence_parallel=True)
    assert set(layout.layer_degrees()) == set(LAYER_DEGREES)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("p0", "pipeline degree (p) must be a positive integer, got 0"),
        ("t2000", "tensor degree (t2000) is above pebblesim's limit of 1024"),
        ("c1ag", "exchanging K/V by allgather (--cp-comm, or c2ag in a layout) needs context"),
        ("c0ag", "context degree (c) must be a positive integer, got 0"),
        ("c2 c4ag", "gives c twice"),
        ("c2ring", "cannot read 'c2ring'"),
        ("z4", "sharding degree (z4) is above pebblesim's limit of 3"),
        ("q4", "cannot read 'q4' in layout 'q4'"),
        ("t8 t4", "gives t twice"),
        ("tp8", "cannot read 'tp8'"),
    ],
)
def test_mistakes_are_one_sentence(text, says):
    with pytest.raises(PebbleError, match=re.escape(says)) as error:
        Layout.parse(text)
    message = str(error.value)
    assert message.endswith(".") and "\n" not in message


def test_context_parallelism_in_the_text_and_the_replicas():
    """``c4`` exchanges K/V around a ring, ``c4ag`` all-gathers it; context ranks reduce
    gradients with the data ranks (Megatron Core's dp_cp group: NVIDIA/Megatron-LM
    megatron/core/distributed/distributed_data_parallel.py at d98e8a64, ``dp_cp_group``)."""
    ring = Layout.parse("p2 t2 c4 d3 z1")
    assert (ring.context, ring.cp_comm) == (4, "ring")
    gather = Layout.parse("c4ag d3")
    assert (gather.context, gather.cp_comm) == (4, "allgather")
    assert gather.to_text() == "p1 v1 t1 c4ag e1 d3 z0"
    assert ring.devices == 2 * 2 * 4 * 3
    assert ring.gradient_replicas == 12 and ring.optimizer_shards == 12
    assert gather.gradient_replicas == 12 and gather.optimizer_shards == 1  # z0
    assert Layout(data=3).gradient_replicas == 3
    assert ring.for_layers() == Layout(tensor=2, context=4)
    assert gather.for_layers() == Layout(context=4, cp_comm="allgather")


@pytest.mark.parametrize(
    "fields",
    [
        {"tensor": True},
        {"data": 1.5},
        {"sharding": -1},
        {"sequence_parallel": 1},
        {"context": 2, "cp_comm": "p2p"},
    ],
)
def test_wrong_types_are_refused(fields):
    with pytest.raises(PebbleError, match="layout"):
        Layout(**fields)
