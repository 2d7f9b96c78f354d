"""From kinds' measured times back to the work parts: what a measured profile needs of the rule.

Why beside the rule: a profile records each kind's time as it ran (``F``, ``I``, ``W``, ``B``,
or a made-up kind), but a prediction on another split prices the three work parts (forward,
input-backward, weight-backward) and lets each kind cost its shares of them
(``kind_traits.Work``). Which measured kinds give which parts follows from the kinds' work
alone, so it is answered here once, for any rule.
"""

from __future__ import annotations

from collections.abc import Mapping

from schedules.dependencies import WORK_PARTS, DependencyRule


def parts_from_kinds(
    times: Mapping[str, float | None], weights: Mapping[str, float], rule: DependencyRule
) -> tuple[dict[str, float], dict[str, float]]:
    """(the work parts' times, the kinds measured whole) from one stage's measured kinds.

    A kind that is one part whole (``F``, ``I``, ``W``) gives that part. Any other measured kind
    is kept whole (its own time, where the prediction runs on the measured split); one over
    several parts (``B``) also gives its parts where not all of them were measured alone,
    divided in proportion to ``weights`` (their FLOPs). A part nothing gives is missing from
    the first dict (``uncovered`` says why)."""
    parts, whole = {}, {}
    for kind, time in times.items():
        work = rule.rule(kind).work
        if time is not None and work.whole_part:
            parts[work.whole_part] = time
        elif time is not None:
            whole[kind] = time
    for kind, time in whole.items():
        work = rule.rule(kind).work
        if len(work) > 1 and any(part not in parts for part in work):
            parts.update(work.split(time, weights))
    return parts, whole


def uncovered(times: Mapping[str, float | None], rule: DependencyRule) -> str | None:
    """Why ``times`` give no time for some work part (``has no F time``; ``has neither a B
    time nor both I and W times``), or None when every part is covered: by the kind that is
    the part whole, or by one over several parts."""
    for part in WORK_PARTS:
        alone = _alone(rule, part)
        wider = [k for k, r in rule.kinds.items() if len(r.work) > 1 and part in r.work]
        if any(times.get(k) is not None for k in alone + wider):
            continue
        if not wider:
            return f"has no {alone[0] if alone else part} time"
        each = [k for p in rule.kinds[wider[0]].work for k in _alone(rule, p)]
        return f"has neither a {' or a '.join(wider)} time nor both {' and '.join(each)} times"
    return None


def _alone(rule: DependencyRule, part: str) -> list[str]:
    return [k for k, r in rule.kinds.items() if r.work.whole_part == part]
