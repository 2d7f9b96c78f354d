"""Circuit diagrams in the CS231n style: gates as circles, each wire with its forward value
(green, above) and its gradient (red, below).

Why: part 1 of the course teaches backprop as a circuit of local gates, the way the CS231n
notes do, and a student learns it from the picture: the add gate hands the same gradient to
both inputs, the multiply gate swaps its inputs' values, gradients add where a wire forks.
The figure has to carry the numbers the notebook computes, so a ``Circuit`` computes them
itself: a forward pass gate by gate, then a backward pass in reverse, each gate multiplying
the upstream gradient by its local gradient (``current = local × upstream``), and gradients
accumulating with ``+=``, the same rule pebblesim's layers follow.

    circuit = Circuit(("x", "y", "z"), (Gate("+", ("x", "y"), "q"), Gate("*", ("q", "z"), "f")))
    values, grads = circuit.evaluate({"x": -2, "y": 5, "z": -4})  # grads of f: -4, -4, 3
    fig = circuit_figure(circuit, {"x": -2, "y": 5, "z": -4})

Artists carry ids for checking: ``gate:{output}`` (the gate's circle), ``value:{wire}`` and
``grad:{wire}`` (each wire's two numbers), where an input or output wire is named by itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from matplotlib.figure import Figure
from matplotlib.patches import Circle

from simulator.errors import PebbleError

VALUE_COLOR = "#2E7D32"  # green: forward values, as in the CS231n figures
GRAD_COLOR = "#C62828"  # red: gradients
GATE_RADIUS = 0.24  # in layout units (one column apart is 1.6 units)
COLUMN = 1.6
ROW = 1.4  # between two inputs: room for both wires' numbers where they converge


def _constant(op: str) -> float:
    return float(op[1:])


# op -> (forward, local gradients): forward(inputs, const) and local(inputs, output)
_OPS: dict[str, tuple[Callable, Callable]] = {
    "+": (lambda xs: sum(xs), lambda xs, out: [1.0] * len(xs)),
    "*": (lambda xs: xs[0] * xs[1], lambda xs, out: [xs[1], xs[0]]),
    "max": (
        lambda xs: max(xs[0], xs[1]),
        lambda xs, out: [1.0, 0.0] if xs[0] >= xs[1] else [0.0, 1.0],
    ),
    "exp": (lambda xs: math.exp(xs[0]), lambda xs, out: [out]),
    "1/x": (lambda xs: 1.0 / xs[0], lambda xs, out: [-1.0 / xs[0] ** 2]),
    "σ": (lambda xs: 1.0 / (1.0 + math.exp(-xs[0])), lambda xs, out: [(1.0 - out) * out]),
}
_ARITY = {"+": None, "*": 2, "max": 2, "exp": 1, "1/x": 1, "σ": 1}


@dataclass(frozen=True)
class Gate:
    """One gate: ``op`` applied to the wires ``inputs``, its result on the wire ``output``.
    ``op`` is ``+`` (any number of inputs), ``*``, ``max``, ``exp``, ``1/x``, ``σ``, or a
    one-input gate with a constant: ``*c`` (times c, e.g. ``*-1``) or ``+c`` (plus c)."""

    op: str
    inputs: tuple[str, ...]
    output: str

    def rule(self) -> tuple[Callable, Callable]:
        if self.op in _OPS:
            arity = _ARITY[self.op]
            if arity is not None and len(self.inputs) != arity:
                raise PebbleError(f"a {self.op} gate takes {arity} inputs, not {len(self.inputs)}.")
            return _OPS[self.op]
        if self.op[:1] in "*+" and len(self.inputs) == 1:
            try:
                c = _constant(self.op)
            except ValueError:
                pass
            else:
                if self.op[0] == "*":
                    return (lambda xs: c * xs[0], lambda xs, out: [c])
                return (lambda xs: xs[0] + c, lambda xs, out: [1.0])
        raise PebbleError(f"unknown gate {self.op!r}: use +, *, max, exp, 1/x, σ, *c or +c.")


@dataclass(frozen=True)
class Circuit:
    """Named input wires and gates in the order they compute; the last gate's output is the
    circuit's output ``f``, whose gradients ``evaluate`` returns."""

    inputs: tuple[str, ...]
    gates: tuple[Gate, ...]

    def __post_init__(self) -> None:
        known = set(self.inputs)
        for gate in self.gates:
            gate.rule()
            missing = [w for w in gate.inputs if w not in known]
            if missing:
                raise PebbleError(f"gate {gate.output} reads {missing[0]}, not computed before it.")
            if gate.output in known:
                raise PebbleError(f"wire {gate.output} is computed twice.")
            known.add(gate.output)
        if not self.gates:
            raise PebbleError("a circuit needs at least one gate.")

    @property
    def output(self) -> str:
        return self.gates[-1].output

    def evaluate(self, inputs: Mapping[str, float]) -> tuple[dict[str, float], dict[str, float]]:
        """(value, gradient of the output) of every wire, for the input values ``inputs``."""
        missing = [name for name in self.inputs if name not in inputs]
        if missing:
            raise PebbleError(f"no value for input {missing[0]}.")
        values = {name: float(inputs[name]) for name in self.inputs}
        for gate in self.gates:
            forward, _ = gate.rule()
            values[gate.output] = float(forward([values[w] for w in gate.inputs]))
        grads = dict.fromkeys(values, 0.0)
        grads[self.output] = 1.0
        for gate in reversed(self.gates):
            _, local = gate.rule()
            xs = [values[w] for w in gate.inputs]
            for wire, d in zip(gate.inputs, local(xs, values[gate.output]), strict=True):
                grads[wire] += d * grads[gate.output]  # gradients add up where a wire forks
        return values, grads


