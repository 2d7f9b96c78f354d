"""``compare --offload none,full,selective``: a list of offload policies to put side by side.

Why its own module: ``compare`` runs each schedule once per (recompute, offload) pair, and the
list must be checked, every policy of it, before anything runs; a per-stage policy's
``STAGE:POLICY`` terms stay together, as in ``--recompute``'s list.
"""

from __future__ import annotations

from simulator.errors import PebbleError
from simulator.model.offload import OffloadPolicy


def offload_policies(text: str | None) -> list[str] | None:
    """One policy per comma-separated term, except that consecutive ``STAGE:POLICY`` terms form
    one policy (``none,0:full,1:none`` is two); each is parsed here, and a repeat is refused."""
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
        OffloadPolicy.parse(policy)
    if len(set(policies)) < len(policies):
        raise PebbleError(f"--offload {text!r} names a policy twice.")
    return policies
