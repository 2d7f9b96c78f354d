"""Circuit diagrams (visualize.circuit): the numbers the CS231n backprop notes print, computed by
the circuit's own forward and backward passes, checked by finite differences, and drawn where a
reader can see them.

Source of the numbers: CS231n's "Backpropagation, intuitions" notes (cs231n.github.io,
optimization-2), in /work/shared/seeds/003: f = (x + y)·z at x = -2, y = 5, z = -4 gives the
gradients [-4, -4, 3]; the sigmoid neuron with w = [2, -3, -3], x = [-1, -2] gives
dx = [0.39, -0.59], dw = [-0.20, -0.39, 0.20], output 0.73.
"""

from __future__ import annotations

import math

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from simulator.errors import PebbleError
from visualize.circuit import Circuit, Gate, circuit_figure

ADD_MUL = Circuit(("x", "y", "z"), (Gate("+", ("x", "y"), "q"), Gate("*", ("q", "z"), "f")))
AT = {"x": -2.0, "y": 5.0, "z": -4.0}
NEURON = Circuit(
    ("w0", "x0", "w1", "x1", "w2"),
    (
        Gate("*", ("w0", "x0"), "a"),
        Gate("*", ("w1", "x1"), "b"),
        Gate("+", ("a", "b"), "c"),
        Gate("+", ("c", "w2"), "d"),
        Gate("*-1", ("d",), "e"),
        Gate("exp", ("e",), "g"),
        Gate("+1", ("g",), "h"),
        Gate("1/x", ("h",), "f"),
    ),
)
NEURON_AT = {"w0": 2.0, "x0": -1.0, "w1": -3.0, "x1": -2.0, "w2": -3.0}


def numeric(circuit: Circuit, at: dict[str, float], name: str, h: float = 1e-6) -> float:
    up, down = dict(at), dict(at)
    up[name] += h
    down[name] -= h
    return (circuit.evaluate(up)[0]["f"] - circuit.evaluate(down)[0]["f"]) / (2 * h)


def test_add_then_multiply_gives_the_notes_gradients():
    values, grads = ADD_MUL.evaluate(AT)
    assert (values["q"], values["f"]) == (3.0, -12.0)
    assert [grads[w] for w in "xyz"] == [-4.0, -4.0, 3.0]


def test_sigmoid_neuron_gives_the_notes_numbers_and_finite_differences_agree():
    values, grads = NEURON.evaluate(NEURON_AT)
    assert round(values["f"], 2) == 0.73
    assert [round(grads[w], 2) for w in ("x0", "x1")] == [0.39, -0.59]
    assert [round(grads[w], 2) for w in ("w0", "w1", "w2")] == [-0.20, -0.39, 0.20]
    for name in NEURON.inputs:
        assert math.isclose(grads[name], numeric(NEURON, NEURON_AT, name), rel_tol=1e-6)


def test_a_forked_wire_adds_its_gradients_and_max_routes():
    """x feeds both inputs of a multiply: df/dx = 2x, the two branches added."""
    square = Circuit(("x",), (Gate("*", ("x", "x"), "f"),))
    assert square.evaluate({"x": 3.0})[1]["x"] == 6.0
    routed = Circuit(("x", "y", "z"), (Gate("max", ("x", "y"), "m"), Gate("*", ("m", "z"), "f")))
    grads = routed.evaluate({"x": 4.0, "y": 2.0, "z": -3.0})[1]
    assert [grads[w] for w in "xyz"] == [-3.0, 0.0, 4.0]


def drawn_texts(fig) -> dict[str, str]:
    return {
        t.get_gid(): t.get_text()
        for t in fig.findobj()
        if getattr(t, "get_gid", None) and hasattr(t, "get_text") and t.get_gid()
    }


def test_figure_shows_each_wire_value_and_gradient_inside_the_figure_without_overlap():
    for circuit, at in [(ADD_MUL, AT), (NEURON, NEURON_AT)]:
        fig = circuit_figure(circuit, at, title="a circuit")
        values, grads = circuit.evaluate(at)
        texts = drawn_texts(fig)
        for wire in values:
            assert texts[f"value:{wire}"] == f"{values[wire]:.2f}".replace("-0.00", "0.00")
            assert texts[f"grad:{wire}"] == f"{grads[wire]:.2f}".replace("-0.00", "0.00")
        gates = [p for p in fig.findobj() if str(p.get_gid()).startswith("gate:")]
        assert len(gates) == len(circuit.gates)
        renderer = FigureCanvasAgg(fig).get_renderer()
        box = fig.bbox
        numbers = [
            t
            for t in fig.findobj()
            if str(getattr(t, "get_gid", lambda: "")()).startswith(("value:", "grad:"))
        ]
        extents = [t.get_window_extent(renderer) for t in numbers]
        for text, extent in zip(numbers, extents, strict=True):
            assert box.x0 <= extent.x0 and extent.x1 <= box.x1, text.get_gid()
            assert box.y0 <= extent.y0 and extent.y1 <= box.y1, text.get_gid()
        for i, a in enumerate(extents):
            for b in extents[i + 1 :]:
                assert not a.overlaps(b), "two numbers drawn over each other"


@pytest.mark.parametrize(
    ("gates", "message"),
    [
        ((Gate("pow", ("x",), "f"),), "unknown gate 'pow'"),
        ((Gate("*", ("x",), "f"),), "a \\* gate takes 2 inputs, not 1"),
        ((Gate("+", ("x", "nope"), "f"),), "gate f reads nope, not computed before it"),
        ((), "a circuit needs at least one gate"),
    ],
)
def test_a_malformed_circuit_is_one_sentence(gates, message):
    with pytest.raises(PebbleError, match=message):
        Circuit(("x",), gates)
