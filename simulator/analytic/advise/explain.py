"""``advise --explain LAYOUT``: what became of one layout (``p4 v2 t4 sp d4``) in a search, with
the constraint that bound it and its numbers.

Why: a user who expected ``p8 t8 d16`` (what a paper used) and does not see it in the table
needs to know whether it was never a candidate (its degrees do not divide the GPUs, the model or
the batch), was dropped by a bound (memory: by how much, and whether static memory alone is
over; time: its fastest possible step against the cut-off), was simulated and is over the
memory, or fits and ranks somewhere below the table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from simulator.analytic.advise.degrees import blocks_of, sharded
from simulator.analytic.advise.fates import FITS, Fate
from simulator.analytic.advise.search import SearchResult, _rank_key
from simulator.analytic.advise.space import Request
from simulator.errors import PebbleError
from simulator.model.layout import Layout

_LETTERS = {
    "p": "pipeline",
    "v": "chunks",
    "t": "tensor",
    "c": "context",
    "e": "expert",
    "d": "data",
    "z": "sharding",
}


@dataclass(frozen=True)
class Explanation:
    """The configurations of one layout, each with its fate, and their ranks among every
    distinct configuration that fits (1 = the table's first row)."""

    layout: str  # as the user wrote it, normalised (``p4 v2 t4 sp d4``)
    fates: tuple[Fate, ...]  # best first: fitting by rank, then the rest by time
    ranks: dict[str, int]  # a fitting configuration's label: its rank
    not_searched: str  # why no configuration has this layout ("" when some do)


def wanted(text: str) -> dict[str, object]:
    """The degrees ``text`` names, as Layout fields (the ones it leaves out match any value);
    one sentence for a layout that cannot be read."""
    Layout.parse(text)  # the one reader's sentence for junk
    out: dict[str, object] = {}
    for token in filter(None, re.split(r"[\s,]+", str(text).strip().lower())):
        if token == "sp":
            out["sequence_parallel"] = True
        elif token[0] in _LETTERS:
            out[_LETTERS[token[0]]] = int(re.sub(r"\D", "", token))
    return out


def _matches(layout: Layout, fields: dict[str, object]) -> bool:
    return all(getattr(layout, name) == value for name, value in fields.items())


def explain(text: str, request: Request, result: SearchResult) -> Explanation:
    """Every configuration of ``result`` whose layout has the degrees ``text`` names."""
    fields = wanted(text)
    matched = [f for f in result.fates if _matches(f.candidate.layout, fields)]
    fitting = sorted((f.outcome for f in result.fates if f.verdict == FITS), key=_rank_key)
    ranks = {o.candidate.label(): i for i, o in enumerate(fitting, 1)}

    def order(f: Fate) -> tuple:
        rank = ranks.get(f.candidate.label())
        time = f.time if f.time is not None else float("inf")
        return (rank is None, rank or 0, time, f.candidate.label())

    matched.sort(key=order)
    normal = " ".join(str(t) for t in re.split(r"[\s,]+", text.strip().lower()) if t)
    return Explanation(
        normal, tuple(matched), ranks, "" if matched else not_searched(fields, request)
    )


def not_searched(fields: dict[str, object], request: Request) -> str:
    """Why ``request`` has no configuration with these degrees: the first rule they break."""
    p, t = fields.get("pipeline"), fields.get("tensor")
    d, v = fields.get("data"), fields.get("chunks")
    node = request.hardware.gpus_per_node
    gpus = request.gpus
    if fields.get("context", 1) != 1 or fields.get("expert", 1) != 1:
        return "advise searches c1 e1 only (no context or expert parallelism yet)"
    if fields.get("sharding") not in (None, 0, 1):
        return "advise searches z0 and z1 only (ZeRO-2 and -3 are not searched yet)"
    if fields.get("sequence_parallel") is False or (t == 1 and fields.get("sequence_parallel")):
        return "advise pairs sp with every tensor degree above 1, and only with those"
    product = (p or 1) * (t or 1) * (d or 1)
    if gpus % product or (None not in (p, t, d) and product != gpus):
        return f"p x t x d must be the {gpus} GPUs; {product} is not a way to split them"
    if t is not None:
        if t > node or node % t:
            return f"a tensor group must fit in one {node}-GPU node, t{t} does not"
        if request.tensor not in (None, t):
            return f"--tp {request.tensor} fixes the tensor degree"
        try:
            sharded(request.spec, Layout(tensor=t, sequence_parallel=t > 1))
        except PebbleError as exc:
            return f"t{t} does not divide the model: {exc}"
    if d is not None:
        if request.data not in (None, d):
            return f"--dp {request.data} fixes the data degree"
        if request.global_batch % d:
            return f"d{d} does not divide the global batch of {request.global_batch} sequences"
    blocks = blocks_of(request.spec)
    if p is not None and p * (v or 1) > blocks:
        return f"p{p} x v{v or 1} stages is more than the model's {blocks} blocks"
    if v is not None and v > max(request.max_chunks, 2):
        return f"--max-chunks {request.max_chunks} caps v"
    return "no searched schedule family runs these degrees (see --schedules and --max-chunks)"
