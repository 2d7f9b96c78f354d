"""The all-to-all traffic of expert parallelism: bytes one rank sends to dispatch its tokens to
their experts and to combine the experts' outputs, per mixture-of-experts block and microbatch.

Why a function of its own: the cost model times these transfers (and overlaps them where the
schedule allows), the memory model does not need them, and ``advise`` compares layouts by them;
all three ask here, so the formula is written once.

The formula (Megatron Core's all-to-all token dispatcher, ``MoEAlltoAllTokenDispatcher``: each
rank permutes its tokens by expert, exchanges them with the ``e`` ranks of its expert group,
runs its ``E / e`` experts, and sends the outputs back the same way)::

    rows     = T k                  dropless: each of the rank's T tokens goes to k experts
             = E C                  with a capacity factor: every expert's padded buffer,
                                    C = ceil(cf T k / E) (``moe.capacity``)
    dispatch = rows * (e - 1) / e * h * itemsize     forward, to the other e - 1 ranks
    combine  = dispatch                              forward, the outputs coming back

``T`` is the rank's tokens of one microbatch (``b s``, the tokens the block's router sees), ``k``
the top-k, ``h`` the hidden size. Routing is taken as uniform over the experts, so a fraction
``1 / e`` of the rows stays on the rank; the busiest rank *receives* ``router_imbalance`` times
the mean (dropless), which is what its transfer waits for. The backward (``I``) sends the same
two volumes the other way (the combine's gradient out, the dispatch's gradient back), so a
block moves ``2 * (dispatch + combine)`` per microbatch per rank over a training step's F and I.
Nothing moves with ``e = 1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from simulator.errors import PebbleError
from simulator.model.layout import Layout
from simulator.model.transformer.config import TransformerConfig
from simulator.model.transformer.moe_rules import buffer_rows


@dataclass(frozen=True)
class MoEAllToAll:
    """Bytes one rank sends (and the busiest rank receives) in one block's forward, for one
    microbatch: ``dispatch`` then ``combine``; the backward repeats both volumes. Why a value:
    the cost model prices each transfer on the expert group's link and may overlap them."""

    dispatch: int
    combine: int
    busiest_receive: int
    expert_group: int

    @property
    def forward(self) -> int:
        """Bytes one rank sends in the block's forward (dispatch + combine)."""
        return self.dispatch + self.combine

    @property
    def backward(self) -> int:
        """Bytes one rank sends in the block's input backward: the same two volumes."""
        return self.dispatch + self.combine


def moe_all_to_all_bytes(
    config: TransformerConfig, layout: Layout, microbatch_sequences: int, itemsize: int
) -> MoEAllToAll:
    """The all-to-all bytes of one mixture-of-experts block of ``config`` for one microbatch of
    ``microbatch_sequences`` sequences in ``itemsize``-byte activations, under ``layout``'s
    expert degree (module docstring)."""
    if not config.is_moe:
        raise PebbleError("all-to-all traffic belongs to a mixture-of-experts model.")
    for name, value in (("microbatch_sequences", microbatch_sequences), ("itemsize", itemsize)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise PebbleError(f"{name} must be a positive integer, got {value!r}.")
    e = layout.expert
    if config.experts % e:
        raise PebbleError(
            f"expert-parallel degree {e} does not divide the model's {config.experts} experts."
        )
    tokens = microbatch_sequences * config.seq
    rows = buffer_rows(config, tokens)
    row_bytes = config.hidden * itemsize
    sent = rows * (e - 1) * row_bytes // e
    if e == 1:
        return MoEAllToAll(0, 0, 0, 1)
    imbalance = 1.0 if config.capacity_factor is not None else config.imbalance
    busiest = math.ceil(rows * (e - 1) / e * imbalance) * row_bytes
    return MoEAllToAll(dispatch=sent, combine=sent, busiest_receive=busiest, expert_group=e)
