"""The layout's flags, as one table: every command that runs or searches a layout takes them.

Why a table: ``simulate``, ``compare``, ``train`` and ``advise`` accept the same degrees with the
same names, types and help, so every row ``advise`` prints can be run again by ``simulate`` and
``compare``; a new parallel degree is one more row here (and its field in
``simulator.model.layout``). Light on purpose: the parser imports it before anything heavy loads.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING

from simulator.cli import numbers
from simulator.errors import PebbleError

if TYPE_CHECKING:  # the parser imports this module before numpy loads; it reads a Layout only
    from simulator.model.layout import Layout


@dataclass(frozen=True)
class LayoutFlag:
    """One degree's flag: the ``Layout`` field it sets and how argparse reads it."""

    flag: str
    field: str
    help: str
    type: object = None  # an argparse type; None for a switch
    metavar: str | None = None


LAYOUT_FLAGS = (
    LayoutFlag(
        "--tp",
        "tensor",
        "tensor-parallel degree of a transformer (counted by the cost and memory models; the "
        "numpy layers on Ray run unsharded)",
        numbers.count(numbers.MAX_TP, "MAX_TP"),
        "T",
    ),
    LayoutFlag(
        "--sp", "sequence_parallel", "sequence parallelism across the --tp group (--tp 2 or more)"
    ),
    LayoutFlag(
        "--cp",
        "context",
        "context-parallel degree of a transformer: each sequence split C ways, two chunks a rank "
        "(counted by the cost and memory models; the numpy layers on Ray run unsharded)",
        numbers.count(numbers.MAX_TP, "MAX_TP"),
        "C",
    ),
    LayoutFlag(
        "--cp-comm",
        "cp_comm",
        "how the --cp ranks exchange K/V: ring (Megatron Core's p2p, overlapped with the "
        "attention; the default) or allgather (as Llama 3 trained)",
        numbers.one_of("ring", "allgather"),
        "ring|allgather",
    ),
    LayoutFlag(
        "--ep",
        "expert",
        "expert-parallel degree of a mixture of experts: its routed experts split E ways over "
        "the --dp x --cp ranks (counted by the cost and memory models)",
        numbers.count(numbers.MAX_TP, "MAX_TP"),
        "E",
    ),
    LayoutFlag(
        "--dp", "data", "data-parallel replicas", numbers.count(numbers.MAX_DP, "MAX_DP"), "D"
    ),
    LayoutFlag(
        "--zero",
        "sharding",
        "sharding stage over the --dp (x --cp) ranks: 0 nothing sharded, 1 the optimizer state "
        "(ZeRO-1, Megatron's distributed optimizer), 2 the gradients too (ZeRO-2), 3 the "
        "parameters too (ZeRO-3, FSDP)",
        numbers.count(3, "", minimum=0),
        "Z",
    ),
)
_DISTRIBUTED_OPTIMIZER_HELP = "the same as --zero 1"
_DEFAULTS = {"sharding": 0, "cp_comm": "ring"}  # a degree's value that needs no flag (else 1)


def add_layout_args(parser: argparse.ArgumentParser, search: bool = False) -> None:
    """Every layout flag; with ``search`` (``advise``) a degree given is fixed, not searched."""
    group = parser.add_argument_group(
        "layout (fixes that degree of the search)" if search else "layout"
    )
    for row in LAYOUT_FLAGS:
        if row.type is None:
            group.add_argument(
                row.flag, dest=row.field, action="store_true", default=None, help=row.help
            )
        else:
            group.add_argument(
                row.flag, dest=row.field, type=row.type, metavar=row.metavar, help=row.help
            )
    group.add_argument(
        "--distributed-optimizer",
        dest="sharding",
        action="store_const",
        const=1,
        help=_DISTRIBUTED_OPTIMIZER_HELP,
    )


def layout_degrees(args) -> dict[str, object]:
    """The degrees the command line gave, by ``Layout`` field (absent ones left out)."""
    given = {row.field: getattr(args, row.field, None) for row in LAYOUT_FLAGS}
    return {name: value for name, value in given.items() if value is not None}


def layout_flags_text(layout: Layout) -> str:
    """The flags that give ``layout`` back to ``simulate`` or ``compare`` (degrees of 1 and
    stage 0 left out)."""
    words = []
    for row in LAYOUT_FLAGS:
        value = getattr(layout, row.field)
        if row.type is None:
            words += [row.flag] if value else []
        elif value != _DEFAULTS.get(row.field, 1):
            words.append(f"{row.flag} {value}")
    return " ".join(words)


def train_layout_note(layout: Layout) -> str | None:
    """One line for ``train`` when the layout has a degree the Ray run does not carry out:
    tensor parallelism (``--tp`` or ``tp=`` in the model text) is counted by the memory and cost
    models, but each rank's numpy layers run whole on one actor."""
    if layout.tensor <= 1:
        return None
    return (
        f"note: tensor parallelism (t{layout.tensor}) is counted in the predicted memory and "
        "time only; on Ray each rank's layers run unsharded, on one actor."
    )


def check_trainable(layout: Layout) -> None:
    """One sentence for ``train`` under context parallelism: the memory and time models count
    ``s / c`` tokens a rank, but each rank's numpy layers run on whole sequences on one actor,
    so its measured bytes could never equal the prediction (tensor parallelism only gets a note,
    ``train_layout_note``: its measured run is the t = 1 one the model also predicts)."""
    if layout.context > 1:
        raise PebbleError(
            f"train runs each rank's numpy layers on whole sequences, so context parallelism "
            f"(c{layout.context}) cannot be measured; simulate or compare it instead (--cp "
            "counts s / c tokens a rank in the predicted memory and time)."
        )
