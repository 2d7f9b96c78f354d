"""One ``advise`` configuration run exactly as ``pebblesim simulate`` runs it, and the one-line
command that reproduces it.

Why a module of its own: the search (``simulator.analytic.advise``) cannot import the CLI's
workflows, so the CLI hands it ``evaluate``; building the run here from the same
``make_schedule`` / ``make_plan`` / ``make_costs`` calls as ``cmd_simulate`` is what makes every
printed command give the printed numbers (``tests/cli/test_advise.py`` runs one).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from simulator.analytic.advise import AUTO, Candidate, Outcome
from simulator.cli.workflows import make_schedule, simulate_args
from simulator.timeline import Timeline


@dataclass(frozen=True)
class RunText:
    """The text ``simulate`` is given: the model (with ``seq``) and the hardware (with the
    memory limit as its capacity)."""

    model: str
    hardware: str


def chunks_flag(c: Candidate) -> int | None:
    """``--chunks`` for families whose chunks vary (interleaved); None where the family (or
    auto's ``--layout``) fixes them."""
    from schedules.registry import SCHEDULES

    if c.schedule == AUTO or SCHEDULES[c.schedule].fixed_chunks:
        return None
    return c.chunks


def run_candidate(c: Candidate, text: RunText) -> Timeline:
    """The Timeline ``pebblesim simulate`` gives for ``c``: its printed command, parsed by the
    CLI's own parser and run through the steps of ``cmd_simulate``."""
    from simulator.cli import auto
    from simulator.cli.parser import build_parser

    args = build_parser().parse_args(shlex.split(simulate_command(c, text))[1:])
    auto.resolve(args)
    schedule = make_schedule(args.schedule, args.ranks, args.microbatches, args.chunks)
    return simulate_args(args, schedule, args.model, args.batch_size, args.cores or None)[1]


def outcome_of(c: Candidate, timeline: Timeline) -> Outcome:
    """The figures ``advise`` ranks by, read from the Timeline as ``simulate`` reports them."""
    summary = timeline.summary()
    throughput = timeline.throughput()
    totals = [r.memory["total"] for r in summary.per_rank]
    peak_rank = max(range(len(totals)), key=totals.__getitem__)
    return Outcome(
        candidate=c,
        step_time=throughput["step_time"],
        tokens_per_second=throughput["tokens_per_second"] or 0.0,
        mfu=throughput["mfu"] or 0.0,
        bubble=summary.bubble_fraction,
        busy=max(r.busy for r in summary.per_rank),
        peak_memory=totals[peak_rank],
        peak_rank=peak_rank,
        fits=all(r.memory["fits"] for r in summary.per_rank),
    )


def evaluator(text: RunText):
    """``evaluate(candidate) -> Outcome`` for the search."""
    return lambda c: outcome_of(c, run_candidate(c, text))


def simulate_command(c: Candidate, text: RunText) -> str:
    """The one ``pebblesim simulate`` line that reproduces ``c``."""
    words = [
        "pebblesim simulate",
        f"--schedule {c.schedule}",
        f"--ranks {c.pp}",
        f"--microbatches {c.microbatches}",
    ]
    chunks = chunks_flag(c)
    if chunks is not None:
        words.append(f"--chunks {chunks}")
    if c.schedule == AUTO:
        words.append(f"--layout {'v' if c.chunks == 2 else 'loop'}")
        words.append(f"--memory-limit {c.activation_limit}")
    words += [
        f"--model {shlex.quote(text.model)}",
        f"--batch-size {c.global_batch}",
        f"--hardware {shlex.quote(text.hardware)}",
    ]
    if c.tp > 1:
        words.append(f"--tp {c.tp} --sp")
    if c.dp > 1:
        words.append(f"--dp {c.dp}")
    if c.distributed_optimizer:
        words.append("--distributed-optimizer")
    if c.recompute != "none":
        words.append(f"--recompute {c.recompute}")
    return " ".join(words)