def _layout(circuit: Circuit) -> dict[str, tuple[float, float]]:
    """(x, y) of where each wire starts: an input at column 0, one row each; a gate's output at
    its gate, one column right of its furthest input, at the height of its inputs' middle."""
    where = {name: (0.0, -ROW * i) for i, name in enumerate(circuit.inputs)}
    for gate in circuit.gates:
        xs = [where[w][0] for w in gate.inputs]
        ys = [where[w][1] for w in gate.inputs]
        where[gate.output] = (max(xs) + COLUMN, sum(ys) / len(ys))
    return where


def _number(value: float) -> str:
    text = f"{value:.2f}"
    return "0.00" if text == "-0.00" else text


def circuit_figure(
    circuit: Circuit,
    inputs: Mapping[str, float],
    *,
    title: str | None = None,
    width: float | None = None,
) -> Figure:
    """Draw ``circuit`` at ``inputs``: every wire with its value (green, above) and the output's
    gradient with respect to it (red, below), two decimals as in the CS231n figures."""
    values, grads = circuit.evaluate(inputs)
    where = _layout(circuit)
    right = max(x for x, _ in where.values()) + COLUMN
    low = min(y for _, y in where.values())
    x_range, y_range = (-0.9, right + 0.5), (low - 0.7, 0.7)
    span_x, span_y = x_range[1] - x_range[0], y_range[1] - y_range[0]
    scale = min(0.8, (width or 12.0) / span_x)  # inches per layout unit, the same both ways
    top, bottom = (0.45 if title else 0.1), 0.35  # inches for the title and the note
    fig_w, fig_h = scale * span_x, scale * span_y + top + bottom
    fig = Figure(figsize=(fig_w, fig_h))
    ax = fig.add_axes((0.0, bottom / fig_h, 1.0, scale * span_y / fig_h))
    ax.set_axis_off()
    ax.set_xlim(*x_range)
    ax.set_ylim(*y_range)

    gate_of = {gate.output: gate for gate in circuit.gates}
    for name in circuit.inputs:
        x, y = where[name]
        ax.text(x - 0.1, y, name, ha="right", va="center", fontsize=12, style="italic")
    for gate in circuit.gates:
        gx, gy = where[gate.output]
        for wire in gate.inputs:
            start = where[wire]
            if wire in gate_of:
                start = (start[0] + GATE_RADIUS, start[1])
            _wire(ax, wire, start, (gx - GATE_RADIUS, gy), values[wire], grads[wire])
        circle = Circle((gx, gy), GATE_RADIUS, facecolor="white", edgecolor="#333333", lw=1.4)
        circle.set_gid(f"gate:{gate.output}")
        ax.add_patch(circle)
        ax.text(gx, gy, gate.op, ha="center", va="center", fontsize=14 if gate.op in "*+" else 9)
    ox, oy = where[circuit.output]
    end = (right - 0.1, oy)
    out = circuit.output
    _wire(ax, out, (ox + GATE_RADIUS, oy), end, values[out], grads[out], at=0.5)
    ax.text(end[0] + 0.08, oy, out, ha="left", va="center", fontsize=12, style="italic")

    note = "green (above): forward value · red (below): gradient of the output"
    fig.text(0.5, 0.08 / fig_h, note, ha="center", va="bottom", fontsize=9, color="#555555")
    if title:
        fig.suptitle(title, fontsize=11, y=1.0 - 0.1 / fig_h, va="top")
    return fig


def _wire(ax, name: str, start, end, value: float, grad: float, at: float = 0.3) -> None:
    """A wire from ``start`` to ``end`` with its value above and its gradient below, placed
    ``at`` of the way along (nearer its source, where a fork's branches are still apart). On a
    slanted wire the two numbers stand aside of the line, each on its own side of it."""
    (x0, y0), (x1, y1) = start, end
    ax.plot([x0, x1], [y0, y1], color="#444444", lw=1.2, solid_capstyle="butt", zorder=1)
    x, y = x0 + at * (x1 - x0), y0 + at * (y1 - y0)
    slope = (y1 - y0) / (x1 - x0) if x1 != x0 else 0.0
    if abs(slope) < 0.3:  # level enough: both numbers centred on the wire
        sides, dx, lift = ("center", "center"), 0.0, 0.07
    elif slope < 0:  # running down: above the line is its upper right
        sides, dx, lift = ("left", "right"), 0.1, 0.0
    else:  # running up: above the line is its upper left
        sides, dx, lift = ("right", "left"), 0.1, 0.0
    above = {"ha": sides[0], "va": "bottom", "color": VALUE_COLOR, "gid": f"value:{name}"}
    below = {"ha": sides[1], "va": "top", "color": GRAD_COLOR, "gid": f"grad:{name}"}
    value_x = x + (dx if sides[0] == "left" else -dx)
    grad_x = x + (dx if sides[1] == "left" else -dx)
    ax.text(value_x, y + lift, _number(value), fontsize=10, **above)
    ax.text(grad_x, y - lift - 0.02, _number(grad), fontsize=10, **below)
