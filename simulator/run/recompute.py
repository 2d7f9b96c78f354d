"""``--recompute`` on the command line: one policy resolved for a run, or a list to compare.

Why its own module: ``simulate``, ``train``, ``demo``, ``compare`` and ``advise`` all read it,
and a budget needs the schedule as well as the model's split to be solved.
"""

from __future__ import annotations

from simulator.errors import PebbleError
from simulator.model.recompute import RecomputePlan, RecomputePolicy, plan_stages
from simulator.run.recompute_budget import solve_budget


def resolve_recompute(text: str | None, schedule, spec, parts, rows: int) -> RecomputePlan | None:
    """``--recompute`` for this run: a named policy per stage, or a budget's solved plan."""
    if text is None:
        return None
    policy = RecomputePolicy.parse(text)
    if policy.is_none:
        return None
    if policy.budget is not None:
        return solve_budget(schedule, spec, parts, rows, policy.budget, policy.to_text())
    return plan_stages(policy, spec, parts)


def recompute_policies(text: str | None) -> list[str] | None:
    """``compare --recompute none,selective,full``: one policy per comma-separated term, except
    that a per-stage policy's ``STAGE:POLICY`` terms stay together (``none,0:full,1:none`` is
    two policies); each is checked here, before anything runs."""
    if text is None:
        return None
    groups: list[list[str]] = []
    for term in (t.strip() for t in text.split(",")):
        staged = term[:1].isdigit()
        if staged and groups and groups[-1][0][:1].isdigit():
            groups[-1].append(term)
        else:
            groups.append([term])
    policies = [",".join(group) for group in groups]
    for policy in policies:
        RecomputePolicy.parse(policy)
    if len(set(policies)) < len(policies):
        raise PebbleError(f"--recompute {text!r} names a policy twice.")
    return policies
