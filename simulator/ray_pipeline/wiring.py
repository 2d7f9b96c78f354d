"""How each action of a validated schedule is wired on Ray: where its input comes from and where
its output goes, and how a rank's consecutive actions fuse into one Ray call.

Everything here reads the dry run (``schedules.validate.DryRun``) and the dependency rule; it
derives no dependency of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from schedules.dependencies import Flow
from schedules.validate import DryRun


@dataclass(frozen=True)
class WiredAction:
    """One action and its transport.

    ``producer`` is the order index of the action whose output this one receives (None if it
    receives nothing), ``flow`` what that output is; ``remote_input`` says it comes from another
    rank (an object reference), otherwise it waits in the rank's local store. The output goes
    to ``receiver`` (a stage) in the local store (``keep_local``) or the object store (``send``).
    ``grads_out``: the last weight-gradient action of its stage, which returns the stage's
    gradients for the data-parallel reduction.
    """

    index: int
    rank: int
    stage: int
    kind: str
    mb: int
    producer: int | None
    flow: Flow | None
    remote_input: bool
    receiver: int | None
    keep_local: bool
    send: bool
    grads_out: bool

    @property
    def spec(self) -> tuple:
        """What the worker's ``act`` needs: (stage, kind, mb, keep_local, send, grads_out)."""
        return (self.stage, self.kind, self.mb, self.keep_local, self.send, self.grads_out)


def wire(run: DryRun, param_stages: set[int], dp: int) -> list[WiredAction]:
    """Per action, in the dry run's order: its input source, output destination and whether it
    returns gradients."""
    schedule, rule = run.schedule, run.rule
    to_rank = schedule.stage_to_rank
    num_stages = schedule.num_stages
    last_weight_action: dict[int, int] = {}
    for i, (rank, position) in enumerate(run.order):
        stage, kind, _ = schedule.actions[rank][position]
        if rule.rule(kind).completes_weight_gradient:
            last_weight_action[stage] = i
    wired = []
    for i, (rank, position) in enumerate(run.order):
        stage, kind, mb = schedule.actions[rank][position]
        received = run.received(i)
        producer, flow = received if received is not None else (None, None)
        remote_input = producer is not None and run.order[producer][0] != rank
        receiver = rule.receiver(kind, stage, num_stages)
        keep_local = receiver is not None and to_rank[receiver] == rank
        send = receiver is not None and to_rank[receiver] != rank
        grads_out = dp > 1 and stage in param_stages and last_weight_action.get(stage) == i
        wired.append(
            WiredAction(
                i,
                rank,
                stage,
                kind,
                mb,
                producer,
                flow,
                remote_input,
                receiver,
                keep_local,
                send,
                grads_out,
            )
        )
    return wired


def segments(wired: list[WiredAction]) -> list[list[WiredAction]]:
    """Group each rank's actions into runs submitted as one Ray call each.

    A run starts at an action whose input comes from another rank and ends after an action
    whose output leaves the rank (or that returns gradients for the all-reduce), so every
    payload still arrives at the start of a call and leaves at its end. Runs are listed in the
    order of their first action in the dry run, which keeps submission topological.
    """
    runs: list[list[WiredAction]] = []
    open_run: dict[int, list[WiredAction] | None] = {}
    for action in wired:
        run = open_run.get(action.rank)
        if run is None or action.remote_input:
            run = []
            runs.append(run)
        run.append(action)
        open_run[action.rank] = None if action.send or action.grads_out else run
    return runs
