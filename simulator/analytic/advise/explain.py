"""``advise --explain LAYOUT``: what became of one layout (``p4 v2 t4 sp d4``) in a search, with
the constraint that bound it and its numbers.

Why: a user who expected ``p8 t8 d16`` (what a paper used) and does not see it in the table
needs to know whether it was never a candidate (its degrees do not divide the GPUs, the model or
the batch), was dropped by a bound (memory: by how much, and whether static memory alone is
over; time: its fastest possible step against the cut-off), was simulated and is over the
memory, or fits and ranks somewhere below the table.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

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
            if token[0] == "c" and token.endswith("ag"):  # c2ag; a plain c2 matches either
                out["cp_comm"] = "allgather"
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
    """Why ``request`` has no configuration with these degrees: the first rule they break (each
    degree's own rule, then the GPUs, the batch, the sharding stage and the stages), naming the
    flag that changes it where one does."""
    for rule in RULES:
        reason = rule(fields, request)
        if reason:
            return reason
    return "no searched schedule family runs these degrees (see --schedules and --max-chunks)"


def _sp_rule(fields: dict[str, object], request: Request) -> str:
    t, sp = fields.get("tensor"), fields.get("sequence_parallel")
    if sp is False or (t == 1 and sp):
        return "advise pairs sp with every tensor degree above 1, and only with those"
    return ""


def _tensor_rule(fields: dict[str, object], request: Request) -> str:
    t, node = fields.get("tensor"), request.hardware.gpus_per_node
    if t is None:
        return ""
    if t > node or node % t:
        return f"a tensor group must fit in one {node}-GPU node, t{t} does not"
    if request.tensor not in (None, t):
        return f"--tp {request.tensor} fixes the tensor degree"
    try:
        sharded(request.spec, Layout(tensor=t, sequence_parallel=t > 1))
    except PebbleError as exc:
        return f"t{t} does not divide the model: {exc}"
    return ""


def _context_rule(fields: dict[str, object], request: Request) -> str:
    """The rules of ``degrees.context_degrees`` and ``layer_degrees`` for the c asked."""
    c, t = fields.get("context"), fields.get("tensor") or 1
    if c is None:
        return ""
    node, comm = request.hardware.gpus_per_node, fields.get("cp_comm")
    if request.context is not None and c != request.context:
        return f"--cp {request.context} fixes the context degree"
    if request.context is None and c & (c - 1):
        return (
            f"advise tries context degrees that are powers of two (c1, c2, c4, ...); "
            f"--cp {c} tries c{c}"
        )
    if request.context is None and t * c > node:
        return (
            f"advise keeps the tensor and context groups within one {node}-GPU node, and "
            f"t{t} x c{c} is {t * c} GPUs; --cp {c} tries it anyway"
        )
    if comm is not None and c > 1 and comm != request.cp_comm:
        return f"advise exchanges K/V by {request.cp_comm}; --cp-comm {comm} searches c{c}ag"
    try:
        layer = Layout(tensor=t, sequence_parallel=t > 1, context=c)
        sharded(request.spec, replace(layer, cp_comm=request.cp_comm if c > 1 else "ring"))
    except PebbleError as exc:
        return f"c{c} does not split the model (each sequence into {2 * c} chunks): {exc}"
    return ""


def _expert_rule(fields: dict[str, object], request: Request) -> str:
    """The rules of ``degrees.expert_degrees`` for the e asked."""
    e, config = fields.get("expert"), request.spec.config
    if e is None:
        return ""
    if request.expert not in (None, e):
        return f"--ep {request.expert} fixes the expert degree"
    if not getattr(config, "is_moe", False):
        if e == 1:
            return ""
        return (
            f"expert parallelism (e{e}) needs a mixture-of-experts model (experts=N in its "
            "transformer: text, or a MoE preset), so advise searches e1 for this dense one"
        )
    if config.experts % e:
        return f"e{e} does not divide the model's {config.experts} routed experts"
    d, c = _data_context(fields, request.gpus)
    if d is not None and c is not None and (d * c) % e:
        return f"e{e} must divide the data x context ranks it reuses, d{d} x c{c} = {d * c}"
    return ""


def _devices_rule(fields: dict[str, object], request: Request) -> str:
    """``Layout.devices``: p x t x c x d is the GPUs (e reuses the data and context ranks)."""
    letters = (("p", "pipeline"), ("t", "tensor"), ("c", "context"), ("d", "data"))
    known = [(letter, fields[name]) for letter, name in letters if name in fields]
    product, gpus = math.prod(int(value) for _, value in known), request.gpus
    if not gpus % product and (len(known) < len(letters) or product == gpus):
        return ""
    shown = " x ".join(f"{letter}{value}" for letter, value in known)
    how = "is more than them" if product > gpus else "does not divide them"
    how = how if gpus % product else "is not them"
    return (
        f"p x t x d must be the {gpus} GPUs over c (the devices are p x t x c x d, context "
        f"ranks too); {shown} = {product} {how}"
    )


def _data_context(fields: dict[str, object], gpus: int) -> tuple[int | None, int | None]:
    """The data and context degrees asked, or implied by the GPUs: when p x t x c x d of those
    given is the GPUs the rest are 1, and when one is left out it is what the GPUs leave."""
    names = ("pipeline", "tensor", "context", "data")
    known = {name: int(fields[name]) for name in names if name in fields}
    product = math.prod(known.values())
    missing = [name for name in names if name not in known]
    if product == gpus:
        known.update(dict.fromkeys(missing, 1))
    elif len(missing) == 1 and not gpus % product:
        known[missing[0]] = gpus // product
    return known.get("data"), known.get("context")


def _data_rule(fields: dict[str, object], request: Request) -> str:
    d = fields.get("data")
    if d is None:
        return ""
    if request.data not in (None, d):
        return f"--dp {request.data} fixes the data degree"
    if request.global_batch % d:
        return f"d{d} does not divide the global batch of {request.global_batch} sequences"
    return ""


def _sharding_rule(fields: dict[str, object], request: Request) -> str:
    """The stages ``enumeration.candidates`` searches: ``request.shardings`` (``--zero-stages``)
    or ``request.sharding`` over two or more data x context ranks, z0 over one or without a
    distributed optimizer."""
    z, (d, c) = fields.get("sharding"), _data_context(fields, request.gpus)
    if z is None:
        return ""
    if not request.distributed_optimizer:
        if z == 0:
            return ""
        return (
            f"--no-distributed-optimizer (or --zero 0) searches z0 only; without it "
            f"--zero-stages {z} searches z{z}"
        )
    replicas = int(d or 1) * int(c or 1)  # at least this many; exactly when both are known
    exact = d is not None and c is not None
    if z == 0 and replicas > 1:
        return (
            f"advise shards the optimizer state over the d x c = {replicas}"
            f"{'' if exact else ' or more'} ranks (z1 and above); --no-distributed-optimizer "
            "(or --zero 0) searches z0"
        )
    if z > 0 and exact and replicas == 1:
        return f"with one data x context rank (d{d} x c{c}) nothing is sharded: ask z0"
    stages = request.shardings or (request.sharding,)
    if z == 0 or z in stages:
        return ""
    more = ",".join(str(s) for s in sorted({*stages, z}))
    if request.shardings:
        have = ",".join(str(s) for s in stages)
        return f"--zero-stages {have} searches those stages only; --zero-stages {more} adds z{z}"
    return (
        f"advise searches z{request.sharding} only (--zero's stage, 1 by default); "
        f"--zero-stages {more} (in place of --zero) searches z{z} too"
    )


def _stages_rule(fields: dict[str, object], request: Request) -> str:
    p, v = fields.get("pipeline"), fields.get("chunks")
    blocks = blocks_of(request.spec)
    if p is not None and p * (v or 1) > blocks:
        return f"p{p} x v{v or 1} stages is more than the model's {blocks} blocks"
    if v is not None and v > max(request.max_chunks, 2):
        return f"--max-chunks {request.max_chunks} caps v"
    return ""


# in the order ``not_searched`` tries them: each degree's own rule, then the GPUs, the batch, the
# sharding stage and the stages
RULES = (
    _sp_rule,
    _tensor_rule,
    _context_rule,
    _expert_rule,
    _devices_rule,
    _data_rule,
    _sharding_rule,
    _stages_rule,
)
